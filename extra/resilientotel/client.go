package resilientotel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/retry"
)

// Instrument makes a [resilient.Client] connected with opts trace and
// measure its calls: it sets opts.Hooks (Call, Attempt and Event).
// Hooks already set are kept: the instrumentation wraps Call and Attempt
// (they run inside the call and attempt spans, so they see them in their
// context) and calls an Event hook already set after its own work on each
// event. opts.OnEvent is the application's and is left alone. Set Hooks
// before calling Instrument, and call it once per Options: a second call
// instruments twice.
//
// The tracer, meter and propagator come from options; each defaults to
// OpenTelemetry's global one at the time of the call. What is recorded is
// described in the package documentation.
//
// Instrument returns an error, and leaves opts unchanged, when opts is nil
// or the meter refuses an instrument. The instrumentation is safe for
// concurrent use, as the hooks must be.
func Instrument(opts *resilient.Options, options ...Option) error {
	if opts == nil {
		return errors.New("resilientotel: Instrument: opts is nil: pass the *resilient.Options that resilient.Connect will get (a new &resilient.Options{} for the defaults)")
	}
	ci, err := newClientInstr(newConfig(options))
	if err != nil {
		return err
	}
	prev := opts.Hooks
	opts.Hooks = resilient.Hooks{Call: ci.callHook(prev.Call), Attempt: ci.attemptHook(prev.Attempt), Event: func(ev resilient.Event) {
		ci.event(ev)
		if prev.Event != nil {
			prev.Event(ev)
		}
	}}
	return nil
}

// clientInstr holds what the client hooks record into. Its fields are set
// once; OpenTelemetry's tracers, instruments and propagators are safe for
// concurrent use.
type clientInstr struct {
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	duration metric.Float64Histogram
	attempts, replays, reconnects,
	unknown, breaker metric.Int64Counter
}

func newClientInstr(c config) (*clientInstr, error) {
	meter := c.mp.Meter(ScopeName)
	ci := &clientInstr{tracer: c.tp.Tracer(ScopeName), prop: c.prop}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	ci.duration, err = meter.Float64Histogram(ClientDurationMetric, metric.WithUnit("s"),
		metric.WithDescription("Duration of MCP calls made by a resilient client, all attempts and waits included."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	add(err)
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		add(err)
		return c
	}
	ci.attempts = counter(AttemptsMetric, "{attempt}", "Sends of MCP calls, first attempts and retries.")
	ci.replays = counter(ReplaysMetric, "{attempt}", "Attempts sent again on a session that replaced the one of an earlier attempt.")
	ci.reconnects = counter(ReconnectsMetric, "{reconnect}", "Session replacements, with error.type when one failed.")
	ci.unknown = counter(OutcomeUnknownMetric, "{call}", "Calls that may have run and were not replayed (resilient.ErrOutcomeUnknown).")
	ci.breaker = counter(BreakerTransitionsMetric, "{transition}", "Circuit breaker state changes.")
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("resilientotel: Instrument: creating instruments: %w", err)
	}
	return ci, nil
}

// callState is what the attempt hook tells the call hook about the
// session used, for the call span and its duration metric. The attempts of
// one call run one after the other on the call's goroutine.
type callState struct {
	sessionID, protocolVersion, serverAddress string
	serverPort                                int
}

type callStateKey struct{}

// spanName is the conventions' span name: "{mcp.method.name} {target}".
func spanName(method, tool string) string {
	if tool == "" {
		return method
	}
	return method + " " + tool
}

// methodAttrs are the attributes that name what was called.
func methodAttrs(method, tool string, extra int) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 3+extra)
	attrs = append(attrs, MethodNameKey.String(method))
	if tool != "" {
		attrs = append(attrs, ToolNameKey.String(tool))
	}
	if method == "tools/call" {
		attrs = append(attrs, OperationNameKey.String("execute_tool"))
	}
	return attrs
}

