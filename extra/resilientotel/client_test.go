package resilientotel_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpkit/resilience/extra/resilientotel"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume"
)

// A failover seen as one trace: the server loses the session between two
// calls; the second call is one CLIENT span with two attempt spans (a
// failed one on the old session, a replay on the new), a reconnect span
// with the resume's outcome, a replay event; the server's span is a child
// of the second attempt's, through _meta; and the metrics count it all.
func TestFailoverIsOneTrace(t *testing.T) {
	tel := newTelemetry(t)
	s := startServer(t, tel)
	reconnected := make(chan struct{}, 1)
	c := connect(t, s, &resilient.Options{OnEvent: func(ev resilient.Event) {
		if ev.Kind == resilient.EventReconnected {
			reconnected <- struct{}{}
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 1, "b": 2}}); err != nil {
		t.Fatal(err)
	}
	oldID := c.ID()
	s.Restart()

	ctx, root := tel.tp.Tracer("test").Start(ctx, "root")
	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 987654321, "b": 1}})
	root.End()
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError {
		t.Fatalf("result IsError: %+v", res)
	}
	newID := c.ID()
	if newID == oldID || newID == "" {
		t.Fatalf("session %q after the failover, want a new one (old %q)", newID, oldID)
	}

	for _, sp := range tel.spans.Ended() {
		for _, kv := range sp.Attributes() {
			if v := kv.Value.String(); strings.Contains(v, "987654321") || strings.Contains(v, "987654322") {
				t.Errorf("span %q attribute %s = %q carries the tool's arguments or result", sp.Name(), kv.Key, v)
			}
		}
	}
	traceID := root.SpanContext().TraceID()
	var calls, attempts, reconnects, servers []sdktrace.ReadOnlySpan
	for _, sp := range tel.spans.Ended() {
		if sp.SpanContext().TraceID() != traceID {
			continue
		}
		switch {
		case sp.Name() == "root":
		case sp.Name() == resilientotel.ReconnectSpanName:
			reconnects = append(reconnects, sp)
		case sp.SpanKind() == trace.SpanKindServer:
			servers = append(servers, sp)
		case sp.Parent().SpanID() == root.SpanContext().SpanID():
			calls = append(calls, sp)
		default:
			attempts = append(attempts, sp)
		}
	}
	if len(calls) != 1 {
		t.Fatalf("%d call spans in the trace, want 1", len(calls))
	}
	call := calls[0]
	if call.Name() != "tools/call add" || call.SpanKind() != trace.SpanKindClient || call.Status().Code == codes.Error {
		t.Errorf("call span %q kind %v status %v, want \"tools/call add\", client, not an error", call.Name(), call.SpanKind(), call.Status())
	}
	ca := call.Attributes()
	for key, want := range map[attribute.Key]string{
		resilientotel.MethodNameKey:      "tools/call",
		resilientotel.ToolNameKey:        "add",
		resilientotel.OperationNameKey:   "execute_tool",
		resilientotel.SessionIDKey:       newID,
		resilientotel.ProtocolVersionKey: c.InitializeResult().ProtocolVersion,
		semconv.ServerAddressKey:         "127.0.0.1",
		resilientotel.AttemptsKey:        "2",
		resilientotel.ReplaysKey:         "1",
	} {
		if got := str(ca, key); got != want {
			t.Errorf("call span %s = %q, want %q", key, got, want)
		}
	}
	if _, ok := attr(ca, semconv.ErrorTypeKey); ok {
		t.Errorf("call span has error.type %q, want none", str(ca, semconv.ErrorTypeKey))
	}
	if v, _ := attr(ca, semconv.ServerPortKey); v.AsInt64() == 0 {
		t.Error("call span has no server.port")
	}
	if ev := call.Events(); len(ev) != 1 || ev[0].Name != resilientotel.ReplayEventName {
		t.Errorf("call span events %+v, want one %s", ev, resilientotel.ReplayEventName)
	}

	if len(attempts) != 2 {
		t.Fatalf("%d attempt spans, want 2", len(attempts))
	}
	if attempts[0].StartTime().After(attempts[1].StartTime()) {
		attempts[0], attempts[1] = attempts[1], attempts[0]
	}
	for i, a := range attempts {
		aa := a.Attributes()
		wantSession, wantReplay := oldID, "false"
		if i == 1 {
			wantSession, wantReplay = newID, "true"
		}
		if a.Parent().SpanID() != call.SpanContext().SpanID() || a.Name() != "tools/call add" || a.SpanKind() != trace.SpanKindClient {
			t.Errorf("attempt %d: span %q kind %v parent %v, want \"tools/call add\", client, child of the call span", i+1, a.Name(), a.SpanKind(), a.Parent().SpanID())
		}
		if got := str(aa, resilientotel.AttemptKey); got != []string{"1", "2"}[i] {
			t.Errorf("attempt %d: %s = %q", i+1, resilientotel.AttemptKey, got)
		}
		if got := str(aa, resilientotel.ReplayKey); got != wantReplay {
			t.Errorf("attempt %d: %s = %q, want %s", i+1, resilientotel.ReplayKey, got, wantReplay)
		}
		if got := str(aa, resilientotel.SessionIDKey); got != wantSession {
			t.Errorf("attempt %d: mcp.session.id = %q, want %q", i+1, got, wantSession)
		}
	}
	if et := str(attempts[0].Attributes(), semconv.ErrorTypeKey); et != "session_lost" || attempts[0].Status().Code != codes.Error {
		t.Errorf("first attempt: error.type %q, status %v; want its failure's class (session_lost: a 404) and Error", et, attempts[0].Status())
	}
	if _, ok := attr(attempts[1].Attributes(), semconv.ErrorTypeKey); ok || attempts[1].Status().Code == codes.Error {
		t.Errorf("replay: error.type %q, status %v; want none", str(attempts[1].Attributes(), semconv.ErrorTypeKey), attempts[1].Status())
	}

	if len(reconnects) != 1 {
		t.Fatalf("%d reconnect spans, want 1", len(reconnects))
	}
	r := reconnects[0]
	ra := r.Attributes()
	if r.Parent().SpanID() != call.SpanContext().SpanID() || !r.EndTime().After(r.StartTime()) ||
		str(ra, resilientotel.OldSessionIDKey) != oldID || str(ra, resilientotel.SessionIDKey) != newID ||
		str(ra, resilientotel.ResumeStatusKey) != string(resume.StatusResumed) || str(ra, resilientotel.KeysCopiedKey) != "1" ||
		str(ra, resilientotel.DialsKey) != "1" {
		t.Errorf("reconnect span parent %v, %v..%v, attributes %v; want a child of the call from %s to %s, resumed, 1 key, 1 dial",
			r.Parent().SpanID(), r.StartTime(), r.EndTime(), ra, oldID, newID)
	}

	if len(servers) != 1 {
		t.Fatalf("%d server spans in the client's trace, want 1 (the replay's)", len(servers))
	}
	sv := servers[0]
	if sv.Parent().SpanID() != attempts[1].SpanContext().SpanID() || !sv.Parent().IsRemote() {
		t.Errorf("server span's parent %v, want the replay's span %v, remote", sv.Parent().SpanID(), attempts[1].SpanContext().SpanID())
	}
	if sv.Name() != "tools/call add" || str(sv.Attributes(), resilientotel.SessionIDKey) != newID || str(sv.Attributes(), resilientotel.ToolNameKey) != "add" ||
		str(sv.Attributes(), resilientotel.ProtocolVersionKey) != c.InitializeResult().ProtocolVersion {
		t.Errorf("server span %q attributes %v, want tools/call add on %s, protocol %s", sv.Name(), sv.Attributes(), newID, c.InitializeResult().ProtocolVersion)
	}

	select {
	case <-reconnected:
	case <-ctx.Done():
		t.Fatal("no EventReconnected reached the OnEvent set before Instrument")
	}
	m := tel.metrics(t)
	dur, ok := m[resilientotel.ClientDurationMetric].Data.(metricdata.Histogram[float64])
	if !ok || m[resilientotel.ClientDurationMetric].Unit != "s" {
		t.Fatalf("%s: %+v, want a histogram in s", resilientotel.ClientDurationMetric, m[resilientotel.ClientDurationMetric])
	}
	var addCalls uint64
	for _, dp := range dur.DataPoints {
		if v, _ := dp.Attributes.Value(resilientotel.ToolNameKey); v.AsString() != "add" {
			continue
		}
		addCalls += dp.Count
		if v, _ := dp.Attributes.Value(resilientotel.MethodNameKey); v.AsString() != "tools/call" {
			t.Errorf("duration point attributes %v, want mcp.method.name tools/call", dp.Attributes.ToSlice())
		}
		if v, _ := dp.Attributes.Value(semconv.ServerAddressKey); v.AsString() != "127.0.0.1" {
			t.Errorf("duration point attributes %v, want server.address 127.0.0.1", dp.Attributes.ToSlice())
		}
		if dp.Attributes.HasValue(resilientotel.SessionIDKey) {
			t.Errorf("duration point attributes %v carry the session ID", dp.Attributes.ToSlice())
		}
	}
	if addCalls != 2 {
		t.Errorf("%s counted %d add calls, want 2", resilientotel.ClientDurationMetric, addCalls)
	}
	for name, want := range map[string]int64{
		resilientotel.AttemptsMetric:       3,
		resilientotel.ReplaysMetric:        1,
		resilientotel.ReconnectsMetric:     1,
		resilientotel.OutcomeUnknownMetric: 0,
	} {
		if got := sum(m[name]); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	if _, ok := m[resilientotel.ServerDurationMetric].Data.(metricdata.Histogram[float64]); !ok {
		t.Errorf("no %s histogram", resilientotel.ServerDurationMetric)
	}
}

