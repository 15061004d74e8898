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
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/retry"
)

// hookLog records what the hooks saw.
type hookLog struct {
	mu       sync.Mutex
	calls    []resilient.CallInfo
	attempts []resilient.AttemptInfo
}

type ctxMark struct{}

func (l *hookLog) hooks() resilient.Hooks {
	return resilient.Hooks{
		Call: func(ctx context.Context, info *resilient.CallInfo, next func(context.Context) error) error {
			err := next(context.WithValue(ctx, ctxMark{}, "call"))
			l.mu.Lock()
			l.calls = append(l.calls, *info)
			l.mu.Unlock()
			return err
		},
		Attempt: func(ctx context.Context, info *resilient.AttemptInfo, next func(context.Context) error) error {
			if ctx.Value(ctxMark{}) != "call" {
				panic("the attempt's context does not derive from the call hook's")
			}
			info.Meta["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
			err := next(ctx)
			l.mu.Lock()
			l.attempts = append(l.attempts, *info)
			l.mu.Unlock()
			return err
		},
	}
}

// A failover seen through the hooks: one call, two attempts (the second a
// replay on the new session), the reconnect and its resume; the trace
// context added by the attempt hook reaches the server in _meta, and the
// caller's params are left alone.
func TestHooksSeeFailover(t *testing.T) {
	cl := startCluster(t, nil)
	log := &hookLog{}
	c, _ := connect(t, cl, &resilient.Options{Hooks: log.hooks()})
	mustCounter(t, c, "increment_counter")
	oldID := c.ID()
	i, _ := cl.BackendFor(oldID)
	cl.Kill(i)
	params := &mcp.CallToolParams{Name: "increment_counter", Arguments: map[string]any{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.CallTool(ctx, params); err != nil {
		t.Fatal(err)
	}
	if params.Meta != nil {
		t.Errorf("the caller's params got _meta %v", params.Meta)
	}
	if tp := cl.LastMeta("increment_counter")["traceparent"]; tp != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Errorf("the server saw traceparent %v, want the hook's", tp)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.calls) != 2 {
		t.Fatalf("%d calls seen, want 2", len(log.calls))
	}
	call := log.calls[1]
	if call.Method != "tools/call" || call.Tool != "increment_counter" || call.Attempts != 2 || call.Replays != 1 ||
		call.SessionID != oldID || call.ServerAddress != "127.0.0.1" || call.ServerPort == 0 || call.ProtocolVersion == "" {
		t.Errorf("call info = %+v, want tools/call increment_counter started on %s, 2 attempts, 1 replay", call, oldID)
	}
	if _, ok := call.Result.(*mcp.CallToolResult); !ok {
		t.Errorf("call info Result = %T, want *mcp.CallToolResult", call.Result)
	}
	if len(call.Reconnects) != 1 {
		t.Fatalf("call info Reconnects = %+v, want 1", call.Reconnects)
	}
	r := call.Reconnects[0]
	if r.OldSessionID != oldID || r.SessionID == "" || r.SessionID == oldID || r.Err != nil || !r.End.After(r.Start) ||
		r.Resume == nil || r.Resume.Status != resume.StatusResumed || r.Resume.KeysCopied == 0 {
		t.Errorf("reconnect info = %+v, want %s replaced and resumed", r, oldID)
	}
	a := log.attempts[1:]
	if len(a) != 2 || a[0].Class != retry.SessionLost || a[0].Replay || !a[1].Replay || a[1].Class != retry.OK ||
		a[0].SessionID != oldID || a[1].SessionID != r.SessionID || a[1].Generation != 2 || a[1].ServerAddress != "127.0.0.1" || a[1].ServerPort == 0 {
		t.Errorf("attempt infos = %+v, want a session_lost attempt on %s then an OK replay on %s", a, oldID, r.SessionID)
	}
}

// A hook sees an error as the caller does.
func TestHooksSeeErrors(t *testing.T) {
	cl := startCluster(t, nil)
	log := &hookLog{}
	c, _ := connect(t, cl, &resilient.Options{Hooks: log.hooks()})
	cl.Inject(testserver.Fault{Kind: testserver.DropAfterTool, Method: "tools/call", Tool: "increment_counter"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "increment_counter"}); !errors.Is(err, resilient.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.calls) != 1 || log.calls[0].Result != nil || log.calls[0].Attempts != 1 {
		t.Errorf("call info = %+v, want 1 attempt and no result", log.calls)
	}
}

// The Event hook receives every event before OnEvent, in the same order.
func TestHooksEventBeforeOnEvent(t *testing.T) {
	cl := startCluster(t, nil)
	var mu sync.Mutex
	var got []string
	record := func(who string) func(resilient.Event) {
		return func(ev resilient.Event) {
			mu.Lock()
			got = append(got, who+" "+ev.Kind.String())
			mu.Unlock()
		}
	}
	c, _ := connect(t, cl, &resilient.Options{Hooks: resilient.Hooks{Event: record("hook")}, OnEvent: record("app")})
	cl.Expire(c.ID())
	mustCounter(t, c, "get_counter")
	_ = c.Close() // delivers what is queued
	mu.Lock()
	defer mu.Unlock()
	if len(got) < 4 || len(got)%2 != 0 {
		t.Fatalf("events %v, want each twice", got)
	}
	for i := 0; i < len(got); i += 2 {
		if got[i][:5] != "hook " || got[i+1] != "app "+got[i][5:] {
			t.Errorf("events %v: want each to the hook, then to OnEvent", got)
			break
		}
	}
}
