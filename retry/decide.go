package retry

import "context"

// MethodCallTool is the one client method that can change server state.
// Every other request a client sends (lists, reads, prompts, completion,
// ping, logging level, subscriptions) is safe to send twice.
const MethodCallTool = "tools/call"

// Call describes the call a [Decision] is about.
type Call struct {
	// Method is the JSON-RPC method, such as "tools/call".
	Method string
	// ReadOnly and Idempotent are the tool's readOnlyHint and
	// idempotentHint annotations, for tools/call.
	ReadOnly, Idempotent bool
	// Dedup is true when the server deduplicates tools/call by idempotency
	// key, so that a replay returns the first execution's result.
	Dedup bool
}

// Decision is what to do after a failed attempt.
type Decision struct {
	// Retry: try the call again.
	Retry bool
	// Reconnect: the session is dead or suspect; replace it before anything
	// else (even when Retry is false, so that the next call works).
	Reconnect bool
	// Backoff: wait the policy's backoff before retrying (otherwise retry
	// at once, as after a reconnect).
	Backoff bool
	// OutcomeUnknown: the call may have run, and it is not replayed because
	// running it twice may be unsafe.
	OutcomeUnknown bool
}

// Decide returns what to do after an attempt of call failed with an error
// of class c. sessionDead tells whether the session the attempt used is
// known to be closed. Per-call overrides on ctx ([NoRetry], [Idempotent],
// [NotIdempotent]) are honoured; ctx is not otherwise used.
func Decide(ctx context.Context, p Policy, c Class, call Call, sessionDead bool) Decision {
	var d Decision
	switch c {
	case OK, Cancelled, Protocol:
		return d
	case NotSent, Transient:
		d.Retry = true
		d.Reconnect = sessionDead
		d.Backoff = !sessionDead
	case SessionLost:
		d.Retry, d.Reconnect = true, true
	default: // Ambiguous
		d.Reconnect = true
		d.Retry = Replayable(ctx, p, call)
		d.OutcomeUnknown = !d.Retry
	}
	if d.Retry && IsNoRetry(ctx) {
		d.Retry, d.Backoff = false, false
	}
	return d
}

// Replayable reports whether call may run twice without harm: a method
// other than tools/call, a tool annotated readOnlyHint or idempotentHint
// (unless p.IgnoreAnnotations), a server that deduplicates, or a per-call
// [Idempotent]. [NotIdempotent] overrides all of these.
func Replayable(ctx context.Context, p Policy, call Call) bool {
	if replay, set := ReplayOverride(ctx); set {
		return replay
	}
	if call.Method != MethodCallTool {
		return true
	}
	if call.Dedup {
		return true
	}
	return !p.IgnoreAnnotations && (call.ReadOnly || call.Idempotent)
}
