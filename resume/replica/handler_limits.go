package replica

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// The limits of HandlerOptions (MaxSessionsPerClient, MaxPendingSessions,
// MaxLoggedBytes) are enforced here. Both session limits count local
// copies under h.mu, so checking one costs a map lookup on the paths that
// create a local copy and nothing on a request to a live one.

// limitRetryAfter is the Retry-After, in seconds, of an over-limit answer:
// long enough that a client backing off does not hammer the replica, short
// enough that a session freed meanwhile is soon used.
const limitRetryAfter = 1

var (
	errTooManySessions = errors.New("too many sessions for this client")
	errTooManyPending  = errors.New("too many sessions waiting to be initialized")
)

// limitError is the refusal of a request over a limit.
type limitError struct {
	status int // 429 or 503: both prove the request did not run
	err    error
}

func (e *limitError) Error() string { return e.err.Error() }
func (e *limitError) Unwrap() error { return e.err }

// clientOf is the client a request counts against: its principal, or the
// IP address of the connection for an anonymous request. The two cannot
// collide: an address key starts with "addr:" and a principal key with
// "user:".
func clientOf(r *http.Request) string {
	if p := principalOf(r); p != "" {
		return "user:" + p
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "addr:" + host
}

// admitLocked counts a new local copy of a session for client, or returns
// why it is over a limit. pending is true for a session created here,
// which counts as pending until it is initialized. h.mu must be held.
func (h *Handler) admitLocked(client string, pending bool) *limitError {
	if max := h.opts.MaxSessionsPerClient; max > 0 && h.clients[client] >= max {
		return &limitError{http.StatusTooManyRequests, errTooManySessions}
	}
	if max := h.opts.MaxPendingSessions; pending && max > 0 && h.pending >= max {
		return &limitError{http.StatusServiceUnavailable, errTooManyPending}
	}
	h.clients[client]++
	if pending {
		h.pending++
	}
	return nil
}

// releaseLocked undoes admitLocked for ls, once. h.mu must be held.
func (h *Handler) releaseLocked(ls *localSession) {
	if ls.released {
		return
	}
	ls.released = true
	if n := h.clients[ls.client] - 1; n > 0 {
		h.clients[ls.client] = n
	} else {
		delete(h.clients, ls.client)
	}
	if ls.pending {
		ls.pending = false
		h.pending--
	}
}

// initialized marks ls as no longer pending: from its next request's end
// on, its idle timer runs IdleTimeout instead of InitializeTimeout.
func (h *Handler) initialized(ls *localSession) {
	h.mu.Lock()
	was := ls.pending
	if ls.pending && !ls.released {
		ls.pending = false
		h.pending--
	}
	h.mu.Unlock()
	if was {
		ls.mu.Lock()
		ls.idleTimeout = h.opts.IdleTimeout
		switch {
		case ls.timer == nil || ls.closing:
		case ls.idleTimeout <= 0:
			ls.timer.Stop() // idle copies are never closed
			ls.timer = nil
		case ls.refs == 0:
			// notifications/initialized is answered before it is handled:
			// its request's end armed the timer for InitializeTimeout.
			ls.timer.Reset(ls.idleTimeout)
		}
		ls.mu.Unlock()
	}
}

// refuseOverLimit answers a request refused by a limit.
func refuseOverLimit(w http.ResponseWriter, le *limitError) {
	w.Header().Set("Retry-After", strconv.Itoa(limitRetryAfter))
	http.Error(w, le.Error(), le.status)
}

// quoteCut quotes s for a log line or an answer, cut to at most max bytes
// of s (max <= 0: whole), so that a hostile request cannot flood either.
func quoteCut(s string, max int) string {
	if max <= 0 || len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..." + strconv.Itoa(len(s)) + " bytes"
}

// logged cuts s for a log line, as quoteCut does, but without quotes when
// it is whole: log handlers quote values themselves.
func (h *Handler) logged(s string) string {
	if max := h.opts.MaxLoggedBytes; max > 0 && len(s) > max {
		return quoteCut(s, max)
	}
	return s
}
