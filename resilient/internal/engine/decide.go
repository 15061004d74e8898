package engine

import (
	"net/http"

	"github.com/mcpkit/resilience/retry"
)

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
	// key and still holds the records of this call's first attempt, so
	// that a replay returns the first execution's result.
	Dedup bool
}

// Request is what the transport saw of one attempt's own request: the
// evidence that tells "provably did not run" from "may have run" when the
// SDK's error cannot (a 404 fails every call in flight on a connection with
// the same error; a body the SDK cannot decode leaves a bare "Bad Request").
type Request int

// What a transport may have seen of an attempt's request.
const (
	// RequestUnobserved: the transport does not watch its requests (a custom
	// factory, stdio); only the error's class speaks.
	RequestUnobserved Request = iota
	// RequestNotSent: no request of the attempt reached a server: none was
	// written, or every one failed to connect.
	RequestNotSent
	// RequestRefused: the server or a balancer answered the request with a status
	// that proves it was not run ([ProvesNotRun]); Attempt.Status holds it.
	RequestRefused
	// RequestMayHaveRun: the request was accepted (2xx), is still unanswered, or
	// was answered with a status that does not prove it did not run (500,
	// 502, 504).
	RequestMayHaveRun
)

// ProvesNotRun reports whether an HTTP status answering an MCP request
// proves the server did not run it. Every 4xx is a refusal before
// dispatch: 404 and 400 (an unknown or missing session), 401 and 403,
// 429 (rate limited), and the rest; so is 503, which servers and
// balancers answer without running anything. 500, 502 and 504 may come
// after the work started (a crash, a backend lost mid-request, a timeout)
// and prove nothing; nor do 1xx, 2xx or 3xx.
//
// It is a pure function, safe for concurrent use.
func ProvesNotRun(status int) bool {
	return status >= 400 && status < 500 || status == http.StatusServiceUnavailable
}

// Attempt is everything [Replace] and [Decide] need to know about a failed
// attempt: the facts.
type Attempt struct {
	// Class is the error's class ([retry.Classify]).
	Class retry.Class
	// CallerDone: the caller's context ended. Closed: the client was
	// closed.
	CallerDone, Closed bool
	// Request is what the transport saw of this attempt's request, and
	// Status the HTTP status that answered it (0 when none did).
	Request Request
	Status  int
	// InProgress: the server answered that the first execution of this
	// call is still running (resume.CodeInProgress) or was abandoned by a
	// replica that died while running it (resume.CodeOutcomeUnknown):
	// either way its outcome is unknown and it will not run again.
	InProgress bool
	// Replay: this attempt re-sent the call.
	Replay bool
	// RanBefore: an earlier attempt of the call may have run
	// (Decision.MayHaveRun of an earlier decision).
	RanBefore bool
	// SessionDead: the SDK session the attempt used is closed.
	SessionDead bool
	// Adopting: the server serves the session on every replica
	// (resume.AdoptCapability): a dropped connection or a cut stream does
	// not lose it, only a refusal or a closed session does.
	Adopting bool
	// Reconnected reports the replacement of the attempt's session when
	// [Replace] asked for it: ReconnectNone when not needed or not tried,
	// ReconnectDone when a new session is in place, ReconnectFailed when
	// none could be had within the call's bounds.
	Reconnected Reconnect
	// Call is the call, with what is known of its tool and of the server's
	// deduplication (on the session it would be replayed on).
	Call Call
	// Override is the caller's per-call choice ([retry.Idempotent],
	// [retry.NotIdempotent], [retry.NoRetry]).
	Override Overrides
	// IgnoreAnnotations: the policy does not trust tool annotations.
	IgnoreAnnotations bool
	// AttemptsLeft: the policy's MaxAttempts allows another attempt.
	// BudgetLeft: the client's retry budget allows another send.
	AttemptsLeft, BudgetLeft bool
}

// Reconnect is the outcome of replacing a session, for [Attempt].
type Reconnect int

// Outcomes of a session replacement.
const (
	ReconnectNone Reconnect = iota
	ReconnectDone
	ReconnectFailed
)

// Action is what to do after a failed attempt.
type Action int

