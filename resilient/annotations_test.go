package resilient_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/internal/testserver"
	"github.com/mcpkit/resilience/resilient"
)

// listCounter counts the tools/list requests an HTTP client sends.
type listCounter struct{ n atomic.Int32 }

func (lc *listCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		_ = req.Body.Close()
		if bytes.Contains(body, []byte(`"method":"tools/list"`)) {
			lc.n.Add(1)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	return http.DefaultTransport.RoundTrip(req)
}

// A read (readOnlyHint) whose connection drops is replayed on a server
// that adopts sessions, though the caller never listed the tools: the
// dropped connection keeps the session, so the client lists the tools
// itself, on that session, once the call failed ambiguously. Both a read
// in flight when the connection drops (the answer lost after the tool
// ran) and one made on a connection that is already broken (dropped
// before it reached a backend, which the client cannot tell apart).
func TestReadReplayedWithoutListTools(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fault testserver.FaultKind
	}{
		{"in flight when the connection drops", testserver.DropAfterTool},
		{"made after the connection broke", testserver.DropBeforeTool},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cl := startCluster(t, &testserver.Options{Adopt: true})
			lc := &listCounter{}
			c, err := resilient.Connect(context.Background(), mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil),
				resilient.StreamableHTTP(cl.URL(), &http.Client{Transport: lc}), &resilient.Options{Retry: fastPolicy})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			listings := func() int { return int(lc.n.Load()) }
			mustCounter(t, c, "increment_counter")
			if n := listings(); n != 0 {
				t.Fatalf("%d tools/list on the happy path, want none", n)
			}
			cl.Inject(testserver.Fault{Kind: tt.fault, Method: "tools/call", Tool: "get_counter"})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r, err := callCounter(ctx, t, c, "get_counter")
			if errors.Is(err, resilient.ErrOutcomeUnknown) || err != nil {
				t.Fatalf("read after a dropped connection: err = %v, want it replayed", err)
			}
			if r.Counter != 1 {
				t.Errorf("counter = %d, want 1 (the session kept)", r.Counter)
			}
			s := c.Stats()
			if s.Reconnects != 0 || s.Retries != 1 || s.OutcomeUnknown != 0 {
				t.Errorf("Stats = %+v, want one re-send on the kept session", s)
			}
			if n := listings(); n != 1 {
				t.Errorf("%d tools/list, want the client's one", n)
			}
		})
	}
}

// On a stateless (2026-07-28) server, a read whose answer was lost is
// replayed too, without ListTools first.
func TestReadReplayedStatelessWithoutListTools(t *testing.T) {
	cl := startCluster(t, &testserver.Options{Stateless: true})
	c, _ := connect(t, cl, nil)
	mustCounter(t, c, "get_counter")
	cl.Inject(testserver.Fault{Kind: testserver.DropAfterTool, Method: "tools/call", Tool: "get_counter"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := callCounter(ctx, t, c, "get_counter"); err != nil {
		t.Fatalf("read after a dropped connection on a stateless server: err = %v, want it replayed", err)
	}
	if s := c.Stats(); s.OutcomeUnknown != 0 || s.Retries != 1 {
		t.Errorf("Stats = %+v, want one re-send", s)
	}
}
