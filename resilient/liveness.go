package resilient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/mcpkit/resilience/retry"
)

// Liveness tells "the server is slow" from "the route is dead". Nothing
// below MCP can: TCP keepalive and HTTP/2 PING are answered by the kernel
// of a wedged server, and plain http:// has no PING at all. A tool may
// legitimately run for minutes without a byte, so silence alone proves
// nothing either (an idle timeout in the style of Envoy's per-try idle
// timeout would cut it). What proves the route alive is an answer to a
// request sent after the silence began: when an attempt has seen nothing
// for LivenessSettings.Idle, the client probes the attempt's session (a
// ping; tools/list on 2026-07-28 sessions, which have no ping). An answer
// re-arms the wait; no answer within ProbeTimeout cuts the attempt as one
// that may have run ([ErrRouteDead]), and the replay rule decides what
// becomes of its call.
//
// The cost stays off the happy path: while calls are in flight, one
// goroutine per client wakes every Idle/5 and looks at them (it starts
// with the first attempt and ends after 2*Idle without any, so an idle
// client has none); an attempt is registered in a map (no allocation),
// and the transport's bytes are recorded on the probe the observed
// transports already allocate per attempt. Only a silent attempt costs a
// goroutine more: its session's probe.

// LivenessSettings configure how the client detects a dead route under an
// attempt in flight (see the package documentation, "Liveness").
type LivenessSettings struct {
	// Idle is how long an attempt may go without a sign of life before
	// the client probes its session. On streamable HTTP and SSE any byte
	// the session's transport reads is one (the attempt's answer, its
	// progress notifications, another call's answer, an event stream's
	// keep-alive); on stdio and other transports the client cannot watch,
	// only the attempt's start and the probes' answers count. A probe
	// answered re-arms the wait; the next probe of that session comes at
	// the earliest Idle later. 0 means 5s; a positive value must be at
	// least 10ms (MinLivenessIdle), so that a slow call cannot turn into
	// a flood of probes. Negative disables liveness: an attempt then ends
	// only with its answer, a broken connection, the caller's context or
	// Close.
	Idle time.Duration
	// ProbeTimeout bounds one probe. A probe that fails or gets no answer
	// within it declares the route dead and cuts the silent attempts of
	// its session. 0 means 2s. An attempt on a dead route therefore ends
	// within about Idle*6/5 + ProbeTimeout of its last sign of life (8s
	// by default).
	ProbeTimeout time.Duration
}

// MinLivenessIdle is the least positive LivenessSettings.Idle.
const MinLivenessIdle = 10 * time.Millisecond

const (
	defaultLivenessIdle  = 5 * time.Second
	defaultProbeTimeout  = 2 * time.Second
	livenessTicksPerIdle = 5
)

func (s LivenessSettings) validate() error {
	if s.Idle > 0 && s.Idle < MinLivenessIdle {
		return fmt.Errorf("resilient: Options.Liveness.Idle is %v; want 0 (default %v), at least %v, or negative (disabled)", s.Idle, defaultLivenessIdle, MinLivenessIdle)
	}
	if s.ProbeTimeout < 0 {
		return fmt.Errorf("resilient: Options.Liveness.ProbeTimeout is %v; want 0 (default %v) or more", s.ProbeTimeout, defaultProbeTimeout)
	}
	return nil
}

// RouteDeadError is the error of an attempt cut by liveness: it went
// silent for Idle and the probe of its session then failed. It matches
// [ErrRouteDead]. The attempt's request may have reached the server, so
// the call is replayed only when that cannot run it twice; otherwise the
// call's error matches [ErrOutcomeUnknown] and wraps this one.
type RouteDeadError struct {
	// Silent is how long the attempt had gone without a byte when it was
	// cut.
	Silent time.Duration
	// Probe is the probe's failure, as text: it is often a context
	// deadline, which must not make the attempt read as cancelled by its
	// caller.
	Probe string
}

