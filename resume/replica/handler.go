//lint:file-ignore SA1019 a session's log level (logging/setLevel, deprecated by SEP-2577 but still served to clients before 2026-07-28) is part of what an adopted session keeps.

package replica

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// HandlerOptions configure [NewHandler]. A nil *HandlerOptions and zero
// fields mean the documented defaults.
type HandlerOptions struct {
	// EventStore keeps the events of every stream so that a client that
	// lost a response stream gets the rest of it with Last-Event-ID, from
	// any replica. Share one between replicas (resume/redisstore's
	// EventStore) to recover results that finished on a replica that died
	// before delivering them. Nil means no stream resumption: a dropped
	// response stream loses its response.
	EventStore mcp.EventStore

	// SessionTTL is how long a session's record lives in the store after
	// its last request; an expired session answers 404 on every replica.
	// Zero or less means the store's default TTL (DefaultTTL, 30 minutes,
	// for this module's stores).
	SessionTTL time.Duration

	// IdleTimeout closes a replica's local copy of a session after that
	// long without a request. The session itself lives on in the store
	// (see SessionTTL) and is adopted again by the next request. Zero
	// means DefaultTTL (30 minutes); negative means never.
	IdleTimeout time.Duration

	// MaxRequestBodyBytes bounds a request body. Zero means
	// mcp.DefaultMaxRequestBodyBytes; negative means no limit.
	MaxRequestBodyBytes int64

	// Logger gets one Info line per adopted session and one Warn line per
	// refused request (unknown session, principal mismatch, store
	// failure), with the session ID. Nil means no logging.
	Logger *slog.Logger

	// DisableLocalhostProtection turns off the DNS-rebinding protection
	// that the go-sdk's handler also applies: a request received on a
	// loopback address whose Host header is not a loopback name is
	// refused with 403. Default false: protection on.
	DisableLocalhostProtection bool
}

// Handler is a streamable HTTP handler (protocol versions up to
// 2025-11-25) whose sessions every replica serves. It answers like the
// go-sdk's stateful mcp.StreamableHTTPHandler, except for a session ID it
// did not create: where the stock handler answers 404, Handler finds the
// session's record in the shared [Store] and adopts the session, with the
// same ID, so the client sees nothing. A balancer in front of the replicas
// needs no stickiness.
//
// # What is kept
//
// When a session is initialized, Handler writes its record: the
// initialize parameters and negotiated protocol version, the principal
// that created it (the UserID of the request's auth.TokenInfo, as the
// stock handler keeps it), and then the log level (logging/setLevel) and
// resource subscriptions as they change. A replica adopting the session
// rebuilds it from the record (mcp.Server.Connect with a
// ServerSessionState) and replays its subscriptions. Each request on a
// replica's local copy checks the record, so a level set or a
// subscription made through another replica is applied before the
// request is served, and a session deleted through another replica
// answers 404 everywhere. The record lives SessionTTL after its last
// request. Tool state belongs in [Values], which every replica shares.
//
// # What is not
//
// Work that was running on a replica that died is lost: with a shared
// EventStore a response already written to the stream reaches the
// client (its stream is replayed from the store on any replica), a
// response not yet written never will, and the client sees its request
// end without a response. Server-to-client messages sent outside a
// request (list-changed and resource-updated notifications) go out on
// the replica that holds the client's GET stream only. Custom methods
// added with AddReceivingCustomMethod are not served on adopted
// sessions, and requests of the stateless protocol (2026-07-28) are
// refused, as on the stock stateful handler.
//
// # Principals
//
// A request on a session created for an authenticated principal must
// carry the same principal (auth.TokenInfo UserID), or it gets 403 and
// the session is neither adopted nor served, on any replica.
//
// The first time it sees an *mcp.Server, Handler adds a receiving
// middleware to it that writes the records; getServer should therefore
// return a long-lived server (or a few), not a new one per request. It may
// be called more than once per request.
// Handler is safe for concurrent use.
type Handler struct {
	getServer func(*http.Request) *mcp.Server
	store     Store
	events    mcp.EventStore // as given; nil when none
	local     mcp.EventStore // events for the transports; nil when none
	opts      HandlerOptions

	mu       sync.Mutex
	sessions map[string]*localSession
	servers  map[*mcp.Server]bool // servers that have the middleware
	closed   bool
}

