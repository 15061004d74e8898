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

// errNotCounted marks, for the breaker, an attempt whose failure says
// nothing about the server's health (a lost session, an ambiguous drop, a
// cancellation): it is neither a success nor a failure.
var errNotCounted = errors.New("not counted")

// op names the call being run, for decisions, events and logs.
type op struct {
	method string
	tool   string
	// key is the idempotency key of a tools/call; lineage the client's
	// lineage when the call started (see Client.lineage).
	key     string
	lineage uint64
}

// run is the life of one call (DESIGN.md, "One call, step by step"): try
// it on the current session, classify a failure, replace the session when it
// is dead, and try again while the policy, the budget and the breaker allow
// and running it again is safe. f must run the call on a fresh copy of its
// params each time.
func run[R any](ctx context.Context, c *Client, o op, f func(context.Context, *mcp.ClientSession) (R, error)) (R, error) {
	var zero R
	c.stats.calls.Add(1)
	c.mu.Lock()
	o.lineage = c.lineage
	c.mu.Unlock()
	p := c.policy
	if pp, ok := retry.PolicyFrom(ctx); ok {
		if err := pp.Validate(); err != nil {
			return zero, fmt.Errorf("resilient: retry.WithPolicy: %w", err)
		}
		p = pp.WithDefaults()
	}
	start := time.Now()
	var bo backoff.BackOff
	replay := false // the next attempt re-sends after a reconnect
	var last error  // the previous attempt's failure
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return zero, err
		}
		cur, err := c.current()
		if err != nil {
			return zero, err
		}
		done, err := c.allow()
		if err != nil {
			if last != nil {
				err = fmt.Errorf("%w; last failure: %w", err, last)
			}
			return zero, err
		}
		if attempt > 1 {
			c.stats.retries.Add(1)
			if replay {
				c.stats.replays.Add(1)
			}
		}
		res, pr, err := runAttempt(ctx, c, cur, f)
		class := retry.Classify(err)
		switch {
		case class == retry.Cancelled && ctx.Err() == nil && c.isClosed():
			c.settle(done, class, err)
			return zero, ErrClosed
		case class == retry.Cancelled && ctx.Err() == nil:
			// A deadline inside the transport (http.Client.Timeout), not
			// the caller's: the request may have been sent.
			class = retry.Ambiguous
		case class == retry.SessionLost && errors.Is(err, mcp.ErrSessionMissing) && (pr == nil || pr.mayHaveRun()):
			// A 404 fails the whole connection, and every call in flight on
			// it gets ErrSessionMissing. It proves a call did not run only
			// when its own request was refused; if that request was still
			// running or accepted, or the transport cannot tell, the call
			// may have run.
			class = retry.Ambiguous
		}
		c.settle(done, class, err)
		switch class {
		case retry.OK:
			return res, nil
		case retry.Cancelled:
			return zero, ctx.Err()
		case retry.Protocol:
			if replay && retry.HasCode(err, resume.CodeInProgress) {
				// The server holds the first attempt as still running: its
				// outcome is unknown, and the server refused to run it again.
				return zero, c.outcomeUnknown(o, err)
			}
			return zero, err
		}
		if c.isClosed() {
			return zero, ErrClosed
		}
		c.log.Debug("attempt failed", zap.String("method", o.method), zap.String("idempotency_key", o.key), zap.String("session_id", cur.cs.ID()),
			zap.Uint64("generation", cur.gen), zap.Int("attempt", attempt), zap.Stringer("class", class), zap.Error(err))
		c.emit(Event{Kind: EventAttemptFailed, Method: o.method, Tool: o.tool, Class: class, Attempt: attempt, Err: err,
			SessionID: cur.cs.ID(), Generation: cur.gen})

		last = err
		call, known := c.describe(o, cur)
		d := retry.Decide(ctx, p, class, call, cur.isDead())
		if d.Reconnect {
			if rerr := c.reconnect(ctx, cur.gen, err); rerr != nil {
				if d.OutcomeUnknown {
					return zero, c.outcomeUnknown(o, errors.Join(err, rerr))
				}
				if ctx.Err() != nil {
					return zero, ctx.Err()
				}
				return zero, rerr
			}
			if d.OutcomeUnknown {
				// The new session may change the answer: it may deduplicate,
				// and it can tell the tool's annotations if they were unknown.
				if !known {
					c.refreshTools(ctx)
				}
				next, err := c.current()
				if err != nil {
					return zero, err
				}
				call, _ = c.describe(o, next)
				d = retry.Decide(ctx, p, class, call, false)
			}
		}
		if d.OutcomeUnknown {
			return zero, c.outcomeUnknown(o, err)
		}
		if !d.Retry {
			return zero, err
		}
		if attempt >= p.MaxAttempts {
			return zero, &retry.ExhaustedError{Attempts: attempt, Reason: "max attempts", Last: err}
		}
		if p.MaxElapsed > 0 && time.Since(start) >= p.MaxElapsed {
			return zero, &retry.ExhaustedError{Attempts: attempt, Reason: "max elapsed time", Last: err}
		}
		replay = d.Reconnect
		if !d.Backoff {
			c.log.Debug("replaying", zap.String("method", o.method), zap.Int("attempt", attempt+1), zap.Stringer("class", class))
			c.emit(Event{Kind: EventReplayed, Method: o.method, Tool: o.tool, Class: class, Attempt: attempt + 1})
			continue
		}
		if !c.budget.Allow() {
			c.stats.budgetExhausted.Add(1)
			c.log.Warn("retry budget exhausted", zap.String("method", o.method), zap.Float64("tokens", c.budget.Tokens()))
			c.emit(Event{Kind: EventBudgetExhausted, Method: o.method, Tool: o.tool, Class: class, Attempt: attempt, Err: err})
			return zero, &retry.ExhaustedError{Attempts: attempt, Reason: "retry budget", Last: err}
		}
		if bo == nil {
			bo = p.NewBackOff()
		}
		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			return zero, &retry.ExhaustedError{Attempts: attempt, Reason: "max elapsed time", Last: err}
		}
		c.log.Debug("backing off", zap.String("method", o.method), zap.Int("attempt", attempt), zap.Duration("backoff", wait))
		if err := c.sleep(ctx, wait); err != nil {
			return zero, err
		}
	}
}

