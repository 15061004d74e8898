package resilient_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/internal/testserver"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/retry"
)

// fastPolicy keeps tests quick: tiny waits from the policy, never sleeps.
var fastPolicy = retry.Policy{
	MaxAttempts:    4,
	InitialBackoff: time.Millisecond,
	MaxBackoff:     10 * time.Millisecond,
	MaxElapsed:     10 * time.Second,
}

func startCluster(t *testing.T, opts *testserver.Options) *testserver.Cluster {
	t.Helper()
	cl, err := testserver.Start(opts)
	if err != nil {
		t.Fatalf("testserver.Start: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// eventLog collects events for assertions. Events reach OnEvent on the
// client's own goroutine, after the call that caused them may have
// returned: wait for them with waitFor, or Close the client first.
type eventLog struct {
	mu     sync.Mutex
	events []resilient.Event
	notify chan struct{} // buffered 1: an event was added
}

func (l *eventLog) add(ev resilient.Event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	notify := l.wake()
	l.mu.Unlock()
	select {
	case notify <- struct{}{}:
	default:
	}
}

// wake returns the notify channel; l.mu must be held.
func (l *eventLog) wake() chan struct{} {
	if l.notify == nil {
		l.notify = make(chan struct{}, 1)
	}
	return l.notify
}

// waitFor waits until at least n events of kind arrived, and returns them.
func (l *eventLog) waitFor(t *testing.T, kind resilient.EventKind, n int) []resilient.Event {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		notify := l.wake()
		l.mu.Unlock()
		if got := l.of(kind); len(got) >= n {
			return got
		}
		select {
		case <-notify:
		case <-timeout.C:
			t.Fatalf("waited 10s for %d %v event(s); got %d", n, kind, len(l.of(kind)))
		}
	}
}

func (l *eventLog) of(kind resilient.EventKind) []resilient.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []resilient.Event
	for _, ev := range l.events {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// connect returns a Client on cl with fast test settings, closed at cleanup.
func connect(t *testing.T, cl *testserver.Cluster, opts *resilient.Options) (*resilient.Client, *eventLog) {
	t.Helper()
	if opts == nil {
		opts = &resilient.Options{}
	}
	if opts.Retry == (retry.Policy{}) {
		opts.Retry = fastPolicy
	}
	if opts.Breaker.OpenTimeout == 0 {
		opts.Breaker.OpenTimeout = 200 * time.Millisecond
	}
	events := &eventLog{}
	if opts.OnEvent == nil {
		opts.OnEvent = events.add
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "resilient-test", Version: "1"}, nil)
	c, err := resilient.Connect(ctx, client, resilient.StreamableHTTP(cl.URL(), nil), opts)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, events
}

// counterResult is the structured result of the counter tools.
type counterResult struct {
	Counter  int    `json:"counter"`
	Instance string `json:"instance"`
}

func decode[T any](t *testing.T, res *mcp.CallToolResult) T {
	t.Helper()
	var v T
	if res.IsError {
		t.Fatalf("tool returned IsError: %+v", res.Content)
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatalf("marshal structured content: %v", err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode structured content %s: %v", b, err)
	}
	return v
}

func callCounter(ctx context.Context, t *testing.T, c resilient.Session, tool string) (counterResult, error) {
	t.Helper()
	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: tool})
	if err != nil {
		return counterResult{}, err
	}
	return decode[counterResult](t, res), nil
}

func mustCounter(t *testing.T, c resilient.Session, tool string) counterResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := callCounter(ctx, t, c, tool)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return r
}
