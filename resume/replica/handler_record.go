//lint:file-ignore SA1019 a session's log level (logging/setLevel, deprecated by SEP-2577 but still served to clients before 2026-07-28) is part of what an adopted session keeps.

package replica

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume"
)

// sessionRecordKey is the key of a session's record, in the store session
// recordSession(id).
const sessionRecordKey = ReservedPrefix + "session"

func recordSession(id string) string { return internalSessionPrefix + "session-" + id }

// sessionRecord is what a replica needs to rebuild a session.
type sessionRecord struct {
	// Rev counts the changes of State and Subscriptions, so that a
	// replica's local copy knows it is stale.
	Rev       int64                   `json:"rev"`
	Principal string                  `json:"principal,omitempty"`
	State     *mcp.ServerSessionState `json:"state"`
	// Subscriptions are the URIs of resources/subscribe, in order.
	Subscriptions []string  `json:"subscriptions,omitempty"`
	Touched       time.Time `json:"touched"`
}

// localEvents is the event store as a replica's transports see it: a
// transport closes when its replica lets go of its local copy, but the
// session goes on elsewhere, so closing must not drop the session's
// events. They are dropped when the session is deleted, or expire.
type localEvents struct{ mcp.EventStore }

func (localEvents) SessionClosed(context.Context, string) error { return nil }

// injectTimeout bounds one request that a replica sends a local copy of a
// session to apply a change of its record.
const injectTimeout = 10 * time.Second

// instrument adds the record-keeping middleware to srv, once.
func (h *Handler) instrument(srv *mcp.Server) {
	h.mu.Lock()
	seen := h.servers[srv]
	h.servers[srv] = true
	h.mu.Unlock()
	if !seen {
		srv.AddReceivingMiddleware(h.middleware)
	}
}

// middleware records, in the session's record, every change of what a
// replica needs to rebuild the session, before the client sees the answer:
// a client that goes on through another replica finds it there.
func (h *Handler) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		switch method {
		case "initialize", "notifications/initialized", "logging/setLevel", "resources/subscribe", "resources/unsubscribe":
		default:
			return next(ctx, method, req)
		}
		ss, _ := req.GetSession().(*mcp.ServerSession)
		if ss == nil || ss.ID() == "" {
			return next(ctx, method, req)
		}
		h.mu.Lock()
		ls := h.sessions[ss.ID()]
		h.mu.Unlock()
		if ls == nil || ls.ss != nil && ls.ss != ss {
			return next(ctx, method, req) // a session of another handler
		}
		res, err := next(ctx, method, req)
		if err != nil {
			return res, err
		}
		if ir, ok := res.(*mcp.InitializeResult); ok {
			advertiseCapability(&ir.Capabilities, resume.AdoptCapability, map[string]any{"eventStore": h.events != nil})
		}
		if err := h.record(ctx, ls, method, req, res); err != nil {
			return nil, fmt.Errorf("%s succeeded on this replica, but other replicas could not be told: %w", method, err)
		}
		return res, nil
	}
}

// record writes the change that a successful method made to the session.
func (h *Handler) record(ctx context.Context, ls *localSession, method string, req mcp.Request, res mcp.Result) error {
	ls.mu.Lock()
	known := ls.known
	ls.mu.Unlock()
	var change func(*sessionRecord) bool
	switch p := req.GetParams().(type) {
	case *mcp.InitializeParams:
		ir, ok := res.(*mcp.InitializeResult)
		if !ok {
			return nil
		}
		principal := Principal(req)
		change = func(r *sessionRecord) bool {
			if r.State != nil {
				return false // the principal is fixed when the session is created
			}
			r.Principal = principal
			r.State = &mcp.ServerSessionState{InitializeParams: p, NegotiatedProtocolVersion: ir.ProtocolVersion}
			return true
		}
	case *mcp.InitializedParams:
		if known.State != nil && known.State.InitializedParams != nil {
			return nil
		}
		if p == nil {
			p = &mcp.InitializedParams{}
		}
		// The handshake is complete: the session exists from now on, and
		// its owner is the principal that initialized it. A session that
		// never gets here leaves nothing in the store (see the cleanup of
		// uninitialized sessions).
		principal := Principal(req)
		if known.State != nil {
			principal = known.Principal
		}
		if err := h.sessionCreated(ctx, ls.id, principal); err != nil {
			return err
		}
		change = func(r *sessionRecord) bool {
			if r.State == nil || r.State.InitializedParams != nil {
				return false
			}
			r.State.InitializedParams = p
			return true
		}
	case *mcp.SetLoggingLevelParams:
		if known.State != nil && known.State.LogLevel == p.Level {
			return nil
		}
		change = func(r *sessionRecord) bool {
			if r.State == nil || r.State.LogLevel == p.Level {
				return false
			}
			r.State.LogLevel = p.Level
			return true
		}
	case *mcp.SubscribeParams:
		if contains(known.Subscriptions, p.URI) {
			return nil
		}
		change = func(r *sessionRecord) bool {
			if contains(r.Subscriptions, p.URI) {
				return false
			}
			r.Subscriptions = append(r.Subscriptions, p.URI)
			return true
		}
	case *mcp.UnsubscribeParams:
		if !contains(known.Subscriptions, p.URI) {
			return nil
		}
		change = func(r *sessionRecord) bool {
			i := slices.Index(r.Subscriptions, p.URI)
			if i < 0 {
				return false
			}
			r.Subscriptions = slices.Delete(r.Subscriptions, i, i+1)
			return true
		}
	default:
		return nil
	}
	rec, err := h.update(context.WithoutCancel(ctx), ls.id, change)
	if err != nil {
		return err
	}
	h.know(ls, rec)
	return nil
}

