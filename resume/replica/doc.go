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
// is still running waits for it (reading the store with a backoff from
// 10ms to 500ms, about two reads a second). The replica running a first
// execution renews its claim on the key every third of
// [DedupOptions.Lease] (4s by default); a replay that finds a claim not
// renewed for a lease, because its replica died or lost the store, answers
// resume.CodeOutcomeUnknown at once, which a resilient client reports as
// ErrOutcomeUnknown: it never runs the call a second time, and never makes
// its caller wait for [DedupOptions.Wait] (30s). A counter incremented
// through failovers then ends at exactly the number of increments issued.
//
// # Owners
//
// Every session holds an owner record ([OwnerKey]): the principal that
// created it ([Principal], the UserID of the request's auth.TokenInfo), or
// no principal when it was created by an unauthenticated request. The owner
// is fixed when the session is created, before anything is written into
// it, and never changes:
//
//   - [Values] records it before a session's first value, and refuses, with
//     [ErrNotOwner] and writing nothing, a write for any other principal. A
//     session created without a principal stays so: no authenticated writer
//     can claim it later, and its creator can always resume it.
//   - The record lives at least as long as every value it guards: each
//     write extends it to outlive the value by a minute, and nothing ever
//     shortens it (the record carries its own expiry, so a write with a
//     short TTL cannot undo what a write with a long one needed).
//   - [NewValues] acts for no principal: it writes only into sessions
//     created without one.
//
// resume_session copies a session owned by a principal only for that
// principal; a session owned by no principal only by possession of its
// ID. The owner check and the copy cannot be one atomic step on a store
// that keeps the two sessions on different shards (Redis Cluster), so the
// tool orders them so that a refused copy leaves nothing behind:
//
//  1. it fixes the owner of the caller's current session (its own, fixed
//     at creation; another principal's session is refused);
//  2. it copies the old session, as one atomic snapshot, into a fresh
//     staging session that no client can name, and checks the owner
//     record in that snapshot. Because the owner record is written before
//     a session's first value and outlives them all, a snapshot that holds
//     any value holds the owner that guards it, even one recorded by a
//     first write racing with the resume;
//  3. only if the check passes, it copies the snapshot, without its owner
//     record, into the current session, and removes the staging session.
//
// Each step reads or writes the keys of one session at a time. A crash
// after step 2 leaves only the staged snapshot, which no client can reach
// and which expires within a minute; a crash during step 3 leaves the
// current session with all of the copy or none of it (Copy writes all or
// nothing). Either way the client saw no answer, so it calls resume_session
// again, which repeats the steps from the start: the copy is idempotent.
//
// # Security model
//
// Who may do what, on any replica:
//
//   - Adopt a session (send requests on it through [Handler]): a session
//     created for a principal, only requests of that principal (others get
//     403); a session created without one, any request that presents its
//     ID, as on the go-sdk's own handler. Such a request still cannot write
//     into the session's state for a principal: [Values] refuses.
//   - Resume a session (resume_session copies its state into the caller's
//     session): its owner principal; for a session created without a
//     principal, anyone who presents its ID.
//   - Replay a call ([Dedup]): results are scoped by the authenticated
//     principal, or else by the session lineage that only resume_session
//     carries from one session to the next, so a replay reaches only the
//     results of its own principal or its own chain of sessions.
//
// A session created without authentication is protected by possession of
// its ID alone: the go-sdk's session IDs are 26 characters from
// crypto/rand (130 bits), which cannot be guessed, so keep them out of
// logs and URLs. Authenticate callers whose sessions hold anything that
// must survive a leaked ID.
package replica