func (e *RouteDeadError) Error() string {
	return fmt.Sprintf("resilient: route dead: no answer for %v and the probe of the session failed: %s",
		e.Silent.Round(time.Millisecond), e.Probe)
}

// Is reports whether target is [ErrRouteDead].
func (e *RouteDeadError) Is(target error) bool { return target == ErrRouteDead }

// liveness watches the attempts in flight of one client.
type liveness struct {
	c            *Client
	idle         time.Duration
	probeTimeout time.Duration

	mu      sync.Mutex
	running bool // the goroutine of run is on
	stopped bool // Close: no goroutine may start any more
	nextID  uint64
	watched map[uint64]watched
	routes  map[*conn]*route
}

// watched is one attempt in flight.
type watched struct {
	cur    *conn
	pr     *probe // nil on transports the client does not watch
	cancel context.CancelCauseFunc
	// since is when the attempt was sent, or when a probe answered for
	// its session after it went silent (unix nanoseconds).
	since int64
}

// route is the probe state of one session with silent attempts.
type route struct {
	probing   bool
	lastProbe int64 // when the last probe started (unix nanoseconds)
}

// newLiveness returns nil when liveness is disabled.
func newLiveness(c *Client, s LivenessSettings) *liveness {
	if s.Idle < 0 {
		return nil
	}
	l := &liveness{c: c, idle: s.Idle, probeTimeout: s.ProbeTimeout,
		watched: map[uint64]watched{}, routes: map[*conn]*route{}}
	if l.idle == 0 {
		l.idle = defaultLivenessIdle
	}
	if l.probeTimeout == 0 {
		l.probeTimeout = defaultProbeTimeout
	}
	return l
}

// run looks at the attempts in flight every Idle/5 until ctx ends or no
// attempt has been in flight for 2*Idle.
func (l *liveness) run(ctx context.Context) {
	defer l.c.wg.Done()
	t := time.NewTicker(max(l.idle/livenessTicksPerIdle, time.Millisecond))
	defer t.Stop()
	quiet := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if !l.check(ctx, now.UnixNano()) {
				quiet = 0
				continue
			}
			if quiet++; quiet < 2*livenessTicksPerIdle {
				continue
			}
			l.mu.Lock()
			if len(l.watched) == 0 {
				l.running = false
				l.mu.Unlock()
				return
			}
			l.mu.Unlock()
			quiet = 0
		}
	}
}

// stop keeps the goroutine of run from starting again: Close calls it
// before waiting for the client's goroutines.
func (l *liveness) stop() {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

// watch registers an attempt in flight on cur; cancel cuts it. It returns
// the id to pass to unwatch. A nil liveness watches nothing.
func (l *liveness) watch(cur *conn, pr *probe, cancel context.CancelCauseFunc) uint64 {
	if l == nil {
		return 0
	}
	now := time.Now().UnixNano()
	l.mu.Lock()
	l.nextID++
	id := l.nextID
	l.watched[id] = watched{cur: cur, pr: pr, cancel: cancel, since: now}
	if !l.running && !l.stopped {
		l.running = true
		l.c.wg.Add(1)
		go l.run(l.c.ctx)
	}
	l.mu.Unlock()
	return id
}

func (l *liveness) unwatch(id uint64) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.watched, id)
	l.mu.Unlock()
}

// lastSign returns when w last showed life: its start, a probe's answer,
// the last byte of its own answer, or the last byte its session's
// transport read for any request (an overloaded server still answering
// other calls is alive: probing it would only add to its load, and a
// probe queued behind that load could time out).
func (w *watched) lastSign() int64 {
	last := w.since
	if w.pr != nil {
		last = max(last, w.pr.lastRead.Load())
	}
	if obs := w.cur.obs; obs != nil {
		last = max(last, obs.lastRead.Load())
	}
	return last
}

