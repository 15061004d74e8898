package resilient

import (
	"time"

	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/retry"
)

// EventKind says what happened.
type EventKind int

// The kinds of [Event].
const (
	// EventAttemptFailed: one attempt of a call failed (Class, Attempt, Err).
	EventAttemptFailed EventKind = iota + 1
	// EventReconnectStarted: the session was found dead or suspect
	// (OldSessionID, Err: the failure that triggered it).
	EventReconnectStarted
	// EventReconnected: a new session is up to replace the old one
	// (SessionID, OldSessionID, Generation, Attempt: dials it took,
	// Duration: from the failure to the handshake's end). Resume and
	// restore events follow; the session is put in use after them.
	EventReconnected
	// EventReconnectFailed: the reconnect loop gave up (Err, Attempt,
	// Duration). The next call starts a new one.
	EventReconnectFailed
	// EventResumed: resume_session answered (Resume): it copied the old
	// session's state (StatusResumed), found the client already on it
	// (StatusSameSession), or found nothing to copy (StatusNotFound: the
	// old session never stored state, or its state expired).
	EventResumed
	// EventResumeSkipped: no resume was attempted: the session had no ID
	// (stateless or stdio), the server has no resume tool, or resume is
	// disabled (Err says which).
	EventResumeSkipped
	// EventResumeFailed: resume_session failed (Err). The old ID is kept
	// for the next reconnect.
	EventResumeFailed
	// EventReplayed: a failed call is being sent again (Class of the
	// failure, Attempt of the replay).
	EventReplayed
	// EventOutcomeUnknown: a call may have run and was not replayed (Err).
	EventOutcomeUnknown
	// EventBreakerStateChanged: the circuit breaker moved From one state To
	// another.
	EventBreakerStateChanged
	// EventBudgetExhausted: a retry was refused because the retry budget
	// is spent.
	EventBudgetExhausted
	// EventRestoreFailed: session-scoped state (logging level or a
	// resource subscription) could not be re-applied on the new session.
	EventRestoreFailed
)

var eventNames = map[EventKind]string{
	EventAttemptFailed:       "attempt_failed",
	EventReconnectStarted:    "reconnect_started",
	EventReconnected:         "reconnected",
	EventReconnectFailed:     "reconnect_failed",
	EventResumed:             "resumed",
	EventResumeSkipped:       "resume_skipped",
	EventResumeFailed:        "resume_failed",
	EventReplayed:            "replayed",
	EventOutcomeUnknown:      "outcome_unknown",
	EventBreakerStateChanged: "breaker_state_changed",
	EventBudgetExhausted:     "budget_exhausted",
	EventRestoreFailed:       "restore_failed",
}

// String returns the kind's snake_case name.
func (k EventKind) String() string {
	if s, ok := eventNames[k]; ok {
		return s
	}
	return "unknown"
}

// Event reports one thing the client did on its own. Fields that do not
// apply to a kind are zero.
type Event struct {
	Kind EventKind
	Time time.Time
	// Method is the JSON-RPC method of the call concerned; Tool its tool.
	Method, Tool string
	// Class is the class of the failure, for attempt and replay events.
	Class retry.Class
	// Attempt is the attempt number (1 is the first).
	Attempt int
	// Err is the failure concerned.
	Err error
	// SessionID is the current session; OldSessionID the one replaced or
	// resumed from.
	SessionID, OldSessionID string
	// Generation counts sessions: 1 for the first, +1 per reconnect.
	Generation uint64
	// Duration of a reconnect, or the backoff before a retry.
	Duration time.Duration
	// Resume is the server's answer, for EventResumed.
	Resume resume.Result
	// From and To are breaker states, for EventBreakerStateChanged.
	From, To BreakerState
}