// endpointAttrs add what is known of the session and server; session ID
// only when withSession (it has no place on metrics).
func endpointAttrs(attrs []attribute.KeyValue, sessionID, version, address string, port int, withSession bool) []attribute.KeyValue {
	if withSession && sessionID != "" {
		attrs = append(attrs, SessionIDKey.String(sessionID))
	}
	if version != "" {
		attrs = append(attrs, ProtocolVersionKey.String(version))
	}
	if address != "" {
		attrs = append(attrs, semconv.ServerAddress(address))
		if port != 0 {
			attrs = append(attrs, semconv.ServerPort(port))
		}
	}
	return attrs
}

func (ci *clientInstr) callHook(inner func(context.Context, *resilient.CallInfo, func(context.Context) error) error) func(context.Context, *resilient.CallInfo, func(context.Context) error) error {
	return func(ctx context.Context, info *resilient.CallInfo, next func(context.Context) error) error {
		start := time.Now()
		ctx, span := ci.tracer.Start(ctx, spanName(info.Method, info.Tool),
			trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start),
			trace.WithAttributes(methodAttrs(info.Method, info.Tool, 0)...))
		// What the attempts see replaces what the call saw at its start
		// (a reconnect may change the session).
		st := &callState{sessionID: info.SessionID, protocolVersion: info.ProtocolVersion,
			serverAddress: info.ServerAddress, serverPort: info.ServerPort}
		ctx = context.WithValue(ctx, callStateKey{}, st)
		var err error
		if inner != nil {
			err = inner(ctx, info, next)
		} else {
			err = next(ctx)
		}
		end := time.Now()

		for i := range info.Reconnects {
			ci.reconnectSpan(ctx, &info.Reconnects[i])
		}
		span.SetAttributes(AttemptsKey.Int(info.Attempts), ReplaysKey.Int(info.Replays))
		span.SetAttributes(endpointAttrs(nil, st.sessionID, st.protocolVersion, st.serverAddress, st.serverPort, true)...)
		et := errorType(info.Result, err)
		if et != "" {
			span.SetAttributes(semconv.ErrorTypeKey.String(et))
			if code, ok := rpcCode(err); ok {
				span.SetAttributes(semconv.RPCResponseStatusCode(fmt.Sprint(code)))
			}
			desc := ""
			if err != nil {
				desc = err.Error()
			}
			span.SetStatus(codes.Error, desc)
		}
		if et == ErrorTypeOutcomeUnknown {
			span.AddEvent(OutcomeUnknownEventName, trace.WithTimestamp(end))
		}
		span.End(trace.WithTimestamp(end))

		attrs := endpointAttrs(methodAttrs(info.Method, info.Tool, 4), "", st.protocolVersion, st.serverAddress, st.serverPort, false)
		if et != "" {
			attrs = append(attrs, semconv.ErrorTypeKey.String(et))
		}
		set := metric.WithAttributeSet(attribute.NewSet(attrs...))
		ci.duration.Record(ctx, end.Sub(start).Seconds(), set)
		if et == ErrorTypeOutcomeUnknown {
			ci.unknown.Add(ctx, 1, set)
		}
		return err
	}
}

