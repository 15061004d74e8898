package resume

// ToolName is the name of the tool that copies an old session's state into
// the current session.
const ToolName = "resume_session"

// ToolArg is the tool's one argument: the ID of the session to resume from.
const ToolArg = "old_session_id"

// JSON-RPC error codes answered by the server half's deduplication
// (resume/replica's Dedup). They lie in the range the JSON-RPC
// specification leaves to implementations.
const (
	// CodeKeyReused: the idempotency key was used before for a different
	// tool or different arguments. Nothing was run.
	CodeKeyReused = -32050
	// CodeInProgress: a call with this key started and has not finished
	// (or its server died while running it). It was not run again, so its
	// outcome is unknown to the caller.
	CodeInProgress = -32051
	// CodeOutcomeUnknown: a call with this key started on a server replica
	// that stopped renewing its claim (it died, or lost the store) before
	// storing a result. The call may or may not have run; it was not run
	// again, and never will be under this key. A client reports it as an
	// outcome unknown to the caller, as it does CodeInProgress.
	CodeOutcomeUnknown = -32052
)

// AdoptCapability is the experimental server capability by which a server
// whose sessions every replica serves (resume/replica's Handler) tells
// clients that its session outlives the replica that served it: after a
// dropped connection or a response that ended without an answer, the same
// session ID goes on working through the balancer, so a client need not
// reconnect and resume (an answer lost with its replica is still lost:
// the call's outcome is unknown). Its value is an object; "eventStore":
// true says that responses already stored are replayed to a client that
// resumes its stream with Last-Event-ID on any replica.
const AdoptCapability = "io.github.mcpkit/adopt"
