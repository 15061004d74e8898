package replica

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// localSession is a replica's live copy of a session: created here by
// serveNew, or adopted from the session's record by session.
type localSession struct {
	id        string
	principal string        // of the record; "" for an anonymous session
	client    string        // the limits' key (clientOf) it counts against
	created   bool          // by this replica (serveNew), not adopted
	ready     chan struct{} // closed when ss is set or err
	err       error
	status    int // HTTP status of err
	ss        *mcp.ServerSession
	transport *mcp.StreamableServerTransport

	idleTimeout time.Duration

	// Guarded by the Handler's mu.
	pending  bool // counted in Handler.pending
	released bool // no longer counted by the limits

	mu      sync.Mutex // guards the fields below
	known   sessionRecord
	checked time.Time // when known was last read or written
	refs    int
	timer   *time.Timer
	closing bool
}

var (
	errNotFound          = errors.New("session not found")
	errUserMismatch      = errors.New("session user mismatch")
	errShuttingDown      = errors.New("server shutting down")
	errNoServerAvailable = errors.New("no server available")
)

// cleanupTimeout bounds the store operations that delete what a session
// that never initialized left behind, once its local copy has closed.
const cleanupTimeout = 10 * time.Second

// serveNew creates a session for a POST without a session ID (normally
// initialize). Its record is written by the middleware when initialize
// succeeds; a session that did not initialize is closed at once, and
// leaves nothing behind (see discardUninitialized).
func (h *Handler) serveNew(w http.ResponseWriter, r *http.Request) {
	srv := h.getServer(r)
	if srv == nil {
		http.Error(w, errNoServerAvailable.Error(), http.StatusBadRequest)
		return
	}
	h.instrument(srv)
	ls := &localSession{id: rand.Text(), principal: principalOf(r), client: clientOf(r), created: true, ready: make(chan struct{})}
	ls.transport = &mcp.StreamableServerTransport{SessionID: ls.id, EventStore: h.local}
	if err := h.register(ls, true); err != nil {
		h.refuse(w, r, "", err)
		return
	}
	ss, err := srv.Connect(context.WithoutCancel(r.Context()), ls.transport, nil)
	if err != nil {
		h.fail(ls, http.StatusInternalServerError, fmt.Errorf("failed connection: %w", err))
		http.Error(w, "failed connection", http.StatusInternalServerError)
		return
	}
	h.live(ls, ss)
	ls.start()
	ls.transport.ServeHTTP(w, r)
	ls.end()
	if ss.InitializeParams() == nil {
		ss.Close()
		h.forget(ls) // now: its place in the limits is free
	}
}

// serveSession serves a request on session id.
func (h *Handler) serveSession(w http.ResponseWriter, r *http.Request, id string) {
	ls, status, err := h.session(r, id)
	if err != nil {
		h.refuse(w, r, id, &statusError{status, err})
		return
	}
	ls.start()
	defer ls.end()
	ls.transport.ServeHTTP(w, r)
}

// statusError is an error with the HTTP status that answers it.
type statusError struct {
	status int
	err    error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// refuse answers a refused request and logs it, with what it quotes of
// the request cut to MaxLoggedBytes.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, id string, err error) {
	status := http.StatusInternalServerError
	var se *statusError
	if errors.As(err, &se) {
		status = se.status
	}
	var le *limitError
	if errors.As(err, &le) {
		status = le.status
	}
	h.opts.Logger.Warn("request refused", "session", h.logged(id), "method", r.Method, "status", status, "err", h.logged(err.Error()))
	if le != nil {
		refuseOverLimit(w, le)
		return
	}
	http.Error(w, err.Error(), status)
}

// session returns the live local copy of session id, adopting it from its
// record if this replica has none, after checking the request's principal
// and, once the copy's RecordLease has run out, that the session still
// exists.
func (h *Handler) session(r *http.Request, id string) (*localSession, int, error) {
	if err := checkClientSessionID(id); err != nil {
		return nil, http.StatusNotFound, errNotFound
	}
	principal := principalOf(r)
	for {
		h.mu.Lock()
		ls, ok := h.sessions[id]
		var mine bool
		switch {
		case ok:
		case h.closed:
			h.mu.Unlock()
			return nil, http.StatusServiceUnavailable, errShuttingDown
		default:
			ls = &localSession{id: id, client: clientOf(r), ready: make(chan struct{})}
			if le := h.admitLocked(ls.client, false); le != nil {
				h.mu.Unlock()
				return nil, le.status, le
			}
			h.sessions[id] = ls
			mine = true
		}
		h.mu.Unlock()
		if mine {
			h.adopt(r, ls)
		}
		select {
		case <-ls.ready:
		case <-r.Context().Done():
			return nil, http.StatusServiceUnavailable, r.Context().Err()
		}
		if ls.err != nil {
			if ls.status == http.StatusForbidden && ls.principal == principal {
				// The adoption was refused to another principal's request
				// that got there first; this request's principal owns the
				// session: adopt it afresh. Only the refused request fails.
				continue
			}
			return nil, ls.status, ls.err
		}
		ls.mu.Lock()
		closing := ls.closing
		ls.mu.Unlock()
		if closing {
			// Its local copy is closing (idle, or deleted): forget it and
			// adopt the session afresh, if it still exists.
			h.forget(ls)
			continue
		}
		if ls.principal != "" && ls.principal != principal {
			return nil, http.StatusForbidden, errUserMismatch
		}
		if !mine {
			if status, err := h.refresh(r.Context(), ls); err != nil {
				return nil, status, err
			}
		}
		return ls, 0, nil
	}
}

