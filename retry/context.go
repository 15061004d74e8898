package retry

import (
	"context"
	"errors"

	"github.com/mcpkit/resilience/internal/callctx"
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

// WithPolicy returns a context that makes the one call it is passed to use p
// instead of the client's policy. Zero fields of p take the defaults of
// [Policy], not the client's values. A p out of range fails that call with
// an error naming the field.
func WithPolicy(ctx context.Context, p Policy) context.Context {
	return callctx.With(ctx, callctx.Policy, "retry.WithPolicy", p)
}

// Idempotent returns a context that declares the one call it is passed to
// safe to run twice, so that it is replayed even when its outcome is
// unknown (the connection died after the request was sent). Use it for a
// tool you know to be idempotent when its server does not say so.
func Idempotent(ctx context.Context) context.Context {
	return callctx.With(ctx, callctx.Replay, "retry.Idempotent", callctx.ReplayYes)
}

// NotIdempotent returns a context that declares the one call it is passed
// to unsafe to run twice, whatever the tool's annotations or the server's
// deduplication say: when its outcome is unknown the caller gets the error
// instead of a replay.
func NotIdempotent(ctx context.Context) context.Context {
	return callctx.With(ctx, callctx.Replay, "retry.NotIdempotent", callctx.ReplayNo)
}

// NoRetry returns a context that makes the one call it is passed to fail
// with its first error. A session found dead is still replaced, so the next
// call works.
func NoRetry(ctx context.Context) context.Context {
	return callctx.With(ctx, callctx.NoRetry, "retry.NoRetry", true)
}

// WaitForReady returns a context that makes the one call it is passed to
// wait, within its context and the policy's MaxElapsed, for the server to
// come back when the client's circuit breaker is open, instead of failing
// at once with ErrCircuitOpen (gRPC's wait-for-ready).
func WaitForReady(ctx context.Context) context.Context {
	return callctx.With(ctx, callctx.WaitForReady, "retry.WaitForReady", true)
}