// sum adds up the points of an int64 counter.
func sum(m metricdata.Metrics) int64 {
	s, _ := m.Data.(metricdata.Sum[int64])
	var n int64
	for _, dp := range s.DataPoints {
		n += dp.Value
	}
	return n
}

// An IsError result is error.type=tool_error on the call span, the server
// span and the duration metric, with status Error; the result's text is in
// no attribute.
func TestToolErrorIsErrorType(t *testing.T) {
	tel := newTelemetry(t)
	s := startServer(t, tel)
	c := connect(t, s, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "fail"})
	if err != nil || !res.IsError {
		t.Fatalf("CallTool = %+v, %v; want an IsError result", res, err)
	}
	var client, server sdktrace.ReadOnlySpan
	for _, sp := range tel.spans.Ended() {
		if sp.Name() != "tools/call fail" {
			continue
		}
		switch {
		case sp.SpanKind() == trace.SpanKindServer:
			server = sp
		case !sp.Parent().IsValid():
			client = sp
		}
		for _, kv := range sp.Attributes() {
			if strings.Contains(kv.Value.String(), "secret") {
				t.Errorf("span %q attribute %s carries the result's text", sp.Name(), kv.Key)
			}
		}
	}
	for _, sp := range []sdktrace.ReadOnlySpan{client, server} {
		if sp == nil {
			t.Fatal("no client or no server span for tools/call fail")
		}
		if et := str(sp.Attributes(), semconv.ErrorTypeKey); et != resilientotel.ErrorTypeTool || sp.Status().Code != codes.Error {
			t.Errorf("%v span: error.type %q, status %v; want tool_error, Error", sp.SpanKind(), et, sp.Status())
		}
	}
	m := tel.metrics(t)
	for _, name := range []string{resilientotel.ClientDurationMetric, resilientotel.ServerDurationMetric} {
		found := false
		for _, dp := range m[name].Data.(metricdata.Histogram[float64]).DataPoints {
			tool, _ := dp.Attributes.Value(resilientotel.ToolNameKey)
			et, _ := dp.Attributes.Value(semconv.ErrorTypeKey)
			if tool.AsString() == "fail" {
				found = true
				if et.AsString() != resilientotel.ErrorTypeTool {
					t.Errorf("%s point for fail: error.type %q, want tool_error", name, et.AsString())
				}
			}
		}
		if !found {
			t.Errorf("%s: no point for tool fail", name)
		}
	}
}

