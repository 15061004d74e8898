// Package resume is the wire contract between a resilient MCP client and
// the server half of this module, and the client's [Resumer].
//
// # Wire contract
//
// Everything both sides must agree on lives here, so that a client never
// imports server code and a server of another SDK can implement the same
// contract:
//
//   - the resume_session tool: [ToolName], its argument [ToolArg], its
//     answer [Result] with a [Status];
//   - idempotency keys: the _meta key [IdempotencyKeyMeta], the rules of a
//     key ([ValidateIdempotencyKey], [NewIdempotencyKey],
//     [IdempotencyKeyFrom]), the _meta flag [ReplayedMeta] of a replayed
//     result, the JSON-RPC errors [CodeKeyReused], [CodeInProgress] and [CodeOutcomeUnknown];
//   - the experimental server capability [DedupCapability].
//
// # Client side
//
// A [Resumer] restores the state of an old session on a new one. The
// default, [Tool], calls the server's resume_session tool with
// {"old_session_id": ID} and reads {"status","keys_copied"}; [None]
// disables resuming. The resilient client calls it after every reconnect.
//
// # Server side
//
// The server half for go-sdk servers is in resume/replica (resume_session,
// deduplication, session values, owner checks, the session-adopting HTTP
// handler), with its stores in resume/memstore and resume/redisstore.
package resume
