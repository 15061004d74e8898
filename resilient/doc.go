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
//  1. A closed client returns [ErrClosed]. While the circuit breaker is
//     open, a new call returns [ErrCircuitOpen] at once, unless its context
//     carries [retry.WaitForReady]; while a reconnect is in progress, it
//     waits for it.
//  2. The call runs on the current session with a fresh copy of its params.
//  3. Success, or a tool result with IsError, is returned as is.
//  4. After a failure the client gathers the facts: the error's class
//     ([retry.Classify]), what the transport saw of the call's own request
//     (never connected, refused with which status, accepted or still
//     running), and, when the session must be replaced, the outcome of the
//     reconnect. A reconnect happens once for all callers that failed on
//     the session (single flight): dial, resume_session, restore the
//     logging level and subscriptions, swap.
//  5. One pure step, in two phases, decides from those facts: first
//     whether the session must be replaced (never for a request the server
//     refused: a refusal is an answer), then, with the reconnect's outcome,
//     what to do: return the error, return [ErrOutcomeUnknown], send again
//     after a backoff, or replay at once on the new session. When the
//     decision on a tools/call depends on its tool's readOnlyHint or
//     idempotentHint and the client does not know them, it lists the
//     tools once (every page) on the session it would send on, whatever
//     the path (a kept session, a server that adopts sessions, a stateless
//     server, a new session); it remembers them, from the caller's
//     ListTools too, until notifications/tools/list_changed. A call that
//     succeeds never pays for that.
//
// Time bounds a call, not a count. It keeps going until its context ends,
// the policy's MaxElapsed (default 30s) of waiting has passed, or a
// failure says trying again cannot help; [retry.Policy].MaxAttempts is an
// optional cap. MaxElapsed never cuts an attempt in progress: bound the
// whole call with its context. The client dials a restarting server at
// least every [retry.Policy].MaxBackoff (default 1s), and once the
// breaker is open once per open period (640-960ms by default), so a call
// rides through a restart and is answered within about a second of the
// server being back.
//
// # When a call is replayed
//
//	failure                                          replayed?
//	dial refused, DNS, nothing written (never sent)  yes, after backoff or on a new session
//	session already closed by the SDK (never sent)   yes, on a new session
//	HTTP 429 or 503 for the call's own request       yes, after backoff or Retry-After
//	HTTP 404 or 400 for the call's own request       yes, on a new session
//	  (any SDK's "no session", even undecodable)
//	another 4xx for it (401, 403, 405, 413, 415,     no: returned as is after one attempt,
//	  422...)                                          no reconnect (the SDK's error)
//	may have run: dropped after sending, 500/502/504,
//	a 404 for another request while it ran:
//	  - a method other than tools/call               yes, on a new session
//	  - tool with readOnlyHint or idempotentHint     yes (unless Policy.IgnoreAnnotations)
//	  - a server running replica.Dedup               yes: it returns the first result
//	  - retry.Idempotent(ctx) on the call            yes
//	  - any other tools/call                         no: ErrOutcomeUnknown
//	replay answered "still running" by Dedup         no: ErrOutcomeUnknown
//	JSON-RPC error from the server, IsError result   no: returned as is
//	caller's context done / Close                    no: ctx.Err() / ErrClosed (see Errors)
//	retry.NoRetry(ctx)                               no: the first error
//	MaxAttempts or the retry budget spent            no: retry.ErrExhausted
//	no new session within the call's bounds          no: retry.ErrExhausted (or the
//	  or the handshake refused                         refusal)
//	any of the three above, after an attempt that    no: ErrOutcomeUnknown, wrapping
//	  may have run a call not harmless to repeat       the reason
//
// [retry.NotIdempotent] forbids replays of a call that may have run;
// [retry.WithPolicy] changes the policy for one call. Each override on a
// context applies to the one call it is passed to: reusing it for another
// call fails with [retry.ErrOverrideReused].
//
// A 404 breaks the SDK's whole connection, and every call in flight on it
// gets the same error; a refusal whose body the SDK cannot decode reads only
// "Bad Request". The transports of [StreamableHTTP] and [SSE] watch their
// own HTTP traffic, so the client knows whether a call's own request was
// refused (it did not run) or was still running or accepted (it may have).
// With another [TransportFactory] it cannot tell, and treats a tools/call
// that fails with a lost session as possibly run. Before resuming, the
// client also waits (up to Options.ConnectTimeout) for the requests still
// running on the old session to end, so that resume copies their writes.
//
// # Errors
//
// A call its context ends returns an error that matches the context's
// error under errors.Is (context.DeadlineExceeded or context.Canceled).
// When the context ended before any attempt failed, it is that error
// itself. After failed attempts it also carries the last failure, as gRPC
// does ("context deadline exceeded; last error: ... Service Unavailable"),
// and unwraps to it. When an attempt may have run the call and the call is
// not harmless to repeat (a tools/call that is not a read, not annotated
// readOnlyHint or idempotentHint, not [retry.Idempotent]), the error also
// matches [ErrOutcomeUnknown]: check the server's state before calling
// again. A call that provably did not run (every attempt refused or never
// sent) never matches ErrOutcomeUnknown. A call whose deadline comes
// before a wait it would need (a backoff, a server's Retry-After) ends at
// once with such an error rather than at the deadline.
//
// # Breaker and budget
//
// The circuit breaker ([BreakerSettings]) opens after consecutive failures
// to reach the server (10 by default: about 5s of outage for one caller,
// at once for a herd). While it is open the client's own prober dials the
// server once per open period (800ms, jittered by ±20%) and the first dial
// that connects closes it: the client is never locked out longer than one
// period after the server is back. Its state machine is
// github.com/sony/gobreaker/v2's TwoStepCircuitBreaker; only the prober
// takes its half-open trial, so users' calls are never trial requests.
// Two small parts are the client's own, because gobreaker's open period is
// fixed and it closes only through a trial: the prober's pacing (each
// period jittered, and doubled after a failed probe when
// BreakerSettings.MaxOpenTimeout allows), and closing the breaker when a
// reconnect that began while it was closed connects after it opened.
// [BreakerState] names its states in events and [Stats]. Every re-send,
// replays included, is checked against a retry budget shared by all calls
// (Options.Budget, a token bucket after gRPC's retry throttling): each
// re-send that reached the server and failed again costs a token, each
// success earns 0.1 back, and re-sends are allowed while more than half
// remain. Failures to reach the server (refused connections, 429, 503) cost
// no token: the breaker counts them, and its one prober does the dialling.
//
// # Liveness
//
// An attempt on a route that stops answering without closing (a black
// hole, a half-open connection, a wedged server) ends within a bound, and
// an attempt on a live but slow server is never cut ([LivenessSettings]).
// Any byte the session's HTTP transport reads (the attempt's answer or
// progress, another call's answer, an event stream's keep-alive) is a sign
// of life; when an attempt has seen none for Options.Liveness.Idle (5s),
// the client probes its session: a ping, or tools/list on 2026-07-28 sessions, which have no
// ping. Any answer re-arms the wait (a tool may run for minutes without a
// byte); no answer within ProbeTimeout (2s) cuts every attempt of that
// session silent since before the probe, with an error matching
// [ErrRouteDead], as one that may have run: the replay rule decides what
// becomes of the call, and a write that cannot be replayed returns
// [ErrOutcomeUnknown] wrapping it. At most one probe per session per Idle.
// The probe proves the server reachable on a new request, not the
// attempt's own connection: a connection that dies while the route stays
// up (a balancer that sends the probe to another backend) is not detected.
// On stdio, a process that exits ends its attempts with EOF; a wedged one
// is found by the probe.
//
// # Exactly-once tool calls
//
// Every tools/call to a server that advertises deduplication
// ([resume.DedupCapability]) carries an idempotency key in its _meta
// ([resume.IdempotencyKeyMeta]), identical on its replays; to choose it,
// put it in the call's params.Meta (it is then sent to any server). A
// server that installs replica.Dedup stores each result under its key and
// advertises it; on such a server a
// tools/call whose outcome is unknown is replayed, and the replay returns
// the first execution's result instead of running again. The client
// trusts the scope the server advertises: keys kept per authenticated
// principal hold on any session (stateless 2026-07-28 ones included); keys
// kept per session lineage only while the lineage is unbroken (every
// reconnect since the call started resumed the old state).
//
// On a server that advertises session adoption ([resume.AdoptCapability]:
// every replica serves every session), a dropped connection does not lose
// the session: the client keeps it, and sends a call again on it only when
// that is safe.
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
// its own, in order, on a goroutine of the client's, and [Client.Stats]
// returns counters.
package resilient
