package resilient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"

	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/retry"
)

// op names the call being run, for decisions, events and logs.
type op struct {
	method string
	tool   string
	// key is the idempotency key of a tools/call.
	key string
}

// attemptFunc runs one attempt of a call on cs, on params the SDK may
// write into (a copy when it would), with meta added to their _meta.
type attemptFunc[R any] func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta) (R, error)

// run is the life of one call (package doc, "One call"): it claims the
// call's per-call overrides from ctx, then runs it.
func run[R any](ctx context.Context, c *Client, o op, f attemptFunc[R]) (R, error) {
	ov, claimed := ctx.Value(claimedKey{}).(retry.Overrides)
	if !claimed {
		var err error
		if ov, err = retry.TakeOverrides(ctx); err != nil {
			var zero R
			return zero, fmt.Errorf("resilient: %s: %w", o.method, err)
		}
	}
	if c.hooks.Call == nil {
		return runWith(ctx, c, o, ov, f, nil)
	}
	info := &CallInfo{Method: o.method, Tool: o.tool, ProtocolVersion: c.sessionOpts.ProtocolVersion}
	c.mu.Lock()
	info.SessionID, info.ServerAddress, info.ServerPort = c.cur.cs.ID(), c.cur.host, c.cur.port
	c.mu.Unlock()
	var res R
	err := c.hooks.Call(ctx, info, func(ctx context.Context) error {
		var err error
		res, err = runWith(ctx, c, o, ov, f, info)
		if err == nil {
			info.Result = res
		}
		return err
	})
	if err != nil {
		var zero R
		return zero, err
	}
	return res, nil
}

// runWith tries the call on the current session; after a failure it
// gathers the facts (the error's class, what the transport saw, the
// session replaced when it must be) and executes what retry.Decide says.
// Time bounds the call: waits end with the caller's context or the
// policy's MaxElapsed, attempts only with the caller's context.
func runWith[R any](ctx context.Context, c *Client, o op, ov retry.Overrides, f attemptFunc[R], info *CallInfo) (R, error) {
	var zero R
	c.stats.calls.Add(1)
	cl := call{c: c, o: o, ov: ov, p: c.policy, ctx: ctx, start: time.Now(), lineage: c.lineage.Load()}
	if ov.Policy != nil {
		cl.p = *ov.Policy
	}
	defer cl.end()
	var last error
	stopIsUnknown := false // should the call stop before its next attempt, its outcome is unknown
	replayed := false      // the next attempt is sent on a session that replaced the last one's
	ranBefore := false     // an earlier attempt may have run the call
	for attempt := 1; ; attempt++ {
		cur, err := c.acquire(cl.waits, attempt == 1 && !ov.WaitForReady)
		if err != nil {
			return zero, cl.stoppedBetween(err, attempt-1, last, stopIsUnknown)
		}
		if attempt > 1 {
			c.stats.retries.Add(1)
		}
		res, pr, err := runAttempt(ctx, c, cur, f, o, attempt, replayed)
		if info != nil {
			info.Attempts = attempt
			if replayed {
				info.Replays++
			}
		}
		in := cl.facts(attempt, cur, pr, err)
		if in.Class == retry.OK {
			return res, nil
		}
		var rerr error
		if !in.CallerDone && !in.Closed && retry.NeedsNewSession(in) {
			var fl *flight
			fl, rerr = c.replace(cl.waits(), cur, err)
			if info != nil && fl != nil && rerr == nil {
				info.Reconnects = append(info.Reconnects, fl.info)
			}
			in = cl.reconnected(in, rerr)
		}
		in.AttemptsLeft = cl.p.MaxAttempts == 0 || attempt < cl.p.MaxAttempts
		in.BudgetLeft = c.budget.Allow()
		in.RanBefore = ranBefore
		d := retry.Decide(in)
		cl.report(attempt, cur, in, d, err)
		switch d.Action {
		case retry.ActReturn:
			if in.Reconnected == retry.ReconnectFailed {
				return zero, cl.stopped(rerr, attempt, err)
			}
			return zero, err
		case retry.ActCancelled:
			return zero, ctx.Err()
		case retry.ActClosed:
			return zero, ErrClosed
		case retry.ActOutcomeUnknown:
			return zero, c.outcomeUnknown(o, err)
		case retry.ActExhausted:
			return zero, &retry.ExhaustedError{Attempts: attempt, Reason: d.Reason, Last: err}
		case retry.ActBackoff:
			if berr := cl.backoff(attempt, pr, err); berr != nil {
				return zero, cl.stoppedBetween(berr, attempt, err, d.StopIsUnknown)
			}
		case retry.ActReplay:
			c.stats.replays.Add(1)
		}
		replayed = d.Action == retry.ActReplay
		ranBefore = ranBefore || d.MayHaveRun
		stopIsUnknown = d.StopIsUnknown
		last = err
	}
}

