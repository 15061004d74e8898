package replica

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// HandlerOptions configure [NewHandler]. A nil *HandlerOptions and zero
// fields mean the documented defaults; for the limits, a negative value
// means no limit.
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

	// RecordLease is how long a replica serves its local copy of a
	// session without reading the session's record again. It bounds how
	// long a session deleted or expired through another replica is still
	// served by this one, and how late a log level or a subscription set
	// through another replica applies here: at most RecordLease plus one
	// store round trip. A longer lease saves store reads (one per session,
	// replica and lease instead of one per request). Zero means
	// [DefaultRecordLease] (1 s); negative means every request reads the
	// record.
	RecordLease time.Duration

	// MaxRequestBodyBytes bounds a request body. Zero means
	// mcp.DefaultMaxRequestBodyBytes; negative means no limit.
	MaxRequestBodyBytes int64

	// MaxSessionsPerClient bounds the sessions one client holds on this
	// replica (created here or adopted), so that one client cannot tie up
	// the replica's memory and goroutines. A client is its principal (the
	// UserID of the request's auth.TokenInfo) or, for an anonymous
	// request, the IP address of the connection: behind a proxy every
	// anonymous client shares the proxy's address, so raise the limit, or
	// turn it off and limit at the proxy. A request over the limit gets
	// 429 with Retry-After (a refusal the resilient client retries later).
	// A session counts until its local copy closes (DELETE, IdleTimeout or
	// Close). Zero means [DefaultMaxSessionsPerClient] (256); negative
	// means no limit.
	MaxSessionsPerClient int

	// InitializeTimeout closes a session created on this replica that
	// has not been initialized (no notifications/initialized seen) that
	// long after its last request, and deletes what it left in the store,
	// so that clients that never finish initializing hold a place in
	// MaxPendingSessions for a short while only. Clients send
	// notifications/initialized right after initialize. Zero means
	// [DefaultInitializeTimeout] (1 minute); negative means IdleTimeout
	// alone.
	InitializeTimeout time.Duration

	// MaxPendingSessions bounds the sessions that this replica created and
	// that are not yet initialized (no notifications/initialized seen
	// yet), so that clients that never finish initializing cannot pile up.
	// A new session over the limit gets 503 with Retry-After. Zero means
	// [DefaultMaxPendingSessions] (1000); negative means no limit.
	MaxPendingSessions int

	// MaxLoggedBytes bounds what one log line quotes from a request (a
	// session ID, an error naming one): longer values are cut and marked
	// with "...", so a hostile request cannot flood the log. Zero means
	// [DefaultMaxLoggedBytes] (128, the longest valid session ID);
	// negative means no limit.
	MaxLoggedBytes int

	// Logger gets one Info line per adopted session and one Warn line per
	// refused request (unknown session, principal mismatch, over a limit,
	// store failure), with the session ID cut to MaxLoggedBytes. Nil
	// means no logging.
	Logger *slog.Logger

	// DisableLocalhostProtection turns off the DNS-rebinding protection
	// that the go-sdk's handler also applies: a request received on a
	// loopback address whose Host header is not a loopback name is
	// refused with 403. Default false: protection on.
	DisableLocalhostProtection bool
}