// Against a server without resume_session, the reconnect span says the
// resume was skipped and why.
func TestFailoverResumeSkipped(t *testing.T) {
	tel := newTelemetry(t)
	s := startServerWith(t, &server{tel: tel, noResume: true})
	c := connect(t, s, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	oldID := c.ID()
	s.Restart()
	if _, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 1, "b": 1}}); err != nil {
		t.Fatal(err)
	}
	var reconnects []sdktrace.ReadOnlySpan
	for _, sp := range tel.spans.Ended() {
		if sp.Name() == resilientotel.ReconnectSpanName {
			reconnects = append(reconnects, sp)
		}
	}
	if len(reconnects) != 1 {
		t.Fatalf("%d reconnect spans, want 1", len(reconnects))
	}
	ra := reconnects[0].Attributes()
	if str(ra, resilientotel.ResumeStatusKey) != "skipped" || str(ra, resilientotel.ResumeErrorKey) == "" ||
		str(ra, resilientotel.OldSessionIDKey) != oldID || str(ra, resilientotel.SessionIDKey) != c.ID() {
		t.Errorf("reconnect span attributes %v, want resume skipped with its reason, from %s to %s", ra, oldID, c.ID())
	}
	if _, ok := attr(ra, resilientotel.KeysCopiedKey); ok {
		t.Errorf("reconnect span has %s without a resume", resilientotel.KeysCopiedKey)
	}
}
