//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpkit/resilience/examples/demotools"
	"github.com/mcpkit/resilience/internal/proctest"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume/redisstore"
)

// clusterChaosDuration is how long each run of TestRedisClusterFailover
// calls; the primary dies clusterPrimaryKillAt into it.
const (
	clusterChaosDuration = 12 * time.Second
	clusterPrimaryKillAt = 3 * time.Second
	clusterCallTimeout   = 20 * time.Second
)

// TestRedisClusterFailover: three haserver replicas that adopt sessions,
// deduplicate tools/call and keep their event streams in Redis, behind
// nginx without stickiness, on a 6-node Redis Cluster. A client increments
// a counter while haserver replicas are SIGKILLed and restarted every
// 2.5-3.5s (nginx skips a replica for 5s after a refused connection, so
// faster kills leave it none to send to), and once the Redis primary holding the session's slot is
// SIGKILLed; its replica takes over (cluster-node-timeout 1s), and the dead
// node is started again and rejoins as its replica. Run with
// replica-acknowledged writes (haserver -replica-acks 1) and without.
//
// An increment is acknowledged when the client got its result. The
// counter must hold every acknowledged increment (with acks: none lost;
// without: the number lost is reported), and at most the acknowledged ones
// plus those whose outcome the client could not know (ErrOutcomeUnknown,
// its deadline, or a tool error: a store write that failed may still have
// reached Redis), or an increment ran twice. Every call ends within its
// deadline.
func TestRedisClusterFailover(t *testing.T) {
	for _, acks := range []bool{true, false} {
		t.Run(fmt.Sprintf("replica-acks=%v", acks), func(t *testing.T) {
			args := []string{"-dedup"}
			if acks {
				args = append(args, "-replica-acks", "1", "-replica-ack-timeout", "500ms")
			}
			c := startDeployment(t, deployment{balancer: "nginx", redisCluster: true, serverArgs: args})
			runClusterChaos(t, c, acks)
		})
	}
}

