//go:build e2e

package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/retry"
)

// TestStickyIncrements: every call of a session reaches the replica that
// created it, and its state is in Redis; a second session is independent.
func TestStickyIncrements(t *testing.T) {
	c := startCluster(t)
	cl := c.connect()
	first := cl.mustCall("increment_counter", nil)
	for want := 2; want <= 10; want++ {
		got := cl.mustCall("increment_counter", nil)
		if got.Counter != want || got.Instance != first.Instance {
			t.Errorf("increment %d = counter %d from %s, want %d from %s (sticky)", want, got.Counter, got.Instance, want, first.Instance)
		}
	}
	if n := c.counterInRedis(cl.ID()); n != 10 {
		t.Errorf("counter in Redis = %d, want 10", n)
	}
	other := c.connect()
	if got := other.mustCall("increment_counter", nil); got.Counter != 1 {
		t.Errorf("a second session's first increment = %d, want 1", got.Counter)
	}
	if n := cl.count(resilient.EventReconnected); n != 0 {
		t.Errorf("reconnects = %d, want 0", n)
	}
}

// TestKillStickyReplicaBetweenCalls: the replica holding the session dies
// between two calls; the next call reconnects once through HAProxy to
// another replica, resumes, and continues the count.
func TestKillStickyReplicaBetweenCalls(t *testing.T) {
	c := startCluster(t)
	cl := c.connect()
	var sticky string
	for want := 1; want <= 3; want++ {
		got := cl.mustCall("increment_counter", nil)
		if got.Counter != want {
			t.Fatalf("counter = %d, want %d", got.Counter, want)
		}
		sticky = got.Instance
	}
	oldID := cl.ID()
	c.kill(c.replica(sticky), "it holds the client's session "+oldID)

	got := cl.mustCall("increment_counter", nil)
	if got.Counter != 4 {
		t.Errorf("counter after the failover = %d, want 4 (continued)", got.Counter)
	}
	if got.Instance == sticky {
		t.Errorf("served by %s, which is dead", got.Instance)
	}
	if cl.ID() == oldID {
		t.Errorf("session ID unchanged (%s), want a new session", oldID)
	}
	if n := cl.count(resilient.EventReconnected); n != 1 {
		t.Errorf("reconnects = %d, want 1", n)
	}
	resumed := cl.eventsOf(resilient.EventResumed)
	if len(resumed) != 1 || resumed[0].OldSessionID != oldID || resumed[0].Resume.KeysCopied < 1 {
		t.Errorf("resumes = %+v, want one from %s with the counter copied", resumed, oldID)
	}
	if n := c.counterInRedis(cl.ID()); n != 4 {
		t.Errorf("counter in Redis for the new session = %d, want 4", n)
	}
	if n := c.counterInRedis(oldID); n != 3 {
		t.Errorf("counter in Redis for the old session = %d, want 3 (copied, not moved)", n)
	}
}

