package engine

import (
	"context"
	"fmt"

	"github.com/mcpkit/resilience/internal/callctx"
	"github.com/mcpkit/resilience/retry"
)

// ReplayChoice is the caller's per-call say on replaying a call whose
// outcome is unknown.
type ReplayChoice = callctx.ReplayChoice

// The choices of retry.Idempotent and retry.NotIdempotent.
const (
	ReplayDefault = callctx.ReplayDefault
	ReplayYes     = callctx.ReplayYes
	ReplayNo      = callctx.ReplayNo
)

// Overrides are the per-call overrides of one call.
type Overrides struct {
	// Policy replaces the client's policy when set (retry.WithPolicy),
	// with its defaults filled in.
	Policy *retry.Policy
	// Replay is the choice of retry.Idempotent or retry.NotIdempotent.
	Replay ReplayChoice
	// NoRetry is set by retry.NoRetry; WaitForReady by retry.WaitForReady.
	NoRetry, WaitForReady bool
}

// TakeOverrides claims the per-call overrides that ctx carries for one
// call. It fails with an error matching [retry.ErrOverrideReused], naming
// the override, when an earlier call already used one of them; and with
// one naming the field when a retry.WithPolicy policy is out of range.
func TakeOverrides(ctx context.Context) (Overrides, error) {
	var o Overrides
	reused := func(name string) error {
		return fmt.Errorf("%w: %s; derive a new context for each call", retry.ErrOverrideReused, name)
	}
	p, ok, name := callctx.Take[retry.Policy](ctx, callctx.Policy)
	if name != "" {
		return o, reused(name)
	}
	if ok {
		if err := p.Validate(); err != nil {
			return o, fmt.Errorf("retry.WithPolicy: %w", err)
		}
		p = p.WithDefaults()
		o.Policy = &p
	}
	if o.Replay, _, name = callctx.Take[ReplayChoice](ctx, callctx.Replay); name != "" {
		return o, reused(name)
	}
	if o.NoRetry, _, name = callctx.Take[bool](ctx, callctx.NoRetry); name != "" {
		return o, reused(name)
	}
	if o.WaitForReady, _, name = callctx.Take[bool](ctx, callctx.WaitForReady); name != "" {
		return o, reused(name)
	}
	return o, nil
}
