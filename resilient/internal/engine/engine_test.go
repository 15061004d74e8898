package engine_test

import (
	"testing"
	"time"

	"github.com/mcpkit/resilience/resilient/internal/engine"
	"github.com/mcpkit/resilience/retry"
)

func TestBudget(t *testing.T) {
	b, err := engine.NewBudget(10, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if !b.Allow() {
			t.Fatalf("after %d failures Allow() = false, want true (tokens %v)", i, b.Tokens())
		}
		b.Failure()
	}
	if b.Allow() {
		t.Fatalf("at half the tokens Allow() = true, want false (tokens %v)", b.Tokens())
	}
	b.Success()
	b.Success()
	if !b.Allow() {
		t.Errorf("after successes Allow() = false, want true (tokens %v)", b.Tokens())
	}
	for i := 0; i < 100; i++ {
		b.Success()
	}
	if got := b.Tokens(); got != 10 {
		t.Errorf("tokens after many successes = %v, want the maximum 10", got)
	}
	if _, err := engine.NewBudget(-1, 0); err == nil {
		t.Error("NewBudget(-1, 0) succeeded, want an error")
	}
	var nilBudget *engine.Budget
	nilBudget.Failure()
	if !nilBudget.Allow() {
		t.Error("a nil Budget must allow every retry")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{"Tue, 01 Dec 2026 12:00:05 GMT", 5 * time.Second, true},
		{"Tue, 01 Dec 2026 11:00:00 GMT", 0, true},
		{"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, ok := engine.ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestNewBackOffFullJitter(t *testing.T) {
	p := retry.Policy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, Multiplier: 2, MaxElapsed: -1}
	ceilings := []time.Duration{10, 20, 40, 40, 40}
	for run := 0; run < 50; run++ {
		b := engine.NewBackOff(p)
		for i, c := range ceilings {
			d := b.NextBackOff()
			if d < 0 || d >= c*time.Millisecond {
				t.Fatalf("wait %d = %v, want in [0, %v)", i, d, c*time.Millisecond)
			}
		}
	}
}

func TestNewBackOffMaxElapsed(t *testing.T) {
	b := engine.NewBackOff(retry.Policy{InitialBackoff: time.Millisecond, MaxElapsed: time.Nanosecond})
	time.Sleep(time.Millisecond)
	if d := b.NextBackOff(); d != engine.Stop {
		t.Errorf("NextBackOff after MaxElapsed = %v, want engine.Stop", d)
	}
}
