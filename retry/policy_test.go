package retry_test

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/retry"
)

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		p     retry.Policy
		field string // "" when valid
	}{
		{retry.Policy{}, ""},
		{retry.Policy{MaxAttempts: 1, Multiplier: 1, MaxElapsed: -1}, ""},
		{retry.Policy{MaxAttempts: -1}, "MaxAttempts"},
		{retry.Policy{InitialBackoff: -time.Second}, "InitialBackoff"},
		{retry.Policy{MaxBackoff: -time.Second}, "MaxBackoff"},
		{retry.Policy{Multiplier: 0.5}, "Multiplier"},
		{retry.Policy{Multiplier: math.NaN()}, "Multiplier"},
		{retry.Policy{Multiplier: math.Inf(1)}, "Multiplier"},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%+v.Validate() = %v, want nil", tt.p, err)
		case tt.field != "" && (err == nil || !strings.Contains(err.Error(), tt.field)):
			t.Errorf("%+v.Validate() = %v, want an error naming %s", tt.p, err, tt.field)
		}
	}
}

func TestPolicyDefaults(t *testing.T) {
	got := retry.Policy{}.WithDefaults()
	want := retry.Policy{InitialBackoff: retry.DefaultInitialBackoff,
		MaxBackoff: retry.DefaultMaxBackoff, Multiplier: retry.DefaultMultiplier, MaxElapsed: retry.DefaultMaxElapsed}
	if got != want {
		t.Errorf("Policy{}.WithDefaults() = %+v, want %+v", got, want)
	}
	if got := (retry.Policy{InitialBackoff: time.Minute}).WithDefaults().MaxBackoff; got != time.Minute {
		t.Errorf("MaxBackoff below InitialBackoff = %v, want it raised to %v", got, time.Minute)
	}
}

func TestNewBackOffFullJitter(t *testing.T) {
	p := retry.Policy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, Multiplier: 2, MaxElapsed: -1}
	ceilings := []time.Duration{10, 20, 40, 40, 40}
	for run := 0; run < 50; run++ {
		b := p.NewBackOff()
		for i, c := range ceilings {
			d := b.NextBackOff()
			if d < 0 || d >= c*time.Millisecond {
				t.Fatalf("wait %d = %v, want in [0, %v)", i, d, c*time.Millisecond)
			}
		}
	}
}

func TestNewBackOffMaxElapsed(t *testing.T) {
	b := retry.Policy{InitialBackoff: time.Millisecond, MaxElapsed: time.Nanosecond}.NewBackOff()
	time.Sleep(time.Millisecond)
	if d := b.NextBackOff(); d != backoff.Stop {
		t.Errorf("NextBackOff after MaxElapsed = %v, want backoff.Stop", d)
	}
}

func TestExhaustedError(t *testing.T) {
	cause := fmt.Errorf("calling: %w", mcp.ErrSessionMissing)
	var err error = &retry.ExhaustedError{Attempts: 3, Reason: "max attempts", Last: cause}
	if !errors.Is(err, retry.ErrExhausted) {
		t.Error("errors.Is(err, ErrExhausted) = false")
	}
	if !errors.Is(err, mcp.ErrSessionMissing) {
		t.Error("errors.Is(err, mcp.ErrSessionMissing) = false; the cause must stay matchable")
	}
	if errors.Is(err, io.EOF) {
		t.Error("errors.Is(err, io.EOF) = true, want false")
	}
	var ee *retry.ExhaustedError
	if !errors.As(fmt.Errorf("wrapped: %w", err), &ee) || ee.Attempts != 3 {
		t.Errorf("errors.As = %v, want the *ExhaustedError with 3 attempts", ee)
	}
	if got := err.Error(); !strings.Contains(got, "3 attempt") || !strings.Contains(got, "session not found") {
		t.Errorf("Error() = %q, want the attempts and the cause", got)
	}
}

func TestBudget(t *testing.T) {
	b, err := retry.NewBudget(10, 0.5)
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
	if _, err := retry.NewBudget(-1, 0); err == nil {
		t.Error("NewBudget(-1, 0) succeeded, want an error")
	}
	var nilBudget *retry.Budget
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
		got, ok := retry.ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}