// sessionRecordKey is the key of a session's record, in the store session
// recordSession(id).
const sessionRecordKey = ReservedPrefix + "session"

func recordSession(id string) string { return internalSessionPrefix + "session-" + id }

// NewHandler returns a Handler serving the server that getServer returns
// for each request (nil answers 400), keeping session records in store.
// It panics if getServer or store is nil: both are start-up mistakes.
func NewHandler(getServer func(*http.Request) *mcp.Server, store Store, opts *HandlerOptions) *Handler {
	if getServer == nil || store == nil {
		panic("replica.NewHandler: nil getServer or store")
	}
	h := &Handler{
		getServer: getServer,
		store:     store,
		sessions:  make(map[string]*localSession),
		servers:   make(map[*mcp.Server]bool),
	}
	if opts != nil {
		h.opts = *opts
	}
	if h.opts.IdleTimeout == 0 {
		h.opts.IdleTimeout = DefaultTTL
	}
	if h.opts.MaxRequestBodyBytes == 0 {
		h.opts.MaxRequestBodyBytes = mcp.DefaultMaxRequestBodyBytes
	}
	if h.opts.Logger == nil {
		h.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if h.opts.EventStore != nil {
		h.events = h.opts.EventStore
		h.local = localEvents{h.opts.EventStore}
	}
	return h
}

// localEvents is the event store as a replica's transports see it: a
// transport closes when its replica lets go of its local copy, but the
// session goes on elsewhere, so closing must not drop the session's
// events. They are dropped when the session is deleted, or expire.
type localEvents struct{ mcp.EventStore }

func (localEvents) SessionClosed(context.Context, string) error { return nil }

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

// localSession is a replica's live copy of a session.
type localSession struct {
	id        string
	principal string
	ready     chan struct{} // closed when ss is set or err
	err       error
	status    int // HTTP status of err
	ss        *mcp.ServerSession
	transport *mcp.StreamableServerTransport

	idleTimeout time.Duration

	mu      sync.Mutex // guards the fields below
	known   sessionRecord
	refs    int
	timer   *time.Timer
	closing bool
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.opts.DisableLocalhostProtection && rebinding(r) {
		http.Error(w, fmt.Sprintf("Forbidden: invalid Host header %q", r.Host), http.StatusForbidden)
		return
	}
	if r.Body != nil && h.opts.MaxRequestBodyBytes > 0 {
		r.Body = http.MaxBytesReader(w, r.Body, h.opts.MaxRequestBodyBytes)
	}
	id := r.Header.Get("Mcp-Session-Id")
	if r.Method == http.MethodPost || r.Method == http.MethodGet {
		ctx, ok := h.sdkContext(w, r)
		if !ok {
			return
		}
		r = r.WithContext(ctx)
	}
	switch r.Method {
	case http.MethodPost:
		if mediaType(r.Header.Get("Content-Type")) != "application/json" {
			http.Error(w, "Content-Type must be 'application/json'", http.StatusUnsupportedMediaType)
			return
		}
		if jsonOK, streamOK := accepts(r.Header.Values("Accept")); !jsonOK || !streamOK {
			http.Error(w, "Accept must contain both 'application/json' and 'text/event-stream'", http.StatusBadRequest)
			return
		}
		if id == "" {
			h.serveNew(w, r)
			return
		}
	case http.MethodGet:
		if _, streamOK := accepts(r.Header.Values("Accept")); !streamOK {
			http.Error(w, "Accept must contain 'text/event-stream' for GET requests", http.StatusBadRequest)
			return
		}
		if id == "" {
			http.Error(w, "Bad Request: GET requires an Mcp-Session-Id header", http.StatusBadRequest)
			return
		}
	case http.MethodDelete:
		if id == "" {
			http.Error(w, "Bad Request: DELETE requires an Mcp-Session-Id header", http.StatusBadRequest)
			return
		}
		h.serveDelete(w, r, id)
		return
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	ls, status, err := h.session(r, id)
	if err != nil {
		h.opts.Logger.Warn("request refused", "session", id, "method", r.Method, "status", status, "err", err)
		http.Error(w, err.Error(), status)
		return
	}
	ls.start()
	defer ls.end()
	ls.transport.ServeHTTP(w, r)
}

// sdkContext returns r's context with what the go-sdk's own handler adds
// to it before handing a request to a StreamableServerTransport: the
// request's protocol version, under a context key the SDK does not export.
// Without it the transport takes every request for protocol 2025-03-26,
// and writes no priming event, so a client could never resume a response
// stream with Last-Event-ID. The only exported way to get that context is
// to let the SDK's handler build it: a copy of r, as a POST without a
// session ID, goes to a stock handler whose getServer keeps the context it
// is given and returns nil, so that the stock handler creates nothing
// (it answers 400 into a sink). That handler also checks the
// Mcp-Protocol-Version header first: a request it refuses gets its answer,
// and ok is false.
func (h *Handler) sdkContext(w http.ResponseWriter, r *http.Request) (ctx context.Context, ok bool) {
	probe := r.Clone(r.Context())
	probe.Method = http.MethodPost
	probe.Body = http.NoBody
	probe.ContentLength = 0
	probe.Header.Del("Mcp-Session-Id")
	probe.Header.Set("Content-Type", "application/json")
	probe.Header.Set("Accept", "application/json, text/event-stream")
	calls := 0
	stock := mcp.NewStreamableHTTPHandler(func(req *http.Request) *mcp.Server {
		calls++
		if calls == 1 {
			// The version check: the server's own supported versions.
			return h.getServer(r)
		}
		ctx = req.Context()
		return nil
	}, &mcp.StreamableHTTPOptions{DisableLocalhostProtection: true})
	var sink responseSink
	stock.ServeHTTP(&sink, probe)
	if ctx != nil {
		return ctx, true
	}
	for k, v := range sink.header {
		w.Header()[k] = v
	}
	w.WriteHeader(cmp.Or(sink.status, http.StatusBadRequest))
	_, _ = w.Write(sink.body.Bytes())
	return nil, false
}

// serveNew creates a session for a POST without a session ID (normally
// initialize). Its record is written by the middleware when initialize
// succeeds; a session that did not initialize is closed at once.
func (h *Handler) serveNew(w http.ResponseWriter, r *http.Request) {
	srv := h.getServer(r)
	if srv == nil {
		http.Error(w, "no server available", http.StatusBadRequest)
		return
	}
	h.instrument(srv)
	ls := &localSession{id: rand.Text(), principal: principalOf(r), ready: make(chan struct{})}
	ls.transport = &mcp.StreamableServerTransport{SessionID: ls.id, EventStore: h.local}
	if !h.register(ls) {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
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
	}
}

// session returns the live local copy of session id, adopting it from its
// record if this replica has none, after checking the request's principal
// and that the session still exists.
func (h *Handler) session(r *http.Request, id string) (*localSession, int, error) {
	if err := checkClientSessionID(id); err != nil {
		return nil, http.StatusNotFound, errors.New("session not found")
	}
	principal := principalOf(r)
	for {
		h.mu.Lock()
		ls, ok := h.sessions[id]
		var mine bool
		if !ok && !h.closed {
			ls = &localSession{id: id, ready: make(chan struct{})}
			h.sessions[id] = ls
			mine = true
		}
		h.mu.Unlock()
		if ls == nil {
			return nil, http.StatusServiceUnavailable, errors.New("server shutting down")
		}
		if mine {
			h.adopt(r, ls)
		}
		select {
		case <-ls.ready:
		case <-r.Context().Done():
			return nil, http.StatusServiceUnavailable, r.Context().Err()
		}
		if ls.err != nil {
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
			return nil, http.StatusForbidden, errors.New("session user mismatch")
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
		h.fail(ls, http.StatusNotFound, errors.New("session not found"))
		return
	}
	ls.principal = rec.Principal
	if ls.principal != "" && ls.principal != principalOf(r) {
		// Refuse before building anything: nothing of the session is
		// touched for a request of another principal.
		h.fail(ls, http.StatusForbidden, errors.New("session user mismatch"))
		return
	}
	srv := h.getServer(r)
	if srv == nil {
		h.fail(ls, http.StatusBadRequest, errors.New("no server available"))
		return
	}
	h.instrument(srv)
	state := *rec.State
	ls.known = rec
	ls.transport = &mcp.StreamableServerTransport{SessionID: ls.id, EventStore: h.local}
	ss, err := srv.Connect(context.WithoutCancel(ctx), ls.transport, &mcp.ServerSessionOptions{State: &state})
	if err != nil {
		h.fail(ls, http.StatusInternalServerError, fmt.Errorf("adopting session %s: %w", ls.id, err))
		return
	}
	for _, uri := range rec.Subscriptions {
		if err := inject(ls, rec.State.NegotiatedProtocolVersion, "resources/subscribe", &mcp.SubscribeParams{URI: uri}); err != nil {
			ss.Close()
			h.fail(ls, http.StatusInternalServerError, fmt.Errorf("adopting session %s: replaying its subscription to %q: %w", ls.id, uri, err))
			return
		}
	}
	h.live(ls, ss)
	h.opts.Logger.Info("session adopted", "session", ls.id, "subscriptions", len(rec.Subscriptions))
}

// refresh brings a local copy in line with the session's record, which
// other replicas may have changed, and keeps the record alive.
func (h *Handler) refresh(ctx context.Context, ls *localSession) (int, error) {
	rec, ok, err := h.load(ctx, ls.id)
	switch {
	case err != nil:
		return http.StatusServiceUnavailable, fmt.Errorf("reading the record of session %s: %w", ls.id, err)
	case !ok:
		// Deleted through another replica, or expired.
		ls.ss.Close()
		return http.StatusNotFound, errors.New("session not found")
	}
	ls.mu.Lock()
	known := ls.known
	ls.mu.Unlock()
	if rec.Rev != known.Rev {
		if err := h.sync(ls, known, rec); err != nil {
			return http.StatusInternalServerError, err
		}
	}
	ttl := h.ttl()
	if ttl <= 0 || time.Since(rec.Touched) > ttl/8 {
		// Keep the record alive; a failure here is not the request's.
		_, _ = h.update(ctx, ls.id, func(*sessionRecord) bool { return false })
	}
	return 0, nil
}

// sync applies to a local copy the changes of the record made through
// other replicas, by sending the session the requests that made them.
func (h *Handler) sync(ls *localSession, known, rec sessionRecord) error {
	ls.mu.Lock()
	ls.known = rec // first: the middleware then sees nothing new to write
	ls.mu.Unlock()
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
				return fmt.Errorf("session %s: applying resources/unsubscribe %q: %w", ls.id, uri, err)
			}
		}
	}
	for _, uri := range rec.Subscriptions {
		if !contains(known.Subscriptions, uri) {
			if err := inject(ls, version, "resources/subscribe", &mcp.SubscribeParams{URI: uri}); err != nil {
				return fmt.Errorf("session %s: applying resources/subscribe %q: %w", ls.id, uri, err)
			}
		}
	}
	return nil
}

