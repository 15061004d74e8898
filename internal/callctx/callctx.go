// Package callctx carries the per-call overrides of package retry on a
// context, for the client's engine to claim. The constructors users call
// live in retry; the claiming lives with the engine, which users never see.
// This package is the one both share, so that neither exports its half.
package callctx

import (
	"context"
	"sync/atomic"
)

// Key names one kind of override.
type Key int

// The kinds of override.
const (
	Policy Key = iota
	Replay
	NoRetry
	WaitForReady
)

// ReplayChoice is the caller's say on replaying a call whose outcome is
// unknown.
type ReplayChoice int

// The choices of retry.Idempotent and retry.NotIdempotent.
const (
	ReplayDefault ReplayChoice = iota // the rule decides
	ReplayYes                         // retry.Idempotent
	ReplayNo                          // retry.NotIdempotent
)

type ctxKey struct{ k Key }

// override is one per-call override, claimed by the first call that reads
// it.
type override struct {
	name  string
	value any
	used  atomic.Bool
}

// With returns a context carrying v under key for one call; name is the
// constructor users called, for errors.
func With(ctx context.Context, key Key, name string, v any) context.Context {
	return context.WithValue(ctx, ctxKey{key}, &override{name: name, value: v})
}

// Take claims the override under key, if any. reused names the override
// when an earlier call already claimed it.
func Take[T any](ctx context.Context, key Key) (v T, set bool, reused string) {
	o, ok := ctx.Value(ctxKey{key}).(*override)
	if !ok {
		return v, false, ""
	}
	if o.used.Swap(true) {
		return v, false, o.name
	}
	v, ok = o.value.(T)
	return v, ok, ""
}
