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

// replace replaces the session failed, once for all callers: the first
// caller starts the reconnect (the flight) on a goroutine of the client's,
// later ones wait for it. A caller stops waiting when wctx ends; the
// reconnect goes on for the others. It returns nil when a newer session is
// in place.
func (c *Client) replace(wctx context.Context, failed *conn, cause error) (*flight, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.cur.gen > failed.gen {
		c.mu.Unlock()
		return nil, nil
	}
	f := c.flight
	if f == nil {
		f = c.startFlightLocked(cause)
	}
	c.mu.Unlock()
	return f, c.waitFlight(wctx, f)
}

// waitFlight waits for f to end, for wctx to end, or for Close.
func (c *Client) waitFlight(wctx context.Context, f *flight) error {
	select {
	case <-f.done:
		return f.err
	case <-wctx.Done():
		return wctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// startFlightLocked starts the reconnect of the current session. c.mu must
// be held.
func (c *Client) startFlightLocked(cause error) *flight {
	old := c.cur
	f := &flight{done: make(chan struct{}), info: ReconnectInfo{Start: time.Now(), OldSessionID: old.cs.ID()}}
	c.flight = f
	c.emit(Event{Kind: EventReconnectStarted, OldSessionID: old.cs.ID(), Generation: old.gen, Err: cause})
	c.log.Info("reconnecting", zap.String("session_id", old.cs.ID()), zap.Uint64("generation", old.gen), zap.Error(cause))
	c.wg.Add(1)
	go c.runFlight(f, old)
	return f
}

// runFlight dials until a new session is up, resumes the old session's
// state on it, restores the session-scoped state and swaps it in. It is
// the client's only dialer: the first dial is immediate (another backend
// is usually healthy) unless the breaker is open, then it waits the
// policy's backoff (capped by MaxBackoff, so that a restarting server is
// found within about that long), and once the breaker is open, one open
// period before each probe, which takes the breaker's one trial. It
// ends only with a new session, a refusal (the server answered the
// handshake with an error: dialling again cannot help), or Close.
func (c *Client) runFlight(f *flight, old *conn) {
	defer c.wg.Done()
	start := time.Now()
	bo := engine.NewBackOff(c.policy)
	for dials := 1; ; dials++ {
		c.mu.Lock()
		t, ok := c.br.probing()
		wait := c.br.openPeriod()
		c.mu.Unlock()
		c.emitTransitions(t)
		if !ok {
			// The breaker opened a moment ago: its first trial comes after
			// one open period.
			dials--
			if sleep(c.ctx, wait) != nil {
				c.finishFlight(f, old, nil, nil, ErrClosed, dials, start)
				return
			}
			continue
		}

		next, events, err := c.connectNew(old)
		if err == nil {
			c.finishFlight(f, old, next, events, nil, dials, start)
			return
		}
		if c.ctx.Err() != nil {
			c.finishFlight(f, old, nil, nil, ErrClosed, dials, start)
			return
		}
		class := retry.Classify(err)
		if class == retry.Cancelled {
			class = retry.NotSent // the connect timeout: nobody answered
		}
		if class == retry.Protocol || errors.Is(err, errNilTransport) {
			// The server is up and refuses the handshake (401, version), or
			// the factory makes no transport: dialling again cannot help.
			c.mu.Lock()
			t := c.br.success()
			c.mu.Unlock()
			c.emitTransitions(t)
			c.finishFlight(f, old, nil, nil, err, dials, start)
			return
		}
		c.log.Debug("reconnect attempt failed", zap.Int("attempt", dials), zap.Stringer("class", class), zap.Error(err))
		c.emit(Event{Kind: EventAttemptFailed, Method: "initialize", Class: class, Attempt: dials, Err: err, Generation: old.gen})
		c.mu.Lock()
		t = c.br.probeFailed(err)
		c.brDirty.Store(true)
		wait = c.br.openPeriod()
		if !c.br.isOpen() {
			wait = bo.NextBackOff()
			if wait == engine.Stop {
				// Past MaxElapsed the policy's backoff stops growing; the
				// reconnect goes on at its cap.
				wait = c.policy.MaxBackoff
			}
		}
		c.mu.Unlock()
		c.emitTransitions(t)
		if sleep(c.ctx, wait) != nil {
			c.finishFlight(f, old, nil, nil, ErrClosed, dials, start)
			return
		}
	}
}

// connectNew dials a new session to replace old and brings the client's
// state to it. It returns the events to report once the session is in use.
func (c *Client) connectNew(old *conn) (*conn, []Event, error) {
	next, err := c.dial(c.ctx, old.gen+1)
	if err != nil {
		return nil, nil, err
	}
	// Requests sent on the old session may still be running on a live
	// server; copying its state before they end would lose their writes.
	// Wait for them (bounded) before resuming.
	if old.obs != nil {
		wctx, cancel := context.WithTimeout(c.ctx, c.connectTimeout)
		old.obs.waitIdle(wctx)
		cancel()
	}
	events := []Event{{Kind: EventReconnected, SessionID: next.cs.ID(), OldSessionID: old.cs.ID(), Generation: next.gen}}
	resumed, err := c.resume(next.cs)
	if err != nil {
		// The new session died before it answered resume_session: using
		// it would fail the call again. Drop it and dial another.
		_ = next.close()
		return nil, nil, fmt.Errorf("resume_session on the new session: %w", err)
	}
	events = append(events, resumed...)
	events = append(events, c.restore(next.cs)...)
	return next, events, nil
}

// finishFlight ends f: with next in place of old (err nil), or with err.
// The swap, the breaker's closing and the end of the flight happen in one
// critical section, so that a caller that fails on the new session starts
// a new flight instead of waiting on this one; the events are queued there
// too, before any caller can act on the new session.
func (c *Client) finishFlight(f *flight, old, next *conn, events []Event, err error, dials int, start time.Time) {
	d := time.Since(start)
	c.mu.Lock()
	if err == nil && c.closed {
		err = ErrClosed
	}
	f.info.End, f.info.Dials, f.info.Err = time.Now(), dials, err
	if err == nil {
		f.info.SessionID = next.cs.ID()
		for _, ev := range events {
			switch ev.Kind {
			case EventResumed:
				r := ev.Resume
				f.info.Resume = &r
			case EventResumeSkipped, EventResumeFailed:
				f.info.ResumeErr = ev.Err
			}
		}
	}
	if err == nil {
		events[0].Attempt, events[0].Duration = dials, d
		for _, ev := range events {
			c.emit(ev)
		}
		c.cur = next
		c.emitTransitions(c.br.success())
		c.brDirty.Store(false)
	} else {
		c.emit(Event{Kind: EventReconnectFailed, OldSessionID: old.cs.ID(), Generation: old.gen, Attempt: dials, Duration: d, Err: err})
	}
	c.flight = nil
	f.err = err
	c.mu.Unlock()
	close(f.done)

	if err != nil {
		c.stats.reconnectFailures.Add(1)
		c.log.Warn("reconnect failed", zap.String("session_id", old.cs.ID()), zap.Uint64("generation", old.gen),
			zap.Int("attempts", dials), zap.Duration("duration", d), zap.Error(err))
		if next != nil {
			_ = next.close()
		}
		return
	}
	c.stats.reconnects.Add(1)
	c.log.Info("reconnected", zap.String("session_id", next.cs.ID()), zap.String("old_session_id", old.cs.ID()),
		zap.Uint64("generation", next.gen), zap.Int("attempts", dials), zap.Duration("duration", d))
	// The old session is dead or suspect, and out of use. Closing it
	// releases its goroutines and context; it may wait for calls still in
	// flight on it, so it happens on a goroutine of its own.
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_ = old.close()
	}()
}

// resume asks the new session's server to copy the state of the session
// the client's state lives in, and records which session that is now. It
// returns an error only when no answer came (the session died too); a
// refusal or a missing tool is reported in the events and the reconnect
// stands.
func (c *Client) resume(cs *mcp.ClientSession) ([]Event, error) {
	c.mu.Lock()
	from := c.resumeFrom
	c.mu.Unlock()
	newID := cs.ID()
	skip := func(why error) []Event {
		c.stats.resumesSkipped.Add(1)
		c.log.Info("resume skipped", zap.String("session_id", newID), zap.String("old_session_id", from), zap.String("reason", why.Error()))
		return []Event{{Kind: EventResumeSkipped, SessionID: newID, OldSessionID: from, Err: why}}
	}
	if from == "" || newID == "" {
		c.setResumeFrom(newID, true)
		return skip(fmt.Errorf("%w: session has no ID (stateless or stdio)", resume.ErrUnsupported)), nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.connectTimeout)
	defer cancel()
	res, err := c.resumer.Resume(ctx, cs, from)
	switch {
	case errors.Is(err, resume.ErrUnsupported):
		c.setResumeFrom(from, true)
		return skip(err), nil
	case err != nil && !errors.Is(err, resume.ErrRejected) && retry.Classify(err) != retry.Protocol:
		return nil, err
	case err != nil:
		c.setResumeFrom(from, true)
		c.stats.resumeFailures.Add(1)
		c.log.Warn("resume failed; keeping the old session ID for the next reconnect",
			zap.String("session_id", newID), zap.String("old_session_id", from), zap.String("error", err.Error()))
		return []Event{{Kind: EventResumeFailed, SessionID: newID, OldSessionID: from, Err: err}}, nil
	}
	// Only a resume that carried the state over keeps the lineage; after
	// not_found the server's records of earlier calls are gone.
	c.setResumeFrom(newID, res.Status == resume.StatusNotFound)
	c.stats.resumes.Add(1)
	c.stats.keysCopied.Add(int64(res.KeysCopied))
	c.log.Info("session resumed", zap.String("session_id", newID), zap.String("old_session_id", from),
		zap.String("status", string(res.Status)), zap.Int("keys_copied", res.KeysCopied))
	return []Event{{Kind: EventResumed, SessionID: newID, OldSessionID: from, Resume: res}}, nil
}

// setResumeFrom records the session the client's server state now lives
// in, and whether the reconnect broke the lineage of that state.
func (c *Client) setResumeFrom(id string, lineageBroken bool) {
	c.mu.Lock()
	c.resumeFrom = id
	if lineageBroken {
		c.lineage.Add(1)
	}
	c.mu.Unlock()
}

// sleep waits d, or until ctx ends (returning ctx.Err()).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
