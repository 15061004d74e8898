package resilientotel

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/retry"
)

type recorder struct {
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	opts   []Option
}

func newRecorder() *recorder {
	r := &recorder{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	r.opts = []Option{
		WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.spans))),
		WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))),
		WithPropagators(propagation.TraceContext{}),
	}
	return r
}

// counter returns the sum of the int64 counter name, and its points'
// attributes.
func (r *recorder) counter(t *testing.T, name string) (int64, []attribute.Set) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	var sets []attribute.Set
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
				for _, dp := range s.DataPoints {
					n += dp.Value
					sets = append(sets, dp.Attributes)
				}
			}
		}
	}
	return n, sets
}

func TestInstrumentNilOptions(t *testing.T) {
	err := Instrument(nil)
	if err == nil || !strings.Contains(err.Error(), "opts is nil") {
		t.Errorf("Instrument(nil) = %v, want an error saying opts is nil", err)
	}
}

// Hooks set before Instrument keep working, inside the spans; OnEvent is
// left to the application.
func TestInstrumentChains(t *testing.T) {
	rec := newRecorder()
	var order []string
	opts := &resilient.Options{
		Hooks: resilient.Hooks{
			Call: func(ctx context.Context, info *resilient.CallInfo, next func(context.Context) error) error {
				if !trace.SpanFromContext(ctx).SpanContext().IsValid() {
					t.Error("the user's Call hook runs outside the call span")
				}
				order = append(order, "user call")
				return next(ctx)
			},
			Attempt: func(ctx context.Context, info *resilient.AttemptInfo, next func(context.Context) error) error {
				if _, ok := info.Meta["traceparent"].(string); !ok {
					t.Errorf("the user's Attempt hook sees _meta %v, want a traceparent", info.Meta)
				}
				order = append(order, "user attempt")
				return next(ctx)
			},
			Event: func(ev resilient.Event) { order = append(order, "user event "+ev.Kind.String()) },
		},
	}
	if err := Instrument(opts, rec.opts...); err != nil {
		t.Fatal(err)
	}
	call := &resilient.CallInfo{Method: "tools/list", Attempts: 1}
	err := opts.Hooks.Call(context.Background(), call, func(ctx context.Context) error {
		info := &resilient.AttemptInfo{Method: "tools/list", Attempt: 1, SessionID: "s1", Meta: map[string]any{}}
		return opts.Hooks.Attempt(ctx, info, func(context.Context) error {
			order = append(order, "send")
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if opts.OnEvent != nil {
		t.Error("Instrument set OnEvent, the application's")
	}
	opts.Hooks.Event(resilient.Event{Kind: resilient.EventReconnected})
	want := "user call, user attempt, send, user event reconnected"
	if got := strings.Join(order, ", "); got != want {
		t.Errorf("order: %s; want %s", got, want)
	}
	spans := rec.spans.Ended()
	if len(spans) != 2 || spans[1].Name() != "tools/list" || spans[0].Parent().SpanID() != spans[1].SpanContext().SpanID() {
		t.Errorf("spans %v, want an attempt span inside a tools/list call span", spans)
	}
	if n, _ := rec.counter(t, ReconnectsMetric); n != 1 {
		t.Errorf("%s = %d, want 1", ReconnectsMetric, n)
	}
}

// A call that may have run is error.type=outcome_unknown with an event and
// a count; its failed attempt carries its class.
func TestOutcomeUnknown(t *testing.T) {
	rec := newRecorder()
	opts := &resilient.Options{}
	if err := Instrument(opts, rec.opts...); err != nil {
		t.Fatal(err)
	}
	cause := fmt.Errorf("%w: %w", resilient.ErrOutcomeUnknown, io.ErrUnexpectedEOF)
	call := &resilient.CallInfo{Method: "tools/call", Tool: "transfer", Attempts: 1}
	err := opts.Hooks.Call(context.Background(), call, func(ctx context.Context) error {
		info := &resilient.AttemptInfo{Method: "tools/call", Tool: "transfer", Attempt: 1, Meta: map[string]any{}}
		return opts.Hooks.Attempt(ctx, info, func(context.Context) error {
			info.Class = retry.Ambiguous
			return cause
		})
	})
	if err != cause {
		t.Fatalf("the hooks returned %v, want the call's error unchanged", err)
	}
	spans := rec.spans.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	attempt, callSpan := spans[0], spans[1]
	if et := attrValue(attempt.Attributes(), semconv.ErrorTypeKey); et != "ambiguous" || attempt.Status().Code != codes.Error {
		t.Errorf("attempt error.type %q status %v, want ambiguous, Error", et, attempt.Status())
	}
	if et := attrValue(callSpan.Attributes(), semconv.ErrorTypeKey); et != "outcome_unknown" || callSpan.Status().Code != codes.Error {
		t.Errorf("call error.type %q status %v, want outcome_unknown, Error", et, callSpan.Status())
	}
	if ev := callSpan.Events(); len(ev) != 1 || ev[0].Name != OutcomeUnknownEventName {
		t.Errorf("call events %v, want %s", ev, OutcomeUnknownEventName)
	}
	if n, _ := rec.counter(t, OutcomeUnknownMetric); n != 1 {
		t.Errorf("%s = %d, want 1", OutcomeUnknownMetric, n)
	}
	if n, sets := rec.counter(t, AttemptsMetric); n != 1 || len(sets) != 1 || !sets[0].HasValue(semconv.ErrorTypeKey) {
		t.Errorf("%s = %d with %v, want 1 with error.type", AttemptsMetric, n, sets)
	}
}

// A reconnect that failed and one whose resume was skipped show so on
// their spans.
func TestReconnectSpans(t *testing.T) {
	rec := newRecorder()
	opts := &resilient.Options{}
	if err := Instrument(opts, rec.opts...); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	call := &resilient.CallInfo{Method: "ping"}
	_ = opts.Hooks.Call(context.Background(), call, func(context.Context) error {
		call.Reconnects = []resilient.ReconnectInfo{
			{Start: start, End: start.Add(time.Millisecond), OldSessionID: "a", SessionID: "b", Dials: 2,
				ResumeErr: fmt.Errorf("%w: session has no ID", resume.ErrUnsupported)},
			{Start: start.Add(2 * time.Millisecond), End: start.Add(3 * time.Millisecond), OldSessionID: "b", Dials: 3,
				Err: fmt.Errorf("%w: dial refused", retry.ErrExhausted)},
		}
		return nil
	})
	spans := rec.spans.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want the call and two reconnects", len(spans))
	}
	skipped, failed := spans[0].Attributes(), spans[1].Attributes()
	if attrValue(skipped, ResumeStatusKey) != "skipped" || attrValue(skipped, DialsKey) != "2" ||
		!spans[0].StartTime().Equal(start) || !spans[0].EndTime().Equal(start.Add(time.Millisecond)) {
		t.Errorf("first reconnect %v..%v %v, want resume skipped, 2 dials, the info's times", spans[0].StartTime(), spans[0].EndTime(), skipped)
	}
	if attrValue(failed, semconv.ErrorTypeKey) != "exhausted" || spans[1].Status().Code != codes.Error || attrValue(failed, SessionIDKey) != "" {
		t.Errorf("second reconnect %v status %v, want error.type exhausted, Error, no new session", failed, spans[1].Status())
	}
}

// A breaker change is a span of its own, at the event's time, and a count.
func TestBreakerEvents(t *testing.T) {
	rec := newRecorder()
	opts := &resilient.Options{}
	if err := Instrument(opts, rec.opts...); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Second)
	opts.Hooks.Event(resilient.Event{Kind: resilient.EventBreakerStateChanged, Time: at, From: resilient.BreakerClosed, To: resilient.BreakerOpen})
	opts.Hooks.Event(resilient.Event{Kind: resilient.EventReconnectFailed, Err: resilient.ErrClosed})
	spans := rec.spans.Ended()
	if len(spans) != 1 || spans[0].Name() != BreakerSpanName || !spans[0].StartTime().Equal(at) ||
		attrValue(spans[0].Attributes(), BreakerFromKey) != "closed" || attrValue(spans[0].Attributes(), BreakerToKey) != "open" {
		t.Errorf("spans %v, want one %s closed -> open at %v", spans, BreakerSpanName, at)
	}
	if n, _ := rec.counter(t, BreakerTransitionsMetric); n != 1 {
		t.Errorf("%s = %d, want 1", BreakerTransitionsMetric, n)
	}
	if n, sets := rec.counter(t, ReconnectsMetric); n != 1 || len(sets) != 1 {
		t.Errorf("%s = %d, want 1", ReconnectsMetric, n)
	} else if v, _ := sets[0].Value(semconv.ErrorTypeKey); v.AsString() != "closed" {
		t.Errorf("failed reconnect counted with %v, want error.type closed", sets[0])
	}
}

func attrValue(kvs []attribute.KeyValue, key attribute.Key) string {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value.String()
		}
	}
	return ""
}
