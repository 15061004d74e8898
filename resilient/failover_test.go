package resilient_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/internal/testserver"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/retry"
)

// Ten increments on one session give 1..10 on one backend.
func TestStickyHappyPath(t *testing.T) {
	cl := startCluster(t, nil)
	c, _ := connect(t, cl, nil)
	var instance string
	for want := 1; want <= 10; want++ {
		r := mustCounter(t, c, "increment_counter")
		if r.Counter != want {
			t.Fatalf("increment %d: counter = %d, want %d", want, r.Counter, want)
		}
		if instance == "" {
			instance = r.Instance
		} else if r.Instance != instance {
			t.Fatalf("increment %d ran on %s, want the sticky backend %s", want, r.Instance, instance)
		}
	}
	if s := c.Stats(); s.Reconnects != 0 || s.Retries != 0 {
		t.Errorf("Stats = %+v, want no reconnect and no retry", s)
	}
}

// When the sticky backend dies between calls, the next increment continues
// the count on another backend after one reconnect and one resume.
func TestKillStickyBackendBetweenCalls(t *testing.T) {
	cl := startCluster(t, nil)
	c, events := connect(t, cl, nil)
	for range 3 {
		mustCounter(t, c, "increment_counter")
	}
	oldID := c.ID()
	backend, ok := cl.BackendFor(oldID)
	if !ok {
		t.Fatalf("no sticky backend for session %s", oldID)
	}
	cl.Kill(backend)

	r := mustCounter(t, c, "increment_counter")
	if r.Counter != 4 {
		t.Errorf("counter after failover = %d, want 4", r.Counter)
	}
	if r.Instance == cl.Instance(backend) {
		t.Errorf("increment ran on %s, the killed backend", r.Instance)
	}
	if c.ID() == oldID || c.ID() == "" {
		t.Errorf("session ID after failover = %q, want a new one (old %q)", c.ID(), oldID)
	}
	s := c.Stats()
	if s.Reconnects != 1 || s.Resumes != 1 || s.Generation != 2 {
		t.Errorf("Stats = %+v, want 1 reconnect, 1 resume, generation 2", s)
	}
	if got := cl.ToolRuns("increment_counter"); got != 4 {
		t.Errorf("increment_counter ran %d times on the servers, want 4", got)
	}
	resumed := events.waitFor(t, resilient.EventResumed, 1)
	if len(resumed) != 1 || resumed[0].OldSessionID != oldID || resumed[0].Resume.KeysCopied == 0 {
		t.Errorf("resumed events = %+v, want one from %s with keys copied", resumed, oldID)
	}
}

// Every way a server says "I lost your session" is recovered the same way,
// and nothing runs twice.
func TestSessionLostVariants(t *testing.T) {
	for _, kind := range []testserver.FaultKind{
		testserver.NotFoundPlain,
		testserver.NotFoundJSONNullID,
		testserver.NotFoundJSONWithID,
		testserver.BadRequestNoSession,
		testserver.ExpireSession,
	} {
		t.Run(kind.String(), func(t *testing.T) {
			cl := startCluster(t, nil)
			c, _ := connect(t, cl, nil)
			mustCounter(t, c, "increment_counter")
			mustCounter(t, c, "increment_counter")
			oldID := c.ID()
			cl.Inject(testserver.Fault{Kind: kind, Method: "tools/call", Tool: "increment_counter"})

			r := mustCounter(t, c, "increment_counter")
			if r.Counter != 3 {
				t.Errorf("counter = %d, want 3", r.Counter)
			}
			if c.ID() == oldID {
				t.Errorf("still on session %s, want a new one", oldID)
			}
			if s := c.Stats(); s.Reconnects != 1 || s.Resumes != 1 {
				t.Errorf("Stats = %+v, want 1 reconnect and 1 resume", s)
			}
			if got := cl.ToolRuns("increment_counter"); got != 3 {
				t.Errorf("increment_counter ran %d times, want 3", got)
			}
		})
	}
}

