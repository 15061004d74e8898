package redisstore

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultFailoverWait bounds how long an operation on a cluster client
// keeps trying while a dead primary's replica is promoted, when
// [Options.FailoverWait] and [EventOptions.FailoverWait] are zero. It
// covers a promotion with cluster-node-timeout up to about 2s; a cluster
// configured slower needs a longer wait.
const DefaultFailoverWait = 5 * time.Second

// Pauses between the tries of an operation that waits out a failover.
const (
	firstFailoverPause = 20 * time.Millisecond
	maxFailoverPause   = 250 * time.Millisecond
)

// rideOut runs op and, on a cluster client, runs it again while it fails
// without having reached any server (a refused connection: the primary of
// its slot is dead and its replica not yet promoted, or the client still
// has the old slot map), asking go-redis to reload the slot map before
// each try, until wait has passed or ctx ends. Only such failures are
// tried again: a command that may have reached a server is never sent
// twice, so rideOut is safe around writes that are not idempotent.
func rideOut(ctx context.Context, c *redis.ClusterClient, wait time.Duration, op func() error) error {
	err := op()
	if c == nil || wait <= 0 || !neverSent(err) {
		return err
	}
	deadline := time.Now().Add(wait)
	pause := firstFailoverPause
	for neverSent(err) && time.Now().Before(deadline) {
		c.ReloadState(ctx)
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
		pause = min(2*pause, maxFailoverPause)
		err = op()
	}
	return err
}

// neverSent reports whether err says that the command reached no server:
// the connection was refused or could not be made, or the cluster refused
// the command before running it (CLUSTERDOWN, TRYAGAIN).
func neverSent(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "CLUSTERDOWN", "TRYAGAIN"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
