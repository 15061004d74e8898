//go:build fault

package fault

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpkit/resilience/resilient"
)

// holeFor is how long the black holes last: longer than the client's
// default liveness bound (Idle 5s + one Idle/5 tick + ProbeTimeout 2s), so
// that every attempt caught in one is cut before the heal.
const holeFor = 8 * time.Second

// inFlight waits until the request of a call just started has gone
// through the proxy (bounded), so that a fault injected next hits it in
// flight.
func inFlight(t *testing.T, r *route, before int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.proxy.Forwarded() <= before {
		if time.Now().After(deadline) {
			t.Fatal("the call's request never went through the proxy")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blackHole black-holes r for holeFor, unless the call ends first (which
// fails the test: nothing can answer through a black hole), and returns
// when it started and when it healed.
func blackHole(t *testing.T, r *route, done <-chan outcome) (start, healed time.Time, out outcome) {
	t.Helper()
	start = time.Now()
	r.proxy.BlackHole()
	select {
	case out = <-done:
		r.proxy.Heal()
		t.Fatalf("call ended %v into the black hole, before the heal: %v", time.Since(start), out.err)
	case <-time.After(holeFor):
	}
	r.proxy.Heal()
	healed = time.Now()
	return start, healed, <-done
}

// cutSeen reports whether the client cut an attempt as on a dead route.
type cutSeen struct{ ch chan struct{} }

func newCutSeen() *cutSeen { return &cutSeen{ch: make(chan struct{}, 64)} }

func (c *cutSeen) on(ev resilient.Event) {
	if ev.Kind == resilient.EventAttemptFailed && errors.Is(ev.Err, resilient.ErrRouteDead) {
		c.ch <- struct{}{}
	}
}

func (c *cutSeen) seen() bool {
	select {
	case <-c.ch:
		return true
	default:
		return false
	}
}

// haserver behind nginx, its default deployment (no deduplication): a
// read made during a black hole is answered within 3s of the heal.
func TestHAReadDuringBlackHole(t *testing.T) {
	r := haDeployment(t, false)
	cuts := newCutSeen()
	c := connect(t, r, cuts.on)
	res, err := call(c, "increment_counter", nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := counter(t, res)
	r.proxy.BlackHole()
	done := async(c, "get_counter", nil)
	start, healed, out := blackHole(t, r, done)
	if out.err != nil {
		t.Fatalf("read made during a %v black hole: %v", holeFor, out.err)
	}
	if got := counter(t, out.res); got != want {
		t.Errorf("get_counter: got %d, want %d", got, want)
	}
	figure(t, "fault=black_hole server=haserver+nginx op=read when=during answered_after=%v after_heal=%v cut=%v",
		out.at.Sub(start).Round(time.Millisecond), out.at.Sub(healed).Round(time.Millisecond), cuts.seen())
	if d := out.at.Sub(healed); d > 3*time.Second {
		t.Errorf("answered %v after the heal, want within 3s", d)
	}
}

// haserver behind nginx, deduplicating: a write in flight at a black hole
// gets its one result within 10s, and runs once.
func TestHAWriteInFlightAtBlackHole(t *testing.T) {
	r := haDeployment(t, true)
	cuts := newCutSeen()
	c := connect(t, r, cuts.on)
	res, err := call(c, "increment_counter", nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	base := counter(t, res)
	before := r.proxy.Forwarded()
	done := async(c, "slow_increment", map[string]any{"delay_ms": 1000})
	inFlight(t, r, before)
	start, _, out := blackHole(t, r, done)
	took := out.at.Sub(start)
	figure(t, "fault=black_hole server=haserver+nginx op=write(dedup) when=in_flight answered_after=%v cut=%v err=%v",
		took.Round(time.Millisecond), cuts.seen(), out.err)
	if out.err != nil && !errors.Is(out.err, resilient.ErrOutcomeUnknown) {
		t.Fatalf("write in flight at a black hole: got %v, want its result or ErrOutcomeUnknown", out.err)
	}
	if out.err == nil {
		if got := counter(t, out.res); got != base+1 {
			t.Errorf("slow_increment: got %d, want %d", got, base+1)
		}
	}
	if took > 10*time.Second {
		t.Errorf("answered %v after the black hole began, want within 10s", took)
	}
	res, err = call(c, "get_counter", nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := counter(t, res); got != base+1 {
		t.Errorf("counter after one slow_increment: got %d, want %d (never twice)", got, base+1)
	}
}

// haserver behind nginx, deduplicating: every connection reset
// (reset_peer) under a write in flight and a read made right after: the
// write gets its one result, the read its answer.
func TestHAResetPeer(t *testing.T) {
	r := haDeployment(t, true)
	c := connect(t, r, nil)
	res, err := call(c, "increment_counter", nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	base := counter(t, res)
	before := r.proxy.Forwarded()
	done := async(c, "slow_increment", map[string]any{"delay_ms": 1000})
	inFlight(t, r, before)
	start := time.Now()
	r.proxy.ResetPeers()
	read := async(c, "get_counter", nil)
	out := <-done
	figure(t, "fault=reset_peer server=haserver+nginx op=write(dedup) when=in_flight answered_after=%v err=%v",
		out.at.Sub(start).Round(time.Millisecond), out.err)
	if out.err != nil {
		t.Fatalf("deduplicated write in flight at reset_peer: %v", out.err)
	}
	if got := counter(t, out.res); got != base+1 {
		t.Errorf("slow_increment: got %d, want %d", got, base+1)
	}
	rout := <-read
	figure(t, "fault=reset_peer server=haserver+nginx op=read when=after answered_after=%v err=%v",
		rout.at.Sub(start).Round(time.Millisecond), rout.err)
	if rout.err != nil {
		t.Fatalf("read after reset_peer: %v", rout.err)
	}
	if d := rout.at.Sub(start); d > 10*time.Second {
		t.Errorf("read answered %v after the reset, want within 10s", d)
	}
	res, err = call(c, "get_counter", nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := counter(t, res); got != base+1 {
		t.Errorf("counter after one slow_increment: got %d, want %d (never twice)", got, base+1)
	}
}

// haserver behind nginx: a tool silent for 60s on a healthy route is never
// cut: every probe is answered.
func TestHASilentToolSucceeds(t *testing.T) {
	r := haDeployment(t, false)
	cuts := newCutSeen()
	c := connect(t, r, cuts.on)
	start := time.Now()
	res, err := call(c, "slow_increment", map[string]any{"delay_ms": 60_000}, 90*time.Second)
	figure(t, "fault=none server=haserver+nginx op=write silent_for=60s answered_after=%v cut=%v err=%v",
		time.Since(start).Round(time.Millisecond), cuts.seen(), err)
	if err != nil {
		t.Fatalf("60s silent tool on a healthy route: %v", err)
	}
	if got := counter(t, res); got != 1 {
		t.Errorf("slow_increment: got %d, want 1", got)
	}
}

// The TypeScript SDK's server: a read in flight at a black hole is answered
// within 3s of the heal (its session is replaced and resumed on the way).
func TestTSReadInFlightAtBlackHole(t *testing.T) {
	s, r := startTS(t)
	cuts := newCutSeen()
	c := connect(t, r, cuts.on)
	if _, err := call(c, "increment", nil, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	before := r.proxy.Forwarded()
	done := async(c, "slow_get", map[string]any{"ms": 500})
	inFlight(t, r, before)
	start, healed, out := blackHole(t, r, done)
	figure(t, "fault=black_hole server=ts-sdk op=read when=in_flight answered_after=%v after_heal=%v cut=%v err=%v",
		out.at.Sub(start).Round(time.Millisecond), out.at.Sub(healed).Round(time.Millisecond), cuts.seen(), out.err)
	if out.err != nil {
		t.Fatalf("read in flight at a black hole: %v", out.err)
	}
	if got := textOf(out.res); got != "1" {
		t.Errorf("slow_get: got %q, want \"1\"", got)
	}
	if d := out.at.Sub(healed); d > 3*time.Second {
		t.Errorf("answered %v after the heal, want within 3s", d)
	}
	_ = s
}

// The TypeScript SDK's server, which does not deduplicate: a write in
// flight at a black hole ends with ErrOutcomeUnknown within 10s, and is
// not run twice.
func TestTSWriteInFlightAtBlackHole(t *testing.T) {
	s, r := startTS(t)
	cuts := newCutSeen()
	c := connect(t, r, cuts.on)
	before := r.proxy.Forwarded()
	done := async(c, "slow_increment", map[string]any{"ms": 1000})
	inFlight(t, r, before)
	start, _, out := blackHole(t, r, done)
	took := out.at.Sub(start)
	figure(t, "fault=black_hole server=ts-sdk op=write when=in_flight answered_after=%v cut=%v err=%v",
		took.Round(time.Millisecond), cuts.seen(), out.err)
	if !errors.Is(out.err, resilient.ErrOutcomeUnknown) {
		t.Fatalf("write in flight at a black hole: got %v, want ErrOutcomeUnknown", out.err)
	}
	if !errors.Is(out.err, resilient.ErrRouteDead) {
		t.Errorf("got %v, want it to say the route was found dead", out.err)
	}
	if took > 10*time.Second {
		t.Errorf("ended %v after the black hole began, want within 10s", took)
	}
	if starts, _ := s.runs(c); starts != 1 {
		t.Errorf("slow_increment started %d times, want 1", starts)
	}
}

// The TypeScript SDK's server killed under a read in flight, its close held
// back by the proxy (slow_close) and the server restarted: the read is
// answered within 10s.
func TestTSSlowClose(t *testing.T) {
	s, r := startTS(t)
	cuts := newCutSeen()
	c := connect(t, r, cuts.on)
	if _, err := call(c, "increment", nil, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	r.proxy.SetSlowClose(30 * time.Second)
	before := r.proxy.Forwarded()
	done := async(c, "slow_get", map[string]any{"ms": 2000})
	inFlight(t, r, before)
	start := time.Now()
	s.proc.Kill()
	s.start()
	out := <-done
	took := out.at.Sub(start)
	figure(t, "fault=slow_close(30s)+kill+restart server=ts-sdk op=read when=in_flight answered_after=%v cut=%v err=%v",
		took.Round(time.Millisecond), cuts.seen(), out.err)
	if out.err != nil {
		t.Fatalf("read in flight when the server died behind a slow close: %v", out.err)
	}
	// The restarted server lost its memory but not Redis: the resumed
	// session's counter is the old one's.
	if got := textOf(out.res); got != "1" {
		t.Errorf("slow_get: got %q, want \"1\"", got)
	}
	if took > 10*time.Second {
		t.Errorf("answered %v after the kill, want within 10s", took)
	}
}

// The TypeScript SDK's server: reset_peer under a read in flight.
func TestTSResetPeer(t *testing.T) {
	_, r := startTS(t)
	c := connect(t, r, nil)
	if _, err := call(c, "increment", nil, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	before := r.proxy.Forwarded()
	done := async(c, "slow_get", map[string]any{"ms": 1000})
	inFlight(t, r, before)
	start := time.Now()
	r.proxy.ResetPeers()
	out := <-done
	took := out.at.Sub(start)
	figure(t, "fault=reset_peer server=ts-sdk op=read when=in_flight answered_after=%v err=%v", took.Round(time.Millisecond), out.err)
	if out.err != nil {
		t.Fatalf("read in flight at reset_peer: %v", out.err)
	}
	if n, err := strconv.Atoi(strings.TrimSpace(textOf(out.res))); err != nil || n != 1 {
		t.Errorf("slow_get: got %q, want \"1\"", textOf(out.res))
	}
	if took > 10*time.Second {
		t.Errorf("answered %v after the reset, want within 10s", took)
	}
}

var _ = context.Background
