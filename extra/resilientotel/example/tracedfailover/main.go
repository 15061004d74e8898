// Command tracedfailover shows one failover as one trace: an MCP server
// loses every session between two calls of a resilient client, and the
// second call's spans (the call, its failed attempt, the reconnect with its
// resume, the replay, and the server's span through the trace context in
// _meta) are written to stdout as JSON by OpenTelemetry's stdouttrace
// exporter, followed by the trace as a tree.
//
//	go run ./example/tracedfailover
//
// Everything runs in this process over loopback HTTP.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpkit/resilience/extra/resilientotel"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The OpenTelemetry pipeline: spans to stdout, and to memory for the
	// tree printed at the end. The trace context travels in W3C format.
	exporter, err := stdouttrace.New(stdouttrace.WithWriter(os.Stdout), stdouttrace.WithPrettyPrint())
	if err != nil {
		return err
	}
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter), sdktrace.WithSpanProcessor(recorder))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})

	// The server: a handler that can be swapped for a fresh one, which
	// knows none of the old sessions (a restart, or a balancer sending the
	// client to another replica).
	var handler atomic.Pointer[http.Handler]
	restart := func() {
		var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return newServer() }, nil)
		handler.Store(&h)
	}
	restart()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*handler.Load()).ServeHTTP(w, r)
	}))
	defer ts.Close()

	// The client, instrumented (with the global providers set above).
	opts := &resilient.Options{}
	if err := resilientotel.Instrument(opts); err != nil {
		return err
	}
	c, err := resilient.Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "tracedfailover", Version: "1"}, nil),
		resilient.StreamableHTTP(ts.URL, nil), opts)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 1, "b": 2}}); err != nil {
		return err
	}

	restart() // the session is lost
	ctx, root := otel.Tracer("tracedfailover").Start(ctx, "agent step")
	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 40, "b": 2}})
	root.End()
	if err != nil {
		return err
	}
	fmt.Printf("\nadd answered %v after a failover\n", res.StructuredContent)
	printTree(recorder.Ended(), root.SpanContext().TraceID())
	return nil
}

type addIn struct {
	A int `json:"a"`
	B int `json:"b"`
}

type addOut struct {
	Sum int `json:"sum"`
}

// newServer is an MCP server with tool add and a resume_session tool. A
// real server would use replica.AddTool with a shared store and
// replica.Dedup (package github.com/mcpkit/resilience/resume/replica);
// this one only answers that it copied one key.
func newServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "tracedfailover-server", Version: "1"}, nil)
	s.AddReceivingMiddleware(resilientotel.ServerMiddleware())
	mcp.AddTool(s, &mcp.Tool{Name: "add"}, func(_ context.Context, _ *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, addOut, error) {
		return nil, addOut{Sum: in.A + in.B}, nil
	})
	type resumeIn struct {
		OldSessionID string `json:"old_session_id"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: resume.ToolName}, func(context.Context, *mcp.CallToolRequest, resumeIn) (*mcp.CallToolResult, resume.Result, error) {
		return nil, resume.Result{Status: resume.StatusResumed, KeysCopied: 1}, nil
	})
	return s
}

// printTree prints the spans of trace id as a tree, children in start
// order, with the attributes that tell the failover's story.
func printTree(spans []sdktrace.ReadOnlySpan, id trace.TraceID) {
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	var roots []sdktrace.ReadOnlySpan
	inTrace := map[trace.SpanID]bool{}
	for _, s := range spans {
		if s.SpanContext().TraceID() == id {
			inTrace[s.SpanContext().SpanID()] = true
		}
	}
	for _, s := range spans {
		if s.SpanContext().TraceID() != id {
			continue
		}
		if p := s.Parent().SpanID(); inTrace[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	fmt.Printf("trace %s:\n", id)
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		var attrs []string
		for _, kv := range s.Attributes() {
			switch k := string(kv.Key); {
			case strings.HasPrefix(k, "mcpkit."), k == "error.type":
				attrs = append(attrs, k+"="+kv.Value.String())
			}
		}
		fmt.Printf("%s%s (%s, %v) %s\n", strings.Repeat("  ", depth+1), s.Name(), s.SpanKind(),
			s.EndTime().Sub(s.StartTime()).Round(time.Microsecond), strings.Join(attrs, " "))
		for _, ev := range s.Events() {
			fmt.Printf("%s  event %s\n", strings.Repeat("  ", depth+1), ev.Name)
		}
		kids := children[s.SpanContext().SpanID()]
		sort.Slice(kids, func(i, j int) bool { return kids[i].StartTime().Before(kids[j].StartTime()) })
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
}
