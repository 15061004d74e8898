package resilient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"

	"github.com/mcpkit/resilience/resilient/internal/engine"
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
	ov, claimed := ctx.Value(claimedKey{}).(engine.Overrides)
	if !claimed {
		var err error
		if ov, err = engine.TakeOverrides(ctx); err != nil {
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
// session replaced when it must be) and executes what engine.Decide says.
// Time bounds the call: waits end with the caller's context or the
// policy's MaxElapsed, attempts only with the caller's context.
func runWith[R any](ctx context.Context, c *Client, o op, ov engine.Overrides, f attemptFunc[R], info *CallInfo) (R, error) {
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
	if err := ctx.Err(); err != nil {
		// Nothing is sent on a context that already ended.
		return zero, err
	}
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
		if !in.CallerDone && !in.Closed && engine.Replace(in) {
			var fl *flight
			fl, rerr = c.replace(cl.waits(), cur, err)
			if info != nil && fl != nil && rerr == nil {
				info.Reconnects = append(info.Reconnects, fl.info)
			}
			in = cl.reconnected(in, rerr)
		}
		in = cl.annotate(in, cur)
		in.AttemptsLeft = cl.p.MaxAttempts == 0 || attempt < cl.p.MaxAttempts
		in.BudgetLeft = c.budget.Allow()
		in.RanBefore = ranBefore
		d := engine.Decide(in)
		cl.report(attempt, cur, in, d, err)
		switch d.Action {
		case engine.ActReturn:
			if in.Reconnected == engine.ReconnectFailed {
				return zero, cl.stopped(rerr, attempt, err)
			}
			// A refusal too is returned as the SDK returned it (its text
			// names the status in words), so that the client stays a
			// drop-in for *mcp.ClientSession.
			return zero, err
		case engine.ActCancelled:
			if !isContextErr(err) {
				last = err // the attempt failed for a reason of its own first
			}
			return zero, cl.ended(ctx.Err(), last, d.StopIsUnknown)
		case engine.ActClosed:
			return zero, ErrClosed
		case engine.ActOutcomeUnknown:
			return zero, c.outcomeUnknown(o, err)
		case engine.ActExhausted:
			return zero, &retry.ExhaustedError{Attempts: attempt, Reason: d.Reason, Last: err}
		case engine.ActBackoff:
			if berr := cl.backoff(attempt, pr, err); berr != nil {
				return zero, cl.stoppedBetween(berr, attempt, err, d.StopIsUnknown)
			}
		case engine.ActReplay:
			c.stats.replays.Add(1)
		}
		replayed = d.Action == engine.ActReplay
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
	ov      engine.Overrides
	p       retry.Policy
	ctx     context.Context // the caller's
	start   time.Time
	lineage uint64 // the client's lineage when the call started
	wctx    context.Context
	cancel  context.CancelFunc
	bo      engine.BackOff
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
func (cl *call) facts(attempt int, cur *conn, pr *probe, err error) engine.Attempt {
	c := cl.c
	class := retry.Classify(err)
	c.settle(class, err, attempt > 1)
	if class == retry.OK {
		return engine.Attempt{}
	}
	in := engine.Attempt{
		Class:             class,
		CallerDone:        cl.ctx.Err() != nil,
		Closed:            c.isClosed(),
		InProgress:        engine.HasCode(err, resume.CodeInProgress) || engine.HasCode(err, resume.CodeOutcomeUnknown),
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
// the new session tells about the call (its server's deduplication).
func (cl *call) reconnected(in engine.Attempt, rerr error) engine.Attempt {
	c := cl.c
	switch {
	case rerr == nil:
		in.Reconnected = engine.ReconnectDone
	case cl.ctx.Err() != nil:
		in.CallerDone = true
		return in
	case errors.Is(rerr, ErrClosed):
		in.Closed = true
		return in
	default:
		in.Reconnected = engine.ReconnectFailed
		return in
	}
	next, err := c.current()
	if err != nil {
		in.Closed = true
		return in
	}
	in.Call = c.describe(cl.o, next, cl.lineage)
	return in
}

// annotate makes sure the decision on a tools/call that may have run
// knows its tool's annotations when they decide (Attempt.NeedsAnnotations):
// if the client does not know them, it lists the tools once, on the
// session the call would be sent on next (the one that replaced cur, or
// cur itself when it was kept: a server that adopts sessions, a stateless
// one, a connection dropped with the session intact).
func (cl *call) annotate(in engine.Attempt, cur *conn) engine.Attempt {
	if !in.NeedsAnnotations() || in.Reconnected == engine.ReconnectFailed {
		return in
	}
	c := cl.c
	if _, known := c.hints(cl.o.tool); known {
		return in
	}
	next := cur
	if in.Reconnected == engine.ReconnectDone {
		var err error
		if next, err = c.current(); err != nil {
			in.Closed = true
			return in
		}
	}
	c.refreshTools(cl.waits(), next)
	in.Call = c.describe(cl.o, next, cl.lineage)
	return in
}

// report logs and emits the failed attempt and what was decided.
func (cl *call) report(attempt int, cur *conn, in engine.Attempt, d engine.Decision, err error) {
	c := cl.c
	if d.Action == engine.ActCancelled || d.Action == engine.ActClosed {
		return
	}
	c.log.Debug("attempt failed", zap.String("method", cl.o.method), zap.String("session_id", cur.cs.ID()),
		zap.Uint64("generation", cur.gen), zap.Int("attempt", attempt), zap.Stringer("class", in.Class),
		zap.Int("status", in.Status), zap.Stringer("action", d.Action), zap.Error(err))
	switch d.Action {
	case engine.ActReplay:
		c.emit(Event{Kind: EventReplayed, Method: cl.o.method, Tool: cl.o.tool, Class: in.Class, Attempt: attempt + 1})
	case engine.ActExhausted:
		if d.Reason == retry.ReasonBudget {
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
		cl.bo = engine.NewBackOff(cl.p)
	}
	wait := cl.bo.NextBackOff()
	if wait == engine.Stop {
		return &retry.ExhaustedError{Attempts: attempt, Reason: retry.ReasonMaxElapsed, Last: err}
	}
	reason := retry.ReasonMaxElapsed
	if ra := pr.retryAfterHint(); ra > wait {
		wait, reason = ra, retry.ReasonRetryAfter
	}
	if dl, ok := cl.ctx.Deadline(); ok && time.Until(dl) < wait {
		// The caller's deadline comes first: the call ends with it, now
		// rather than at the deadline.
		return errDeadlineFirst
	}
	if dl, ok := cl.waits().Deadline(); ok && time.Until(dl) < wait {
		return &retry.ExhaustedError{Attempts: attempt, Reason: reason, Last: err}
	}
	cl.c.log.Debug("backing off", zap.String("method", cl.o.method), zap.Int("attempt", attempt), zap.Duration("backoff", wait))
	select {
	case <-time.After(wait):
		return nil
	case <-cl.wctx.Done():
		return cl.wctx.Err()
	case <-cl.c.ctx.Done():
		return ErrClosed
	}
}

// errDeadlineFirst ends a wait that would outlast the caller's deadline.
var errDeadlineFirst = errors.New("resilient: the caller's deadline comes before the wait ends")

// stoppedBetween returns the error of a call that stopped between two
// attempts with err (its wait ended), after attempts attempts whose last
// failed with last: ErrOutcomeUnknown wrapping it too when the last
// decision said an attempt may have run it (Decision.StopIsUnknown),
// unless Close ended it.
func (cl *call) stoppedBetween(err error, attempts int, last error, unknown bool) error {
	switch {
	case cl.ctx.Err() != nil:
		return cl.ended(cl.ctx.Err(), last, unknown)
	case err == errDeadlineFirst:
		return cl.ended(context.DeadlineExceeded, last, unknown)
	}
	err = cl.stopped(err, attempts, last)
	if !unknown || errors.Is(err, ErrClosed) {
		return err
	}
	return cl.c.outcomeUnknown(cl.o, err)
}

// stopped returns the error of a call whose wait ended with err, after
// attempts attempts whose last failed with last.
func (cl *call) stopped(err error, attempts int, last error) error {
	switch {
	case cl.ctx.Err() != nil:
		return cl.ended(cl.ctx.Err(), last, false)
	case errors.Is(err, ErrClosed):
		return ErrClosed
	case cl.wctx != nil && cl.wctx.Err() != nil && errors.Is(err, cl.wctx.Err()):
		if last == nil {
			last = cl.c.lastFailure()
		}
		return &retry.ExhaustedError{Attempts: attempts, Reason: retry.ReasonMaxElapsed, Last: last}
	}
	return err
}

// ended returns the error of a call that its context ended (ctxErr),
// after attempts whose last failed with last (nil when none failed but by
// the context): ctxErr itself when nothing failed before and nothing may
// have run; otherwise an error that matches ctxErr and carries the last
// failure, gRPC style; and one that matches ErrOutcomeUnknown too when an
// attempt may have run a call that is not harmless to repeat (unknown).
func (cl *call) ended(ctxErr, last error, unknown bool) error {
	err := ctxErr
	if last != nil {
		err = &contextError{ctx: ctxErr, last: last}
	}
	if unknown {
		return cl.c.outcomeUnknown(cl.o, err)
	}
	return err
}

// contextError is a context's error after failed attempts: it matches the
// context's error and the last failure, and says both.
type contextError struct{ ctx, last error }

func (e *contextError) Error() string   { return e.ctx.Error() + "; last error: " + e.last.Error() }
func (e *contextError) Unwrap() []error { return []error{e.ctx, e.last} }

// isContextErr reports whether err is a context's error.
func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
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
// The budget counts re-sends that reached the server and failed again (a
// lost session once more, a drop, a 5xx), so that a balancer that keeps
// losing sessions cannot loop its callers. A failure to reach the server
// (a refused connection, 429 or 503) costs no token: the breaker counts
// it, and once open its one prober does the dialling, throttled by its
// backoff; charging those failures to the budget as well would throttle
// twice, and a restart of the only server would drain it. An answer from
// the server counts for both. When a failure opens the breaker and no
// reconnect is running, one starts: it is the probe that closes the
// breaker again.
func (c *Client) settle(class retry.Class, err error, resent bool) {
	switch class {
	case retry.OK, retry.Protocol:
		c.budget.Success()
		if !c.brDirty.Load() {
			return
		}
		c.mu.Lock()
		var t []transition
		if c.flight == nil {
			t = c.br.success()
			c.brDirty.Store(false)
		}
		c.mu.Unlock()
		c.emitTransitions(t)
	case retry.NotSent, retry.Transient:
		c.mu.Lock()
		c.brDirty.Store(true)
		t := c.br.failure(err)
		if len(t) > 0 && c.br.isOpen() && c.flight == nil && !c.closed {
			c.startFlightLocked(err)
		}
		c.mu.Unlock()
		c.emitTransitions(t)
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
