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

// reconnect replaces the session of generation failedGen, once for all
// callers: the first caller starts the reconnect on a goroutine of the
// client's, later ones wait for it. A caller whose ctx ends stops waiting;
// the reconnect goes on for the others. It returns nil when a newer session
// is in place.
func (c *Client) reconnect(ctx context.Context, failedGen uint64, cause error) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.cur.gen > failedGen {
		c.mu.Unlock()
		return nil
	}
	f := c.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		c.flight = f
		old := c.cur
		c.wg.Add(1)
		go c.runReconnect(f, old, cause)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runReconnect dials until a new session is up (under the breaker, with the
// policy's backoff; the first dial is immediate, since another backend is
// usually healthy), resumes the old session's state on it, restores the
// session-scoped state, and swaps it in. Its events are emitted after the
// flight is over and before its waiters are released, never under a lock.
func (c *Client) runReconnect(f *flight, old *conn, cause error) {
	defer c.wg.Done()
	start := time.Now()
	oldID := old.cs.ID()
	var events []Event
	events = append(events, Event{Kind: EventReconnectStarted, Time: start, OldSessionID: oldID, Generation: old.gen, Err: cause})
	c.log.Info("reconnecting", zap.String("session_id", oldID), zap.Uint64("generation", old.gen), zap.Error(cause))

	var cs *mcp.ClientSession
	var obs *observer
	attempts := 0
	var last error
	refused := false // the server refused the handshake: not a matter of retrying
	dial := func() error {
		if c.ctx.Err() != nil {
			return backoff.Permanent(ErrClosed)
		}
		done, err := c.allow()
		if err != nil {
			if last != nil {
				err = fmt.Errorf("%w; last failure: %w", err, last)
			}
			return backoff.Permanent(err)
		}
		attempts++
		s, sobs, err := c.dial(c.ctx)
		if err != nil {
			class := retry.Classify(err)
			if c.ctx.Err() != nil {
				done(errNotCounted)
				return backoff.Permanent(ErrClosed)
			}
			if class == retry.Cancelled {
				// The connect timeout, not a caller: the server is not answering.
				class = retry.NotSent
			}
			if class == retry.Protocol {
				// The server is up and refuses the handshake (401, version):
				// it is healthy, and retrying cannot help.
				done(nil)
				last = err
				refused = true
				return backoff.Permanent(err)
			}
			done(err)
			c.flushBreakerEvents()
			last = err
			c.log.Debug("reconnect attempt failed", zap.Int("attempt", attempts), zap.Stringer("class", class), zap.Error(err))
			events = append(events, Event{Kind: EventAttemptFailed, Method: "initialize", Class: class, Attempt: attempts, Err: err, Generation: old.gen})
			return err
		}
		// Requests sent on the old session may still be running on a live
		// server; copying its state before they end would lose their
		// writes. Wait for them (bounded) before resuming.
		if old.obs != nil {
			wctx, cancel := context.WithTimeout(c.ctx, c.connectTimeout)
			old.obs.waitIdle(wctx)
			cancel()
		}
		resumed, err := c.resume(s, oldID)
		if err != nil {
			// The new session died before it answered resume_session:
			// resuming on it is impossible, and using it would fail the
			// call again. Drop it and dial another.
			_ = s.Close()
			done(err)
			c.flushBreakerEvents()
			last = err
			c.log.Debug("reconnect attempt failed while resuming", zap.Int("attempt", attempts), zap.Error(err))
			events = append(events, Event{Kind: EventAttemptFailed, Method: retry.MethodCallTool, Tool: resume.ToolName,
				Class: retry.Classify(err), Attempt: attempts, Err: err, Generation: old.gen})
			return err
		}
		done(nil)
		c.flushBreakerEvents()
		events = append(events, Event{Kind: EventReconnected, SessionID: s.ID(), OldSessionID: oldID, Generation: old.gen + 1,
			Attempt: attempts, Duration: time.Since(start)})
		events = append(events, resumed...)
		cs, obs = s, sobs
		return nil
	}
	p := c.policy
	bo := backoff.WithContext(backoff.WithMaxRetries(p.NewBackOff(), uint64(p.MaxAttempts-1)), c.ctx)
	err := backoff.Retry(dial, bo)
	if err != nil && c.ctx.Err() != nil {
		err = ErrClosed // Close cut the loop short
	}

	var next *conn
	if err == nil {
		events = append(events, c.restore(cs)...)
		c.mu.Lock()
		if c.closed {
			err = ErrClosed
		} else {
			next = c.watch(cs, obs, old.gen+1)
			c.cur = next
		}
		c.mu.Unlock()
		if err != nil {
			_ = cs.Close()
		}
	}
	if err != nil && !refused && !errors.Is(err, ErrCircuitOpen) && !errors.Is(err, ErrClosed) {
		if last == nil {
			last = err
		}
		err = &retry.ExhaustedError{Attempts: attempts, Reason: "reconnect", Last: last}
	}

	c.mu.Lock()
	c.flight = nil
	f.err = err
	c.mu.Unlock()

	d := time.Since(start)
	if err != nil {
		c.stats.reconnectFailures.Add(1)
		c.log.Warn("reconnect failed", zap.String("session_id", oldID), zap.Uint64("generation", old.gen),
			zap.Int("attempts", attempts), zap.Duration("duration", d), zap.Error(err))
		events = append(events, Event{Kind: EventReconnectFailed, OldSessionID: oldID, Generation: old.gen, Attempt: attempts, Duration: d, Err: err})
	} else {
		c.stats.reconnects.Add(1)
		c.log.Info("reconnected", zap.String("session_id", cs.ID()), zap.String("old_session_id", oldID),
			zap.Uint64("generation", next.gen), zap.Int("attempts", attempts), zap.Duration("duration", d))
	}
	// Emit before releasing the waiters, so that the events of the
	// reconnect come before those of the replays it allows. The flight is
	// already over: an OnEvent that calls the client starts a new one if it
	// must, instead of waiting on this one.
	for _, ev := range events {
		c.emit(ev)
	}
	close(f.done)
	if err == nil {
		// The old session is dead or suspect, and out of use; closing it
		// releases its goroutines.
		_ = old.cs.Close()
	}
}

// resume asks the new session's server to copy the state of the session
// the client's state lives in, and records which session that is now. It
// returns an error only when no answer came (the session died too); a
// refusal or a missing tool is reported in the events and the reconnect
// stands.
func (c *Client) resume(cs *mcp.ClientSession, oldID string) ([]Event, error) {
	c.mu.Lock()
	from := c.resumeFrom
	c.mu.Unlock()
	newID := cs.ID()
	skip := func(why error) []Event {
		c.stats.resumesSkipped.Add(1)
		c.log.Info("resume skipped", zap.String("session_id", newID), zap.String("old_session_id", from), zap.Error(why))
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
			zap.String("session_id", newID), zap.String("old_session_id", from), zap.Error(err))
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
		c.lineage++
	}
	c.mu.Unlock()
}