// adopt builds a local copy of session ls.id from its record.
func (h *Handler) adopt(r *http.Request, ls *localSession) {
	ctx := r.Context()
	rec, ok, err := h.load(ctx, ls.id)
	switch {
	case err != nil:
		h.fail(ls, http.StatusServiceUnavailable, fmt.Errorf("reading the record of session %s: %w", ls.id, err))
		return
	case !ok || rec.State == nil || rec.State.InitializeParams == nil:
		h.fail(ls, http.StatusNotFound, errNotFound)
		return
	}
	ls.principal = rec.Principal
	if ls.principal != "" && ls.principal != principalOf(r) {
		// Refuse before building anything: nothing of the session is
		// touched for a request of another principal. Requests of the
		// owner waiting on ls adopt afresh (see session).
		h.fail(ls, http.StatusForbidden, errUserMismatch)
		return
	}
	srv := h.getServer(r)
	if srv == nil {
		h.fail(ls, http.StatusBadRequest, errNoServerAvailable)
		return
	}
	h.instrument(srv)
	state := *rec.State
	h.know(ls, rec)
	ls.transport = &mcp.StreamableServerTransport{SessionID: ls.id, EventStore: h.local}
	ss, err := srv.Connect(context.WithoutCancel(ctx), ls.transport, &mcp.ServerSessionOptions{State: &state})
	if err != nil {
		h.fail(ls, http.StatusInternalServerError, fmt.Errorf("adopting session %s: %w", ls.id, err))
		return
	}
	for _, uri := range rec.Subscriptions {
		if err := inject(ls, rec.State.NegotiatedProtocolVersion, "resources/subscribe", &mcp.SubscribeParams{URI: uri}); err != nil {
			ss.Close()
			h.fail(ls, http.StatusInternalServerError, fmt.Errorf("adopting session %s: replaying its subscription to %s: %w", ls.id, h.logged(uri), err))
			return
		}
	}
	h.live(ls, ss)
	h.opts.Logger.Info("session adopted", "session", ls.id, "subscriptions", len(rec.Subscriptions))
}

// refresh brings a local copy in line with the session's record, which
// other replicas may have changed, and keeps the record alive; within the
// copy's RecordLease it trusts the copy and reads nothing.
func (h *Handler) refresh(ctx context.Context, ls *localSession) (int, error) {
	ls.mu.Lock()
	known, checked := ls.known, ls.checked
	ls.mu.Unlock()
	if lease := h.opts.RecordLease; lease > 0 && !checked.IsZero() && time.Since(checked) < lease {
		return 0, nil
	}
	rec, ok, err := h.load(ctx, ls.id)
	switch {
	case err != nil:
		return http.StatusServiceUnavailable, fmt.Errorf("reading the record of session %s: %w", ls.id, err)
	case !ok:
		// Deleted through another replica, or expired.
		ls.ss.Close()
		return http.StatusNotFound, errNotFound
	}
	if rec.Rev != known.Rev {
		if err := h.sync(ls, known, rec); err != nil {
			return http.StatusInternalServerError, err
		}
	} else {
		h.know(ls, rec)
	}
	ttl := h.ttl()
	if ttl <= 0 || time.Since(rec.Touched) > ttl/8 {
		// Keep the record alive, at most once per ttl/8 of requests; a
		// failure here is not the request's.
		if rec, err := h.update(ctx, ls.id, func(*sessionRecord) bool { return false }); err == nil {
			h.know(ls, rec)
		}
	}
	return 0, nil
}

// know records rec as what ls knows of its session's record, as of now.
func (h *Handler) know(ls *localSession, rec sessionRecord) {
	ls.mu.Lock()
	ls.known = rec
	ls.checked = time.Now()
	ls.mu.Unlock()
	if rec.State != nil && rec.State.InitializedParams != nil {
		h.initialized(ls)
	}
}