// TestKillReplicaMidCall: the replica dies while slow_increment waits
// before incrementing. The client must not run it twice: it reports the
// outcome as unknown (or, had it replayed safely, a success), and Redis
// holds exactly the increments that ran.
func TestKillReplicaMidCall(t *testing.T) {
	c := startCluster(t)
	cl := c.connect()
	// Increments that ran, each acknowledged with the counter it made.
	ran := 0
	for range 2 {
		got := cl.mustCall("slow_increment", map[string]any{"delay_ms": 10})
		ran++
		if got.Counter != ran {
			t.Fatalf("counter = %d, want %d", got.Counter, ran)
		}
	}
	sticky := cl.mustCall("get_counter", nil).Instance
	oldID := cl.ID()
	started := func() int { return toolStarts(c.replica(sticky).proc.Output(), "slow_increment") }
	startsBefore := started()

	const delay = 3 * time.Second
	type answer struct {
		err  error
		took time.Duration
	}
	answered := make(chan answer, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := cl.call(ctx, "slow_increment", map[string]any{"delay_ms": delay.Milliseconds()})
		answered <- answer{err, time.Since(start)}
	}()
	// Kill once the replica says the tool started, well inside the delay:
	// the call reached the replica and cannot have incremented yet, since
	// slow_increment increments only after the delay.
	err := c.replica(sticky).proc.WaitFor(10*time.Second, func(context.Context) error {
		if started() == startsBefore {
			return errors.New("slow_increment has not started")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.kill(c.replica(sticky), "slow_increment is running on it, inside its 3s delay")
	killedAt := time.Since(start)
	a := <-answered
	if killedAt > delay-time.Second {
		t.Fatalf("the kill came %v after the call began, too close to its %v delay to know whether it ran", killedAt, delay)
	}
	// The killed call applied nothing; a replay on the new session, had the
	// client made one, would have run it once.
	switch {
	case a.err == nil:
		ran++
		t.Logf("the killed call returned a success after %v: the client replayed it once", a.took.Round(time.Millisecond))
	case errors.Is(a.err, resilient.ErrOutcomeUnknown):
		t.Logf("the killed call returned ErrOutcomeUnknown after %v: not replayed", a.took.Round(time.Millisecond))
	default:
		t.Fatalf("the killed call = %v, want success or ErrOutcomeUnknown", a.err)
	}
	// Proof that the kill hit a call in flight: the attempt that died had
	// been sent (ambiguous), not refused before sending.
	sent := cl.waitEvent(5*time.Second, func(ev resilient.Event) bool {
		return ev.Kind == resilient.EventAttemptFailed && ev.Tool == "slow_increment" && ev.Class == retry.Ambiguous
	})
	if !sent {
		t.Errorf("no ambiguous failure of slow_increment was reported: the kill did not hit a call in flight")
	}

	// Two more increments on the new session, then the count must be
	// exact: every increment that ran, once.
	for range 2 {
		got := cl.mustCall("slow_increment", map[string]any{"delay_ms": 10})
		ran++
		if got.Counter != ran {
			t.Errorf("counter = %d, want %d", got.Counter, ran)
		}
		if got.Instance == sticky {
			t.Errorf("served by %s, which is dead", got.Instance)
		}
	}
	if cl.ID() == oldID {
		t.Fatalf("still on session %s after its replica died", oldID)
	}
	if n := c.counterInRedis(cl.ID()); n != ran {
		t.Errorf("counter in Redis = %d, want %d: the increments that ran, each once", n, ran)
	}
	if n := c.counterInRedis(oldID); n != 2 {
		t.Errorf("counter in Redis for the killed session = %d, want 2: the killed call ran after all", n)
	}
}

// TestAllReplicasDownThenBack: with every replica dead, calls fail fast
// with ErrExhausted or ErrCircuitOpen and run nothing; when the replicas
// come back, the client reconnects and resumes its state.
func TestAllReplicasDownThenBack(t *testing.T) {
	c := startCluster(t)
	cl := c.connect()
	for want := 1; want <= 2; want++ {
		if got := cl.mustCall("increment_counter", nil); got.Counter != want {
			t.Fatalf("counter = %d, want %d", got.Counter, want)
		}
	}
	oldID := cl.ID()
	for _, r := range c.replicas {
		c.kill(r, "all replicas go down")
	}

	for i := range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		_, err := cl.call(ctx, "increment_counter", nil)
		cancel()
		if !errors.Is(err, retry.ErrExhausted) && !errors.Is(err, resilient.ErrCircuitOpen) {
			t.Errorf("call %d with every replica down = %v, want ErrExhausted or ErrCircuitOpen", i+1, err)
		}
	}

	for _, r := range c.replicas {
		c.restart(r)
	}
	c.waitRouting()

	// The breaker may still be open, and HAProxy may still route to a
	// replica it has not yet seen up: read (safe to repeat) until it works.
	deadline := time.Now().Add(rotateTimeout)
	var got int
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		out, err := cl.call(ctx, "get_counter", nil)
		cancel()
		if err == nil {
			got = out.Counter
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("get_counter still failing %v after the replicas came back: %v", rotateTimeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got != 2 {
		t.Errorf("counter after the outage = %d, want 2 (resumed, and no failed call ran)", got)
	}
	if cl.ID() == oldID {
		t.Errorf("session ID unchanged after every replica restarted")
	}
	if n := cl.count(resilient.EventResumed); n < 1 {
		t.Errorf("resumes = %d, want at least 1", n)
	}
	if got := cl.mustCall("increment_counter", nil); got.Counter != 3 {
		t.Errorf("counter = %d, want 3", got.Counter)
	}
	if n := c.counterInRedis(cl.ID()); n != 3 {
		t.Errorf("counter in Redis = %d, want 3", n)
	}
}

// TestRedisRestartWhileIdle: Redis dies while the client is idle. Every
// replica reports itself degraded (503) until Redis is back, then healthy;
// Redis persists every write, so the next calls find the state.
func TestRedisRestartWhileIdle(t *testing.T) {
	c := startCluster(t)
	cl := c.connect()
	for want := 1; want <= 3; want++ {
		if got := cl.mustCall("increment_counter", nil); got.Counter != want {
			t.Fatalf("counter = %d, want %d", got.Counter, want)
		}
	}
	t.Logf("KILLING redis-server (pid %d) with SIGKILL; it persists every write (append-only file, fsync always)", c.redis.Proc().Pid())
	if err := c.redis.Kill(); err != nil {
		t.Fatal(err)
	}
	for _, r := range c.replicas {
		err := r.proc.WaitFor(readyTimeout, func(ctx context.Context) error {
			return expectHealth(ctx, "http://"+r.addr, http.StatusServiceUnavailable)
		})
		if err != nil {
			t.Errorf("%s /health with Redis down: %v", r.name, err)
		}
	}
	t.Logf("every replica answers /health 503 while Redis is down")

	if err := c.redis.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted redis-server on %s", c.redis.Addr)
	for _, r := range c.replicas {
		err := r.proc.WaitFor(readyTimeout, func(ctx context.Context) error {
			return expectHealth(ctx, "http://"+r.addr, http.StatusOK)
		})
		if err != nil {
			t.Errorf("%s /health after Redis came back: %v", r.name, err)
		}
	}
	c.waitRouting()

	got := cl.mustCall("increment_counter", nil)
	if got.Counter != 4 {
		t.Errorf("counter after the Redis restart = %d, want 4 (the state survived)", got.Counter)
	}
	if n := c.counterInRedis(cl.ID()); n != 4 {
		t.Errorf("counter in Redis = %d, want 4", n)
	}
	t.Logf("reconnects during the Redis outage: %d", cl.count(resilient.EventReconnected))
}

// toolStarts counts the "tool started" lines of tool in a replica's log.
func toolStarts(log, tool string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `msg="tool started"`) && strings.Contains(line, "tool="+tool) {
			n++
		}
	}
	return n
}
