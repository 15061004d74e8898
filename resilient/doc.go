// Package resilient provides [Client], a drop-in for [*mcp.ClientSession]
// that survives the loss of its session.
//
// An MCP server behind a load balancer loses a client's session when a
// backend dies, restarts, or the balancer routes elsewhere. The go-sdk
// session is then dead for good. A Client notices, connects again, asks the
// server to copy the old session's state (the resume_session tool), restores
// the logging level and resource subscriptions, and replays the failed call
// when that cannot run it twice.
//
//	c, err := resilient.Connect(ctx, mcpClient, resilient.StreamableHTTP(url, nil), nil)
//	if err != nil { ... }
//	defer c.Close()
//	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "increment_counter"})
//
// Code written against the [Session] interface accepts both a Client and a
// raw *mcp.ClientSession.
//
// # One call
//
//  1. A closed client returns [ErrClosed]; an open breaker [ErrCircuitOpen].
//  2. The call runs on the current session with a fresh copy of its params.
//  3. Success, or a tool result with IsError, is returned as is. So are the
//     caller's cancellation (the bare ctx.Err()) and the server's JSON-RPC
//     errors.
//  4. Any other failure is classified by [retry.Classify]. A lost or
//     suspect session is replaced: once, for all callers that failed on it
//     (single flight), under the circuit breaker, with exponential backoff
//     and full jitter; the first dial is immediate, since another backend
//     is usually healthy.
//  5. The call is replayed only when that is safe (next section). Otherwise
//     its error matches [ErrOutcomeUnknown] and the cause, and the client is
//     already on a new session for the next call.
//  6. Retries stop at the policy's attempts or elapsed time
//     ([retry.ErrExhausted]), or when the shared retry budget runs low.
//
// # When a call is replayed
//
//	failure                                        replayed?
//	dial refused, DNS (never sent)                 yes, after backoff
//	HTTP 429 or 503 (refused, not run)             yes, after backoff
//	HTTP 404 / session not found / legacy 400      yes, on a new session
//	  for the call's own request
//	session already closed                         yes, on a new session
//	connection dropped after sending, 500/502/504,
//	or a 404 for another request while this one ran:
//	  - a method other than tools/call             yes, on a new session
//	  - tool with readOnlyHint or idempotentHint   yes (unless Policy.IgnoreAnnotations)
//	  - a server running resume.Dedup              yes: it returns the first result
//	  - retry.Idempotent(ctx) on the call          yes
//	  - any other tools/call                       no: ErrOutcomeUnknown
//	JSON-RPC error from the server, IsError result no: returned as is
//	caller's context done                          no: ctx.Err()
//
// [retry.NotIdempotent] and [retry.NoRetry] on the call's context forbid
// replays; [retry.WithPolicy] changes the policy for one call.
//
// A 404 breaks the SDK's whole connection, and every call in flight on it
// gets the same error. The transports of [StreamableHTTP] watch their own
// HTTP traffic, so the client knows whether a call's own request was
// refused (it did not run) or was still running or accepted (it may have).
// With another [TransportFactory] it cannot tell, and treats a tools/call
// that fails with a lost session as possibly run. Before resuming, the
// client also waits (up to Options.ConnectTimeout) for the requests still
// running on the old session to end, so that resume copies their writes.
//
// # Exactly-once tool calls
//
// Every tools/call carries an idempotency key in its _meta
// ([resume.IdempotencyKeyMeta]), identical on its replays; set your own
// with [retry.WithIdempotencyKey]. A server that installs [resume.Dedup]
// stores each result under its key and advertises it; on such a server a
// tools/call whose outcome is unknown is replayed, and the replay returns
// the first execution's result instead of running again. The client counts
// on this only while its server-side state lineage is unbroken (every
// reconnect since the call started resumed the old state).
//
// # Sessions and state
//
// After a reconnect the client calls the [resume.Resumer] (default: the
// resume_session tool) with the ID of the session whose state it owns. A
// server without the tool, a stateless server (no session ID) or a failed
// resume does not fail the call: the event hook and the log report it, and
// a failed resume keeps the old ID for the next reconnect. The protocol
// version negotiated first is pinned for every reconnect. The resume tool
// is hidden from ListTools and Tools unless [Options].ShowResumeTool.
//
// # Arguments
//
// A tools/call goes out with the Arguments the caller gave, as the raw
// session sends them: the client is a drop-in, and code written against
// [Session] behaves the same with either. An untyped nil becomes {} (the
// SDK does that), but a nil map (map[string]any(nil)) or a nil
// json.RawMessage is sent as "arguments": null, which servers of the
// TypeScript SDK refuse with -32602 ("expected record, received null").
// Pass nil or an empty map for a tool without arguments.
//
// # Observing
//
// [Options].Logger receives zap logs (attempts at Debug, reconnects and
// resumes at Info, failures at Warn; never tool arguments or results).
// [Options].OnEvent receives an [Event] for everything the client does on
// its own, and [Client.Stats] returns counters.
package resilient
