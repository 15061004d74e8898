package retry

import (
	"errors"
	"fmt"
)

// ErrExhausted is matched (with [errors.Is]) by every error returned when a
// call gave up after retrying: its attempts, its time bound or the retry
// budget ran out. The concrete type is [*ExhaustedError].
var ErrExhausted = errors.New("retry: attempts exhausted")

// ExhaustedError reports a call that was retried and still failed.
//
// It matches [ErrExhausted] and unwraps to the last failure, so both
// errors.Is(err, retry.ErrExhausted) and, say,
// errors.Is(err, mcp.ErrSessionMissing) hold.
type ExhaustedError struct {
	// Attempts is the number of attempts made, the first included.
	Attempts int
	// Reason says which bound stopped the retries: "max attempts",
	// "max elapsed time" or "retry budget".
	Reason string
	// Last is the error of the last attempt.
	Last error
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("retry: gave up after %d attempt(s) (%s): %v", e.Attempts, e.Reason, e.Last)
}

// Is reports whether target is [ErrExhausted].
func (e *ExhaustedError) Is(target error) bool { return target == ErrExhausted }

// Unwrap returns the last attempt's error.
func (e *ExhaustedError) Unwrap() error { return e.Last }
