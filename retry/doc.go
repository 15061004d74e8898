// Package retry holds the pure decisions of a resilient MCP client: what
// kind of failure an error is, whether a call may be tried again, how long to
// wait before it, and how many retries a client may spend.
//
// Nothing here performs I/O or starts goroutines; package
// [github.com/mcpkit/resilience/resilient] acts on these decisions.
//
// # Classes of failure
//
// [Classify] sorts every error the go-sdk client returns into one
// [Class]. The class says what is known about the call on the server:
//
//   - [Cancelled]: the caller's context ended. Never retried.
//   - [Protocol]: the server answered with a JSON-RPC error (unknown tool,
//     bad params, unauthorized). Retrying cannot help.
//   - [NotSent]: the request never reached a server (dial refused, DNS).
//   - [Transient]: a server or balancer refused it without running it
//     (HTTP 429 or 503); the session is intact.
//   - [SessionClosed]: the SDK session was already shut down; nothing was
//     sent.
//   - [SessionLost]: the server no longer knows the session (HTTP 404, the
//     "session not found" bodies of other SDKs, legacy 400 "no valid session
//     ID"). The request that got that answer did not run, but the SDK gives
//     the same error to every call in flight on the connection, so only the
//     transport's evidence ([Request]) says whether it was this call's.
//   - [Ambiguous]: the request was sent and the answer was lost (connection
//     dropped, 500/502/504, "request terminated without response"). It may
//     have run.
//
// # Replay
//
// [Decide] is the replay rule, in one pure function. Its input, an
// [Attempt], holds everything the decision needs: the error's class, what
// the transport saw of the attempt's own request ([Request], with the HTTP
// status: [ProvesNotRun] holds the table of statuses that prove a request
// was not run), whether the session was replaced, the call's method and
// tool annotations, the server's deduplication, the caller's overrides and
// what is left of the attempts and the budget. Its output is an [Action]:
// return, return "outcome unknown", send again after a backoff, or replay
// at once on a new session. The rule is net/http's: send again only when
// the request cannot run twice.
//
// # Per-call overrides
//
// [WithPolicy], [Idempotent], [NotIdempotent], [NoRetry] and
// [WaitForReady] attach overrides to a context for one call: a second call
// made with the same context fails with [ErrOverrideReused] rather than
// silently inheriting them.
package retry
