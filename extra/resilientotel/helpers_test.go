package resilientotel_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mcpkit/resilience/extra/resilientotel"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume"
)

// telemetry is an in-memory OpenTelemetry pipeline shared by client and
// server.
type telemetry struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newTelemetry(t *testing.T) *telemetry {
	t.Helper()
	tel := &telemetry{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tel.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans))
	tel.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	t.Cleanup(func() {
		_ = tel.tp.Shutdown(context.Background())
		_ = tel.mp.Shutdown(context.Background())
	})
	return tel
}

func (tel *telemetry) options() []resilientotel.Option {
	return []resilientotel.Option{
		resilientotel.WithTracerProvider(tel.tp),
		resilientotel.WithMeterProvider(tel.mp),
		resilientotel.WithPropagators(propagation.TraceContext{}),
	}
}

// metrics collects the metrics recorded so far, by name.
func (tel *telemetry) metrics(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// server is an MCP server on loopback whose handler can be replaced by a
// fresh one, which loses every session: the old session IDs get 404.
type server struct {
	*httptest.Server
	handler  atomic.Pointer[http.Handler]
	tel      *telemetry
	extra    []mcp.Middleware
	noResume bool // no resume_session tool
	mu       sync.Mutex
	servers  []*mcp.Server // every server it ran, to close their sessions
}

func startServer(t *testing.T, tel *telemetry, extra ...mcp.Middleware) *server {
	t.Helper()
	return startServerWith(t, &server{tel: tel, extra: extra})
}

// startServerWith starts s, configured but not started.
func startServerWith(t *testing.T, s *server) *server {
	t.Helper()
	s.Restart()
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*s.handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		s.Close()
		// A replaced server's sessions are not closed by the client,
		// which moved on: close them, or their goroutines stay.
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, srv := range s.servers {
			for ss := range srv.Sessions() {
				_ = ss.Close()
			}
		}
	})
	return s
}

// Restart replaces the server by a new one with no sessions.
func (s *server) Restart() {
	srv := newMCPServer(!s.noResume)
	srv.AddReceivingMiddleware(append([]mcp.Middleware{resilientotel.ServerMiddleware(s.tel.options()...)}, s.extra...)...)
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	s.handler.Store(&h)
}

type addIn struct {
	A int `json:"a"`
	B int `json:"b"`
}

type addOut struct {
	Sum int `json:"sum"`
}

// newMCPServer has tools add, fail (always an IsError result) and, with
// resumeTool, a resume_session that answers it copied one key.
func newMCPServer(resumeTool bool) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "add"}, func(_ context.Context, _ *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, addOut, error) {
		return nil, addOut{Sum: in.A + in.B}, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "fail"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, struct{}, error) {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "secret detail"}}}, struct{}{}, nil
	})
	if !resumeTool {
		return srv
	}
	type resumeIn struct {
		OldSessionID string `json:"old_session_id"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: resume.ToolName}, func(context.Context, *mcp.CallToolRequest, resumeIn) (*mcp.CallToolResult, resume.Result, error) {
		return nil, resume.Result{Status: resume.StatusResumed, KeysCopied: 1}, nil
	})
	return srv
}

// connect returns an instrumented client of s; opts may carry an OnEvent
// of the test's.
func connect(t *testing.T, s *server, opts *resilient.Options) *resilient.Client {
	t.Helper()
	if opts == nil {
		opts = &resilient.Options{}
	}
	if err := resilientotel.Instrument(opts, s.tel.options()...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := resilient.Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1"}, nil),
		resilient.StreamableHTTP(s.URL, nil), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// attr returns the value of key on kvs, and whether it is there.
func attr(kvs []attribute.KeyValue, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// str returns the string value of key on kvs, "" when absent.
func str(kvs []attribute.KeyValue, key attribute.Key) string {
	v, _ := attr(kvs, key)
	return v.String()
}