// Defaults of [HandlerOptions].
const (
	// DefaultRecordLease is the default of HandlerOptions.RecordLease.
	DefaultRecordLease = time.Second
	// DefaultMaxSessionsPerClient is the default of
	// HandlerOptions.MaxSessionsPerClient.
	DefaultMaxSessionsPerClient = 256
	// DefaultInitializeTimeout is the default of
	// HandlerOptions.InitializeTimeout.
	DefaultInitializeTimeout = time.Minute
	// DefaultMaxPendingSessions is the default of
	// HandlerOptions.MaxPendingSessions.
	DefaultMaxPendingSessions = 1000
	// DefaultMaxLoggedBytes is the default of HandlerOptions.MaxLoggedBytes.
	DefaultMaxLoggedBytes = 128
)

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
// ServerSessionState) and replays its subscriptions. A replica's local
// copy reads the record again once its RecordLease (1 s by default) has
// run out, so a level set or a subscription made through another replica
// applies, and a session deleted through another replica answers 404
// everywhere, within that lease. The record lives SessionTTL after its
// last request. Tool state belongs in [Values], which every replica
// shares.
//
// # What is left behind
//
// Nothing, for a session that never initialized: a POST that does not
// initialize a session leaves no record and no events, and a session
// that answered initialize but never got notifications/initialized has
// its record and events deleted when its local copy closes (DELETE,
// IdleTimeout or Close), unless another replica has meanwhile seen it
// initialized.
//
// # What is not kept
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
// # Principals and limits
//
// A request on a session created for an authenticated principal must
// carry the same principal (auth.TokenInfo UserID), or it gets 403 and
// the session is neither adopted nor served, on any replica; the refusal
// is that request's only, and the principal's own requests go on. An
// anonymous session is protected by its ID alone (128 random bits): anyone
// who has the ID may use it. The limits of [HandlerOptions] bound what one
// client can hold on a replica.
//
// The first time it sees an *mcp.Server, Handler adds a receiving
// middleware to it that writes the records; getServer should therefore
// return a long-lived server (or a few), not a new one per request. It is
// called once or twice per request.
//
// Handler is safe for concurrent use.
type Handler struct {
	getServer func(*http.Request) *mcp.Server
	store     Store
	events    mcp.EventStore // as given; nil when none
	local     mcp.EventStore // events for the transports; nil when none
	opts      HandlerOptions
	versions  versionContexts

	mu       sync.Mutex
	sessions map[string]*localSession
	servers  map[*mcp.Server]bool // servers that have the middleware
	clients  map[string]int       // local sessions per client
	pending  int                  // local sessions created here, not yet initialized
	closed   bool
	wg       sync.WaitGroup // the goroutines that watch local sessions
}

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
		clients:   make(map[string]int),
	}
	if opts != nil {
		h.opts = *opts
	}
	h.opts.IdleTimeout = orDefault(h.opts.IdleTimeout, DefaultTTL)
	h.opts.RecordLease = orDefault(h.opts.RecordLease, DefaultRecordLease)
	h.opts.InitializeTimeout = orDefault(h.opts.InitializeTimeout, DefaultInitializeTimeout)
	h.opts.MaxRequestBodyBytes = orDefault(h.opts.MaxRequestBodyBytes, mcp.DefaultMaxRequestBodyBytes)
	h.opts.MaxSessionsPerClient = orDefault(h.opts.MaxSessionsPerClient, DefaultMaxSessionsPerClient)
	h.opts.MaxPendingSessions = orDefault(h.opts.MaxPendingSessions, DefaultMaxPendingSessions)
	h.opts.MaxLoggedBytes = orDefault(h.opts.MaxLoggedBytes, DefaultMaxLoggedBytes)
	if h.opts.Logger == nil {
		h.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if h.opts.EventStore != nil {
		h.events = h.opts.EventStore
		h.local = localEvents{h.opts.EventStore}
	}
	h.versions.init()
	return h
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// ServeHTTP implements http.Handler. It checks the request as the go-sdk's
// handler does (handler_http.go), then serves it on a new session, on
// this replica's local copy of its session, or on a copy adopted from the
// session's record (handler_adopt.go).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, ok := h.check(w, r)
	if !ok {
		return
	}
	id := r.Header.Get("Mcp-Session-Id")
	switch {
	case r.Method == http.MethodDelete:
		h.serveDelete(w, r, id)
	case id == "": // a POST: check refuses a GET without a session
		h.serveNew(w, r)
	default:
		h.serveSession(w, r, id)
	}
}

// Close closes every local copy of a session on this replica, and makes
// the handler refuse new requests with 503. The sessions live on in the
// store for other replicas, except those that never initialized, whose
// records and events Close deletes. Close returns once every local copy
// is closed; it returns nil.
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
		}
	}
	h.wg.Wait()
	return nil
}