// serveDelete ends a session on every replica: its record goes, so other
// replicas answer 404 once their RecordLease has run out, and so do its
// events.
func (h *Handler) serveDelete(w http.ResponseWriter, r *http.Request, id string) {
	if err := checkClientSessionID(id); err != nil {
		h.refuse(w, r, id, &statusError{http.StatusNotFound, errNotFound})
		return
	}
	rec, ok, err := h.load(r.Context(), id)
	switch {
	case err != nil:
		h.refuse(w, r, id, &statusError{http.StatusServiceUnavailable, fmt.Errorf("reading the record of session %s: %w", id, err)})
		return
	case !ok:
		h.refuse(w, r, id, &statusError{http.StatusNotFound, errNotFound})
		return
	case rec.Principal != "" && rec.Principal != principalOf(r):
		h.refuse(w, r, id, &statusError{http.StatusForbidden, errUserMismatch})
		return
	}
	if err := h.store.Delete(r.Context(), recordSession(id), sessionRecordKey); err != nil {
		h.refuse(w, r, id, &statusError{http.StatusServiceUnavailable, fmt.Errorf("deleting the record of session %s: %w", id, err)})
		return
	}
	if h.events != nil {
		_ = h.events.SessionClosed(r.Context(), id)
	}
	h.mu.Lock()
	ls := h.sessions[id]
	h.mu.Unlock()
	if ls != nil {
		select {
		case <-ls.ready:
			if ls.ss != nil {
				ls.ss.Close()
				h.forget(ls) // now: its place in the limits is free
			}
		default:
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// register adds a new local session created here, counted by the limits.
func (h *Handler) register(ls *localSession, pending bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return &statusError{http.StatusServiceUnavailable, errShuttingDown}
	}
	if le := h.admitLocked(ls.client, pending); le != nil {
		return le
	}
	ls.pending = pending
	h.sessions[ls.id] = ls
	return nil
}

// fail ends an adoption or a creation that did not get a session.
func (h *Handler) fail(ls *localSession, status int, err error) {
	h.forget(ls)
	ls.err, ls.status = err, status
	close(ls.ready)
}

// live publishes a connected local session. A goroutine, which Close
// waits for, forgets it when it closes, and deletes what it leaves behind
// if it never initialized.
func (h *Handler) live(ls *localSession, ss *mcp.ServerSession) {
	ls.ss = ss
	ls.idleTimeout = h.opts.IdleTimeout
	if ls.pending && h.opts.InitializeTimeout > 0 && (h.opts.IdleTimeout <= 0 || h.opts.InitializeTimeout < h.opts.IdleTimeout) {
		ls.idleTimeout = h.opts.InitializeTimeout // until initialized
	}
	if ls.idleTimeout > 0 {
		ls.timer = time.AfterFunc(ls.idleTimeout, func() {
			ls.mu.Lock()
			ls.closing = true
			ls.mu.Unlock()
			ss.Close()
		})
	}
	h.wg.Add(1) // before ready: Close waits for ready, then for wg
	close(ls.ready)
	go func() {
		defer h.wg.Done()
		_ = ss.Wait()
		ls.mu.Lock()
		ls.closing = true
		if ls.timer != nil {
			ls.timer.Stop()
		}
		ls.mu.Unlock()
		h.discardUninitialized(ls)
		h.forget(ls)
	}()
}

// discardUninitialized deletes the record and the events of a session
// that never initialized, once its local copy has closed: such a session
// cannot be resumed, and a client that never finishes initializing must
// not leave anything in a shared store. A session that another replica
// has seen initialized (its record says so) is left alone.
func (h *Handler) discardUninitialized(ls *localSession) {
	ls.mu.Lock()
	known := ls.known
	ls.mu.Unlock()
	if known.State != nil && known.State.InitializedParams != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	// A session created here has a record only once this replica has
	// written one (initialize): its ID was never given out before.
	if !ls.created || known.State != nil {
		rec, ok, err := h.load(ctx, ls.id)
		if err != nil {
			h.opts.Logger.Warn("deleting an uninitialized session", "session", ls.id, "err", err)
			return
		}
		if ok && rec.State != nil && rec.State.InitializedParams != nil {
			return
		}
		if ok {
			if err := h.store.Delete(ctx, recordSession(ls.id), sessionRecordKey); err != nil {
				h.opts.Logger.Warn("deleting an uninitialized session", "session", ls.id, "err", err)
			}
		}
	}
	if h.events != nil {
		if err := h.events.SessionClosed(ctx, ls.id); err != nil {
			h.opts.Logger.Warn("deleting the events of an uninitialized session", "session", ls.id, "err", err)
		}
	}
}

// forget removes ls from the local sessions, if it is still there, and
// from the limits' counts.
func (h *Handler) forget(ls *localSession) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[ls.id] == ls {
		delete(h.sessions, ls.id)
	}
	h.releaseLocked(ls)
}

// start and end bracket a request, pausing the idle timer meanwhile.
func (ls *localSession) start() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.refs++
	if ls.timer != nil {
		ls.timer.Stop()
	}
}

func (ls *localSession) end() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.refs--
	if ls.refs == 0 && ls.timer != nil && !ls.closing {
		ls.timer.Reset(ls.idleTimeout)
	}
}
