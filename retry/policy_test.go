package retry_test

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

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

func TestExhaustedError(t *testing.T) {
	cause := fmt.Errorf("calling: %w", mcp.ErrSessionMissing)
	var err error = &retry.ExhaustedError{Attempts: 3, Reason: retry.ReasonMaxAttempts, Last: cause}
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
