package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/mcpkit/resilience/internal/proctest"
	"github.com/mcpkit/resilience/resume/internal/storetest"
	"github.com/mcpkit/resilience/resume/redisstore"
	"github.com/mcpkit/resilience/resume/replica"
)

// The tests in this file run the store on the two replicated deployments,
// through the same redis.UniversalClient code path as one Redis: Sentinel
// (redis.NewFailoverClient) and a 6-node Redis Cluster
// (redis.NewClusterClient).

func newClusterClient(t *testing.T, c *proctest.RedisCluster) (*redis.ClusterClient, *commandLog) {
	t.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:       c.Addrs(),
		DialTimeout: time.Second,
	})
	t.Cleanup(func() { rdb.Close() })
	log := &commandLog{}
	rdb.AddHook(log)
	return rdb, log
}

func newFailoverClient(t *testing.T, s *proctest.RedisSentinel) *redis.Client {
	t.Helper()
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    proctest.SentinelMaster,
		SentinelAddrs: s.SentinelAddrs(),
		DialTimeout:   time.Second,
	})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// flushAll empties every primary of rdb.
func flushAll(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	var err error
	if c, ok := rdb.(*redis.ClusterClient); ok {
		err = c.ForEachMaster(t.Context(), func(ctx context.Context, n *redis.Client) error { return n.FlushDB(ctx).Err() })
	} else {
		err = rdb.FlushDB(t.Context()).Err()
	}
	if err != nil {
		t.Fatalf("FLUSHDB: %v", err)
	}
}

// runContracts runs the Store and EventStore contracts on rdb.
func runContracts(t *testing.T, rdb redis.UniversalClient, opts *redisstore.Options) {
	t.Run("Store", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) replica.Store {
			flushAll(t, rdb)
			o := redisstore.Options{DefaultTTL: time.Hour}
			if opts != nil {
				o = *opts
				o.DefaultTTL = time.Hour
			}
			return newStore(t, rdb, &o)
		}, &storetest.Options{TimeUnit: 200 * time.Millisecond})
	})
	t.Run("EventStore", func(t *testing.T) {
		var owner *testing.T
		storetest.RunEvents(t, func(t *testing.T) mcp.EventStore {
			if owner != t {
				owner = t
				flushAll(t, rdb)
			}
			return newEventStore(t, rdb, nil)
		})
	})
}

