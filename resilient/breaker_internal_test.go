package resilient

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// The breaker on gobreaker: users' failures count only while closed and
// never take the trial; only the prober's probing does, once the open
// period has passed; its outcome closes or reopens the breaker.
func TestBreakerOnlyTheProberTakesTheTrial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(BreakerSettings{ConsecutiveFailures: 3, OpenTimeout: time.Second})
		down := errors.New("connection refused")
		b.failure(down)
		b.failure(down)
		if b.isOpen() {
			t.Fatal("open after 2 failures, want closed until 3")
		}
		if ts := b.failure(down); len(ts) != 1 || ts[0] != (transition{BreakerClosed, BreakerOpen}) {
			t.Fatalf("third failure: transitions %v, want closed -> open", ts)
		}
		if _, ok := b.probing(); ok {
			t.Error("probing at once after opening: allowed, want the open period first")
		}
		time.Sleep(time.Second)
		// A user's failure while the period has passed takes no trial.
		b.failure(down)
		if b.slot != nil {
			t.Fatal("a user's failure took the trial")
		}
		ts, ok := b.probing()
		if !ok || b.state() != BreakerHalfOpen {
			t.Fatalf("probing after the open period: ok %v, state %v; want the trial, half-open (transitions %v)", ok, b.state(), ts)
		}
		if ts := b.probeFailed(down); len(ts) != 1 || ts[0].to != BreakerOpen {
			t.Fatalf("failed trial: transitions %v, want -> open", ts)
		}
		if _, ok := b.probing(); ok {
			t.Error("probing at once after a failed trial: allowed, want another open period")
		}
		time.Sleep(time.Second)
		if _, ok := b.probing(); !ok {
			t.Fatal("probing after the second period: refused")
		}
		if ts := b.success(); len(ts) != 1 || ts[0] != (transition{BreakerHalfOpen, BreakerClosed}) || b.isOpen() {
			t.Fatalf("successful trial: transitions %v, open %v; want half-open -> closed", ts, b.isOpen())
		}
	})
}

// A reconnect that started while the breaker was closed and connects after
// it opened closes it: the server is back.
func TestBreakerClosesOnALateDial(t *testing.T) {
	b := newBreaker(BreakerSettings{ConsecutiveFailures: 1, OpenTimeout: time.Hour})
	if _, ok := b.probing(); !ok {
		t.Fatal("probing while closed: refused")
	}
	b.failure(errors.New("503"))
	if !b.isOpen() {
		t.Fatal("not open after the threshold")
	}
	if ts := b.success(); len(ts) != 1 || ts[0] != (transition{BreakerOpen, BreakerClosed}) || b.isOpen() {
		t.Fatalf("success while open: transitions %v, open %v; want open -> closed", ts, b.isOpen())
	}
	// Disabled: never open.
	d := newBreaker(BreakerSettings{ConsecutiveFailures: -1})
	for range 100 {
		d.failure(errors.New("503"))
	}
	if d.isOpen() || d.state() != BreakerDisabled {
		t.Errorf("disabled breaker: open %v, state %v", d.isOpen(), d.state())
	}
}
