package retry_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpkit/resilience/retry"
)

func TestDecide(t *testing.T) {
	bg := context.Background()
	tool := retry.Call{Method: retry.MethodCallTool}
	readOnly := retry.Call{Method: retry.MethodCallTool, ReadOnly: true}
	idem := retry.Call{Method: retry.MethodCallTool, Idempotent: true}
	dedup := retry.Call{Method: retry.MethodCallTool, Dedup: true}
	list := retry.Call{Method: "tools/list"}
	tests := []struct {
		name  string
		ctx   context.Context
		p     retry.Policy
		class retry.Class
		call  retry.Call
		dead  bool
		want  retry.Decision
	}{
		{"ok", bg, retry.Policy{}, retry.OK, tool, false, retry.Decision{}},
		{"cancelled", bg, retry.Policy{}, retry.Cancelled, tool, false, retry.Decision{}},
		{"protocol", bg, retry.Policy{}, retry.Protocol, tool, false, retry.Decision{}},
		{"not sent, live session: back off, same session", bg, retry.Policy{}, retry.NotSent, tool, false, retry.Decision{Retry: true, Backoff: true}},
		{"not sent, dead session: reconnect", bg, retry.Policy{}, retry.NotSent, tool, true, retry.Decision{Retry: true, Reconnect: true}},
		{"transient", bg, retry.Policy{}, retry.Transient, tool, false, retry.Decision{Retry: true, Backoff: true}},
		{"session lost: reconnect and replay, even a write", bg, retry.Policy{}, retry.SessionLost, tool, false, retry.Decision{Retry: true, Reconnect: true}},
		{"ambiguous write: reconnect, outcome unknown", bg, retry.Policy{}, retry.Ambiguous, tool, false, retry.Decision{Reconnect: true, OutcomeUnknown: true}},
		{"ambiguous read method", bg, retry.Policy{}, retry.Ambiguous, list, false, retry.Decision{Retry: true, Reconnect: true}},
		{"ambiguous readOnly tool", bg, retry.Policy{}, retry.Ambiguous, readOnly, false, retry.Decision{Retry: true, Reconnect: true}},
		{"ambiguous idempotent tool", bg, retry.Policy{}, retry.Ambiguous, idem, false, retry.Decision{Retry: true, Reconnect: true}},
		{"ambiguous idempotent tool, annotations ignored", bg, retry.Policy{IgnoreAnnotations: true}, retry.Ambiguous, idem, false, retry.Decision{Reconnect: true, OutcomeUnknown: true}},
		{"ambiguous with server dedup", bg, retry.Policy{IgnoreAnnotations: true}, retry.Ambiguous, dedup, false, retry.Decision{Retry: true, Reconnect: true}},
		{"ambiguous write, per-call Idempotent", retry.Idempotent(bg), retry.Policy{}, retry.Ambiguous, tool, false, retry.Decision{Retry: true, Reconnect: true}},
		{"ambiguous readOnly, per-call NotIdempotent", retry.NotIdempotent(bg), retry.Policy{}, retry.Ambiguous, readOnly, false, retry.Decision{Reconnect: true, OutcomeUnknown: true}},
		{"ambiguous dedup, per-call NotIdempotent", retry.NotIdempotent(bg), retry.Policy{}, retry.Ambiguous, dedup, false, retry.Decision{Reconnect: true, OutcomeUnknown: true}},
		{"NoRetry still reconnects a lost session", retry.NoRetry(bg), retry.Policy{}, retry.SessionLost, list, false, retry.Decision{Reconnect: true}},
		{"NoRetry on not sent", retry.NoRetry(bg), retry.Policy{}, retry.NotSent, list, false, retry.Decision{}},
		{"NoRetry on an ambiguous write still reports outcome unknown", retry.NoRetry(bg), retry.Policy{}, retry.Ambiguous, tool, false, retry.Decision{Reconnect: true, OutcomeUnknown: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := retry.Decide(tt.ctx, tt.p, tt.class, tt.call, tt.dead)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide(%v, %+v, dead=%v) mismatch (-want +got):\n%s", tt.class, tt.call, tt.dead, diff)
			}
		})
	}
}

func TestContextOverrides(t *testing.T) {
	bg := context.Background()
	if _, ok := retry.PolicyFrom(bg); ok {
		t.Error("PolicyFrom(background) reported a policy")
	}
	p := retry.Policy{MaxAttempts: 7}
	if got, ok := retry.PolicyFrom(retry.WithPolicy(bg, p)); !ok || got != p {
		t.Errorf("PolicyFrom(WithPolicy(p)) = %+v, %v; want %+v, true", got, ok, p)
	}
	if _, set := retry.ReplayOverride(bg); set {
		t.Error("ReplayOverride(background) reported an override")
	}
	if r, set := retry.ReplayOverride(retry.Idempotent(bg)); !r || !set {
		t.Errorf("ReplayOverride(Idempotent) = %v, %v; want true, true", r, set)
	}
	if r, set := retry.ReplayOverride(retry.NotIdempotent(bg)); r || !set {
		t.Errorf("ReplayOverride(NotIdempotent) = %v, %v; want false, true", r, set)
	}
	if retry.IsNoRetry(bg) || !retry.IsNoRetry(retry.NoRetry(bg)) {
		t.Error("IsNoRetry does not reflect NoRetry")
	}
}
