package resilient

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sony/gobreaker/v2"
)

// The circuit breaker protects a server that is down without locking the
// client out once it is back. It counts consecutive failures that show the
// server unreachable or refusing (connection refused, 429, 503, failed
// dials); any answer from the server resets the count. At the threshold it
// opens: calls made while it is open fail at once with ErrCircuitOpen
// (unless they asked to wait for the server), and the client's own prober
// dials the server once per open period, jittered so that a fleet of
// clients does not probe in step; the first successful probe closes the
// breaker and calls flow again. So the breaker never waits out more than
// one open period after the server is back. The period is 800ms by
// default (each one drawn from 640-960ms), so that the first dial after a
// restarting server is back comes within a second; a client may let it
// double after each failed probe, up to BreakerSettings.MaxOpenTimeout, to
// spare a server with many clients at the cost of noticing its return
// later.
//
// The state machine is gobreaker's TwoStepCircuitBreaker: closed, open
// after ConsecutiveFailures, half-open once the open period has passed,
// with one trial request. Only the client's prober (the reconnect
// goroutine, the one dialler) ever takes that trial: users' calls are
// counted while it is closed and never asked for a slot otherwise, so
// none of them is a trial request. Two small parts are the client's own,
// because gobreaker cannot express them: the prober's pacing (the jitter
// of each period, and its optional doubling up to MaxOpenTimeout;
// gobreaker's period is fixed, so it is set to the shortest jittered
// period and the prober waits the rest), and closing the breaker when a
// reconnect that started while it was closed succeeds after it opened
// (gobreaker closes only through a trial; the client then starts a fresh
// one, closed).

// BreakerState is the state of a client's circuit breaker, as events
// ([EventBreakerStateChanged]) and [Stats] report it.
type BreakerState int

// The states of the breaker.
const (
	// BreakerClosed: calls flow; failures to reach the server are counted.
	BreakerClosed BreakerState = iota
	// BreakerOpen: calls fail fast with ErrCircuitOpen (unless they wait
	// for the server); the client probes the server once per open period.
	BreakerOpen
	// BreakerHalfOpen: the open period has passed; the client's probe
	// dial is due or in flight, and calls still fail fast.
	BreakerHalfOpen
	// BreakerDisabled: Options.Breaker.ConsecutiveFailures is negative.
	BreakerDisabled
)

var breakerStateNames = [...]string{"closed", "open", "half-open", "disabled"}

// String returns the state's name: "closed", "open", "half-open" or
// "disabled".
func (s BreakerState) String() string {
	if s < 0 || int(s) >= len(breakerStateNames) {
		return "unknown"
	}
	return breakerStateNames[s]
}

func stateOf(s gobreaker.State) BreakerState {
	switch s {
	case gobreaker.StateOpen:
		return BreakerOpen
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	}
	return BreakerClosed
}

// breaker is the circuit breaker. Its methods are called with Client.mu
// held, which orders them; they return the transitions they made, for the
// caller to report once unlocked.
type breaker struct {
	threshold      int // consecutive failures that open it; negative: disabled
	first, maxOpen time.Duration
	cb             *gobreaker.TwoStepCircuitBreaker[struct{}] // nil when disabled
	slot           func(error)                                // the trial the prober holds, if any
	fails          int                                        // consecutive failures counted, for errors
	period         time.Duration                              // the current open period, before jitter
	last           error                                      // the latest counted failure
	moved          []transition                               // transitions not yet returned
}

// transition is a change of the breaker's state, to report.
type transition struct{ from, to BreakerState }

// errCounted is what a counted failure reports to gobreaker.
var errCounted = errors.New("resilient: server unreachable")

func newBreaker(s BreakerSettings) *breaker {
	b := &breaker{threshold: s.ConsecutiveFailures, first: s.OpenTimeout, maxOpen: s.MaxOpenTimeout}
	if b.threshold == 0 {
		b.threshold = defaultBreakerFails
	}
	if b.first == 0 {
		b.first = defaultOpenTimeout
	}
	b.maxOpen = max(b.maxOpen, b.first)
	b.period = b.first
	if b.threshold > 0 {
		b.cb = b.newCB()
	}
	return b
}

func (b *breaker) newCB() *gobreaker.TwoStepCircuitBreaker[struct{}] {
	threshold := uint32(b.threshold)
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "mcp-server",
		MaxRequests: 1,
		// The shortest jittered period: when the prober's wait ends, the
		// trial is always there to take.
		Timeout:     max(b.first*4/5, time.Nanosecond),
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= threshold },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			b.moved = append(b.moved, transition{from: stateOf(from), to: stateOf(to)})
		},
	})
}

func (b *breaker) take() []transition {
	t := b.moved
	b.moved = nil
	return t
}

// state returns the breaker's state.
func (b *breaker) state() BreakerState {
	if b.cb == nil {
		return BreakerDisabled
	}
	return stateOf(b.cb.State())
}

// failure counts a failure that shows the server unreachable. Only a
// closed breaker counts: once open, the prober's trial decides.
func (b *breaker) failure(err error) []transition {
	b.last = err
	b.fails++
	if b.cb == nil || b.cb.State() != gobreaker.StateClosed {
		return b.take()
	}
	if done, e := b.cb.Allow(); e == nil {
		done(errCounted)
	}
	if b.cb.State() == gobreaker.StateOpen {
		b.period = b.first
	}
	return b.take()
}

// success records an answer from the server: it closes the breaker.
func (b *breaker) success() []transition {
	b.fails = 0
	b.period = b.first
	switch {
	case b.cb == nil:
	case b.slot != nil:
		b.slot(nil)
		b.slot = nil
	case b.cb.State() == gobreaker.StateClosed:
		if done, e := b.cb.Allow(); e == nil {
			done(nil)
		}
	default:
		// A dial started while closed connected after the breaker opened:
		// the server is back, and gobreaker closes only through a trial.
		from := b.state()
		b.cb = b.newCB()
		b.moved = append(b.moved, transition{from: from, to: BreakerClosed})
	}
	return b.take()
}

// probing takes the trial for the prober's next dial when the breaker is
// not closed. It reports false when the open period has not passed yet:
// the prober waits before dialling.
func (b *breaker) probing() ([]transition, bool) {
	if b.cb == nil || b.slot != nil || b.cb.State() == gobreaker.StateClosed {
		return b.take(), true
	}
	done, err := b.cb.Allow()
	if err != nil {
		return b.take(), false
	}
	b.slot = done
	return b.take(), true
}

// probeFailed reports a failed dial of the prober: a failed trial reopens
// the breaker (for a longer period when MaxOpenTimeout allows); a dial
// while closed counts as a failure.
func (b *breaker) probeFailed(err error) []transition {
	if b.slot == nil {
		return b.failure(err)
	}
	b.last = err
	b.fails++
	b.slot(err)
	b.slot = nil
	b.period = min(2*b.period, b.maxOpen)
	return b.take()
}

// isOpen reports whether calls should fail fast.
func (b *breaker) isOpen() bool { return b.cb != nil && b.cb.State() != gobreaker.StateClosed }

// openPeriod returns how long the prober waits before its next trial: the
// current period, jittered by ±20%.
func (b *breaker) openPeriod() time.Duration {
	p := b.period
	return p*4/5 + rand.N(p*2/5+1)
}

// err returns the error of a call refused while open.
func (b *breaker) err() error {
	if b.last == nil {
		return ErrCircuitOpen
	}
	return fmt.Errorf("%w (after %d consecutive failures; last: %w)", ErrCircuitOpen, b.fails, b.last)
}
