package proctest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name under which a [RedisSentinel]'s sentinels
// monitor its primary.
const SentinelMaster = "mymaster"

// SentinelDownAfter is the down-after-milliseconds of a [RedisSentinel]:
// how long the primary may be unreachable before the sentinels fail over.
const SentinelDownAfter = time.Second

// RedisSentinel is a primary, one replica and three sentinels (quorum 2)
// started by [StartRedisSentinel], each a redis-server of its own on
// 127.0.0.1. Its methods must not run concurrently with each other.
type RedisSentinel struct {
	// Servers are the primary and the replica, in the roles they started
	// in; Sentinels are the three sentinels.
	Servers   []*Redis
	Sentinels []*Redis
	t         testing.TB
}

// StartRedisSentinel starts a primary, its replica and three sentinels
// (redis-server --sentinel, so no other binary is needed) and returns once
// the replica is in sync and every sentinel knows the replica and the two
// other sentinels. It skips t when redis-server is missing (fails it under
// CI=true). Every process is killed when t ends.
func StartRedisSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	s := &RedisSentinel{t: t}
	primary := StartRedis(t, nil)
	host, port, _ := net.SplitHostPort(primary.Addr)
	replica := StartRedis(t, &RedisOptions{Args: []string{"--replicaof", host, port}})
	s.Servers = []*Redis{primary, replica}
	for range 3 {
		s.Sentinels = append(s.Sentinels, startSentinel(t, primary.Addr))
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	if err := s.waitHealthy(ctx, primary.Addr); err != nil {
		t.Fatalf("Sentinel deployment not ready: %v", err)
	}
	return s
}

// startSentinel starts one sentinel monitoring the primary at addr. A
// sentinel rewrites its configuration file, so each has its own.
func startSentinel(t testing.TB, primary string) *Redis {
	t.Helper()
	path := Binary(t, "redis-server")
	host, port, _ := net.SplitHostPort(primary)
	var lastErr error
	for range 5 {
		dir := t.TempDir()
		p := FreePort(t)
		conf := filepath.Join(dir, "sentinel.conf")
		m := SentinelMaster
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n", p, dir) +
			fmt.Sprintf("sentinel monitor %s %s %s 2\n", m, host, port) +
			fmt.Sprintf("sentinel down-after-milliseconds %s %d\n", m, SentinelDownAfter.Milliseconds()) +
			fmt.Sprintf("sentinel failover-timeout %s 10000\n", m) +
			fmt.Sprintf("sentinel parallel-syncs %s 1\n", m)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatalf("writing %s: %v", conf, err)
		}
		r := &Redis{Addr: fmt.Sprintf("127.0.0.1:%d", p), t: t, path: path, args: []string{conf, "--sentinel"}}
		r.proc = Start(t, "redis-sentinel "+r.Addr, path, r.args...)
		if lastErr = r.waitReady(); lastErr == nil {
			return r
		}
		r.proc.Kill()
	}
	t.Fatalf("starting a sentinel: %v", lastErr)
	return nil
}

// SentinelAddrs returns the sentinels' addresses, for
// redis.FailoverOptions.SentinelAddrs.
func (s *RedisSentinel) SentinelAddrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, r := range s.Sentinels {
		out[i] = r.Addr
	}
	return out
}

// Primary returns the address the first live sentinel gives for the
// primary.
func (s *RedisSentinel) Primary(ctx context.Context) (string, error) {
	var last error = errors.New("no live sentinel")
	for _, sn := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, MaxRetries: -1, DialTimeout: time.Second})
		hp, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		sc.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		last = err
	}
	return "", last
}

// Server returns the data server (primary or replica) at addr, or nil.
func (s *RedisSentinel) Server(addr string) *Redis {
	for _, r := range s.Servers {
		if r.Addr == addr {
			return r
		}
	}
	return nil
}

// KillPrimary kills the current primary with SIGKILL, calls afterKill (if
// not nil), and waits until the sentinels have promoted the replica and it
// answers as a primary (bounded: 30s). It returns the new primary's address
// and how long the failover took from the kill.
func (s *RedisSentinel) KillPrimary(afterKill func()) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	old, err := s.Primary(ctx)
	if err != nil {
		return "", 0, err
	}
	r := s.Server(old)
	if r == nil {
		return "", 0, fmt.Errorf("the sentinels name %s as primary, which is none of ours", old)
	}
	start := time.Now()
	if err := r.Kill(); err != nil {
		return "", 0, err
	}
	if afterKill != nil {
		afterKill()
	}
	for {
		now, err := s.Primary(ctx)
		if err == nil && now != old && role(ctx, now) == "master" {
			return now, time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return "", 0, fmt.Errorf("no failover from %s: %w (last answer %q, %v)", old, ctx.Err(), now, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// role returns the ROLE of the server at addr, or "" if it does not answer.
func role(ctx context.Context, addr string) string {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	info, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		return ""
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "role:"); ok {
			return v
		}
	}
	return ""
}

// waitHealthy polls every 50ms until the replica is in sync with primary
// and every sentinel names primary and knows one replica and two other
// sentinels, or ctx ends.
func (s *RedisSentinel) waitHealthy(ctx context.Context, primary string) error {
	var last error
	for {
		last = s.healthy(ctx, primary)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *RedisSentinel) healthy(ctx context.Context, primary string) error {
	rdb := redis.NewClient(&redis.Options{Addr: s.Servers[1].Addr, MaxRetries: -1, DialTimeout: time.Second})
	info, err := rdb.Info(ctx, "replication").Result()
	rdb.Close()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "master_link_status:up") {
		return errors.New("replica not in sync")
	}
	for _, sn := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, MaxRetries: -1, DialTimeout: time.Second})
		hp, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		var replicas, others int
		if err == nil {
			var r []map[string]string
			r, err = sc.Replicas(ctx, SentinelMaster).Result()
			replicas = len(r)
		}
		if err == nil {
			var o []map[string]string
			o, err = sc.Sentinels(ctx, SentinelMaster).Result()
			others = len(o)
		}
		sc.Close()
		switch {
		case err != nil:
			return fmt.Errorf("sentinel %s: %w", sn.Addr, err)
		case len(hp) != 2 || net.JoinHostPort(hp[0], hp[1]) != primary:
			return fmt.Errorf("sentinel %s names %q as primary, want %s", sn.Addr, hp, primary)
		case replicas != 1 || others != 2:
			return fmt.Errorf("sentinel %s knows %d replicas and %d other sentinels, want 1 and 2", sn.Addr, replicas, others)
		}
	}
	return nil
}
