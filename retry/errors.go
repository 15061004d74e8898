package retry

import (
	"errors"
	"fmt"
)

// ErrExhausted is matched (with [errors.Is]) by every error returned when a
// call gave up after retrying: its attempts, its time bound or the retry
// budget ran out. The concrete type is [*ExhaustedError].
var ErrExhausted = errors.New("retry: attempts exhausted")

// Reason says which bound stopped a call's retries.
type Reason int

// The reasons of an [ExhaustedError]. The zero value is not a reason any
// error carries.
const (
	// ReasonMaxAttempts: the policy's MaxAttempts were spent.
	ReasonMaxAttempts Reason = iota + 1
	// ReasonMaxElapsed: the policy's MaxElapsed passed while the call
	// waited to be sent again (a backoff, a reconnect).
	ReasonMaxElapsed
	// ReasonBudget: the client's retry budget, shared by all its calls,
	// allowed no more re-sends.
	ReasonBudget
	// ReasonRetryAfter: the server asked, with Retry-After on a 429 or 503,
	// for a wait that would end past the policy's MaxElapsed.
	ReasonRetryAfter
)

var reasonNames = [...]string{"", "max attempts", "max elapsed time", "retry budget", "Retry-After beyond the call's time bound"}

// String returns the reason as the error's text shows it: "max attempts",
// "max elapsed time", "retry budget" or "Retry-After beyond the call's time
// bound".
func (r Reason) String() string {
	if r <= 0 || int(r) >= len(reasonNames) {
		return fmt.Sprintf("Reason(%d)", int(r))
	}
	return reasonNames[r]
}

// ExhaustedError reports a call that was retried and still failed.
//
// It matches [ErrExhausted] and unwraps to the last failure, so both
// errors.Is(err, retry.ErrExhausted) and, say,
// errors.Is(err, mcp.ErrSessionMissing) hold.
type ExhaustedError struct {
	// Attempts is the number of attempts made, the first included.
	Attempts int
	// Reason says which bound stopped the retries.
	Reason Reason
	// Last is the error of the last attempt.
	Last error
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("retry: gave up after %d attempt(s) (%v): %v", e.Attempts, e.Reason, e.Last)
}

// Is reports whether target is [ErrExhausted].
func (e *ExhaustedError) Is(target error) bool { return target == ErrExhausted }

// Unwrap returns the last attempt's error.
func (e *ExhaustedError) Unwrap() error { return e.Last }