func (ci *clientInstr) attemptHook(inner func(context.Context, *resilient.AttemptInfo, func(context.Context) error) error) func(context.Context, *resilient.AttemptInfo, func(context.Context) error) error {
	return func(ctx context.Context, info *resilient.AttemptInfo, next func(context.Context) error) error {
		if st, ok := ctx.Value(callStateKey{}).(*callState); ok {
			st.sessionID, st.protocolVersion = info.SessionID, info.ProtocolVersion
			st.serverAddress, st.serverPort = info.ServerAddress, info.ServerPort
		}
		attrs := methodAttrs(info.Method, info.Tool, 8)
		attrs = append(attrs, AttemptKey.Int(info.Attempt), ReplayKey.Bool(info.Replay), GenerationKey.Int64(int64(info.Generation)))
		attrs = endpointAttrs(attrs, info.SessionID, info.ProtocolVersion, info.ServerAddress, info.ServerPort, true)
		if info.Replay {
			trace.SpanFromContext(ctx).AddEvent(ReplayEventName, trace.WithAttributes(AttemptKey.Int(info.Attempt), SessionIDKey.String(info.SessionID)))
		}
		ctx, span := ci.tracer.Start(ctx, spanName(info.Method, info.Tool),
			trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
		if info.Meta == nil {
			info.Meta = map[string]any{}
		}
		ci.prop.Inject(ctx, metaCarrier(info.Meta))
		var err error
		if inner != nil {
			err = inner(ctx, info, next)
		} else {
			err = next(ctx)
		}
		metricAttrs := methodAttrs(info.Method, info.Tool, 2)
		metricAttrs = append(metricAttrs, ReplayKey.Bool(info.Replay))
		if info.Class != retry.OK {
			class := semconv.ErrorTypeKey.String(info.Class.String())
			span.SetAttributes(class)
			desc := info.Class.String()
			if err != nil {
				desc = err.Error()
			}
			span.SetStatus(codes.Error, desc)
			metricAttrs = append(metricAttrs, class)
		}
		span.End()
		set := metric.WithAttributeSet(attribute.NewSet(metricAttrs...))
		ci.attempts.Add(ctx, 1, set)
		if info.Replay {
			ci.replays.Add(ctx, 1, set)
		}
		return err
	}
}

// reconnectSpan records r as a child of the call span in ctx. A
// replacement that began before the call (the call waited for one already
// under way) starts before its parent.
func (ci *clientInstr) reconnectSpan(ctx context.Context, r *resilient.ReconnectInfo) {
	end := r.End
	if end.IsZero() {
		end = time.Now()
	}
	attrs := []attribute.KeyValue{OldSessionIDKey.String(r.OldSessionID), DialsKey.Int(r.Dials)}
	if r.SessionID != "" {
		attrs = append(attrs, SessionIDKey.String(r.SessionID))
	}
	switch {
	case r.Resume != nil:
		attrs = append(attrs, ResumeStatusKey.String(string(r.Resume.Status)), KeysCopiedKey.Int(r.Resume.KeysCopied))
	case r.ResumeErr != nil:
		status := "failed"
		if errors.Is(r.ResumeErr, resume.ErrUnsupported) {
			status = "skipped"
		}
		attrs = append(attrs, ResumeStatusKey.String(status), ResumeErrorKey.String(r.ResumeErr.Error()))
	}
	_, span := ci.tracer.Start(ctx, ReconnectSpanName, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithTimestamp(r.Start), trace.WithAttributes(attrs...))
	if r.Err != nil {
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType(nil, r.Err)))
		span.SetStatus(codes.Error, r.Err.Error())
	}
	span.End(trace.WithTimestamp(end))
}

// event records what only the events report: each reconnect once (a
// reconnect serves every call that waited for it, so counting from the
// calls would count it again for each), and breaker changes, which belong
// to no call.
func (ci *clientInstr) event(ev resilient.Event) {
	ctx := context.Background()
	switch ev.Kind {
	case resilient.EventReconnected:
		ci.reconnects.Add(ctx, 1)
	case resilient.EventReconnectFailed:
		ci.reconnects.Add(ctx, 1, metric.WithAttributes(semconv.ErrorTypeKey.String(errorType(nil, ev.Err))))
	case resilient.EventBreakerStateChanged:
		attrs := []attribute.KeyValue{BreakerFromKey.String(ev.From.String()), BreakerToKey.String(ev.To.String())}
		ci.breaker.Add(ctx, 1, metric.WithAttributes(attrs...))
		t := ev.Time
		if t.IsZero() {
			t = time.Now()
		}
		_, span := ci.tracer.Start(ctx, BreakerSpanName, trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithTimestamp(t), trace.WithAttributes(attrs...))
		span.End(trace.WithTimestamp(t))
	}
}
