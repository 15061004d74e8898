package engine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpkit/resilience/resilient/internal/engine"
	"github.com/mcpkit/resilience/retry"
)

// TestDecide has one row per line of the replay table in the README and
// the resilient package doc, in their order.
func TestDecide(t *testing.T) {
	tool := engine.Call{Method: engine.MethodCallTool}
	readOnly := engine.Call{Method: engine.MethodCallTool, ReadOnly: true}
	idem := engine.Call{Method: engine.MethodCallTool, Idempotent: true}
	dedup := engine.Call{Method: engine.MethodCallTool, Dedup: true}
	list := engine.Call{Method: "tools/list"}
	// base is a failed attempt with attempts and budget left.
	base := func(c retry.Class, call engine.Call) engine.Attempt {
		return engine.Attempt{Class: c, Call: call, AttemptsLeft: true, BudgetLeft: true}
	}
	with := func(a engine.Attempt, f func(*engine.Attempt)) engine.Attempt { f(&a); return a }
	refused := func(status int) func(*engine.Attempt) {
		return func(a *engine.Attempt) { a.Request, a.Status = engine.RequestRefused, status }
	}
	reconnected := func(a *engine.Attempt) { a.Reconnected = engine.ReconnectDone }
	mayHaveRun := func(a *engine.Attempt) { a.Request = engine.RequestMayHaveRun }
	do := func(act engine.Action) engine.Decision { return engine.Decision{Action: act} }

	tests := []struct {
		name string
		in   engine.Attempt
		want engine.Decision
	}{
		// Never sent.
		{"dial refused, live session: back off", base(retry.NotSent, tool), do(engine.ActBackoff)},
		{"dial refused, observed: back off", with(base(retry.NotSent, tool), func(a *engine.Attempt) { a.Request = engine.RequestNotSent }), do(engine.ActBackoff)},
		{"nothing connected though the text is ambiguous: evidence wins", with(base(retry.Ambiguous, tool), func(a *engine.Attempt) { a.Request = engine.RequestNotSent; reconnected(a) }), do(engine.ActReplay)},
		{"dial refused, dead session: replay on the new one", with(base(retry.NotSent, tool), func(a *engine.Attempt) { a.SessionDead = true; reconnected(a) }), do(engine.ActReplay)},
		{"session already closed: replay on a new one", with(base(retry.SessionClosed, tool), reconnected), do(engine.ActReplay)},
		// Refused by status.
		{"429: back off", with(base(retry.Transient, tool), refused(429)), do(engine.ActBackoff)},
		{"503: back off", with(base(retry.Transient, tool), refused(503)), do(engine.ActBackoff)},
		{"503 text, unobserved transport: back off", base(retry.Transient, tool), do(engine.ActBackoff)},
		{"own request 404: replay a write on a new session", with(base(retry.SessionLost, tool), func(a *engine.Attempt) { refused(404)(a); reconnected(a) }), do(engine.ActReplay)},
		{"own request 400 with an undecodable body (TS legacy): replay a write", with(base(retry.Ambiguous, tool), func(a *engine.Attempt) { refused(400)(a); reconnected(a) }), do(engine.ActReplay)},
		{"other 4xx (413): returned", with(base(retry.Ambiguous, tool), refused(413)), do(engine.ActReturn)},
		{"401 on a read, the SDK closed its session: returned, not replayed", with(base(retry.Protocol, readOnly), func(a *engine.Attempt) { refused(401)(a); a.SessionDead = true }), do(engine.ActReturn)},
		{"403 on a read with ambiguous text: returned", with(base(retry.Ambiguous, readOnly), refused(403)), do(engine.ActReturn)},
		{"405 on a deduplicated write: returned", with(base(retry.Ambiguous, dedup), refused(405)), do(engine.ActReturn)},
		{"413 on a read method: returned", with(base(retry.Ambiguous, list), refused(413)), do(engine.ActReturn)},
		{"415 with retry.Idempotent: returned", with(base(retry.Ambiguous, tool), func(a *engine.Attempt) { refused(415)(a); a.Override.Replay = engine.ReplayYes }), do(engine.ActReturn)},
		{"422 on a read, session dead: returned", with(base(retry.Ambiguous, readOnly), func(a *engine.Attempt) { refused(422)(a); a.SessionDead = true }), do(engine.ActReturn)},
		// May have run.
		{"404 for another request while this write ran: outcome unknown", with(base(retry.SessionLost, tool), func(a *engine.Attempt) { mayHaveRun(a); reconnected(a) }), do(engine.ActOutcomeUnknown)},
		{"lost session, unobserved transport: a write may have run", with(base(retry.SessionLost, tool), reconnected), do(engine.ActOutcomeUnknown)},
		{"500/502/504 on a write: outcome unknown", with(base(retry.Ambiguous, tool), func(a *engine.Attempt) { a.Request, a.Status = engine.RequestMayHaveRun, 502; reconnected(a) }), do(engine.ActOutcomeUnknown)},
		{"dropped after sending, a read method: replay", with(base(retry.Ambiguous, list), func(a *engine.Attempt) { mayHaveRun(a); reconnected(a) }), do(engine.ActReplay)},
		{"dropped, readOnlyHint tool: replay", with(base(retry.Ambiguous, readOnly), reconnected), do(engine.ActReplay)},
		{"dropped, idempotentHint tool: replay", with(base(retry.Ambiguous, idem), reconnected), do(engine.ActReplay)},
		{"dropped, idempotentHint tool, annotations ignored: unknown", with(base(retry.Ambiguous, idem), func(a *engine.Attempt) { a.IgnoreAnnotations = true; reconnected(a) }), do(engine.ActOutcomeUnknown)},
		{"dropped, server deduplicates: replay", with(base(retry.Ambiguous, dedup), func(a *engine.Attempt) { a.IgnoreAnnotations = true; reconnected(a) }), do(engine.ActReplay)},
		{"dropped, retry.Idempotent: replay", with(base(retry.Ambiguous, tool), func(a *engine.Attempt) { a.Override.Replay = engine.ReplayYes; reconnected(a) }), do(engine.ActReplay)},
		{"dropped, retry.NotIdempotent beats readOnlyHint: unknown", with(base(retry.Ambiguous, readOnly), func(a *engine.Attempt) { a.Override.Replay = engine.ReplayNo; reconnected(a) }), do(engine.ActOutcomeUnknown)},
		{"dropped, retry.NotIdempotent beats dedup: unknown", with(base(retry.Ambiguous, dedup), func(a *engine.Attempt) { a.Override.Replay = engine.ReplayNo; reconnected(a) }), do(engine.ActOutcomeUnknown)},
		{"dropped, a plain write: unknown", with(base(retry.Ambiguous, tool), reconnected), do(engine.ActOutcomeUnknown)},
		{"transport deadline (not the caller's): a write may have run", base(retry.Cancelled, tool), do(engine.ActOutcomeUnknown)},
		{"dropped on a server that adopts sessions, a read: sent again on the same session", with(base(retry.Ambiguous, list), func(a *engine.Attempt) { mayHaveRun(a); a.Adopting = true }), do(engine.ActBackoff)},
		{"dropped on a server that adopts sessions, a write: unknown", with(base(retry.Ambiguous, tool), func(a *engine.Attempt) { mayHaveRun(a); a.Adopting = true }), do(engine.ActOutcomeUnknown)},
		{"dropped on a server that adopts sessions and deduplicates: sent again", with(base(retry.Ambiguous, dedup), func(a *engine.Attempt) { mayHaveRun(a); a.Adopting = true }), do(engine.ActBackoff)},
		{"replay answered in progress by Dedup: unknown", with(base(retry.Protocol, dedup), func(a *engine.Attempt) { a.InProgress, a.Replay = true, true }), do(engine.ActOutcomeUnknown)},
		// Answers and endings.
		{"JSON-RPC error: returned", base(retry.Protocol, tool), do(engine.ActReturn)},
		{"caller's context done", with(base(retry.Ambiguous, tool), func(a *engine.Attempt) { a.CallerDone = true }), do(engine.ActCancelled)},
		{"client closed", with(base(retry.Ambiguous, tool), func(a *engine.Attempt) { a.Closed, a.CallerDone = true, true }), do(engine.ActClosed)},
		{"NoRetry on a lost session: first error", with(base(retry.SessionLost, list), func(a *engine.Attempt) { a.Override.NoRetry = true; reconnected(a) }), do(engine.ActReturn)},
		{"NoRetry on a write that may have run: still unknown", with(base(retry.Ambiguous, tool), func(a *engine.Attempt) { a.Override.NoRetry = true; reconnected(a) }), do(engine.ActOutcomeUnknown)},
		{"attempts cap", with(base(retry.NotSent, tool), func(a *engine.Attempt) { a.AttemptsLeft = false }), engine.Decision{Action: engine.ActExhausted, Reason: retry.ReasonMaxAttempts}},
		{"retry budget, a replay included", with(base(retry.SessionClosed, tool), func(a *engine.Attempt) { a.BudgetLeft = false; reconnected(a) }), engine.Decision{Action: engine.ActExhausted, Reason: retry.ReasonBudget}},
		{"reconnect failed: its error", with(base(retry.SessionClosed, list), func(a *engine.Attempt) { a.Reconnected = engine.ReconnectFailed }), do(engine.ActReturn)},
		// Stopping after an attempt that may have run.
		{"attempts cap on a deduplicated write that may have run: unknown", with(base(retry.Ambiguous, dedup), func(a *engine.Attempt) { a.AttemptsLeft = false; reconnected(a) }), do(engine.ActOutcomeUnknown)},
		{"budget spent on a deduplicated write that may have run: unknown", with(base(retry.Ambiguous, dedup), func(a *engine.Attempt) { a.BudgetLeft = false; reconnected(a) }), do(engine.ActOutcomeUnknown)},
		{"NoRetry on a deduplicated write that may have run: unknown", with(base(retry.Ambiguous, dedup), func(a *engine.Attempt) { a.Override.NoRetry = true; reconnected(a) }), do(engine.ActOutcomeUnknown)},
		{"attempts cap on a write refused now, an earlier attempt may have run: unknown", with(base(retry.Transient, tool), func(a *engine.Attempt) { refused(503)(a); a.RanBefore = true; a.AttemptsLeft = false }), do(engine.ActOutcomeUnknown)},
		{"attempts cap on a read that may have run: exhausted", with(base(retry.Ambiguous, readOnly), func(a *engine.Attempt) { a.AttemptsLeft = false; reconnected(a) }), engine.Decision{Action: engine.ActExhausted, Reason: retry.ReasonMaxAttempts}},
		{"a JSON-RPC error after an earlier attempt may have run: returned", with(base(retry.Protocol, tool), func(a *engine.Attempt) { a.RanBefore = true }), do(engine.ActReturn)},
		{"reconnect failed, a write that may have run: unknown", with(base(retry.Ambiguous, tool), func(a *engine.Attempt) { a.Reconnected = engine.ReconnectFailed }), do(engine.ActOutcomeUnknown)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := engine.Decide(tt.in)
			got.MayHaveRun, got.StopIsUnknown = false, false // checked by TestDecideMayHaveRun
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide(%+v) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestDecideMayHaveRun(t *testing.T) {
	tests := []struct {
		in   engine.Attempt
		want bool
	}{
		{engine.Attempt{Class: retry.Ambiguous}, true},
		{engine.Attempt{Class: retry.Ambiguous, Request: engine.RequestNotSent}, false},
		{engine.Attempt{Class: retry.SessionLost, Request: engine.RequestRefused, Status: 404}, false},
		{engine.Attempt{Class: retry.SessionLost}, true},
		{engine.Attempt{Class: retry.NotSent}, false},
		{engine.Attempt{Class: retry.SessionClosed}, false},
		{engine.Attempt{Class: retry.OK}, false},
	}
	for _, tt := range tests {
		if got := engine.Decide(tt.in).MayHaveRun; got != tt.want {
			t.Errorf("Decide(%v, request %v).MayHaveRun = %v, want %v", tt.in.Class, tt.in.Request, got, tt.want)
		}
	}
	// A deduplicated write that may have run is sent again; should the
	// call stop before that, its outcome is unknown. A read's is not.
	write := engine.Attempt{Class: retry.Ambiguous, Call: engine.Call{Method: engine.MethodCallTool, Dedup: true}, Reconnected: engine.ReconnectDone, AttemptsLeft: true, BudgetLeft: true}
	if d := engine.Decide(write); d.Action != engine.ActReplay || !d.StopIsUnknown {
		t.Errorf("Decide(deduplicated write) = %+v, want a replay that is unknown if stopped", d)
	}
	read := write
	read.Call = engine.Call{Method: "tools/list"}
	if d := engine.Decide(read); d.Action != engine.ActReplay || d.StopIsUnknown {
		t.Errorf("Decide(read) = %+v, want a replay, harmless if stopped", d)
	}
}

func TestReplace(t *testing.T) {
	tests := []struct {
		class    retry.Class
		req      engine.Request
		status   int
		dead     bool
		adopting bool
		want     bool
	}{
		{retry.OK, engine.RequestUnobserved, 0, false, false, false},
		{retry.Protocol, engine.RequestRefused, 400, false, false, false},
		{retry.Cancelled, engine.RequestMayHaveRun, 0, true, false, false},
		{retry.NotSent, engine.RequestNotSent, 0, false, false, false},
		{retry.NotSent, engine.RequestNotSent, 0, true, false, true},
		{retry.Transient, engine.RequestRefused, 503, false, false, false},
		{retry.SessionClosed, engine.RequestNotSent, 0, false, false, true},
		{retry.SessionLost, engine.RequestMayHaveRun, 0, false, false, true},
		{retry.SessionLost, engine.RequestRefused, 404, false, true, true},
		{retry.Ambiguous, engine.RequestRefused, 400, false, false, true},
		{retry.Ambiguous, engine.RequestMayHaveRun, 502, false, false, true},
		{retry.Ambiguous, engine.RequestMayHaveRun, 0, false, true, false},
		{retry.Ambiguous, engine.RequestMayHaveRun, 0, true, true, true},
	}
	// A refusal is an answer: the session that carried it stays, whatever
	// the error's class and even when the SDK closed its session.
	for _, status := range []int{401, 403, 405, 413, 415, 422, 429, 503} {
		for _, class := range []retry.Class{retry.Ambiguous, retry.SessionClosed, retry.Transient} {
			tests = append(tests, struct {
				class    retry.Class
				req      engine.Request
				status   int
				dead     bool
				adopting bool
				want     bool
			}{class, engine.RequestRefused, status, true, false, false})
		}
	}
	for _, tt := range tests {
		a := engine.Attempt{Class: tt.class, Request: tt.req, Status: tt.status, SessionDead: tt.dead, Adopting: tt.adopting}
		if got := engine.Replace(a); got != tt.want {
			t.Errorf("Replace(%v, %v, %d, dead=%v, adopting=%v) = %v, want %v", tt.class, tt.req, tt.status, tt.dead, tt.adopting, got, tt.want)
		}
	}
}

func TestProvesNotRun(t *testing.T) {
	for status, want := range map[int]bool{200: false, 202: false, 302: false, 400: true, 401: true, 404: true, 408: true, 429: true,
		500: false, 502: false, 503: true, 504: false} {
		if got := engine.ProvesNotRun(status); got != want {
			t.Errorf("ProvesNotRun(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestOverridesApplyToOneCall(t *testing.T) {
	bg := context.Background()
	if o, err := engine.TakeOverrides(bg); err != nil || o != (engine.Overrides{}) {
		t.Errorf("TakeOverrides(background) = %+v, %v; want none", o, err)
	}
	p := retry.Policy{MaxAttempts: 7}
	ctx := retry.WaitForReady(retry.NoRetry(retry.Idempotent(retry.WithPolicy(bg, p))))
	o, err := engine.TakeOverrides(ctx)
	if err != nil {
		t.Fatalf("TakeOverrides: %v", err)
	}
	want := engine.Overrides{Policy: &retry.Policy{}, Replay: engine.ReplayYes, NoRetry: true, WaitForReady: true}
	*want.Policy = p.WithDefaults()
	if diff := cmp.Diff(want, o); diff != "" {
		t.Errorf("TakeOverrides mismatch (-want +got):\n%s", diff)
	}
	// A second call with the same context must not silently inherit them.
	if _, err := engine.TakeOverrides(ctx); !errors.Is(err, retry.ErrOverrideReused) {
		t.Errorf("second TakeOverrides: err = %v, want ErrOverrideReused", err)
	}
	// A context derived for the next call gets its own.
	next := retry.NotIdempotent(bg)
	if o, err := engine.TakeOverrides(next); err != nil || o.Replay != engine.ReplayNo {
		t.Errorf("TakeOverrides(NotIdempotent) = %+v, %v; want ReplayNo", o, err)
	}
	if _, err := engine.TakeOverrides(retry.WithPolicy(bg, retry.Policy{MaxAttempts: -1})); err == nil {
		t.Error("TakeOverrides with an invalid policy: no error")
	}
}

// A call its context ends is unknown when an attempt may have run it and
// it is not harmless to repeat; never when none may have.
func TestDecideCancelledUnknown(t *testing.T) {
	write := engine.Call{Method: engine.MethodCallTool}
	read := engine.Call{Method: engine.MethodCallTool, ReadOnly: true}
	tests := []struct {
		name string
		in   engine.Attempt
		want bool
	}{
		{"write cut in flight", engine.Attempt{Class: retry.Cancelled, CallerDone: true, Request: engine.RequestMayHaveRun, Call: write}, true},
		{"write cut, unobserved transport", engine.Attempt{Class: retry.Cancelled, CallerDone: true, Call: write}, true},
		{"write cut before its request connected", engine.Attempt{Class: retry.Cancelled, CallerDone: true, Request: engine.RequestNotSent, Call: write}, false},
		{"write refused now, an earlier attempt may have run", engine.Attempt{Class: retry.Transient, CallerDone: true, Request: engine.RequestRefused, Status: 503, RanBefore: true, Call: write}, true},
		{"write refused every time", engine.Attempt{Class: retry.Transient, CallerDone: true, Request: engine.RequestRefused, Status: 503, Call: write}, false},
		{"read cut in flight", engine.Attempt{Class: retry.Cancelled, CallerDone: true, Request: engine.RequestMayHaveRun, Call: read}, false},
		{"write cut in flight, retry.Idempotent", engine.Attempt{Class: retry.Cancelled, CallerDone: true, Request: engine.RequestMayHaveRun, Call: write, Override: engine.Overrides{Replay: engine.ReplayYes}}, false},
	}
	for _, tt := range tests {
		d := engine.Decide(tt.in)
		if d.Action != engine.ActCancelled || d.StopIsUnknown != tt.want {
			t.Errorf("%s: Decide = %+v, want cancelled with StopIsUnknown %v", tt.name, d, tt.want)
		}
	}
}

// The tool's annotations are fetched only when they decide.
func TestNeedsAnnotations(t *testing.T) {
	write := engine.Call{Method: engine.MethodCallTool}
	tests := []struct {
		name string
		in   engine.Attempt
		want bool
	}{
		{"a tools/call that may have run", engine.Attempt{Class: retry.Ambiguous, Request: engine.RequestMayHaveRun, Call: write}, true},
		{"unobserved, ambiguous", engine.Attempt{Class: retry.Ambiguous, Call: write}, true},
		{"never sent", engine.Attempt{Class: retry.Ambiguous, Request: engine.RequestNotSent, Call: write}, false},
		{"refused", engine.Attempt{Class: retry.Ambiguous, Request: engine.RequestRefused, Status: 413, Call: write}, false},
		{"the server deduplicates", engine.Attempt{Class: retry.Ambiguous, Call: engine.Call{Method: engine.MethodCallTool, Dedup: true}}, false},
		{"the caller said", engine.Attempt{Class: retry.Ambiguous, Call: write, Override: engine.Overrides{Replay: engine.ReplayNo}}, false},
		{"annotations ignored", engine.Attempt{Class: retry.Ambiguous, Call: write, IgnoreAnnotations: true}, false},
		{"not a tools/call", engine.Attempt{Class: retry.Ambiguous, Call: engine.Call{Method: "tools/list"}}, false},
		{"a JSON-RPC answer", engine.Attempt{Class: retry.Protocol, Call: write}, false},
		{"success", engine.Attempt{Class: retry.OK, Call: write}, false},
		{"the caller's context ended", engine.Attempt{Class: retry.Cancelled, CallerDone: true, Call: write}, false},
	}
	for _, tt := range tests {
		if got := tt.in.NeedsAnnotations(); got != tt.want {
			t.Errorf("%s: NeedsAnnotations = %v, want %v", tt.name, got, tt.want)
		}
	}
}
