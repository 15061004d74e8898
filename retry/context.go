package retry

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// Per-call overrides ride on the context, the only argument of the
// session's methods a drop-in can use. Each applies to the one call it is
// passed to: a context carrying an override that an earlier call already
// used fails the later call with [ErrOverrideReused] instead of silently
// applying to it (declaring a second call idempotent by accident could run
// it twice). Derive a new context for each call.

// ErrOverrideReused is matched by the error of a call whose context carries
// a per-call override ([Idempotent], [NotIdempotent], [NoRetry],
// [WithPolicy], [WaitForReady]) that an earlier call already used.
var ErrOverrideReused = errors.New("retry: per-call override already used by an earlier call")

type ctxKey int

const (
	policyKey ctxKey = iota
	replayKey
	noRetryKey
	waitKey
)

// override is one per-call override, claimed by the first call that reads
// it.
type override[T any] struct {
	name  string
	value T
	used  atomic.Bool
}

func with[T any](ctx context.Context, key ctxKey, name string, v T) context.Context {
	return context.WithValue(ctx, key, &override[T]{name: name, value: v})
}

// take claims the override under key, if any.
func take[T any](ctx context.Context, key ctxKey) (v T, set bool, err error) {
	o, ok := ctx.Value(key).(*override[T])
	if !ok {
		return v, false, nil
	}
	if o.used.Swap(true) {
		return v, false, fmt.Errorf("%w: %s; derive a new context for each call", ErrOverrideReused, o.name)
	}
	return o.value, true, nil
}

// WithPolicy returns a context that makes the one call it is passed to use p
// instead of the client's policy. Zero fields of p take the defaults of
// [Policy], not the client's values.
func WithPolicy(ctx context.Context, p Policy) context.Context {
	return with(ctx, policyKey, "retry.WithPolicy", p)
}

// Idempotent returns a context that declares the one call it is passed to
// safe to run twice, so that it is replayed even when its outcome is
// unknown (the connection died after the request was sent). Use it for a
// tool you know to be idempotent when its server does not say so.
func Idempotent(ctx context.Context) context.Context {
	return with(ctx, replayKey, "retry.Idempotent", ReplayYes)
}

// NotIdempotent returns a context that declares the one call it is passed
// to unsafe to run twice, whatever the tool's annotations or the server's
// deduplication say: when its outcome is unknown the caller gets the error
// instead of a replay.
func NotIdempotent(ctx context.Context) context.Context {
	return with(ctx, replayKey, "retry.NotIdempotent", ReplayNo)
}

// NoRetry returns a context that makes the one call it is passed to fail
// with its first error. A session found dead is still replaced, so the next
// call works.
func NoRetry(ctx context.Context) context.Context {
	return with(ctx, noRetryKey, "retry.NoRetry", true)
}

// WaitForReady returns a context that makes the one call it is passed to
// wait, within its context and the policy's MaxElapsed, for the server to
// come back when the client's circuit breaker is open, instead of failing
// at once with ErrCircuitOpen (gRPC's wait-for-ready).
func WaitForReady(ctx context.Context) context.Context {
	return with(ctx, waitKey, "retry.WaitForReady", true)
}

// ReplayChoice is the caller's per-call say on replaying a call whose
// outcome is unknown.
type ReplayChoice int

// The choices of [Idempotent] and [NotIdempotent].
const (
	ReplayDefault ReplayChoice = iota // the rule decides
	ReplayYes                         // Idempotent
	ReplayNo                          // NotIdempotent
)

// Overrides are the per-call overrides of one call.
type Overrides struct {
	// Policy replaces the client's policy when set ([WithPolicy]).
	Policy *Policy
	// Replay is the choice of [Idempotent] or [NotIdempotent].
	Replay ReplayChoice
	// NoRetry is set by [NoRetry]; WaitForReady by [WaitForReady].
	NoRetry, WaitForReady bool
}

// TakeOverrides claims the per-call overrides that ctx carries for one
// call. It fails with an error matching [ErrOverrideReused], naming the
// override, when an earlier call already used one of them; and with one
// naming the field when a [WithPolicy] policy is out of range.
func TakeOverrides(ctx context.Context) (Overrides, error) {
	var o Overrides
	p, ok, err := take[Policy](ctx, policyKey)
	if err != nil {
		return o, err
	}
	if ok {
		if err := p.Validate(); err != nil {
			return o, fmt.Errorf("retry.WithPolicy: %w", err)
		}
		p = p.WithDefaults()
		o.Policy = &p
	}
	if o.Replay, _, err = take[ReplayChoice](ctx, replayKey); err != nil {
		return o, err
	}
	if o.NoRetry, _, err = take[bool](ctx, noRetryKey); err != nil {
		return o, err
	}
	if o.WaitForReady, _, err = take[bool](ctx, waitKey); err != nil {
		return o, err
	}
	return o, nil
}