// call is the state of one call across its attempts. On the happy path it
// lives on the stack and allocates nothing: the context that bounds its
// waits is made at the first wait.
type call struct {
	c       *Client
	o       op
	ov      retry.Overrides
	p       retry.Policy
	ctx     context.Context // the caller's
	start   time.Time
	lineage uint64 // the client's lineage when the call started
	wctx    context.Context
	cancel  context.CancelFunc
	bo      backoff.BackOff
}

// waits returns the context that bounds the call's waits: the caller's,
// and the policy's MaxElapsed from the call's start.
func (cl *call) waits() context.Context {
	if cl.wctx == nil {
		if cl.p.MaxElapsed > 0 {
			cl.wctx, cl.cancel = context.WithDeadline(cl.ctx, cl.start.Add(cl.p.MaxElapsed))
		} else {
			cl.wctx, cl.cancel = context.WithCancel(cl.ctx)
		}
	}
	return cl.wctx
}

func (cl *call) end() {
	if cl.cancel != nil {
		cl.cancel()
	}
}

// facts gathers what Decide needs about a finished attempt, and records
// its outcome with the breaker and the budget.
func (cl *call) facts(attempt int, cur *conn, pr *probe, err error) retry.Attempt {
	c := cl.c
	class := retry.Classify(err)
	c.settle(class, err, attempt > 1)
	if class == retry.OK {
		return retry.Attempt{}
	}
	in := retry.Attempt{
		Class:             class,
		CallerDone:        cl.ctx.Err() != nil,
		Closed:            c.isClosed(),
		InProgress:        retry.HasCode(err, resume.CodeInProgress),
		Replay:            attempt > 1,
		SessionDead:       cur.isDead(),
		Adopting:          cur.adopts,
		Call:              c.describe(cl.o, cur, cl.lineage),
		Override:          cl.ov,
		IgnoreAnnotations: cl.p.IgnoreAnnotations,
	}
	in.Request, in.Status = pr.evidence()
	if !in.CallerDone && !in.Closed {
		// Reported now, before the reconnect it may cause: events come in
		// the order things happened.
		c.emit(Event{Kind: EventAttemptFailed, Method: cl.o.method, Tool: cl.o.tool, Class: class, Attempt: attempt, Err: err,
			SessionID: cur.cs.ID(), Generation: cur.gen})
	}
	return in
}

// reconnected adds the outcome of replacing the session to in, and what
// the new session tells about the call (its server's deduplication, its
// tool's annotations when they were unknown).
func (cl *call) reconnected(in retry.Attempt, rerr error) retry.Attempt {
	c := cl.c
	switch {
	case rerr == nil:
		in.Reconnected = retry.ReconnectDone
	case cl.ctx.Err() != nil:
		in.CallerDone = true
		return in
	case errors.Is(rerr, ErrClosed):
		in.Closed = true
		return in
	default:
		in.Reconnected = retry.ReconnectFailed
		return in
	}
	next, err := c.current()
	if err != nil {
		in.Closed = true
		return in
	}
	in.Call = c.describe(cl.o, next, cl.lineage)
	// The tool's annotations matter only to a call that may have run and
	// has no other ground for a replay: fetch them only then.
	if cl.o.tool != "" && !in.ProvedNotRun() && !in.Call.Dedup && in.Override.Replay == retry.ReplayDefault {
		if _, known := c.hints(cl.o.tool); !known {
			c.refreshTools(cl.waits(), next)
			in.Call = c.describe(cl.o, next, cl.lineage)
		}
	}
	return in
}

// report logs and emits the failed attempt and what was decided.
func (cl *call) report(attempt int, cur *conn, in retry.Attempt, d retry.Decision, err error) {
	c := cl.c
	if d.Action == retry.ActCancelled || d.Action == retry.ActClosed {
		return
	}
	c.log.Debug("attempt failed", zap.String("method", cl.o.method), zap.String("session_id", cur.cs.ID()),
		zap.Uint64("generation", cur.gen), zap.Int("attempt", attempt), zap.Stringer("class", in.Class),
		zap.Int("status", in.Status), zap.Stringer("action", d.Action), zap.Error(err))
	switch d.Action {
	case retry.ActReplay:
		c.emit(Event{Kind: EventReplayed, Method: cl.o.method, Tool: cl.o.tool, Class: in.Class, Attempt: attempt + 1})
	case retry.ActExhausted:
		if d.Reason == "retry budget" {
			c.stats.budgetExhausted.Add(1)
			c.log.Warn("retry budget exhausted", zap.String("method", cl.o.method), zap.Float64("tokens", c.budget.Tokens()))
			c.emit(Event{Kind: EventBudgetExhausted, Method: cl.o.method, Tool: cl.o.tool, Class: in.Class, Attempt: attempt, Err: err})
		}
	}
}