// serveDelete ends a session on every replica: its record goes, so other
// replicas answer 404 from their next request on, and so do its events.
func (h *Handler) serveDelete(w http.ResponseWriter, r *http.Request, id string) {
	if err := checkClientSessionID(id); err != nil {
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	rec, ok, err := h.load(r.Context(), id)
	switch {
	case err != nil:
		http.Error(w, fmt.Sprintf("reading the record of session %s: %v", id, err), http.StatusServiceUnavailable)
		return
	case !ok:
		http.Error(w, "session not found", http.StatusNotFound)
		return
	case rec.Principal != "" && rec.Principal != principalOf(r):
		http.Error(w, "session user mismatch", http.StatusForbidden)
		return
	}
	if err := h.store.Delete(r.Context(), recordSession(id), sessionRecordKey); err != nil {
		http.Error(w, fmt.Sprintf("deleting the record of session %s: %v", id, err), http.StatusServiceUnavailable)
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
			}
		default:
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// Close closes every local copy of a session on this replica, and makes
// the handler refuse new requests with 503. The sessions live on in the
// store for other replicas. Close returns nil.
func (h *Handler) Close() error {
	h.mu.Lock()
	h.closed = true
	all := make([]*localSession, 0, len(h.sessions))
	for _, ls := range h.sessions {
		all = append(all, ls)
	}
	h.mu.Unlock()
	for _, ls := range all {
		<-ls.ready
		if ls.ss != nil {
			ls.ss.Close()
			ls.ss.Wait()
		}
	}
	return nil
}

// register adds a new local session; false if the handler is closed.
func (h *Handler) register(ls *localSession) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.sessions[ls.id] = ls
	return true
}

// fail ends an adoption or a creation that did not get a session.
func (h *Handler) fail(ls *localSession, status int, err error) {
	h.mu.Lock()
	if h.sessions[ls.id] == ls {
		delete(h.sessions, ls.id)
	}
	h.mu.Unlock()
	ls.err, ls.status = err, status
	close(ls.ready)
}

// live publishes a connected local session, and forgets it when it
// closes.
func (h *Handler) live(ls *localSession, ss *mcp.ServerSession) {
	ls.ss = ss
	ls.idleTimeout = h.opts.IdleTimeout
	if h.opts.IdleTimeout > 0 {
		ls.timer = time.AfterFunc(h.opts.IdleTimeout, func() {
			ls.mu.Lock()
			ls.closing = true
			ls.mu.Unlock()
			ss.Close()
		})
	}
	close(ls.ready)
	go func() {
		_ = ss.Wait()
		ls.mu.Lock()
		ls.closing = true
		if ls.timer != nil {
			ls.timer.Stop()
		}
		ls.mu.Unlock()
		h.forget(ls)
	}()
}

// forget removes ls from the local sessions, if it is still there.
func (h *Handler) forget(ls *localSession) {
	h.mu.Lock()
	if h.sessions[ls.id] == ls {
		delete(h.sessions, ls.id)
	}
	h.mu.Unlock()
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

// mediaType is the media type of a Content-Type value, without parameters.
func mediaType(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	return strings.ToLower(strings.TrimSpace(v))
}

// accepts reports whether Accept values admit JSON and an event stream.
func accepts(values []string) (jsonOK, streamOK bool) {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			switch mediaType(part) {
			case "application/json", "application/*":
				jsonOK = true
			case "text/event-stream", "text/*":
				streamOK = true
			case "*/*":
				jsonOK, streamOK = true, true
			}
		}
	}
	return jsonOK, streamOK
}

// rebinding reports a request received on a loopback address with a Host
// that names something else: a DNS-rebinding attack on a local server.
func rebinding(r *http.Request) bool {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || addr == nil || !loopback(addr.String()) {
		return false
	}
	return !loopback(r.Host)
}

func loopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
