// Package resilientotel traces and measures a [resilient.Client] and a
// go-sdk server with OpenTelemetry, following the OpenTelemetry semantic
// conventions for MCP, and shows what they leave out (retries, reconnects,
// resumes, deduplicated replays) in one trace per call.
//
// It is a module of its own (github.com/mcpkit/resilience/extra/resilientotel),
// so the core module does not require OpenTelemetry and a program that does
// not import this package pays nothing for it.
//
// On the client, before [resilient.Connect]:
//
//	opts := &resilient.Options{}
//	if err := resilientotel.Instrument(opts); err != nil { ... }
//	c, err := resilient.Connect(ctx, client, resilient.StreamableHTTP(url, nil), opts)
//
// On a go-sdk server, outermost (replica is
// github.com/mcpkit/resilience/resume/replica):
//
//	server.AddReceivingMiddleware(resilientotel.ServerMiddleware(), replica.Dedup(store, ttl))
//
// Both use OpenTelemetry's global TracerProvider, MeterProvider and
// propagator unless given [WithTracerProvider], [WithMeterProvider] and
// [WithPropagators]. The global propagator propagates nothing until the
// application sets one: set propagation.TraceContext{} (with
// otel.SetTextMapPropagator or WithPropagators on both sides) for the
// server's spans to join the client's traces.
//
// # Spans of a call
//
// Each call made through the client's methods is one span, of kind CLIENT,
// named as the MCP conventions name it: "{mcp.method.name} {gen_ai.tool.name}"
// ("tools/call add"), or the method alone for a method without a tool
// ("tools/list"). It covers the whole call: every attempt, backoff and wait
// for a reconnect. Its attributes: mcp.method.name, gen_ai.tool.name and
// gen_ai.operation.name ("execute_tool", for tools/call), mcp.session.id,
// mcp.protocol.version, server.address and server.port of the session the
// last attempt used, and mcpkit.attempts, mcpkit.replays.
//
// A call that fails has error.type and status Error (the description is the
// error's text). error.type is:
//
//   - "tool_error" for a tools/call whose result has IsError (the
//     conventions'), the call itself returning no error;
//   - "outcome_unknown" for [resilient.ErrOutcomeUnknown], "circuit_open"
//     for [resilient.ErrCircuitOpen], "exhausted" for [retry.ErrExhausted],
//     "closed" for [resilient.ErrClosed], first match in that order;
//   - "canceled" and "deadline_exceeded" for the context's errors;
//   - the JSON-RPC error code, as a string ("-32602"), for an error the
//     server answered, with rpc.response.status_code set to it too;
//   - otherwise the error's Go type ("*net.OpError").
//
// Each attempt (one send of the call on one session) is a child span of
// the call's, of kind CLIENT too, with the same name: the call span is the
// conventions' MCP client span, and each attempt span is the client side
// of one request the server receives, so that the server's span is its
// child. Attempt spans carry mcpkit.attempt (1 for the first),
// mcpkit.replay (true for an attempt sent on a session that replaced the
// one of an earlier attempt), mcpkit.session.generation, mcp.session.id,
// mcp.protocol.version, server.address and server.port; a failed attempt
// has error.type set to its retry class ([retry.Class]: "session_lost",
// "not_sent", "transient", "ambiguous"...) and status Error.
//
// # Reconnects, resumes, replays
//
// Each session replacement that the call waited for is a span named
// "mcpkit.reconnect" (INTERNAL), a child of the call span, with the start
// and end the client measured (from the failure that began it to the new
// session in use; one that began before the call starts before its
// parent). It carries mcpkit.reconnect.old_session_id, mcp.session.id (the
// new session), mcpkit.reconnect.dials, and the resume's outcome:
// mcpkit.resume.status ("resumed", "same_session", "not_found" from
// resume_session, or "skipped" when no resume was tried: no session ID, no
// resume tool, resume disabled; "failed" when it failed) with
// mcpkit.resume.keys_copied, or mcpkit.resume.error saying why there was
// none. A failed replacement has error.type and status Error. A
// replacement serves every call waiting for it: each of their traces shows
// it.
//
// A replay is the event "mcpkit.replay" on the call span (with
// mcpkit.attempt and the new mcp.session.id) as well as the attempt's
// mcpkit.replay; a call that may have run and was not replayed has the
// event "mcpkit.outcome_unknown" and error.type "outcome_unknown".
//
// A circuit breaker change belongs to no call: it is a span of its own,
// "mcpkit.breaker" (INTERNAL, the root of its own trace, zero length at the
// change's time), with mcpkit.breaker.from and mcpkit.breaker.to
// ("closed", "half-open", "open"). It comes from the Event hook
// ([resilient.Hooks]), which the client calls on a goroutine of its own,
// shortly after the change.
//
// Tool arguments and results are never recorded.
//
// # Metrics
//
//	name                               instrument           unit          attributes
//	mcp.client.operation.duration      float64 histogram    s             mcp.method.name, gen_ai.tool.name, gen_ai.operation.name,
//	                                                                      mcp.protocol.version, server.address, server.port, error.type
//	mcpkit.client.attempts             int64 counter        {attempt}     mcp.method.name, gen_ai.tool.name, gen_ai.operation.name,
//	                                                                      mcpkit.replay, error.type (the retry class, when failed)
//	mcpkit.client.replays              int64 counter        {attempt}     as attempts
//	mcpkit.client.reconnects           int64 counter        {reconnect}   error.type, when it failed
//	mcpkit.client.outcome_unknown      int64 counter        {call}        as the duration
//	mcpkit.client.breaker.transitions  int64 counter        {transition}  mcpkit.breaker.from, mcpkit.breaker.to
//	mcp.server.operation.duration      float64 histogram    s             mcp.method.name, gen_ai.tool.name, gen_ai.operation.name,
//	                                                                      mcp.protocol.version, error.type
//
// The duration histograms use the buckets the conventions advise (10ms to
// 300s). Reconnects are counted once each, from the Event hook, however many calls
// waited for them. Session IDs are never metric attributes.
//
// # Propagation
//
// Before each attempt the client's Attempt hook writes the attempt span's
// context into the request's _meta with the configured propagator
// ("traceparent" and "tracestate" with propagation.TraceContext), as the
// MCP specification (2026-07-28, SEP-414) and the conventions ask; the
// caller's params are never changed. [ServerMiddleware] reads it back from
// _meta, so the server span is a child of the attempt span over any
// transport, across reconnects and load balancers.
//
// # Server
//
// [ServerMiddleware] starts a SERVER span per request it receives (not
// for notifications), named and attributed as on the client, and records
// mcp.server.operation.duration. A result that replica.Dedup answered from
// its store instead of running the tool (its _meta has
// [resume.ReplayedMeta] = true) is marked mcpkit.dedup.replayed = true: put
// the middleware before Dedup in AddReceivingMiddleware (outermost) to see
// them.
//
// # Names
//
// The MCP names (mcp.method.name, mcp.session.id, mcp.protocol.version) and
// gen_ai.tool.name, gen_ai.operation.name are string constants here
// ([MethodNameKey]...): the MCP conventions (status Development) moved from
// open-telemetry/semantic-conventions to semantic-conventions-genai, and no
// semconv package of OpenTelemetry Go carries them. error.type,
// server.address, server.port and rpc.response.status_code come from
// go.opentelemetry.io/otel/semconv/v1.43.0. Every name of this package's
// own starts with "mcpkit.".
//
// jsonrpc.request.id is not recorded: the client's hooks do not see the ID
// the go-sdk assigns to a request.
package resilientotel
