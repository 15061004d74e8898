package retry

import "context"

type ctxKey int

const (
	policyKey ctxKey = iota
	replayKey
	noRetryKey
)

// WithPolicy returns a context that makes the one call it is passed to use p
// instead of the client's policy. Zero fields of p take the defaults of
// [Policy], not the client's values.
func WithPolicy(ctx context.Context, p Policy) context.Context {
	return context.WithValue(ctx, policyKey, p)
}

// PolicyFrom returns the policy set by [WithPolicy], if any.
func PolicyFrom(ctx context.Context) (Policy, bool) {
	p, ok := ctx.Value(policyKey).(Policy)
	return p, ok
}

// Idempotent returns a context that declares the call safe to run twice, so
// that it is replayed even when its outcome is unknown (the connection died
// after the request was sent). Use it for a tool you know to be idempotent
// when its server does not say so.
func Idempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, replayKey, true)
}

// NotIdempotent returns a context that declares the call unsafe to run
// twice, whatever the tool's annotations or the server's deduplication say:
// when its outcome is unknown the caller gets the error instead of a replay.
func NotIdempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, replayKey, false)
}

// ReplayOverride returns the choice made by [Idempotent] or [NotIdempotent],
// and whether either was made.
func ReplayOverride(ctx context.Context) (replay, set bool) {
	replay, set = ctx.Value(replayKey).(bool)
	return replay, set
}

// NoRetry returns a context that makes the call fail with its first error.
// A session found dead is still replaced, so the next call works.
func NoRetry(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRetryKey, true)
}

// IsNoRetry reports whether [NoRetry] was applied to ctx.
func IsNoRetry(ctx context.Context) bool {
	v, _ := ctx.Value(noRetryKey).(bool)
	return v
}

type keyKey struct{}

// WithIdempotencyKey returns a context that makes the tools/call it is
// passed to carry key as its idempotency key, instead of a fresh random
// one. A server running resume.Dedup answers a later call with the same
// key, in the same scope, with the first call's result: the scope is the
// authenticated principal when the server has one, else the chain of
// sessions resumed from one another. So without authentication a key
// repeats a result only within one client's lifetime, not across restarts
// of the caller. The key must pass resume.ValidateIdempotencyKey; the call
// fails otherwise.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyKey{}, key)
}

// IdempotencyKey returns the key set by [WithIdempotencyKey], if any.
func IdempotencyKey(ctx context.Context) (string, bool) {
	k, ok := ctx.Value(keyKey{}).(string)
	return k, ok
}
