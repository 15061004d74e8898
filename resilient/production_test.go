package resilient_test

//lint:file-ignore SA1019 the tests exercise the logging API that Client mirrors.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/internal/testserver"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resilient/internal/engine"
	"github.com/mcpkit/resilience/retry"
)

// TestOutageBounded: 500 callers keep calling a cluster that is entirely
// down. What reaches the balancer is bounded by the breaker and the retry
// budget, not by the number of calls: the first attempts in flight when the
// outage hits, plus at most the breaker's threshold, the budget's half,
// and one half-open probe per open period (the documented bound). Every
// caller gets ErrCircuitOpen or ErrExhausted. After recovery every caller
// succeeds, on one reconnect.
func TestOutageBounded(t *testing.T) {
	const callers, callsEach = 500, 5
	const threshold, openFor = 5, 500 * time.Millisecond
	cl := startCluster(t, nil)
	c, _ := connect(t, cl, &resilient.Options{
		Breaker: resilient.BreakerSettings{ConsecutiveFailures: threshold, OpenTimeout: openFor},
	})
	mustCounter(t, c, "increment_counter")
	for i := range cl.Backends() {
		cl.Kill(i)
	}

	before := cl.Requests()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range callsEach {
				_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"})
				if !errors.Is(err, resilient.ErrCircuitOpen) && !errors.Is(err, retry.ErrExhausted) {
					t.Errorf("call during the outage: err = %v, want ErrCircuitOpen or ErrExhausted", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	sent := cl.Requests() - before
	probes := int(time.Since(start)/openFor) + 1
	bound := callers + threshold + engine.DefaultBudgetTokens/2 + probes
	t.Logf("outage: %d callers made %d calls in %v; %d requests reached the balancer (bound %d)",
		callers, callers*callsEach, time.Since(start).Round(time.Millisecond), sent, bound)
	if sent > bound {
		t.Errorf("%d requests reached the balancer, want at most %d", sent, bound)
	}

	for i := range cl.Backends() {
		if err := cl.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	var failed atomic.Int64
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for try := 0; ; try++ {
				_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"})
				if err == nil {
					return
				}
				if try == 1000 || ctx.Err() != nil {
					failed.Add(1)
					t.Errorf("after recovery: %v", err)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if s := c.Stats(); failed.Load() == 0 && s.Reconnects != 1 {
		t.Errorf("Stats = %+v, want one reconnect for all callers", s)
	}
}

// The logging level and resource subscriptions set on the first session
// hold on the next: log and resource-updated notifications arrive after a
// failover exactly as before it.
func TestRestoredSessionState(t *testing.T) {
	cl := startCluster(t, nil)
	logs := make(chan string, 100)
	updates := make(chan string, 100)
	client := mcp.NewClient(&mcp.Implementation{Name: "restore", Version: "1"}, &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			logs <- req.Session.ID()
		},
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			updates <- req.Params.URI
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := resilient.Connect(ctx, client, resilient.StreamableHTTP(cl.URL(), nil), &resilient.Options{Retry: fastPolicy})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, &mcp.SubscribeParams{URI: testserver.CounterURI}); err != nil {
		t.Fatal(err)
	}
	expect := func(when string) {
		t.Helper()
		mustCounter(t, c, "increment_counter")
		select {
		case sid := <-logs:
			if sid != c.ID() {
				t.Errorf("%s: log notification on session %s, want %s", when, sid, c.ID())
			}
		case <-ctx.Done():
			t.Fatalf("%s: no log notification", when)
		}
		select {
		case uri := <-updates:
			if uri != testserver.CounterURI {
				t.Errorf("%s: update for %s, want %s", when, uri, testserver.CounterURI)
			}
		case <-ctx.Done():
			t.Fatalf("%s: no resource-updated notification", when)
		}
	}
	expect("before the failover")
	i, _ := cl.BackendFor(c.ID())
	cl.Kill(i)
	expect("after the failover")
	if s := c.Stats(); s.Reconnects != 1 {
		t.Errorf("Stats = %+v, want 1 reconnect", s)
	}
	// After Unsubscribe, a new session is not subscribed again.
	if err := c.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: testserver.CounterURI}); err != nil {
		t.Fatal(err)
	}
	i, _ = cl.BackendFor(c.ID())
	cl.Kill(i)
	mustCounter(t, c, "increment_counter")
	select {
	case uri := <-updates:
		t.Errorf("update for %s after Unsubscribe and a failover", uri)
	case <-time.After(100 * time.Millisecond):
	}
}

// Close while a reconnect is under way returns promptly and stops it.
func TestCloseDuringReconnect(t *testing.T) {
	cl := startCluster(t, &testserver.Options{Backends: 1})
	c, _ := connect(t, cl, &resilient.Options{
		Retry:   retry.Policy{MaxAttempts: 1000, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxElapsed: time.Minute},
		Breaker: resilient.BreakerSettings{ConsecutiveFailures: -1},
	})
	mustCounter(t, c, "get_counter")
	// The session is lost, and every handshake of the reconnect is refused.
	cl.Inject(testserver.Fault{Kind: testserver.Unavailable, Method: "initialize", Count: 1000})
	cl.Inject(testserver.Fault{Kind: testserver.NotFoundPlain, Method: "tools/call"})
	before := cl.Requests()
	errc := make(chan error, 1)
	go func() {
		_, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: "get_counter"})
		errc <- err
	}()
	// Wait until the reconnect has dialled a few times.
	for deadline := time.Now().Add(10 * time.Second); cl.Requests()-before < 3; {
		if time.Now().After(deadline) {
			t.Fatal("the call made no attempts")
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v during a reconnect", d)
	}
	if err := <-errc; !errors.Is(err, resilient.ErrClosed) {
		t.Errorf("call waiting on the reconnect: err = %v, want ErrClosed", err)
	}
}

// A deadline on the call's context bounds the whole call, backoff
// included: the call returns the context's error, not after the policy's
// waits.
func TestDeadlineBoundsBackoff(t *testing.T) {
	cl := startCluster(t, nil)
	c, _ := connect(t, cl, &resilient.Options{
		Retry:   retry.Policy{MaxAttempts: 100, InitialBackoff: time.Minute, MaxBackoff: time.Minute, MaxElapsed: time.Hour},
		Breaker: resilient.BreakerSettings{ConsecutiveFailures: -1},
	})
	mustCounter(t, c, "get_counter")
	cl.Inject(testserver.Fault{Kind: testserver.Unavailable, Method: "tools/call", Count: 100})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last error") || errors.Is(err, resilient.ErrOutcomeUnknown) {
		t.Errorf("err = %v, want context.DeadlineExceeded with the last failure, not an unknown outcome (every attempt was refused)", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("returned after %v: the backoff outlived the deadline", d)
	}
}

// A panic in OnEvent is recovered, logged and counted; the call goes on.
func TestOnEventPanic(t *testing.T) {
	cl := startCluster(t, nil)
	c, _ := connect(t, cl, &resilient.Options{OnEvent: func(resilient.Event) { panic("buggy metrics") }})
	mustCounter(t, c, "increment_counter")
	i, _ := cl.BackendFor(c.ID())
	cl.Kill(i)
	if r := mustCounter(t, c, "increment_counter"); r.Counter != 2 {
		t.Errorf("counter = %d, want 2", r.Counter)
	}
	if s := c.Stats(); s.CallbackPanics == 0 {
		t.Errorf("Stats.CallbackPanics = 0, want the recovered panics counted")
	}
}
