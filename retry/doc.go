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
//   - [SessionLost]: the server no longer knows the session (HTTP 404, the
//     "session not found" bodies of other SDKs, legacy 400 "no valid session
//     ID") or the SDK session is closed. The server did not run the call.
//   - [Ambiguous]: the request was sent and the answer was lost (connection
//     dropped, 500/502/504, "request terminated without response"). It may
//     have run.
//
// # Replay
//
// [Decide] turns a class and what is known about the call (its method, its
// tool annotations, per-call overrides, server deduplication) into a
// [Decision]: retry or not, on a new session or the same one, after a
// backoff or at once. The rule is net/http's: replay only when the request
// cannot run twice.
//
// # Per-call overrides
//
// [WithPolicy], [Idempotent], [NotIdempotent] and [NoRetry] attach overrides
// to a context for one call.
package retry