// The actions of a [Decision].
const (
	// ActReturn: return the error as it is (a JSON-RPC error from the server, a
	// refusal, or NoRetry's first error; when a reconnect failed, its
	// error).
	ActReturn Action = iota
	// ActCancelled: return the caller's context's error (with the last
	// failure, and matching ErrOutcomeUnknown when StopIsUnknown).
	ActCancelled
	// ActClosed: return ErrClosed.
	ActClosed
	// ActOutcomeUnknown: the call may have run and must not be sent again;
	// return an error matching ErrOutcomeUnknown.
	ActOutcomeUnknown
	// ActExhausted: sending again would be safe, but the policy's attempts or
	// the retry budget ran out; Decision.Reason says which.
	ActExhausted
	// ActBackoff: send again on the same session after the policy's backoff
	// (or the server's Retry-After, if longer).
	ActBackoff
	// ActReplay: send again at once, on the session that replaced the failed
	// one.
	ActReplay
)

var actionNames = [...]string{"return", "cancelled", "closed", "outcome_unknown", "exhausted", "backoff", "replay"}

// String returns the action's name as it appears in logs.
func (a Action) String() string {
	if a < 0 || int(a) >= len(actionNames) {
		return "unknown"
	}
	return actionNames[a]
}

// Decision is the outcome of [Decide].
type Decision struct {
	Action Action
	// Reason says which bound ran out, for ActExhausted.
	Reason retry.Reason
	// MayHaveRun: this attempt may have run the call. Pass it on as the
	// next attempt's Attempt.RanBefore.
	MayHaveRun bool
	// StopIsUnknown, with ActBackoff or ActReplay: should the call stop
	// before its next attempt is sent (its bounds end while it waits, the
	// reconnect it waits for fails), its outcome is unknown: an attempt
	// may have run it, and it is not harmless to run twice. With
	// ActCancelled: the caller's context ended the call, and its outcome
	// is unknown for the same reason.
	StopIsUnknown bool
}

// The decision is one pure step in two phases, so that whether to replace
// the session and what to do with the call are read from the same facts
// and cannot disagree: [Replace] (facts -> replace the session?), then,
// with the replacement's outcome in Attempt.Reconnected, [Decide] (facts ->
// action). Decide applies Replace itself rather than trusting its caller
// to have asked.

// Replace is the first phase: whether the session of a failed attempt must
// be replaced before anything else. A request the server or a balancer
// refused is an answer, and the session that carried it is fine, unless
// the refusal says the session is unknown (404, 400 "no valid session"):
// a 401, 403, 405, 413, 415, 422, 429 or 503 never replaces it, even when
// the error's text is ambiguous or the SDK has since closed its session
// (the next call finds that and replaces it then). Otherwise: the server
// lost the session, the SDK closed it, or the connection failed in a way
// that leaves it suspect (unless the server adopts sessions on every
// replica: then the session lives on). It is a fact about the session, not
// about the call: the session is replaced even when the call is not
// replayed, so that the next call works. Cancellations and the server's
// own JSON-RPC answers never replace a session.
//
// Replace is a pure function, safe for concurrent use.
func Replace(a Attempt) bool {
	switch {
	case a.Class == retry.OK || a.Class == retry.Cancelled || a.Class == retry.Protocol:
		return false
	case a.Request == RequestRefused:
		return sessionUnknown(a.Status)
	case a.Class == retry.SessionClosed || a.Class == retry.SessionLost || a.SessionDead:
		return true
	case a.Class == retry.Ambiguous:
		return !a.Adopting
	}
	return false
}

// sessionUnknown reports whether a refusal's status says the server does
// not know the session: 404 (the specification's answer) or 400 (older
// servers' "no valid session ID").
func sessionUnknown(status int) bool {
	return status == http.StatusNotFound || status == http.StatusBadRequest
}

// refusedForGood reports whether the attempt's own request was refused for
// a reason that sending it again cannot change (401, 403, 413...): neither
// a lost session nor "not now" (429, 503).
func refusedForGood(a Attempt) bool {
	return a.Request == RequestRefused && !sessionUnknown(a.Status) &&
		a.Status != http.StatusTooManyRequests && a.Status != http.StatusServiceUnavailable
}