func TestCluster(t *testing.T) {
	c := proctest.StartRedisCluster(t)
	rdb, log := newClusterClient(t, c)
	runContracts(t, rdb, nil)
	if bad := log.crossSlot(); len(bad) > 0 {
		t.Errorf("script calls across slots: %q", bad)
	}
	t.Run("ReplicaAcks", func(t *testing.T) {
		runContracts(t, rdb, &redisstore.Options{ReplicaAcks: 1, ReplicaAckTimeout: 2 * time.Second})
		testReplicaShortfall(t, rdb)
	})
	t.Run("CopyInterrupted", func(t *testing.T) {
		// Two sessions whose slots are on two different primaries.
		from, to := "FROM0", ""
		for i := range 100 {
			id := fmt.Sprintf("TO%d", i)
			a, _ := rdb.MasterForKey(t.Context(), redisstore.Key(from, "k"))
			b, _ := rdb.MasterForKey(t.Context(), redisstore.Key(id, "k"))
			if a != nil && b != nil && a.Options().Addr != b.Options().Addr {
				to = id
				break
			}
		}
		if to == "" {
			t.Fatal("no session found on another primary")
		}
		testCopyInterrupted(t, rdb, from, to)
	})
	t.Run("ScriptsOnEveryNode", func(t *testing.T) {
		// A node that lost its scripts (restart, SCRIPT FLUSH, eviction)
		// gets them again: EVALSHA falls back to EVAL.
		s := newStore(t, rdb, nil)
		ctx := t.Context()
		for i := range 20 {
			if err := rdb.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return n.ScriptFlush(ctx).Err() }); err != nil {
				t.Fatal(err)
			}
			if err := s.Set(ctx, fmt.Sprintf("S%d", i), "k", []byte("v"), 0); err != nil {
				t.Fatalf("Set after SCRIPT FLUSH on every node: %v", err)
			}
		}
	})
	t.Run("WaitsOutFailover", func(t *testing.T) {
		// A Set and a Get sent just after a primary's death wait for its
		// replica's promotion instead of failing.
		ctx := t.Context()
		primaries, err := c.Primaries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		target := primaries[1]
		id := ""
		for i := 0; id == "" && i < 1000; i++ {
			n, err := rdb.MasterForKey(ctx, redisstore.Key(fmt.Sprint("W", i), "k"))
			if err == nil && n.Options().Addr == target {
				id = fmt.Sprint("W", i)
			}
		}
		s := newStore(t, rdb, &redisstore.Options{FailoverWait: 15 * time.Second})
		if err := s.Set(ctx, id, "before", []byte("1"), 0); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		var sent time.Time
		_, took, err := c.KillPrimary(target, func() {
			sent = time.Now()
			go func() {
				err := s.Set(ctx, id, "k", []byte("v"), 0)
				if err == nil {
					_, _, err = s.Get(ctx, id, "before")
				}
				done <- err
			}()
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Set and Get sent at the primary's death: %v", err)
		}
		t.Logf("Set and Get sent at the primary's death succeeded after %v (promotion took %v)", time.Since(sent).Round(time.Millisecond), took.Round(time.Millisecond))
	})
	t.Run("Failover", func(t *testing.T) {
		primaries, err := c.Primaries(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// A primary that still has a replica (a promoted one has none).
		for _, p := range primaries {
			replicas, err := c.ReplicasOf(t.Context(), p)
			if err != nil {
				continue
			}
			testFailover(t, rdb, failover{p, replicas[0], func(after func()) (string, time.Duration, error) {
				return c.KillPrimary(p, after)
			}})
			return
		}
		t.Fatalf("no primary with a replica among %q", primaries)
	})
}

func TestSentinel(t *testing.T) {
	s := proctest.StartRedisSentinel(t)
	rdb := newFailoverClient(t, s)
	runContracts(t, rdb, nil)
	t.Run("ReplicaAcks", func(t *testing.T) {
		runContracts(t, rdb, &redisstore.Options{ReplicaAcks: 1, ReplicaAckTimeout: 2 * time.Second})
		testReplicaShortfall(t, rdb)
	})
	t.Run("CopyInterrupted", func(t *testing.T) { testCopyInterrupted(t, rdb, "FROM0", "TO0") })
	t.Run("Failover", func(t *testing.T) {
		testFailover(t, rdb, failover{s.Servers[0].Addr, s.Servers[1], s.KillPrimary})
	})
}

// testReplicaShortfall asks for more replicas than there are: the primary
// refuses each write before writing anything.
func testReplicaShortfall(t *testing.T, rdb redis.UniversalClient) {
	ctx := t.Context()
	s := newStore(t, rdb, &redisstore.Options{ReplicaAcks: 2, ReplicaAckTimeout: 50 * time.Millisecond})
	err := s.Set(ctx, "SHORT", "k", []byte("v"), 0)
	if !errors.Is(err, redisstore.ErrNoReplicas) || !strings.Contains(err.Error(), "1 of 2 replicas connected") {
		t.Errorf("Set needing 2 replicas of 1 = %v, want an error matching ErrNoReplicas saying 1 of 2", err)
	}
	_, err = s.Update(ctx, "SHORT", "u", 0, func([]byte, bool) ([]byte, error) { return []byte("x"), nil })
	if !errors.Is(err, redisstore.ErrNoReplicas) {
		t.Errorf("Update needing 2 replicas of 1 = %v, want an error matching ErrNoReplicas", err)
	}
	if err := s.Delete(ctx, "SHORT", "k"); !errors.Is(err, redisstore.ErrNoReplicas) {
		t.Errorf("Delete needing 2 replicas of 1 = %v, want an error matching ErrNoReplicas", err)
	}
	one := newStore(t, rdb, &redisstore.Options{ReplicaAcks: 1, ReplicaAckTimeout: 2 * time.Second})
	if err := one.Set(ctx, "SHORT2", "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Copy(ctx, "SHORT2", "SHORT", 0); !errors.Is(err, redisstore.ErrNoReplicas) || n != 0 {
		t.Errorf("Copy needing 2 replicas of 1 = %d, %v; want 0 and an error matching ErrNoReplicas", n, err)
	}
	if keys, err := s.Keys(ctx, "SHORT"); err != nil || len(keys) != 0 {
		t.Errorf("Keys of the session every write was refused to = %q, %v; want none: nothing written", keys, err)
	}
}

// testCopyInterrupted stops a Copy between its read and its write, as a
// crash would: the target has nothing of it, and copying again copies all.
func testCopyInterrupted(t *testing.T, rdb redis.UniversalClient, from, to string) {
	ctx := t.Context()
	flushAll(t, rdb)
	s := newStore(t, rdb, nil)
	want := map[string]string{"a": "1", "b": "2", "c": "3"}
	for k, v := range want {
		if err := s.Set(ctx, from, k, []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Set(ctx, to, "mine", []byte("kept"), 0); err != nil {
		t.Fatal(err)
	}
	crash := errors.New("crashed between the steps")
	redisstore.SetBetweenCopySteps(s, func(context.Context) error { return crash })
	if n, err := s.Copy(ctx, from, to, 0); !errors.Is(err, crash) || n != 0 {
		t.Fatalf("interrupted Copy = %d, %v; want 0 and the crash", n, err)
	}
	if diff := cmp.Diff(map[string]string{"mine": "kept"}, contents(t, s, to)); diff != "" {
		t.Errorf("target after the interrupted Copy (-want +got):\n%s", diff)
	}
	redisstore.SetBetweenCopySteps(s, nil)
	if n, err := s.Copy(ctx, from, to, 0); err != nil || n != 3 {
		t.Fatalf("Copy again = %d, %v; want 3", n, err)
	}
	want["mine"] = "kept"
	if diff := cmp.Diff(want, contents(t, s, to)); diff != "" {
		t.Errorf("target after copying again (-want +got):\n%s", diff)
	}
	// The source did not change, and a further copy changes nothing.
	if n, err := s.Copy(ctx, from, to, 0); err != nil || n != 3 {
		t.Fatalf("third Copy = %d, %v; want 3", n, err)
	}
	if diff := cmp.Diff(want, contents(t, s, to)); diff != "" {
		t.Errorf("target after a third Copy (-want +got):\n%s", diff)
	}
}

func contents(t *testing.T, s *redisstore.Store, session string) map[string]string {
	t.Helper()
	keys, err := s.Keys(t.Context(), session)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		v, ok, err := s.Get(t.Context(), session, k)
		if err != nil || !ok {
			t.Fatalf("Get(%s, %s) = %v, %v", session, k, ok, err)
		}
		out[k] = string(v)
	}
	return out
}

// failover is one deployment's primary, as seen by testFailover.
type failover struct {
	primary string          // its address
	replica *proctest.Redis // the replica that will be promoted
	// kill kills the primary, calls afterKill, and waits for the promotion.
	kill func(afterKill func()) (string, time.Duration, error)
}

// testFailover proves what ReplicaAcks protects in a failover. It writes
// sessions with ReplicaAcks 1 (A); then it freezes the replica (SIGSTOP),
// so that it acknowledges nothing, and writes with ReplicaAcks 1 (C, which
// must report ErrNotReplicated); then it cuts the replica's link, so that
// nothing more reaches it, and writes sessions without waiting (B,
// acknowledged by the primary only) and with ReplicaAcks 1 (D, refused
// with ErrNoReplicas); then it kills the primary and lets the replica take
// over. Every write of A survives; the writes of B were acknowledged and
// are lost, which is the window ReplicaAcks closes; none of C was
// acknowledged, and none of D was written.
func testFailover(t *testing.T, rdb redis.UniversalClient, f failover) {
	ctx := t.Context()
	flushAll(t, rdb)
	// A generous wait where the replica must answer (a loaded machine is
	// slow), a short one where it cannot.
	acked := newStore(t, rdb, &redisstore.Options{ReplicaAcks: 1, ReplicaAckTimeout: 2 * time.Second})
	frozen := newStore(t, rdb, &redisstore.Options{ReplicaAcks: 1, ReplicaAckTimeout: 100 * time.Millisecond})
	plain := newStore(t, rdb, nil)
	// Sessions whose keys the primary under test holds.
	var ids []string
	for i := 0; len(ids) < 80 && i < 10000; i++ {
		id := fmt.Sprintf("F%d", i)
		if c, ok := rdb.(*redis.ClusterClient); ok {
			n, err := c.MasterForKey(ctx, redisstore.Key(id, "k"))
			if err != nil {
				t.Fatal(err)
			}
			if n.Options().Addr != f.primary {
				continue
			}
		}
		ids = append(ids, id)
	}
	if len(ids) < 80 {
		t.Fatalf("only %d sessions found on primary %s", len(ids), f.primary)
	}
	a, b, c, d := ids[:20], ids[20:40], ids[40:60], ids[60:]
	for _, id := range a {
		if err := acked.Set(ctx, id, "k", []byte("v"), 0); err != nil {
			t.Fatalf("Set with ReplicaAcks before the failover: %v", err)
		}
	}
	if err := f.replica.Proc().Pause(); err != nil {
		t.Fatal(err)
	}
	defer f.replica.Proc().Resume()
	for _, id := range c {
		if err := frozen.Set(ctx, id, "k", []byte("v"), 0); !errors.Is(err, redisstore.ErrNotReplicated) {
			t.Fatalf("Set with ReplicaAcks, replica frozen = %v; want an error matching ErrNotReplicated", err)
		}
	}
	direct := redis.NewClient(&redis.Options{Addr: f.primary})
	defer direct.Close()
	if err := direct.ClientKillByFilter(ctx, "TYPE", "replica").Err(); err != nil {
		t.Fatalf("CLIENT KILL TYPE replica: %v", err)
	}
	for _, id := range b {
		if err := plain.Set(ctx, id, "k", []byte("v"), 0); err != nil {
			t.Fatalf("Set without ReplicaAcks, replica cut off: %v", err)
		}
	}
	for _, id := range d {
		if err := acked.Set(ctx, id, "k", []byte("v"), 0); !errors.Is(err, redisstore.ErrNoReplicas) {
			t.Fatalf("Set with ReplicaAcks, replica cut off = %v; want an error matching ErrNoReplicas", err)
		}
	}
	promoted, took, err := f.kill(func() { f.replica.Proc().Resume() })
	if err != nil {
		t.Fatal(err)
	}
	// The client learns the new topology on its own; give it a bounded time.
	deadline := time.Now().Add(20 * time.Second)
	for {
		lostA, errA := countLost(ctx, plain, a)
		lostB, errB := countLost(ctx, plain, b)
		lostD, errD := countLost(ctx, plain, d)
		if err := errors.Join(errA, errB, errD); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("store not usable 20s after the failover: %v", err)
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		t.Logf("primary killed, %s promoted after %v; lost: %d of %d replica-acknowledged writes, %d of %d writes acknowledged by the primary alone",
			promoted, took.Round(time.Millisecond), lostA, len(a), lostB, len(b))
		if lostA != 0 {
			t.Errorf("%d of %d replica-acknowledged writes lost in the failover", lostA, len(a))
		}
		if lostD != len(d) {
			t.Errorf("%d of %d writes refused with ErrNoReplicas are in Redis; want none", len(d)-lostD, len(d))
		}
		if lostB != len(b) {
			t.Errorf("%d of %d writes made with the replica cut off were lost; want all (else the test did not cut it off)", lostB, len(b))
		}
		return
	}
}

func countLost(ctx context.Context, s *redisstore.Store, ids []string) (int, error) {
	lost := 0
	for _, id := range ids {
		_, ok, err := s.Get(ctx, id, "k")
		if err != nil {
			return 0, err
		}
		if !ok {
			lost++
		}
	}
	return lost, nil
}
