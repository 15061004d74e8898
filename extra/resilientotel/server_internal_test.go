package resilientotel

import (
	"context"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/trace"
)

// A request without params, session or _meta (as a unit test or another
// middleware may build one) is traced, not a panic.
func TestServerMiddlewareBareRequests(t *testing.T) {
	rec := newRecorder()
	handler := ServerMiddleware(rec.opts...)(func(context.Context, string, mcp.Request) (mcp.Result, error) {
		return &mcp.CallToolResult{}, nil
	})
	for _, req := range []mcp.Request{
		&mcp.CallToolRequest{},
		&mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: "add"}},
		&mcp.ListToolsRequest{},
	} {
		if _, err := handler(context.Background(), "tools/call", req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := handler(context.Background(), "notifications/initialized", &mcp.InitializedRequest{}); err != nil {
		t.Fatal(err)
	}
	spans := rec.spans.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3 (none for the notification)", len(spans))
	}
	if spans[1].Name() != "tools/call add" || spans[0].Name() != "tools/call" || spans[0].SpanKind() != trace.SpanKindServer {
		t.Errorf("spans %q, %q (%v), want tools/call, tools/call add, server", spans[0].Name(), spans[1].Name(), spans[0].SpanKind())
	}
}
