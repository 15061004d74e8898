package resilient

import (
	"fmt"
	"math/rand/v2"
	"time"
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
// gobreaker (which the client used before) has a fixed open period and
// lets users' calls through as its trial requests; neither fits.

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
	// BreakerHalfOpen: the client's probe dial is in flight.
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

type breakerState = BreakerState

const (
	breakerClosed   = BreakerClosed
	breakerOpen     = BreakerOpen
	breakerHalfOpen = BreakerHalfOpen
)

// breaker is the state of the circuit breaker. It keeps no lock and no
// clock of its own: Client.mu guards it, and its methods return the
// transition they made, for the caller to report once unlocked.
type breaker struct {
	threshold      int // consecutive failures that open it; 0: disabled
	first, maxOpen time.Duration
	fails          int
	state          breakerState
	period         time.Duration // the current open period, before jitter
	last           error         // the latest counted failure
}

// transition is a change of the breaker's state, to report.
type transition struct{ from, to breakerState }

func (b *breaker) move(to breakerState) *transition {
	if b.state == to {
		return nil
	}
	t := &transition{from: b.state, to: to}
	b.state = to
	return t
}

// failure counts a failure that shows the server unreachable.
func (b *breaker) failure(err error) *transition {
	b.last = err
	b.fails++
	if b.threshold <= 0 || b.state != breakerClosed || b.fails < b.threshold {
		return nil
	}
	b.period = b.first
	return b.move(breakerOpen)
}

// success records an answer from the server: it closes the breaker.
func (b *breaker) success() *transition {
	b.fails = 0
	b.period = 0
	return b.move(breakerClosed)
}

// probing marks a probe dial in flight while open.
func (b *breaker) probing() *transition {
	if b.state != breakerOpen {
		return nil
	}
	return b.move(breakerHalfOpen)
}

// probeFailed reopens the breaker after a failed probe, for a longer
// period. It also counts the failure while closed.
func (b *breaker) probeFailed(err error) *transition {
	if b.state != breakerHalfOpen {
		return b.failure(err)
	}
	b.last = err
	b.fails++
	b.period = min(2*b.period, b.maxOpen)
	return b.move(breakerOpen)
}

// isOpen reports whether calls should fail fast.
func (b *breaker) isOpen() bool { return b.state != breakerClosed }

// openPeriod returns how long to wait before the next probe: the current
// period, jittered by ±20%.
func (b *breaker) openPeriod() time.Duration {
	p := b.period
	if p <= 0 {
		p = b.first
	}
	return p*4/5 + rand.N(p*2/5+1)
}

// err returns the error of a call refused while open.
func (b *breaker) err() error {
	if b.last == nil {
		return ErrCircuitOpen
	}
	return fmt.Errorf("%w (after %d consecutive failures; last: %w)", ErrCircuitOpen, b.fails, b.last)
}
