package resilientotel_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mcpkit/resilience/extra/resilientotel"
	"github.com/mcpkit/resilience/resilient"
)

// A server and a client instrumented together: one tools/call is a call
// span and an attempt span on the client and a server span, in one trace.
// A real program passes an exporter's TracerProvider (or sets the global
// one) instead of the in-memory recorder.
func Example() {
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	otelOpts := []resilientotel.Option{
		resilientotel.WithTracerProvider(tp),
		resilientotel.WithPropagators(propagation.TraceContext{}),
	}

	// The server: its receiving middleware reads the trace context from
	// each request's _meta.
	server := mcp.NewServer(&mcp.Implementation{Name: "greeter", Version: "1"}, nil)
	type in struct {
		Name string `json:"name"`
	}
	mcp.AddTool(server, &mcp.Tool{Name: "greet"}, func(_ context.Context, _ *mcp.CallToolRequest, in in) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello " + in.Name}}}, nil, nil
	})
	server.AddReceivingMiddleware(resilientotel.ServerMiddleware(otelOpts...))
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
	defer ts.Close()

	// The client: Instrument sets the hooks before Connect.
	opts := &resilient.Options{}
	if err := resilientotel.Instrument(opts, otelOpts...); err != nil {
		log.Fatal(err)
	}
	c, err := resilient.Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil),
		resilient.StreamableHTTP(ts.URL, nil), opts)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "greet", Arguments: map[string]any{"name": "otel"}}); err != nil {
		log.Fatal(err)
	}

	// Spans end innermost first: the server's, the attempt's, the call's.
	var trace []sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.Name() == "tools/call greet" {
			trace = append(trace, s)
		}
	}
	for _, s := range trace {
		fmt.Println(s.Name(), s.SpanKind())
	}
	server0, attempt, call := trace[0], trace[1], trace[2]
	fmt.Println("one trace:", server0.SpanContext().TraceID() == call.SpanContext().TraceID())
	fmt.Println("server span is the attempt's child:", server0.Parent().SpanID() == attempt.SpanContext().SpanID())
	fmt.Println("attempt span is the call's child:", attempt.Parent().SpanID() == call.SpanContext().SpanID())
	// Output:
	// tools/call greet server
	// tools/call greet client
	// tools/call greet client
	// one trace: true
	// server span is the attempt's child: true
	// attempt span is the call's child: true
}