// runAttempt runs one attempt of a call on cur. Its context is also
// cancelled by Close, so that Close never waits for a call stuck on a
// server that does not answer. When the transport can tell whether the
// attempt's request reached the server, it returns the probe that says so;
// otherwise the probe is nil.
func runAttempt[R any](ctx context.Context, c *Client, cur *conn, f func(context.Context, *mcp.ClientSession) (R, error)) (R, *probe, error) {
	var zero R
	actx, cancel := context.WithCancel(ctx)
	id, ok := c.track(cancel)
	if !ok {
		cancel()
		return zero, nil, ErrClosed
	}
	defer c.untrack(id, cancel)
	var pr *probe
	if cur.obs != nil {
		pr = &probe{}
		actx = withProbe(actx, pr)
	}
	res, err := f(actx, cur.cs)
	return res, pr, err
}

// track registers the cancel func of an attempt in flight, for Close. It
// reports false when the client is already closed.
func (c *Client) track(cancel context.CancelFunc) (uint64, bool) {
	c.attemptsMu.Lock()
	defer c.attemptsMu.Unlock()
	if c.attempts == nil {
		return 0, false
	}
	c.attemptID++
	c.attempts[c.attemptID] = cancel
	return c.attemptID, true
}

func (c *Client) untrack(id uint64, cancel context.CancelFunc) {
	c.attemptsMu.Lock()
	delete(c.attempts, id)
	c.attemptsMu.Unlock()
	cancel()
}

// cancelAttempts cancels every attempt in flight and refuses new ones.
func (c *Client) cancelAttempts() {
	c.attemptsMu.Lock()
	attempts := c.attempts
	c.attempts = nil
	c.attemptsMu.Unlock()
	for _, cancel := range attempts {
		cancel()
	}
}

// allow asks the breaker for an attempt. It returns the function that
// records the attempt's outcome, or an error matching ErrCircuitOpen.
func (c *Client) allow() (func(error), error) {
	if c.breaker == nil {
		return func(error) {}, nil
	}
	done, err := c.breaker.Allow()
	c.flushBreakerEvents()
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrCircuitOpen, err)
	}
	return done, nil
}

// settle records an attempt's outcome with the breaker and the budget. Only
// failures that show the server unreachable or refusing count against them.
func (c *Client) settle(done func(error), class retry.Class, err error) {
	switch class {
	case retry.OK, retry.Protocol:
		done(nil)
		c.budget.Success()
	case retry.NotSent, retry.Transient:
		done(err)
		c.budget.Failure()
	default:
		done(errNotCounted)
	}
	c.flushBreakerEvents()
}

func (c *Client) outcomeUnknown(o op, cause error) error {
	c.stats.outcomeUnknown.Add(1)
	c.log.Warn("outcome unknown, not replayed", zap.String("method", o.method), zap.String("tool", o.tool))
	err := fmt.Errorf("%w: %s %s: %w", ErrOutcomeUnknown, o.method, o.tool, cause)
	c.emit(Event{Kind: EventOutcomeUnknown, Method: o.method, Tool: o.tool, Err: cause})
	return err
}

// sleep waits d, or until ctx ends (returning ctx.Err()) or the client is
// closed (ErrClosed).
func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}