// Decide is the second phase, the replay rule: what to do after an attempt
// failed, given the outcome of the session's replacement when [Replace]
// asked for one. It is the only place that rule lives; the README's replay
// table has one test row per line here. A call is sent again only when
// that cannot run it twice: nothing of it reached a server; the transport
// saw its own request refused before dispatch, for a reason that can pass
// (a lost session, 429, 503); it is a read; its tool is annotated
// readOnlyHint or idempotentHint (unless IgnoreAnnotations); the caller
// said so; or the server deduplicates it. Otherwise a call that may have
// run ends in ActOutcomeUnknown.
//
// Decide is a pure function, safe for concurrent use.
func Decide(a Attempt) Decision {
	d := decide(a)
	d.MayHaveRun = a.Class != retry.OK && !provedNotRun(a)
	unknownIfStopped := (d.MayHaveRun || a.RanBefore) && !harmless(a)
	if d.Action == ActBackoff || d.Action == ActReplay || d.Action == ActCancelled {
		d.StopIsUnknown = unknownIfStopped
	}
	if (d.Action == ActExhausted || d.Action == ActReturn && a.Class != retry.Protocol) && unknownIfStopped {
		// The call stops here, and an attempt of it may have run: its
		// outcome is unknown, whatever stopped it (a deduplicating server
		// would have answered a replay, but there is none).
		return Decision{Action: ActOutcomeUnknown, MayHaveRun: d.MayHaveRun}
	}
	return d
}

func decide(a Attempt) Decision {
	switch {
	case a.Closed:
		return Decision{Action: ActClosed}
	case a.CallerDone:
		return Decision{Action: ActCancelled}
	case a.Class == retry.OK:
		return Decision{Action: ActReturn}
	case a.InProgress && a.Replay:
		// The server holds the first execution as still running: its
		// outcome is unknown, and the server refused to run it again.
		return Decision{Action: ActOutcomeUnknown}
	case a.Class == retry.Protocol:
		return Decision{Action: ActReturn}
	case refusedForGood(a):
		// A refusal is an answer: returned as is, on the same session.
		return Decision{Action: ActReturn}
	}
	if !provedNotRun(a) && !replayable(a) {
		return Decision{Action: ActOutcomeUnknown}
	}
	if a.Override.NoRetry {
		return Decision{Action: ActReturn}
	}
	replaced := Replace(a)
	if replaced && a.Reconnected != ReconnectDone {
		// No session to send it on: the reconnect's error says why.
		return Decision{Action: ActReturn}
	}
	switch {
	case !a.AttemptsLeft:
		return Decision{Action: ActExhausted, Reason: retry.ReasonMaxAttempts}
	case !a.BudgetLeft:
		return Decision{Action: ActExhausted, Reason: retry.ReasonBudget}
	case replaced:
		return Decision{Action: ActReplay}
	}
	return Decision{Action: ActBackoff}
}

// NeedsAnnotations reports whether the decision on a failed tools/call
// depends on its tool's annotations: the attempt may have run it, and
// nothing else (the caller's word, the server's deduplication, a refusal,
// an answer) decides first. Callers fetch the annotations only then, so a
// call that succeeds never pays for them.
func (a Attempt) NeedsAnnotations() bool {
	return a.Call.Method == MethodCallTool && !a.IgnoreAnnotations && !a.Call.Dedup &&
		a.Override.Replay == ReplayDefault && !a.CallerDone && !a.Closed &&
		a.Class != retry.OK && a.Class != retry.Protocol && !provedNotRun(a)
}

// provedNotRun reports whether the attempt provably did not run its call.
// The transport's evidence wins over the error's text.
func provedNotRun(a Attempt) bool {
	switch a.Request {
	case RequestNotSent, RequestRefused:
		return true
	case RequestMayHaveRun:
		return false
	}
	// Unobserved: only the class speaks. A lost session says only that
	// some request was refused, not which one: it proves nothing for a
	// call that was in flight.
	return a.Class == retry.NotSent || a.Class == retry.Transient || a.Class == retry.SessionClosed
}

// harmless reports whether the call may run twice without harm by its
// nature (a read, an annotation, the caller's word), deduplication aside.
func harmless(a Attempt) bool {
	switch a.Override.Replay {
	case ReplayYes:
		return true
	case ReplayNo:
		return false
	}
	return a.Call.Method != MethodCallTool || !a.IgnoreAnnotations && (a.Call.ReadOnly || a.Call.Idempotent)
}

// replayable reports whether sending the call again cannot run it twice.
func replayable(a Attempt) bool {
	switch a.Override.Replay {
	case ReplayYes:
		return true
	case ReplayNo:
		return false
	}
	if a.Call.Method != MethodCallTool || a.Call.Dedup {
		return true
	}
	return !a.IgnoreAnnotations && (a.Call.ReadOnly || a.Call.Idempotent)
}