// sessionCreated fixes, when a session is created (its client completed
// the handshake with notifications/initialized), the owner of the session's state in the store:
// principal, or no principal for an anonymous session, so that no later
// writer can claim it (see [Values] and the resume tool, which check it).
// It fails with [ErrNotOwner] when another principal already owns state
// under this ID.
func (h *Handler) sessionCreated(ctx context.Context, id, principal string) error {
	return fixOwner(ctx, h.store, id, principal)
}

// inject sends a request (or a notification) to a local copy of a
// session through its transport, as a client would, and waits for the
// answer: the one way to change an existing go-sdk session's state with
// the SDK's exported API.
func inject(ls *localSession, version, method string, params any) error {
	msg := map[string]any{"jsonrpc": "2.0", "method": method, "params": params}
	notification := strings.HasPrefix(method, "notifications/")
	if !notification {
		msg["id"] = "mcpkit-replica-" + rand.Text()
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), injectTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", ls.id)
	req.Header.Set("Mcp-Method", method)
	if version != "" {
		req.Header.Set("Mcp-Protocol-Version", version)
	}
	var sink responseSink
	ls.transport.ServeHTTP(&sink, req)
	if sink.status >= 300 {
		return fmt.Errorf("HTTP %d: %s", sink.status, strings.TrimSpace(sink.body.String()))
	}
	if notification {
		return nil
	}
	return responseError(sink.body.Bytes())
}

// responseError finds a JSON-RPC error in a response body, plain JSON or
// an event stream.
func responseError(body []byte) error {
	var found bool
	for _, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimPrefix(bytes.TrimSpace(line), []byte("data:"))
		var resp struct {
			ID    any `json:"id"`
			Error *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(bytes.TrimSpace(line), &resp) != nil || resp.ID == nil {
			continue
		}
		if resp.Error != nil {
			return fmt.Errorf("JSON-RPC error %d: %s", resp.Error.Code, resp.Error.Message)
		}
		found = true
	}
	if !found {
		return errors.New("no response")
	}
	return nil
}

// responseSink is the http.ResponseWriter of an injected request.
type responseSink struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (s *responseSink) Header() http.Header {
	if s.header == nil {
		s.header = http.Header{}
	}
	return s.header
}

func (s *responseSink) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
}

func (s *responseSink) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.body.Write(b)
}

func (s *responseSink) Flush() {}

// sync applies to a local copy the changes of the record made through
// other replicas, by sending the session the requests that made them.
func (h *Handler) sync(ls *localSession, known, rec sessionRecord) error {
	h.know(ls, rec) // first: the middleware then sees nothing new to write
	if rec.State == nil {
		return nil
	}
	version := rec.State.NegotiatedProtocolVersion
	if rec.State.InitializedParams != nil && (known.State == nil || known.State.InitializedParams == nil) {
		if err := inject(ls, version, "notifications/initialized", rec.State.InitializedParams); err != nil {
			return fmt.Errorf("session %s: applying notifications/initialized: %w", ls.id, err)
		}
	}
	if rec.State.LogLevel != "" && (known.State == nil || rec.State.LogLevel != known.State.LogLevel) {
		if err := inject(ls, version, "logging/setLevel", &mcp.SetLoggingLevelParams{Level: rec.State.LogLevel}); err != nil {
			return fmt.Errorf("session %s: applying its log level: %w", ls.id, err)
		}
	}
	for _, uri := range known.Subscriptions {
		if !contains(rec.Subscriptions, uri) {
			if err := inject(ls, version, "resources/unsubscribe", &mcp.UnsubscribeParams{URI: uri}); err != nil {
				return fmt.Errorf("session %s: applying resources/unsubscribe %s: %w", ls.id, h.logged(uri), err)
			}
		}
	}
	for _, uri := range rec.Subscriptions {
		if !contains(known.Subscriptions, uri) {
			if err := inject(ls, version, "resources/subscribe", &mcp.SubscribeParams{URI: uri}); err != nil {
				return fmt.Errorf("session %s: applying resources/subscribe %s: %w", ls.id, h.logged(uri), err)
			}
		}
	}
	return nil
}

func (h *Handler) ttl() time.Duration {
	if h.opts.SessionTTL > 0 {
		return h.opts.SessionTTL
	}
	if d, ok := h.store.(interface{ DefaultTTL() time.Duration }); ok {
		return d.DefaultTTL()
	}
	return 0
}

// load reads the record of session id.
func (h *Handler) load(ctx context.Context, id string) (sessionRecord, bool, error) {
	b, ok, err := h.store.Get(ctx, recordSession(id), sessionRecordKey)
	if err != nil || !ok {
		return sessionRecord{}, false, err
	}
	var rec sessionRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return sessionRecord{}, false, fmt.Errorf("corrupt record of session %s: %w", id, err)
	}
	return rec, true, nil
}

// update changes the record of session id with fn, which reports whether
// it changed anything that a replica must apply (then Rev goes up), and
// returns the record written. An absent record is created.
func (h *Handler) update(ctx context.Context, id string, fn func(*sessionRecord) bool) (sessionRecord, error) {
	var written sessionRecord
	_, err := h.store.Update(ctx, recordSession(id), sessionRecordKey, h.opts.SessionTTL, func(old []byte, ok bool) ([]byte, error) {
		var rec sessionRecord
		if ok {
			if err := json.Unmarshal(old, &rec); err != nil {
				return nil, fmt.Errorf("corrupt record of session %s: %w", id, err)
			}
		}
		if fn(&rec) {
			rec.Rev++
		}
		rec.Touched = time.Now().UTC()
		written = rec
		return json.Marshal(rec)
	})
	return written, err
}

func principalOf(r *http.Request) string {
	if ti := auth.TokenInfoFromContext(r.Context()); ti != nil {
		return ti.UserID
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
