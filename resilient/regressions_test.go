package resilient_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/internal/testserver"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/retry"
)

// Regression tests for the call loop: each guards a property that a change
// to the loop could silently break.

// An OnEvent that calls Close when it sees EventReconnected must not hang
// either the call that caused the reconnect or Close.
func TestOnEventMayClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFlakyServer()
		ctx := context.Background()
		var c *resilient.Client
		closed := make(chan error, 1)
		c, err := resilient.Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil), s.factory,
			&resilient.Options{OnEvent: func(ev resilient.Event) {
				if ev.Kind == resilient.EventReconnected {
					closed <- c.Close()
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		mustCounter(t, c, "increment_counter")
		s.kill()
		s.start()
		_, err = c.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"})
		if err != nil && !errors.Is(err, resilient.ErrClosed) {
			t.Errorf("call that caused the reconnect: err = %v, want nil or ErrClosed", err)
		}
		if err := <-closed; err != nil {
			t.Errorf("Close from OnEvent: %v", err)
		}
	})
}

// An OnEvent that calls the client when the breaker closes must not wait
// on the reconnect it is blocking.
func TestOnEventCallsOnBreakerClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFlakyServer()
		ctx := context.Background()
		var c *resilient.Client
		pinged := make(chan error, 1)
		c, err := resilient.Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil), s.factory,
			&resilient.Options{
				Breaker: resilient.BreakerSettings{ConsecutiveFailures: 1},
				OnEvent: func(ev resilient.Event) {
					if ev.Kind == resilient.EventBreakerStateChanged && ev.To == resilient.BreakerClosed {
						pinged <- c.Ping(context.Background(), nil) // no deadline: a hang would be forever
					}
				}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		mustCounter(t, c, "increment_counter")
		s.kill()
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, _ = c.CallTool(short, &mcp.CallToolParams{Name: "get_counter"}) // opens the breaker
		s.start()
		if _, err := c.CallTool(retry.WaitForReady(ctx), &mcp.CallToolParams{Name: "get_counter"}); err != nil {
			t.Errorf("call after the server is back: %v", err)
		}
		if err := <-pinged; err != nil {
			t.Errorf("Ping from OnEvent: %v", err)
		}
	})
}

// ctxRecorder records the context each connection of its transport lives
// under.
type ctxRecorder struct {
	mcp.Transport
	record func(context.Context)
}

func (r ctxRecorder) Connect(ctx context.Context) (mcp.Connection, error) {
	r.record(ctx)
	return r.Transport.Connect(ctx)
}

// The context of a session must end with it, so that reconnects leak no
// contexts.
func TestReplacedSessionReleasesItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFlakyServer()
		var mu sync.Mutex
		var lives []context.Context
		factory := func() mcp.Transport {
			return ctxRecorder{Transport: s.factory(), record: func(ctx context.Context) {
				mu.Lock()
				lives = append(lives, ctx)
				mu.Unlock()
			}}
		}
		ctx := context.Background()
		c, err := resilient.Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil), factory, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range 3 {
			mustCounter(t, c, "increment_counter")
			s.kill()
			synctest.Wait() // the client sees its session die
			s.start()
		}
		mustCounter(t, c, "increment_counter")
		synctest.Wait() // the replaced sessions are closed in the background
		mu.Lock()
		defer mu.Unlock()
		if len(lives) != 4 {
			t.Fatalf("%d connections, want 4", len(lives))
		}
		for i, life := range lives[:3] {
			if life.Err() == nil {
				t.Errorf("the context of replaced session %d is still live", i+1)
			}
		}
		if lives[3].Err() != nil {
			t.Error("the context of the session in use is done")
		}
	})
}

// failingClose is a connection whose Close fails.
type failingClose struct{ mcp.Connection }

var errCloseFailed = errors.New("close failed")

func (f failingClose) Close() error {
	_ = f.Connection.Close()
	return errCloseFailed
}

type failingCloseTransport struct{ mcp.Transport }

func (t failingCloseTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	conn, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return failingClose{conn}, nil
}

// Close must return the error of closing a live session.
func TestCloseReturnsLiveSessionError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFlakyServer()
		c, err := resilient.Connect(context.Background(), mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil),
			func() mcp.Transport { return failingCloseTransport{s.factory()} }, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustCounter(t, c, "get_counter")
		if err := c.Close(); !errors.Is(err, errCloseFailed) {
			t.Errorf("Close = %v, want the session's close error", err)
		}
	})
}

