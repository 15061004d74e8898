package resilientotel_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpkit/resilience/extra/resilientotel"
	"github.com/mcpkit/resilience/resume"
)

// replayMarker stands for replica.Dedup answering every "add" from its
// store: it marks the result as Dedup does.
func replayMarker(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		if r, ok := res.(*mcp.CallToolResult); ok && r != nil && req.(*mcp.CallToolRequest).Params.Name == "add" {
			if r.Meta == nil {
				r.Meta = mcp.Meta{}
			}
			r.Meta[resume.ReplayedMeta] = true
		}
		return res, err
	}
}

// Installed outside Dedup, the middleware marks the results Dedup replayed
// and only those. A request without trace context (a plain go-sdk client)
// gets a server span of its own trace.
func TestServerMarksDedupReplays(t *testing.T) {
	tel := newTelemetry(t)
	s := startServer(t, tel, replayMarker)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "plain", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for _, name := range []string{"add", "fail"} {
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: map[string]any{}}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, sp := range tel.spans.Ended() {
		if sp.SpanKind() != trace.SpanKindServer || !strings.HasPrefix(sp.Name(), "tools/call") {
			continue
		}
		seen[sp.Name()] = true
		v, marked := attr(sp.Attributes(), resilientotel.ReplayedKey)
		want := sp.Name() == "tools/call add"
		if marked != want || (marked && !v.AsBool()) {
			t.Errorf("span %q: %s = %v (set %v), want set %v", sp.Name(), resilientotel.ReplayedKey, v.AsBool(), marked, want)
		}
		if sp.Parent().IsValid() {
			t.Errorf("span %q has parent %v; the request carried no trace context", sp.Name(), sp.Parent())
		}
		if str(sp.Attributes(), resilientotel.SessionIDKey) != cs.ID() {
			t.Errorf("span %q: mcp.session.id %q, want %q", sp.Name(), str(sp.Attributes(), resilientotel.SessionIDKey), cs.ID())
		}
	}
	if !seen["tools/call add"] || !seen["tools/call fail"] {
		t.Errorf("server spans %v, want tools/call add and tools/call fail", seen)
	}
}