// When the connection drops after increment_counter ran, the call is not
// replayed (it would count twice): the caller learns the outcome is
// unknown, the counter advanced once, and the next call works on a new
// session. The same fault on a read-only tool is replayed transparently.
func TestDropAfterToolRan(t *testing.T) {
	cl := startCluster(t, nil)
	c, events := connect(t, cl, nil)
	mustCounter(t, c, "increment_counter")
	oldID := c.ID()
	cl.Inject(testserver.Fault{Kind: testserver.DropAfterTool, Method: "tools/call", Tool: "increment_counter"})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := callCounter(ctx, t, c, "increment_counter")
	if !errors.Is(err, resilient.ErrOutcomeUnknown) {
		t.Fatalf("increment with the answer lost: err = %v, want ErrOutcomeUnknown", err)
	}
	if got := cl.ToolRuns("increment_counter"); got != 2 {
		t.Errorf("increment_counter ran %d times, want 2 (once each, no replay)", got)
	}
	if c.ID() == oldID {
		t.Errorf("after an unknown outcome the client is still on %s, want a fresh session", oldID)
	}
	if n := len(events.waitFor(t, resilient.EventOutcomeUnknown, 1)); n != 1 {
		t.Errorf("%d outcome-unknown events, want 1", n)
	}
	r := mustCounter(t, c, "increment_counter")
	if r.Counter != 3 {
		t.Errorf("next increment = %d, want 3 (the lost call ran once, state resumed)", r.Counter)
	}

	cl.Inject(testserver.Fault{Kind: testserver.DropAfterTool, Method: "tools/call", Tool: "get_counter"})
	if got := mustCounter(t, c, "get_counter"); got.Counter != 3 {
		t.Errorf("get_counter with the answer lost = %d, want 3, replayed", got.Counter)
	}
	if s := c.Stats(); s.OutcomeUnknown != 1 || s.Replays != 1 {
		t.Errorf("Stats = %+v, want 1 outcome unknown and 1 replay", s)
	}
}

// A drop before the server saw the call looks the same to the client
// (it cannot tell), so it is reported the same way; nothing ran.
func TestDropBeforeToolRan(t *testing.T) {
	cl := startCluster(t, nil)
	c, _ := connect(t, cl, nil)
	mustCounter(t, c, "increment_counter")
	cl.Inject(testserver.Fault{Kind: testserver.DropBeforeTool, Method: "tools/call", Tool: "increment_counter"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := callCounter(ctx, t, c, "increment_counter"); !errors.Is(err, resilient.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
	}
	if got := cl.ToolRuns("increment_counter"); got != 1 {
		t.Errorf("increment_counter ran %d times, want 1", got)
	}
	// The caller may declare the call safe to replay.
	cl.Inject(testserver.Fault{Kind: testserver.DropBeforeTool, Method: "tools/call", Tool: "increment_counter"})
	r, err := callCounter(retry.Idempotent(ctx), t, c, "increment_counter")
	if err != nil || r.Counter != 2 {
		t.Errorf("with retry.Idempotent: counter %d, err %v; want 2, nil", r.Counter, err)
	}
}

// When 200 goroutines call while the sticky backend dies, every read
// succeeds and the session is replaced exactly once.
func TestHerdOnDeadBackend(t *testing.T) {
	cl := startCluster(t, nil)
	c, _ := connect(t, cl, nil)
	mustCounter(t, c, "increment_counter")
	backend, _ := cl.BackendFor(c.ID())

	const callers, calls = 200, 5
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, callers*calls)
	started := make(chan struct{}, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"})
				if err == nil && res.IsError {
					err = errors.New("IsError result")
				}
				if err != nil {
					errs <- err
				}
				if i == 0 {
					started <- struct{}{}
				}
			}
		}()
	}
	for range callers / 2 {
		<-started
	}
	cl.Kill(backend)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("read-only call failed: %v", err)
	}
	if s := c.Stats(); s.Reconnects != 1 {
		t.Errorf("Stats.Reconnects = %d, want 1 (stats %+v)", s.Reconnects, s)
	}
}