// backoff waits before sending again on the same session: the policy's
// backoff, or the server's Retry-After when longer. A wait that would end
// past the call's bounds is not started.
func (cl *call) backoff(attempt int, pr *probe, err error) error {
	if cl.bo == nil {
		cl.bo = cl.p.NewBackOff()
	}
	wait := cl.bo.NextBackOff()
	if wait == backoff.Stop {
		return &retry.ExhaustedError{Attempts: attempt, Reason: "max elapsed time", Last: err}
	}
	reason := "max elapsed time"
	if ra := pr.retryAfterHint(); ra > wait {
		wait, reason = ra, "Retry-After beyond the call's time bound"
	}
	if dl, ok := cl.ctx.Deadline(); ok && time.Until(dl) < wait {
		// The caller's deadline comes first: the call ends with it, now
		// rather than at the deadline.
		return context.DeadlineExceeded
	}
	if dl, ok := cl.waits().Deadline(); ok && time.Until(dl) < wait {
		return &retry.ExhaustedError{Attempts: attempt, Reason: reason, Last: err}
	}
	cl.c.log.Debug("backing off", zap.String("method", cl.o.method), zap.Int("attempt", attempt), zap.Duration("backoff", wait))
	select {
	case <-time.After(wait):
		return nil
	case <-cl.wctx.Done():
		return cl.stopped(cl.wctx.Err(), attempt, err)
	case <-cl.c.ctx.Done():
		return ErrClosed
	}
}

// stoppedBetween returns the error of a call that stopped between two
// attempts with err (its wait ended): ErrOutcomeUnknown wrapping it when
// the last decision said an attempt may have run it (Decision.
// StopIsUnknown), unless the caller's context or Close ended it.
func (cl *call) stoppedBetween(err error, attempts int, last error, unknown bool) error {
	err = cl.stopped(err, attempts, last)
	if !unknown || cl.ctx.Err() != nil || errors.Is(err, ErrClosed) {
		return err
	}
	return cl.c.outcomeUnknown(cl.o, err)
}

// stopped returns the error of a call whose wait ended with err, after
// attempts attempts whose last failed with last.
func (cl *call) stopped(err error, attempts int, last error) error {
	switch {
	case cl.ctx.Err() != nil:
		return cl.ctx.Err()
	case errors.Is(err, ErrClosed):
		return ErrClosed
	case cl.wctx != nil && cl.wctx.Err() != nil && errors.Is(err, cl.wctx.Err()):
		if last == nil {
			last = cl.c.lastFailure()
		}
		return &retry.ExhaustedError{Attempts: attempts, Reason: "max elapsed time", Last: last}
	}
	return err
}

// acquire returns the session to send on. While a reconnect is in
// progress it waits for it, within wctx; when the breaker is open and
// fastFail is set (a new call that did not ask to wait for the server) it
// fails at once with ErrCircuitOpen. When the reconnect it waited for
// ended without a session, it returns that reconnect's error.
func (c *Client) acquire(waits func() context.Context, fastFail bool) (*conn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		f := c.flight
		if f == nil {
			cur := c.cur
			c.mu.Unlock()
			return cur, nil
		}
		if fastFail && c.br.isOpen() {
			err := c.br.err()
			c.mu.Unlock()
			return nil, err
		}
		c.mu.Unlock()
		if err := c.waitFlight(waits(), f); err != nil {
			return nil, err
		}
	}
}

// current returns the session in use now.
func (c *Client) current() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	return c.cur, nil
}

// lastFailure returns the latest failure counted by the breaker.
func (c *Client) lastFailure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.br.last == nil {
		return errors.New("waiting for a reconnect")
	}
	return c.br.last
}

