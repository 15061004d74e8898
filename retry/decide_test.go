package retry_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpkit/resilience/retry"
)

// TestDecide has one row per line of the replay table in the README and
// the resilient package doc, in their order.
func TestDecide(t *testing.T) {
	tool := retry.Call{Method: retry.MethodCallTool}
	readOnly := retry.Call{Method: retry.MethodCallTool, ReadOnly: true}
	idem := retry.Call{Method: retry.MethodCallTool, Idempotent: true}
	dedup := retry.Call{Method: retry.MethodCallTool, Dedup: true}
	list := retry.Call{Method: "tools/list"}
	// base is a failed attempt with attempts and budget left.
	base := func(c retry.Class, call retry.Call) retry.Attempt {
		return retry.Attempt{Class: c, Call: call, AttemptsLeft: true, BudgetLeft: true}
	}
	with := func(a retry.Attempt, f func(*retry.Attempt)) retry.Attempt { f(&a); return a }
	refused := func(status int) func(*retry.Attempt) {
		return func(a *retry.Attempt) { a.Request, a.Status = retry.RequestRefused, status }
	}
	reconnected := func(a *retry.Attempt) { a.Reconnected = retry.ReconnectDone }
	mayHaveRun := func(a *retry.Attempt) { a.Request = retry.RequestMayHaveRun }
	do := func(act retry.Action) retry.Decision { return retry.Decision{Action: act} }

	tests := []struct {
		name string
		in   retry.Attempt
		want retry.Decision
	}{
		// Never sent.
		{"dial refused, live session: back off", base(retry.NotSent, tool), do(retry.ActBackoff)},
		{"dial refused, observed: back off", with(base(retry.NotSent, tool), func(a *retry.Attempt) { a.Request = retry.RequestNotSent }), do(retry.ActBackoff)},
		{"nothing connected though the text is ambiguous: evidence wins", with(base(retry.Ambiguous, tool), func(a *retry.Attempt) { a.Request = retry.RequestNotSent; reconnected(a) }), do(retry.ActReplay)},
		{"dial refused, dead session: replay on the new one", with(base(retry.NotSent, tool), func(a *retry.Attempt) { a.SessionDead = true; reconnected(a) }), do(retry.ActReplay)},
		{"session already closed: replay on a new one", with(base(retry.SessionClosed, tool), reconnected), do(retry.ActReplay)},
		// Refused by status.
		{"429: back off", with(base(retry.Transient, tool), refused(429)), do(retry.ActBackoff)},
		{"503: back off", with(base(retry.Transient, tool), refused(503)), do(retry.ActBackoff)},
		{"503 text, unobserved transport: back off", base(retry.Transient, tool), do(retry.ActBackoff)},
		{"own request 404: replay a write on a new session", with(base(retry.SessionLost, tool), func(a *retry.Attempt) { refused(404)(a); reconnected(a) }), do(retry.ActReplay)},
		{"own request 400 with an undecodable body (TS legacy): replay a write", with(base(retry.Ambiguous, tool), func(a *retry.Attempt) { refused(400)(a); reconnected(a) }), do(retry.ActReplay)},
		{"other 4xx (413): returned", with(base(retry.Ambiguous, tool), refused(413)), do(retry.ActReturn)},
		// May have run.
		{"404 for another request while this write ran: outcome unknown", with(base(retry.SessionLost, tool), func(a *retry.Attempt) { mayHaveRun(a); reconnected(a) }), do(retry.ActOutcomeUnknown)},
		{"lost session, unobserved transport: a write may have run", with(base(retry.SessionLost, tool), reconnected), do(retry.ActOutcomeUnknown)},
		{"500/502/504 on a write: outcome unknown", with(base(retry.Ambiguous, tool), func(a *retry.Attempt) { a.Request, a.Status = retry.RequestMayHaveRun, 502; reconnected(a) }), do(retry.ActOutcomeUnknown)},
		{"dropped after sending, a read method: replay", with(base(retry.Ambiguous, list), func(a *retry.Attempt) { mayHaveRun(a); reconnected(a) }), do(retry.ActReplay)},
		{"dropped, readOnlyHint tool: replay", with(base(retry.Ambiguous, readOnly), reconnected), do(retry.ActReplay)},
		{"dropped, idempotentHint tool: replay", with(base(retry.Ambiguous, idem), reconnected), do(retry.ActReplay)},
		{"dropped, idempotentHint tool, annotations ignored: unknown", with(base(retry.Ambiguous, idem), func(a *retry.Attempt) { a.IgnoreAnnotations = true; reconnected(a) }), do(retry.ActOutcomeUnknown)},
		{"dropped, server deduplicates: replay", with(base(retry.Ambiguous, dedup), func(a *retry.Attempt) { a.IgnoreAnnotations = true; reconnected(a) }), do(retry.ActReplay)},
		{"dropped, retry.Idempotent: replay", with(base(retry.Ambiguous, tool), func(a *retry.Attempt) { a.Override.Replay = retry.ReplayYes; reconnected(a) }), do(retry.ActReplay)},
		{"dropped, retry.NotIdempotent beats readOnlyHint: unknown", with(base(retry.Ambiguous, readOnly), func(a *retry.Attempt) { a.Override.Replay = retry.ReplayNo; reconnected(a) }), do(retry.ActOutcomeUnknown)},
		{"dropped, retry.NotIdempotent beats dedup: unknown", with(base(retry.Ambiguous, dedup), func(a *retry.Attempt) { a.Override.Replay = retry.ReplayNo; reconnected(a) }), do(retry.ActOutcomeUnknown)},
		{"dropped, a plain write: unknown", with(base(retry.Ambiguous, tool), reconnected), do(retry.ActOutcomeUnknown)},
		{"transport deadline (not the caller's): a write may have run", base(retry.Cancelled, tool), do(retry.ActOutcomeUnknown)},
		{"dropped on a server that adopts sessions, a read: sent again on the same session", with(base(retry.Ambiguous, list), func(a *retry.Attempt) { mayHaveRun(a); a.Adopting = true }), do(retry.ActBackoff)},
		{"dropped on a server that adopts sessions, a write: unknown", with(base(retry.Ambiguous, tool), func(a *retry.Attempt) { mayHaveRun(a); a.Adopting = true }), do(retry.ActOutcomeUnknown)},
		{"dropped on a server that adopts sessions and deduplicates: sent again", with(base(retry.Ambiguous, dedup), func(a *retry.Attempt) { mayHaveRun(a); a.Adopting = true }), do(retry.ActBackoff)},
		{"replay answered in progress by Dedup: unknown", with(base(retry.Protocol, dedup), func(a *retry.Attempt) { a.InProgress, a.Replay = true, true }), do(retry.ActOutcomeUnknown)},
		// Answers and endings.
		{"JSON-RPC error: returned", base(retry.Protocol, tool), do(retry.ActReturn)},
		{"caller's context done", with(base(retry.Ambiguous, tool), func(a *retry.Attempt) { a.CallerDone = true }), do(retry.ActCancelled)},
		{"client closed", with(base(retry.Ambiguous, tool), func(a *retry.Attempt) { a.Closed, a.CallerDone = true, true }), do(retry.ActClosed)},
		{"NoRetry on a lost session: first error", with(base(retry.SessionLost, list), func(a *retry.Attempt) { a.Override.NoRetry = true; reconnected(a) }), do(retry.ActReturn)},
		{"NoRetry on a write that may have run: still unknown", with(base(retry.Ambiguous, tool), func(a *retry.Attempt) { a.Override.NoRetry = true; reconnected(a) }), do(retry.ActOutcomeUnknown)},
		{"attempts cap", with(base(retry.NotSent, tool), func(a *retry.Attempt) { a.AttemptsLeft = false }), retry.Decision{Action: retry.ActExhausted, Reason: "max attempts"}},
		{"retry budget, a replay included", with(base(retry.SessionClosed, tool), func(a *retry.Attempt) { a.BudgetLeft = false; reconnected(a) }), retry.Decision{Action: retry.ActExhausted, Reason: "retry budget"}},
		{"reconnect failed: its error", with(base(retry.SessionClosed, list), func(a *retry.Attempt) { a.Reconnected = retry.ReconnectFailed }), do(retry.ActReturn)},
		{"reconnect failed, a write that may have run: unknown", with(base(retry.Ambiguous, tool), func(a *retry.Attempt) { a.Reconnected = retry.ReconnectFailed }), do(retry.ActOutcomeUnknown)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := retry.Decide(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide(%+v) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestNeedsNewSession(t *testing.T) {
	tests := []struct {
		class    retry.Class
		req      retry.Request
		status   int
		dead     bool
		adopting bool
		want     bool
	}{
		{retry.OK, retry.RequestUnobserved, 0, false, false, false},
		{retry.Protocol, retry.RequestRefused, 400, false, false, false},
		{retry.Cancelled, retry.RequestMayHaveRun, 0, true, false, false},
		{retry.NotSent, retry.RequestNotSent, 0, false, false, false},
		{retry.NotSent, retry.RequestNotSent, 0, true, false, true},
		{retry.Transient, retry.RequestRefused, 503, false, false, false},
		{retry.SessionClosed, retry.RequestNotSent, 0, false, false, true},
		{retry.SessionLost, retry.RequestMayHaveRun, 0, false, false, true},
		{retry.SessionLost, retry.RequestRefused, 404, false, true, true},
		{retry.Ambiguous, retry.RequestRefused, 400, false, false, true},
		{retry.Ambiguous, retry.RequestMayHaveRun, 502, false, false, true},
		{retry.Ambiguous, retry.RequestMayHaveRun, 0, false, true, false},
		{retry.Ambiguous, retry.RequestMayHaveRun, 0, true, true, true},
	}
	for _, tt := range tests {
		a := retry.Attempt{Class: tt.class, Request: tt.req, Status: tt.status, SessionDead: tt.dead, Adopting: tt.adopting}
		if got := retry.NeedsNewSession(a); got != tt.want {
			t.Errorf("NeedsNewSession(%v, %v, %d, dead=%v, adopting=%v) = %v, want %v", tt.class, tt.req, tt.status, tt.dead, tt.adopting, got, tt.want)
		}
	}
}

func TestProvesNotRun(t *testing.T) {
	for status, want := range map[int]bool{200: false, 202: false, 302: false, 400: true, 401: true, 404: true, 408: true, 429: true,
		500: false, 502: false, 503: true, 504: false} {
		if got := retry.ProvesNotRun(status); got != want {
			t.Errorf("ProvesNotRun(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestOverridesApplyToOneCall(t *testing.T) {
	bg := context.Background()
	if o, err := retry.TakeOverrides(bg); err != nil || o != (retry.Overrides{}) {
		t.Errorf("TakeOverrides(background) = %+v, %v; want none", o, err)
	}
	p := retry.Policy{MaxAttempts: 7}
	ctx := retry.WaitForReady(retry.NoRetry(retry.Idempotent(retry.WithPolicy(bg, p))))
	o, err := retry.TakeOverrides(ctx)
	if err != nil {
		t.Fatalf("TakeOverrides: %v", err)
	}
	want := retry.Overrides{Policy: &retry.Policy{}, Replay: retry.ReplayYes, NoRetry: true, WaitForReady: true}
	*want.Policy = p.WithDefaults()
	if diff := cmp.Diff(want, o); diff != "" {
		t.Errorf("TakeOverrides mismatch (-want +got):\n%s", diff)
	}
	// A second call with the same context must not silently inherit them.
	if _, err := retry.TakeOverrides(ctx); !errors.Is(err, retry.ErrOverrideReused) {
		t.Errorf("second TakeOverrides: err = %v, want ErrOverrideReused", err)
	}
	// A context derived for the next call gets its own.
	next := retry.NotIdempotent(bg)
	if o, err := retry.TakeOverrides(next); err != nil || o.Replay != retry.ReplayNo {
		t.Errorf("TakeOverrides(NotIdempotent) = %+v, %v; want ReplayNo", o, err)
	}
	if _, err := retry.TakeOverrides(retry.WithPolicy(bg, retry.Policy{MaxAttempts: -1})); err == nil {
		t.Error("TakeOverrides with an invalid policy: no error")
	}
}
