package retry

import (
	"fmt"
	"math"
	"time"
)

// Defaults of [Policy], used for every zero field.
const (
	DefaultInitialBackoff = 100 * time.Millisecond
	DefaultMaxBackoff     = time.Second
	DefaultMultiplier     = 2.0
	DefaultMaxElapsed     = 30 * time.Second
)

// Policy says how often and how patiently a call is tried again. The zero
// value is usable: every zero field takes the default written beside it.
// A Policy is a plain value, safe to copy and to share.
type Policy struct {
	// MaxAttempts, when positive, caps the attempts of one call (sends,
	// the first included; waiting for a reconnect is not an attempt), and
	// the dials of a client's first connection: 1 means never send twice. 0 (the default) means no cap: time bounds a
	// call (MaxElapsed and its context). Negative is invalid.
	MaxAttempts int

	// InitialBackoff is the ceiling of the first wait between attempts; the
	// wait is drawn uniformly from [0, ceiling) ("full jitter"). 0 means
	// DefaultInitialBackoff (100ms).
	InitialBackoff time.Duration

	// MaxBackoff caps the ceiling of any wait, between the attempts of a
	// call and between the client's reconnect dials before its breaker
	// opens: while a server restarts, the first try after it is back comes
	// at most this late. 0 means DefaultMaxBackoff (1s).
	MaxBackoff time.Duration

	// Multiplier grows the ceiling after each wait. 0 means
	// DefaultMultiplier (2); otherwise it must be at least 1.
	Multiplier float64

	// MaxElapsed bounds the time one call spends waiting to be sent again
	// (backoffs, reconnects, a server's Retry-After), counted from the
	// call's start; an attempt in progress is never cut by it, only by the
	// caller's context, which may bound the call further. 0 means
	// DefaultMaxElapsed (30s); negative means no bound but the context.
	MaxElapsed time.Duration

	// IgnoreAnnotations stops the readOnlyHint and idempotentHint that a
	// server declares on its tools from making a tools/call replayable. The
	// MCP specification calls annotations untrusted hints; set this when the
	// server is not yours. Default false: annotations are trusted.
	IgnoreAnnotations bool
}

// Validate reports the first field of p that is out of range, naming it.
func (p Policy) Validate() error {
	switch {
	case p.MaxAttempts < 0:
		return fmt.Errorf("retry: Policy.MaxAttempts is %d; want 0 (no cap, the default) or more", p.MaxAttempts)
	case p.InitialBackoff < 0:
		return fmt.Errorf("retry: Policy.InitialBackoff is %v; want 0 (default %v) or more", p.InitialBackoff, DefaultInitialBackoff)
	case p.MaxBackoff < 0:
		return fmt.Errorf("retry: Policy.MaxBackoff is %v; want 0 (default %v) or more", p.MaxBackoff, DefaultMaxBackoff)
	case math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0) || (p.Multiplier != 0 && p.Multiplier < 1):
		return fmt.Errorf("retry: Policy.Multiplier is %v; want 0 (default %v) or a finite number >= 1", p.Multiplier, DefaultMultiplier)
	}
	return nil
}

// WithDefaults returns p with every zero field replaced by its default.
func (p Policy) WithDefaults() Policy {
	if p.InitialBackoff == 0 {
		p.InitialBackoff = DefaultInitialBackoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	if p.Multiplier == 0 {
		p.Multiplier = DefaultMultiplier
	}
	if p.MaxElapsed == 0 {
		p.MaxElapsed = DefaultMaxElapsed
	}
	return p
}