// runAttempt runs one attempt of a call on cur. Its context is also
// cancelled by Close, so that Close never waits for a call stuck on a
// server that does not answer (closing the transport's connection does not
// end the SDK's calls in flight). When the transport watches its requests,
// it returns the probe that saw what became of the attempt's own;
// otherwise the probe is nil.
func runAttempt[R any](ctx context.Context, c *Client, cur *conn, f attemptFunc[R], o op, attempt int, replay bool) (R, *probe, error) {
	var zero R
	actx, cancel := context.WithCancelCause(ctx)
	id, ok := c.track(cancel)
	if !ok {
		cancel(ErrClosed)
		return zero, nil, ErrClosed
	}
	defer c.untrack(id, cancel)
	var pr *probe
	lctx := actx // the context whose cause says whether liveness cut the attempt
	if cur.obs != nil {
		// One allocation carries the probe and makes it reachable from the
		// requests the SDK builds with the attempt's context.
		pc := &probeCtx{Context: actx}
		actx, pr = pc, &pc.probe
	}
	// Liveness cuts the attempt should its route go dead (liveness.go).
	defer c.live.unwatch(c.live.watch(cur, pr, cancel))
	if c.hooks.Attempt == nil {
		res, err := f(actx, cur.cs, nil)
		return res, pr, c.live.verdict(lctx, ctx, err)
	}
	info := &AttemptInfo{Method: o.method, Tool: o.tool, Attempt: attempt, Replay: replay,
		SessionID: cur.cs.ID(), ProtocolVersion: c.sessionOpts.ProtocolVersion, Generation: cur.gen,
		ServerAddress: cur.host, ServerPort: cur.port, Meta: map[string]any{}}
	var res R
	// A context the hook derives from actx (a span's) still carries the
	// probe.
	err := c.hooks.Attempt(actx, info, func(hctx context.Context) error {
		var err error
		res, err = f(hctx, cur.cs, info.Meta)
		err = c.live.verdict(lctx, ctx, err)
		info.Class = retry.Classify(err)
		return err
	})
	return res, pr, c.live.verdict(lctx, ctx, err)
}

// track registers the cancel func of an attempt in flight, for Close. It
// reports false when the client is already closed.
func (c *Client) track(cancel context.CancelCauseFunc) (uint64, bool) {
	c.attemptsMu.Lock()
	defer c.attemptsMu.Unlock()
	if c.attempts == nil {
		return 0, false
	}
	c.attemptID++
	c.attempts[c.attemptID] = cancel
	return c.attemptID, true
}

func (c *Client) untrack(id uint64, cancel context.CancelCauseFunc) {
	c.attemptsMu.Lock()
	delete(c.attempts, id)
	c.attemptsMu.Unlock()
	cancel(nil)
}

// cancelAttempts cancels every attempt in flight and refuses new ones.
func (c *Client) cancelAttempts() {
	c.attemptsMu.Lock()
	attempts := c.attempts
	c.attempts = nil
	c.attemptsMu.Unlock()
	for _, cancel := range attempts {
		cancel(ErrClosed)
	}
}

// settle records an attempt's outcome with the breaker and the budget.
// Failures that show the server unreachable or refusing count against
// both; a re-sent call that fails again (a lost session once more, a drop)
// costs a budget token too, so that a balancer that keeps losing sessions
// cannot loop its callers; an answer from the server counts for them. When
// a failure opens the breaker and no reconnect is running, one starts: it
// is the probe that closes the breaker again.
func (c *Client) settle(class retry.Class, err error, resent bool) {
	switch class {
	case retry.OK, retry.Protocol:
		c.budget.Success()
		if !c.brDirty.Load() {
			return
		}
		c.mu.Lock()
		var t *transition
		if c.flight == nil {
			t = c.br.success()
			c.brDirty.Store(false)
		}
		c.mu.Unlock()
		c.emitTransition(t)
	case retry.NotSent, retry.Transient:
		c.budget.Failure()
		c.mu.Lock()
		c.brDirty.Store(true)
		t := c.br.failure(err)
		if t != nil && c.flight == nil && !c.closed {
			c.startFlightLocked(err)
		}
		c.mu.Unlock()
		c.emitTransition(t)
	case retry.SessionClosed, retry.SessionLost, retry.Ambiguous:
		if resent {
			c.budget.Failure()
		}
	}
}

func (c *Client) outcomeUnknown(o op, cause error) error {
	c.stats.outcomeUnknown.Add(1)
	c.log.Warn("outcome unknown, not replayed", zap.String("method", o.method), zap.String("tool", o.tool))
	err := fmt.Errorf("%w: %s %s: %w", ErrOutcomeUnknown, o.method, o.tool, cause)
	c.emit(Event{Kind: EventOutcomeUnknown, Method: o.method, Tool: o.tool, Err: cause})
	return err
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}