// With every backend down, calls fail within the policy's bound; once the
// breaker is open they fail at once without reaching the balancer; when the
// backends return and the breaker's timeout passes, calls succeed on the
// resumed state.
func TestAllBackendsDown(t *testing.T) {
	cl := startCluster(t, nil)
	p := fastPolicy
	p.MaxElapsed = 500 * time.Millisecond
	c, _ := connect(t, cl, &resilient.Options{
		Retry:   p,
		Breaker: resilient.BreakerSettings{ConsecutiveFailures: 3, OpenTimeout: 300 * time.Millisecond},
	})
	for range 2 {
		mustCounter(t, c, "increment_counter")
	}
	for i := range 3 {
		cl.Kill(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; ; i++ {
		_, err := callCounter(ctx, t, c, "get_counter")
		if ctx.Err() != nil {
			t.Fatalf("call %d did not give up before the test's deadline: %v", i, err)
		}
		if !errors.Is(err, retry.ErrExhausted) && !errors.Is(err, resilient.ErrCircuitOpen) {
			t.Fatalf("call %d with all backends down: err = %v, want ErrExhausted or ErrCircuitOpen", i, err)
		}
		if errors.Is(err, resilient.ErrCircuitOpen) {
			break
		}
		if i == 10 {
			t.Fatalf("breaker still closed after %d failed calls", i+1)
		}
	}
	before := cl.Requests()
	for range 5 {
		if _, err := callCounter(ctx, t, c, "get_counter"); !errors.Is(err, resilient.ErrCircuitOpen) {
			t.Fatalf("call while open: err = %v, want ErrCircuitOpen", err)
		}
	}
	if got := cl.Requests(); got != before {
		t.Errorf("calls while the breaker was open reached the balancer %d times, want 0", got-before)
	}

	for i := range 3 {
		if err := cl.Restart(i); err != nil {
			t.Fatalf("Restart(%d): %v", i, err)
		}
	}
	var r counterResult
	for i := 0; ; i++ {
		var err error
		r, err = callCounter(ctx, t, c, "get_counter")
		if err == nil {
			break
		}
		if !errors.Is(err, resilient.ErrCircuitOpen) || i == 200 {
			t.Fatalf("after recovery: err = %v", err)
		}
		time.Sleep(20 * time.Millisecond) // the breaker's open timeout must pass
	}
	if r.Counter != 2 {
		t.Errorf("counter after recovery = %d, want 2 (state resumed)", r.Counter)
	}
}

// A server without resume_session still serves the call after a
// reconnect; the event says resume was skipped.
func TestServerWithoutResumeTool(t *testing.T) {
	cl := startCluster(t, &testserver.Options{NoResumeTool: true})
	c, events := connect(t, cl, nil)
	mustCounter(t, c, "increment_counter")
	backend, _ := cl.BackendFor(c.ID())
	cl.Kill(backend)
	if r := mustCounter(t, c, "get_counter"); r.Instance == cl.Instance(backend) {
		t.Errorf("served by the killed backend %s", r.Instance)
	}
	skipped := events.waitFor(t, resilient.EventResumeSkipped, 1)
	if len(skipped) != 1 || skipped[0].Err == nil {
		t.Errorf("resume-skipped events = %+v, want one with its reason", skipped)
	}
	if s := c.Stats(); s.Reconnects != 1 || s.ResumesSkipped != 1 || s.Resumes != 0 || s.ResumeFailures != 0 {
		t.Errorf("Stats = %+v, want 1 reconnect, 1 resume skipped", s)
	}
}

// The caller's cancellation returns at once with the context's error and
// no retry; a read (the client knows it is one: the tools were listed) is
// not reported unknown. A context already ended sends nothing and gets the
// bare context error.
func TestCallerCancellation(t *testing.T) {
	cl := startCluster(t, nil)
	c, _ := connect(t, cl, nil)
	if _, err := c.ListTools(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	mustCounter(t, c, "get_counter")
	cl.Inject(testserver.Fault{Kind: testserver.Latency, Method: "tools/call", Delay: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, resilient.ErrOutcomeUnknown) {
		t.Errorf("err = %v, want context.DeadlineExceeded, not an unknown outcome", err)
	}
	if d := time.Since(start); d >= 5*time.Second {
		t.Errorf("returned after %v: it waited for the server", d)
	}
	if s := c.Stats(); s.Retries != 0 || s.Reconnects != 0 {
		t.Errorf("Stats = %+v, want no retry and no reconnect", s)
	}
	already, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := c.CallTool(already, &mcp.CallToolParams{Name: "get_counter"}); err != context.Canceled {
		t.Errorf("already-cancelled ctx: err = %v, want context.Canceled", err)
	}
}

// Calls after Close return ErrClosed; Close is idempotent; TestMain's
// goleak check proves no goroutine outlives it.
func TestClose(t *testing.T) {
	cl := startCluster(t, nil)
	c, _ := connect(t, cl, nil)
	mustCounter(t, c, "increment_counter")
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: "get_counter"}); !errors.Is(err, resilient.ErrClosed) {
		t.Errorf("CallTool after Close: err = %v, want ErrClosed", err)
	}
	if err := c.Ping(context.Background(), nil); !errors.Is(err, resilient.ErrClosed) {
		t.Errorf("Ping after Close: err = %v, want ErrClosed", err)
	}
	if err := c.Wait(); err != nil {
		t.Errorf("Wait after Close = %v, want nil", err)
	}
}