// check starts a probe for each session with an attempt silent for Idle,
// unless one is in flight or the last started less than Idle ago: at most
// one probe per session per Idle, however many calls are silent on it. It
// reports whether no attempt was in flight.
func (l *liveness) check(ctx context.Context, now int64) (quiet bool) {
	idle := l.idle.Nanoseconds()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.watched) == 0 {
		clear(l.routes)
		return true
	}
	for _, w := range l.watched {
		if now-w.lastSign() < idle {
			continue
		}
		r := l.routes[w.cur]
		if r == nil {
			r = &route{}
			l.routes[w.cur] = r
		}
		if r.probing || r.lastProbe != 0 && now-r.lastProbe < idle {
			continue
		}
		r.probing, r.lastProbe = true, now
		l.c.wg.Add(1)
		go l.probe(ctx, w.cur, r, now)
	}
	return false
}

// probe asks cur's server for an answer and applies the verdict to the
// attempts of cur that were silent when it started.
func (l *liveness) probe(ctx context.Context, cur *conn, r *route, started int64) {
	defer l.c.wg.Done()
	err := l.ask(ctx, cur)
	l.mu.Lock()
	defer l.mu.Unlock()
	r.probing = false
	if ctx.Err() != nil {
		return // the client is closing: Close ends the attempts
	}
	now := time.Now().UnixNano()
	var cut []context.CancelCauseFunc
	var silent time.Duration
	for id, w := range l.watched {
		if w.cur != cur || w.lastSign() >= started {
			continue
		}
		if err == nil {
			// Alive, merely slow: wait another Idle before asking again.
			w.since = now
			l.watched[id] = w
			continue
		}
		silent = max(silent, time.Duration(now-w.lastSign()))
		cut = append(cut, w.cancel)
		delete(l.watched, id)
	}
	if err == nil || len(cut) == 0 {
		return
	}
	l.c.log.Warn("route dead: cutting silent attempts", zap.Uint64("generation", cur.gen),
		zap.String("session_id", cur.cs.ID()), zap.Int("attempts", len(cut)), zap.Duration("silent", silent), zap.Error(err))
	// The connections pooled for this route may be as dead as the one
	// cut: a replay must dial a new one.
	if cur.obs != nil && cur.obs.closeIdle != nil {
		cur.obs.closeIdle()
	}
	l.c.stats.livenessCuts.Add(int64(len(cut)))
	for _, cancel := range cut {
		cancel(&RouteDeadError{Silent: silent, Probe: err.Error()})
	}
}

// ask sends the probe: a ping, or tools/list on 2026-07-28 sessions,
// which have no ping (any answer, a JSON-RPC error included, proves the
// route alive; a ping's "method not found" too, which is why a tools/list
// answered from the SDK's cache is followed by one).
func (l *liveness) ask(ctx context.Context, cur *conn) error {
	ctx, cancel := context.WithTimeout(ctx, l.probeTimeout)
	defer cancel()
	var err error
	if l.c.writesMeta {
		pc := &probeCtx{Context: ctx}
		_, err = cur.cs.ListTools(pc, nil)
		if err == nil && cur.obs != nil && pc.probe.sentNone() {
			// Served from the SDK's list cache (a server's ttlMs): nothing
			// crossed the route. A ping does, and its "method not found"
			// is an answer.
			err = cur.cs.Ping(ctx, nil)
		}
	} else {
		err = cur.cs.Ping(ctx, nil)
	}
	if err == nil || retry.Classify(err) == retry.Protocol {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("no answer within %v", l.probeTimeout)
	}
	return err
}

// verdict returns the error of an attempt run on actx, derived from the
// caller's ctx: a [*RouteDeadError] when liveness cut it, err otherwise.
func (l *liveness) verdict(actx, ctx context.Context, err error) error {
	if l == nil || err == nil || ctx.Err() != nil {
		return err
	}
	var rd *RouteDeadError
	if cause := context.Cause(actx); errors.As(cause, &rd) {
		return rd
	}
	return err
}
