package resilient_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/internal/testserver"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/retry"
)

// rejectingResumer stands for a server whose resume_session refuses.
type rejectingResumer struct{}

func (rejectingResumer) Resume(context.Context, *mcp.ClientSession, string) (resume.Result, error) {
	return resume.Result{}, fmt.Errorf("%w: %w: not allowed", resume.ErrResumeFailed, resume.ErrRejected)
}

// TestEventKinds drives the client through every situation it reports and
// checks that each kind of event arrives, with its fields, and that Stats
// agrees.
func TestEventKinds(t *testing.T) {
	seen := map[resilient.EventKind][]resilient.Event{}
	record := func(events *eventLog, c *resilient.Client) {
		_ = c.Close() // delivers the events still queued
		events.mu.Lock()
		for _, ev := range events.events {
			seen[ev.Kind] = append(seen[ev.Kind], ev)
		}
		events.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("failover, unknown outcome, restore failure", func(t *testing.T) {
		cl := startCluster(t, nil)
		c, events := connect(t, cl, nil)
		if err := c.Subscribe(ctx, &mcp.SubscribeParams{URI: testserver.CounterURI}); err != nil {
			t.Fatal(err)
		}
		mustCounter(t, c, "increment_counter")
		cl.Inject(testserver.Fault{Kind: testserver.Unavailable, Method: "resources/subscribe"})
		i, _ := cl.BackendFor(c.ID())
		cl.Kill(i)
		mustCounter(t, c, "increment_counter") // reconnect, resume, restore fails, replay
		cl.Inject(testserver.Fault{Kind: testserver.DropAfterTool, Method: "tools/call", Tool: "increment_counter"})
		if _, err := callCounter(ctx, t, c, "increment_counter"); !errors.Is(err, resilient.ErrOutcomeUnknown) {
			t.Errorf("err = %v, want ErrOutcomeUnknown", err)
		}
		record(events, c)
	})
	t.Run("resume refused", func(t *testing.T) {
		cl := startCluster(t, nil)
		c, events := connect(t, cl, &resilient.Options{Resumer: rejectingResumer{}})
		mustCounter(t, c, "increment_counter")
		cl.Expire(c.ID())
		mustCounter(t, c, "get_counter")
		if s := c.Stats(); s.ResumeFailures != 1 || s.Reconnects != 1 {
			t.Errorf("Stats = %+v, want 1 reconnect with its resume failed", s)
		}
		record(events, c)
	})
	t.Run("resume disabled", func(t *testing.T) {
		cl := startCluster(t, nil)
		c, events := connect(t, cl, &resilient.Options{Resumer: resume.None})
		mustCounter(t, c, "increment_counter")
		cl.Expire(c.ID())
		if r := mustCounter(t, c, "get_counter"); r.Counter != 0 {
			t.Errorf("counter with resume.None = %d, want 0 (a fresh session)", r.Counter)
		}
		record(events, c)
	})
	t.Run("reconnect fails, breaker opens", func(t *testing.T) {
		cl := startCluster(t, &testserver.Options{Backends: 1})
		c, events := connect(t, cl, &resilient.Options{
			Retry:   retry.Policy{InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxElapsed: 300 * time.Millisecond},
			Breaker: resilient.BreakerSettings{ConsecutiveFailures: 2, OpenTimeout: time.Minute},
		})
		mustCounter(t, c, "get_counter")
		cl.Inject(testserver.Fault{Kind: testserver.Unavailable, Method: "initialize", Count: 100})
		cl.Inject(testserver.Fault{Kind: testserver.NotFoundPlain, Method: "tools/call"})
		// The call rides the outage out until its own bound...
		_, err := callCounter(ctx, t, c, "get_counter")
		if !errors.Is(err, retry.ErrExhausted) {
			t.Errorf("err = %v, want ErrExhausted (max elapsed time)", err)
		}
		// ...and a call made while the breaker is open fails at once.
		if _, err := callCounter(ctx, t, c, "get_counter"); !errors.Is(err, resilient.ErrCircuitOpen) {
			t.Errorf("err = %v, want ErrCircuitOpen", err)
		}
		if s := c.Stats(); s.Breaker != resilient.BreakerOpen || s.Dials < 3 {
			t.Errorf("Stats = %+v, want the breaker open after 2 failed dials", s)
		}
		record(events, c) // Close ends the reconnect: reconnect_failed
		if s := c.Stats(); s.ReconnectFailures != 1 {
			t.Errorf("Stats.ReconnectFailures = %d after Close cut the reconnect, want 1", s.ReconnectFailures)
		}
	})
	t.Run("budget exhausted", func(t *testing.T) {
		cl := startCluster(t, nil)
		c, events := connect(t, cl, &resilient.Options{
			Budget:  resilient.BudgetSettings{Tokens: 2},
			Breaker: resilient.BreakerSettings{ConsecutiveFailures: -1},
		})
		mustCounter(t, c, "get_counter")
		// A session lost again on every replay: each replay that fails
		// again costs a token.
		cl.Inject(testserver.Fault{Kind: testserver.NotFoundPlain, Method: "tools/call", Tool: "get_counter", Count: 1000})
		_, err := callCounter(ctx, t, c, "get_counter")
		var ee *retry.ExhaustedError
		if !errors.As(err, &ee) || ee.Reason != retry.ReasonBudget {
			t.Errorf("err = %v, want an ExhaustedError for the retry budget", err)
		}
		if s := c.Stats(); s.BudgetExhausted != 1 {
			t.Errorf("Stats.BudgetExhausted = %d, want 1", s.BudgetExhausted)
		}
		_ = c.Close()
		events.mu.Lock()
		for _, ev := range events.events {
			if ev.Kind == resilient.EventBudgetExhausted { // its resumes find no session: checked elsewhere
				seen[ev.Kind] = append(seen[ev.Kind], ev)
			}
		}
		events.mu.Unlock()
	})

	for kind := resilient.EventAttemptFailed; kind <= resilient.EventRestoreFailed; kind++ {
		if len(seen[kind]) == 0 {
			t.Errorf("no %v event", kind)
		}
	}
	for _, ev := range seen[resilient.EventReconnected] {
		if ev.Duration <= 0 || ev.SessionID == "" || ev.OldSessionID == "" || ev.Generation < 2 {
			t.Errorf("reconnected event lacks its fields: %+v", ev)
		}
	}
	for _, ev := range seen[resilient.EventResumed] {
		if ev.Resume.Status != resume.StatusResumed || ev.Resume.KeysCopied == 0 {
			t.Errorf("resumed event = %+v, want status resumed with keys copied", ev.Resume)
		}
	}
	for _, ev := range seen[resilient.EventBreakerStateChanged] {
		if ev.From == ev.To {
			t.Errorf("breaker event without states: %+v", ev)
		}
	}
	for _, ev := range seen[resilient.EventAttemptFailed] {
		if ev.Class == retry.OK || ev.Err == nil || ev.Attempt < 1 {
			t.Errorf("attempt-failed event lacks its fields: %+v", ev)
		}
	}
	for kind := resilient.EventAttemptFailed; kind <= resilient.EventRestoreFailed; kind++ {
		if kind.String() == "unknown" {
			t.Errorf("EventKind %d has no name", kind)
		}
	}
}

// OnEvent may call the client, even from the reconnect goroutine, without
// deadlocking it; and the reconnect's events come before the replay's.
func TestOnEventMayCallClient(t *testing.T) {
	cl := startCluster(t, nil)
	var c *resilient.Client
	inner := make(chan error, 1)
	var mu sync.Mutex
	var order []resilient.EventKind
	replayed := make(chan struct{})
	var once sync.Once
	c, _ = connect(t, cl, &resilient.Options{OnEvent: func(ev resilient.Event) {
		mu.Lock()
		order = append(order, ev.Kind)
		mu.Unlock()
		switch ev.Kind {
		case resilient.EventReconnected:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"})
			inner <- err
		case resilient.EventReplayed:
			once.Do(func() { close(replayed) })
		}
	}})
	mustCounter(t, c, "increment_counter")
	i, _ := cl.BackendFor(c.ID())
	cl.Kill(i)
	if r := mustCounter(t, c, "increment_counter"); r.Counter != 2 {
		t.Errorf("counter = %d, want 2", r.Counter)
	}
	if err := <-inner; err != nil {
		t.Errorf("CallTool from OnEvent: %v", err)
	}
	<-replayed
	mu.Lock()
	defer mu.Unlock()
	reconnected, replay := slices.Index(order, resilient.EventReconnected), slices.Index(order, resilient.EventReplayed)
	if reconnected < 0 || replay < reconnected {
		t.Errorf("events %v: want reconnected before replayed", order)
	}
}