// A per-call override (and an idempotency key) on a context must cover one
// call only, not silently every later call made with it.
func TestOverridesApplyToOneCall(t *testing.T) {
	cl := startCluster(t, &testserver.Options{Dedup: true})
	c, _ := connect(t, cl, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idem := retry.Idempotent(ctx)
	if _, err := callCounter(idem, t, c, "increment_counter"); err != nil {
		t.Fatal(err)
	}
	if _, err := callCounter(idem, t, c, "increment_counter"); !errors.Is(err, retry.ErrOverrideReused) {
		t.Errorf("second call with the same Idempotent context: err = %v, want ErrOverrideReused", err)
	}
	if got := cl.ToolRuns("increment_counter"); got != 1 {
		t.Errorf("increment_counter ran %d times, want 1: the refused call must not run", got)
	}
	// Three calls on one context against a deduplicating server each run:
	// every call has its own key.
	for want := 2; want <= 4; want++ {
		if r := mustCounter(t, c, "increment_counter"); r.Counter != want {
			t.Errorf("counter = %d, want %d", r.Counter, want)
		}
	}
}

// Replays after a reconnect must spend from the retry budget, or a
// balancer that keeps losing sessions would loop every caller.
func TestReplaysSpendTheBudget(t *testing.T) {
	cl := startCluster(t, nil)
	c, _ := connect(t, cl, &resilient.Options{
		Retry:  retry.Policy{InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, MaxElapsed: 10 * time.Second},
		Budget: resilient.BudgetSettings{Tokens: 6},
	})
	mustCounter(t, c, "get_counter")
	cl.Inject(testserver.Fault{Kind: testserver.NotFoundPlain, Method: "tools/call", Tool: "get_counter", Count: 1000})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := callCounter(ctx, t, c, "get_counter")
	var ee *retry.ExhaustedError
	if !errors.As(err, &ee) || ee.Reason != retry.ReasonBudget {
		t.Fatalf("err = %v, want ErrExhausted by the retry budget", err)
	}
	// Each replay that fails again costs a token; the budget allows
	// re-sends while more than half of its 6 tokens are left.
	if s := c.Stats(); s.Reconnects > 5 {
		t.Errorf("Stats.Reconnects = %d, want the budget to stop the loop after 3 failed replays", s.Reconnects)
	}
}

// This test proves the mechanism that tells "this call's own request was
// refused" from "it may have run". A slow_increment still running when
// another request's 404 kills the connection gets the same
// ErrSessionMissing as the refused request; only the transport's evidence
// tells them apart. (Breaking probe.evidence makes this test fail.)
func TestOwnRequestEvidence(t *testing.T) {
	cl := startCluster(t, nil)
	c, _ := connect(t, cl, nil)
	mustCounter(t, c, "increment_counter")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	slow := make(chan error, 1)
	go func() {
		_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "slow_increment", Arguments: map[string]any{"delay_ms": 300}})
		slow <- err
	}()
	for cl.Running("slow_increment") == 0 {
		select {
		case err := <-slow:
			t.Fatalf("slow_increment ended before the 404: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	cl.Inject(testserver.Fault{Kind: testserver.NotFoundPlain, Method: "tools/call", Tool: "get_counter"})
	if _, err := callCounter(ctx, t, c, "get_counter"); err != nil {
		t.Errorf("get_counter refused with 404: %v, want it replayed on a new session", err)
	}
	if err := <-slow; !errors.Is(err, resilient.ErrOutcomeUnknown) {
		t.Errorf("slow_increment in flight during another request's 404: err = %v, want ErrOutcomeUnknown", err)
	}
	for deadline := time.Now().Add(10 * time.Second); cl.Running("slow_increment") > 0; {
		if time.Now().After(deadline) {
			t.Fatal("slow_increment (a 300ms tool) still running after 10s")
		}
		time.Sleep(time.Millisecond)
	}
	if got := cl.ToolRuns("slow_increment"); got != 1 {
		t.Errorf("slow_increment ran %d times, want 1", got)
	}
}

// Failures to reach the server (here a balancer's 503) are the breaker's
// to count, not the budget's: a tiny budget still lets a call ride
// through them, where charging each would have exhausted it.
func TestUnreachableCostsNoBudget(t *testing.T) {
	cl := startCluster(t, nil)
	c, _ := connect(t, cl, &resilient.Options{
		Retry:   retry.Policy{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxElapsed: 10 * time.Second},
		Budget:  resilient.BudgetSettings{Tokens: 2},
		Breaker: resilient.BreakerSettings{ConsecutiveFailures: -1},
	})
	mustCounter(t, c, "get_counter")
	cl.Inject(testserver.Fault{Kind: testserver.Unavailable, Method: "tools/call", Tool: "get_counter", Count: 5})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := callCounter(ctx, t, c, "get_counter"); err != nil {
		t.Fatalf("call through 5 refusals of 503 with a budget of 2: %v", err)
	}
	if s := c.Stats(); s.Retries != 5 || s.BudgetExhausted != 0 || s.Reconnects != 0 {
		t.Errorf("Stats = %+v, want 5 retries on the same session, budget untouched", s)
	}
}
