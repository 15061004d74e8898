// Package retry holds what users of a resilient MCP client configure and
// inspect: the retry [Policy], the per-call overrides, the [Class] of a
// failure ([Classify]), and [ErrExhausted].
//
// Nothing here performs I/O or starts goroutines; package
// [github.com/mcpkit/resilience/resilient] uses them.
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
//     transport's evidence says whether it was this call's.
//   - [Ambiguous]: the request was sent and the answer was lost (connection
//     dropped, 500/502/504, "request terminated without response"). It may
//     have run.
//
// # Replay
//
// The client decides what to do after a failure with one pure step that
// users never see (it lives in an internal package of resilient, so it can
// change without breaking anyone); the README's replay table describes it.
// The rule is net/http's: send again only when the request cannot run
// twice. This package holds what users configure and inspect around it:
// the [Policy], the per-call overrides, the [Class] of an error, and
// [ErrExhausted] with its [Reason].
//
// # Per-call overrides
//
// [WithPolicy], [Idempotent], [NotIdempotent], [NoRetry] and
// [WaitForReady] attach overrides to a context for one call: a second call
// made with the same context fails with [ErrOverrideReused] rather than
// silently inheriting them.
package retry
