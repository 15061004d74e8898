package resilientotel

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpkit/resilience/resume"
)

// ServerMiddleware returns a go-sdk receiving middleware that traces the
// requests a server receives: it reads the trace context from each
// request's _meta with the configured propagator (default: the global
// one) and starts a SERVER span per request, tools/call included, as a
// child of the client's attempt span. Notifications get no span.
//
// The span is named like the client's ("tools/call add") and carries
// mcp.method.name, gen_ai.tool.name, mcp.session.id, mcp.protocol.version,
// error.type (as on the client: "tool_error" for an IsError result, the
// JSON-RPC code or the Go type of an error), and mcpkit.dedup.replayed =
// true when the result's _meta has [resume.ReplayedMeta]: replica.Dedup
// answered a replay from its store without running the tool. The request's
// duration goes to the histogram mcp.server.operation.duration.
//
// Install it outermost, so that it sees what Dedup answers and times
// everything inside: go-sdk runs the middleware added first outermost, so
//
//	server.AddReceivingMiddleware(resilientotel.ServerMiddleware(), replica.Dedup(store, ttl))
//
// A meter that refuses an instrument is reported to otel.Handle and that
// instrument records nothing; the middleware never fails a request. It is
// safe for concurrent use.
func ServerMiddleware(options ...Option) mcp.Middleware {
	c := newConfig(options)
	tracer := c.tp.Tracer(ScopeName)
	duration, err := c.mp.Meter(ScopeName).Float64Histogram(ServerDurationMetric, metric.WithUnit("s"),
		metric.WithDescription("Duration of MCP requests handled by the server."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err != nil {
		otel.Handle(fmt.Errorf("resilientotel: ServerMiddleware: creating %s: %w", ServerDurationMetric, err))
		duration, _ = noop.NewMeterProvider().Meter(ScopeName).Float64Histogram(ServerDurationMetric)
	}
	prop := c.prop
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if strings.HasPrefix(method, "notifications/") {
				return next(ctx, method, req)
			}
			start := time.Now()
			ctx = prop.Extract(ctx, metaCarrier(metaOf(req)))
			tool := ""
			if r, ok := req.(*mcp.CallToolRequest); ok && r.Params != nil {
				tool = r.Params.Name
			}
			attrs := methodAttrs(method, tool, 2)
			var version string
			if ss, ok := req.GetSession().(*mcp.ServerSession); ok && ss != nil {
				if ip := ss.InitializeParams(); ip != nil {
					version = ip.ProtocolVersion
				}
				if id := ss.ID(); id != "" {
					attrs = append(attrs, SessionIDKey.String(id))
				}
			}
			if version != "" {
				attrs = append(attrs, ProtocolVersionKey.String(version))
			}
			ctx, span := tracer.Start(ctx, spanName(method, tool), trace.WithSpanKind(trace.SpanKindServer),
				trace.WithTimestamp(start), trace.WithAttributes(attrs...))
			res, err := next(ctx, method, req)
			end := time.Now()

			metricAttrs := methodAttrs(method, tool, 2)
			if version != "" {
				metricAttrs = append(metricAttrs, ProtocolVersionKey.String(version))
			}
			if r, ok := res.(*mcp.CallToolResult); ok && r != nil && r.Meta[resume.ReplayedMeta] == true {
				span.SetAttributes(ReplayedKey.Bool(true))
			}
			if et := errorType(res, err); et != "" {
				span.SetAttributes(semconv.ErrorTypeKey.String(et))
				metricAttrs = append(metricAttrs, semconv.ErrorTypeKey.String(et))
				desc := ""
				if err != nil {
					desc = err.Error()
					if code, ok := rpcCode(err); ok {
						span.SetAttributes(semconv.RPCResponseStatusCode(fmt.Sprint(code)))
					}
				}
				span.SetStatus(codes.Error, desc)
			}
			span.End(trace.WithTimestamp(end))
			duration.Record(ctx, end.Sub(start).Seconds(), metric.WithAttributeSet(attribute.NewSet(metricAttrs...)))
			return res, err
		}
	}
}

// metaOf returns the _meta of req's params, nil when it has none. Params
// may be a typed nil pointer, whose GetMeta would dereference it.
func metaOf(req mcp.Request) map[string]any {
	if req == nil {
		return nil
	}
	p := req.GetParams()
	if p == nil {
		return nil
	}
	if v := reflect.ValueOf(p); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil
	}
	return p.GetMeta()
}
