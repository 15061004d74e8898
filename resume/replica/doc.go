// Package replica is the server half of the resume contract for go-sdk
// servers: it lets a client's state, and its session, move from one server
// replica to another.
//
//   - [Store] is the session-state contract (get, set, atomic update,
//     delete, list, atomic copy, ping, with TTL). Package resume/memstore
//     is the embedded default; package resume/redisstore shares state
//     between replicas.
//   - [AddTool] registers resume_session on an *mcp.Server: it validates
//     the old ID ([ValidateSessionID]), copies the old session's keys into
//     the caller's session atomically, and answers "resumed",
//     "same_session" or "not_found".
//   - [SessionValues] and [NewValues] read and write session-scoped values
//     from tool handlers, so that handlers never build store keys by hand.
//     Keys starting with [ReservedPrefix] are the server half's own.
//   - [Dedup] is server middleware that runs each tools/call carrying an
//     idempotency key at most once and returns the stored result to its
//     replays. It advertises resume.DedupCapability, which lets a resilient
//     client replay a tools/call whose outcome is unknown.
//   - [Handler] is a streamable HTTP handler whose sessions every replica
//     serves: a replica that did not create a session adopts it, with the
//     same session ID, from its record in the shared [Store]. With a shared
//     event store (resume/redisstore's EventStore), a result that finished
//     on a replica that died before delivering it reaches the client from
//     another one. The balancer then needs no stickiness.
//
// # Exactly-once tool calls
//
// A resilient client puts a fresh idempotency key in the _meta of every
// tools/call (resume.IdempotencyKeyMeta), the same on each replay of that
// call. On a server running Dedup, the first execution stores its result
// under the key, scoped to the caller's principal or to its session lineage
// ([LineageKey], carried from session to session by resume_session); a
// replay gets that result without running the tool, a replay with other
// arguments gets resume.CodeKeyReused, and one that arrives while the first
// is still running waits for it. A counter incremented through failovers
// then ends at exactly the number of increments issued.
package replica