func runClusterChaos(t *testing.T, c *cluster, acks bool) {
	cl := c.connect()
	session := cl.ID()
	primary, err := c.rdb.(*redis.ClusterClient).MasterForKey(t.Context(), redisstore.Key(session, demotools.CounterKey))
	if err != nil {
		t.Fatal(err)
	}
	primaryAddr := primary.Options().Addr

	ctx, cancel := context.WithTimeout(t.Context(), clusterChaosDuration)
	defer cancel()
	var kills atomic.Int32
	var killedAt atomic.Int64 // unix nanos of the primary's death
	chaosDone := make(chan error, 2)
	go func() { chaosDone <- c.chaosReplicas(ctx, &kills) }()
	go func() {
		select {
		case <-ctx.Done():
			chaosDone <- errors.New("the run ended before the primary was killed")
			return
		case <-time.After(clusterPrimaryKillAt):
		}
		t.Logf("KILLING Redis primary %s (holds session %s) with SIGKILL", primaryAddr, session)
		promoted, took, err := c.rcluster.KillPrimary(primaryAddr, func() { killedAt.Store(time.Now().UnixNano()) })
		if err != nil {
			chaosDone <- err
			return
		}
		t.Logf("Redis replica %s promoted %v after the kill", promoted, took.Round(time.Millisecond))
		// As an orchestrator would: the dead node comes back, and rejoins
		// as the replica of the promoted one (until then, with replica
		// acks, that primary refuses every write as not replicated).
		err = c.rcluster.Restart(primaryAddr)
		if err == nil {
			t.Logf("Redis node %s restarted; a replica of %s again %v after the kill", primaryAddr, promoted, time.Since(time.Unix(0, killedAt.Load())).Round(time.Millisecond))
		}
		chaosDone <- err
	}()

	var calls, acked, unknown, failed int
	var recovery time.Duration
	for ctx.Err() == nil {
		callCtx, cancelCall := context.WithTimeout(context.Background(), clusterCallTimeout)
		start := time.Now()
		_, err := cl.call(callCtx, "increment_counter", nil)
		took := time.Since(start)
		cancelCall()
		calls++
		if took > clusterCallTimeout+time.Second {
			t.Errorf("a call took %v, past its %v deadline", took, clusterCallTimeout)
		}
		switch {
		case err == nil:
			acked++
			// Recovery: from the kill to the end of the first call that
			// started after it and was acknowledged.
			if k := killedAt.Load(); k != 0 && recovery == 0 && start.UnixNano() > k {
				recovery = time.Since(time.Unix(0, k))
			}
		case errors.Is(err, resilient.ErrOutcomeUnknown),
			errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
			unknown++
		default:
			// A tool error (the store failed under the tool, which may
			// have written all the same) or a call refused before it ran.
			failed++
		}
	}
	for range 2 {
		if err := <-chaosDone; err != nil {
			t.Fatalf("chaos: %v", err)
		}
	}
	for _, r := range c.replicas {
		if err := r.proc.WaitFor(readyTimeout, func(ctx context.Context) error { return expectHealth(ctx, "http://"+r.addr, http.StatusOK) }); err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
	}
	// The client's breaker may be open after the failover: ask until it
	// answers, within a bound.
	got := -1
	for deadline := time.Now().Add(30 * time.Second); got < 0; {
		callCtx, cancelCall := context.WithTimeout(t.Context(), clusterCallTimeout)
		out, err := cl.call(callCtx, "get_counter", nil)
		cancelCall()
		switch {
		case err == nil:
			got = out.Counter
		case time.Now().After(deadline):
			t.Fatalf("get_counter still failing 30s after the run: %v", err)
		default:
			time.Sleep(200 * time.Millisecond) // the breaker's open time is 1s; no event to wait on
		}
	}
	lost := max(0, acked-got)
	double := max(0, got-(acked+unknown+failed))
	t.Logf("cluster chaos (replica-acks %v): %d calls, %d acknowledged, %d unknown, %d failed; counter %d; %d haserver kills; recovery %v",
		acks, calls, acked, unknown, failed, got, kills.Load(), recovery.Round(time.Millisecond))
	if double != 0 {
		t.Errorf("counter %d > %d acknowledged + %d unknown + %d failed: %d increments ran twice", got, acked, unknown, failed, double)
	}
	if acks && lost != 0 {
		t.Errorf("counter %d < %d acknowledged increments: %d replica-acknowledged increments lost", got, acked, lost)
	}
	if recovery == 0 {
		t.Error("no call was acknowledged after the primary's death")
	}
	if acked == 0 || kills.Load() < 3 {
		t.Errorf("%d acknowledged, %d haserver kills: the run did not churn", acked, kills.Load())
	}
	fmt.Printf("FIGURE cluster failover: primary killed, %d calls, %d lost, %d double, recovery %v (replica-acks %v)\n",
		calls, lost, double, recovery.Round(time.Millisecond), acks)
}

// chaosReplicas SIGKILLs a random haserver replica every 2.5-3.5s and
// starts it again on its port, one at a time, until ctx ends.
func (c *cluster) chaosReplicas(ctx context.Context, kills *atomic.Int32) error {
	for {
		pause := time.NewTimer(time.Duration(2500+rand.IntN(1000)) * time.Millisecond)
		select {
		case <-ctx.Done():
			pause.Stop()
			return nil
		case <-pause.C:
		}
		r := c.replicas[rand.IntN(len(c.replicas))]
		if err := r.proc.Kill(); err != nil {
			return fmt.Errorf("killing %s: %w", r.name, err)
		}
		kills.Add(1)
		r.proc = proctest.Start(c.t, r.name, c.bin, c.serverArgs(r)...)
		if err := r.proc.WaitFor(readyTimeout, func(ctx context.Context) error {
			return expectHealth(ctx, "http://"+r.addr, http.StatusOK)
		}); err != nil {
			return fmt.Errorf("restarting %s: %w", r.name, err)
		}
	}
}
