package resilient_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume/memstore"
	"github.com/mcpkit/resilience/resume/replica"
)

// withToken sets a bearer token on every request.
type withToken struct {
	token string
	next  http.RoundTripper
}

func (b withToken) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// dropFirstAnswer runs the first tools/call it sees to completion, then
// drops the connection instead of answering: the tool ran, the answer is
// lost.
type dropFirstAnswer struct {
	next    http.Handler
	dropped atomic.Bool
}

func (d *dropFirstAnswer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if r.Method != http.MethodPost || !bytes.Contains(body, []byte(`"tools/call"`)) || d.dropped.Swap(true) {
		d.next.ServeHTTP(w, r)
		return
	}
	d.next.ServeHTTP(httptest.NewRecorder(), r)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// On a stateless 2026-07-28 server that deduplicates per authenticated
// principal (and says so), the client adds its idempotency key and trusts
// the deduplication: a write whose answer was lost after it ran is
// replayed, and the replay gets the single execution's result.
func TestDedupTrustedOnStatelessServer(t *testing.T) {
	var runs atomic.Int32
	s := mcp.NewServer(&mcp.Implementation{Name: "stateless", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "bump"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, map[string]int32, error) {
		return nil, map[string]int32{"run": runs.Add(1)}, nil
	})
	s.AddReceivingMiddleware(replica.Dedup(memstore.New(0), time.Hour))
	verify := func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		return &auth.TokenInfo{UserID: token, Expiration: time.Now().Add(time.Hour)}, nil
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	srv := httptest.NewServer(auth.RequireBearerToken(verify, nil)(&dropFirstAnswer{next: h}))
	defer srv.Close()

	hc := &http.Client{Transport: withToken{token: "alice", next: http.DefaultTransport}}
	c, err := resilient.Connect(context.Background(), newClient(), resilient.StreamableHTTP(srv.URL, hc), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ID() != "" {
		t.Fatalf("session ID %q, want a stateless session", c.ID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "bump", Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("bump with its answer lost: %v, want it replayed and answered by the server's deduplication", err)
	}
	if got := runs.Load(); got != 1 {
		t.Errorf("bump ran %d times, want 1", got)
	}
	if s := c.Stats(); s.Retries != 1 || s.OutcomeUnknown != 0 {
		t.Errorf("Stats = %+v, want one retry, no outcome unknown", s)
	}
	_ = res
}
