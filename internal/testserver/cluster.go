// Package testserver runs an in-process MCP cluster for tests: several go-sdk
// servers ("backends") on loopback behind a sticky load balancer modelled on
// HAProxy, sharing one session [replica.Store], with faults on demand.
//
// # Topology
//
// A client connects to [Cluster.URL], the balancer. The balancer learns the
// Mcp-Session-Id of each session from the backend's response (HAProxy's
// "stick store-response") and sends every later request carrying that ID to
// the same backend. Requests without a known backend go to the live backend
// with the fewest requests in flight. When a session's backend is down the
// request goes to another live backend, which answers 404 for the session it
// does not know: that is how a real failover looks to a client. With no live
// backend the balancer answers 503 as HAProxy does. The balancer never
// re-sends a request that may have reached a backend: only a request whose
// connection could not even be opened is sent elsewhere.
//
// # Tools
//
// Every backend serves the same tools, which keep their state in the shared
// store under the request's session ID, so that resume_session can carry it
// to a new session on another backend:
//
//   - increment_counter: adds one to the session's counter (not idempotent);
//   - get_counter: reads the counter (read-only);
//   - add_note {"note"}: appends a note (not idempotent);
//   - list_notes: reads the notes (read-only);
//   - slow_increment {"delay_ms"}: waits, then increments (not idempotent);
//   - get_server_info: the backend's instance name and the session ID;
//   - resume_session {"old_session_id"}: see [replica.AddTool].
//
// The resource [CounterURI] reads the counter and can be subscribed to.
// Stateless backends have no session ID: there the state lives under the
// string in the request's _meta key [MetaSessionKey], or under
// [StatelessSession] when the client sends none.
//
// # Faults
//
// [Cluster.Kill], [Cluster.Restart] and [Cluster.Expire] act on backends;
// [Cluster.Inject] queues a [Fault] that the balancer applies to the next
// matching request. A request that a Kill or a drop interrupts reaches the
// client as a dropped connection (io.EOF), never as a 502: the balancer
// cannot know whether the backend ran it.
//
// # Observing
//
// [Cluster.ToolRuns] counts completed tool bodies (to prove or refute double
// execution), [Cluster.Running] the calls executing now (to kill a backend in
// the middle of one), [Cluster.Counter] reads a session's state,
// [Cluster.BackendFor] the stick table, [Cluster.InFlight] a backend's load,
// [Cluster.Requests] counts what reached the balancer, and
// [Cluster.Connects] and [Cluster.Discovers] count (re)connections.
package testserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/memstore"
	"github.com/mcpkit/resilience/resume/replica"
)

// Options configures a [Cluster]. A nil *Options and a zero field mean the
// documented defaults.
type Options struct {
	// Backends is the number of backends. Zero or less means 3.
	Backends int

	// Stateless makes the backends serve stateless streamable HTTP: no
	// session IDs, protocol 2026-07-28 for clients that ask for it.
	Stateless bool

	// NoResumeTool leaves out the resume_session tool, like a server that
	// cannot resume.
	NoResumeTool bool

	// Dedup installs replica.Dedup on every backend, over the shared store:
	// a tools/call replayed with the same idempotency key returns the first
	// execution's result instead of running again.
	Dedup bool

	// Adopt makes the backends serve with replica.Handler over the shared
	// store and one shared in-memory event store: any backend serves any
	// session, adopting it with the same session ID, so a backend's death
	// costs its sessions nothing but the calls it was running. Ignored
	// with Stateless.
	Adopt bool

	// JSONResponse makes the backends answer POSTs with application/json
	// instead of an SSE stream (mcp.StreamableHTTPOptions.JSONResponse).
	JSONResponse bool

	// Store holds the state of every backend's tools. Nil means a new
	// memstore.New(0), shared by all backends.
	Store replica.Store

	// Logf, if set, receives a trace of the balancer's decisions (which
	// backend, stickiness learned, faults applied) and of HTTP server
	// errors. Nil means no trace. It may be called from many goroutines.
	Logf func(format string, args ...any)
}

// Cluster is a running set of backends and their balancer. Create one with
// [Start] and stop it with [Cluster.Close]. All methods are safe for
// concurrent use.
type Cluster struct {
	opts   Options
	store  replica.Store
	events *mcp.MemoryEventStore // shared by the backends with Adopt
	// ctx is the base of every balancer request: Close cancels it so that
	// no handler outlives the cluster.
	ctx    context.Context
	cancel context.CancelFunc

	lb      *http.Server
	lbURL   string
	lbDone  chan struct{}
	lbConns conns
	proxy   *httputil.ReverseProxy

	bg sync.WaitGroup // background closes of forgotten SDK sessions

	requests  atomic.Int64
	connects  atomic.Int64
	discovers atomic.Int64

	// life serializes Kill, Restart and Close, which start and stop
	// backends and must not interleave on one slot.
	life sync.Mutex

	mu         sync.Mutex
	closed     bool
	backends   []*backend     // slot i holds backend i's current instance
	stick      map[string]int // session ID → backend slot
	faults     []*Fault       // pending faults, oldest first
	forgotten  map[string]bool
	toolRuns   map[string]int
	keyRuns    map[string]int // by idempotency key
	runningNow map[string]int
	lastMeta   map[string]map[string]any // by tool
	next       int                       // where the least-connections scan starts, to rotate ties
}

// Start starts a cluster on 127.0.0.1 with ports chosen by the system and
// returns once every backend and the balancer accept connections. It returns
// an error, and leaves nothing running, if a listener cannot be opened.
func Start(opts *Options) (*Cluster, error) {
	c := &Cluster{
		stick:      make(map[string]int),
		forgotten:  make(map[string]bool),
		toolRuns:   make(map[string]int),
		keyRuns:    make(map[string]int),
		runningNow: make(map[string]int),
		lastMeta:   make(map[string]map[string]any),
		lbDone:     make(chan struct{}),
	}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.Backends <= 0 {
		c.opts.Backends = 3
	}
	c.store = c.opts.Store
	if c.store == nil {
		c.store = memstore.New(0)
	}
	c.events = mcp.NewMemoryEventStore(nil)
	c.ctx, c.cancel = context.WithCancel(context.Background())

	for i := range c.opts.Backends {
		b, err := c.startBackend(i, "127.0.0.1:0")
		if err != nil {
			c.Close()
			return nil, err
		}
		c.backends = append(c.backends, b)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("testserver: balancer: %w", err)
	}
	c.proxy = c.newProxy()
	c.lb = &http.Server{
		Handler:     http.HandlerFunc(c.serveBalancer),
		BaseContext: func(net.Listener) context.Context { return c.ctx },
		ConnState:   c.lbConns.track,
		ErrorLog:    c.errorLog("balancer"),
	}
	c.lbURL = "http://" + ln.Addr().String()
	go func() {
		defer close(c.lbDone)
		c.lb.Serve(ln)
	}()
	return c, nil
}

// URL returns the balancer's endpoint, the URL a client connects to.
func (c *Cluster) URL() string { return c.lbURL }

// Store returns the store the backends keep their state in.
func (c *Cluster) Store() replica.Store { return c.store }

// Backends returns the number of backends, dead or alive.
func (c *Cluster) Backends() int { return len(c.backends) }

// Instance returns the name backend i gives in its answers and in its
// mcp.Implementation title: "backend-0", "backend-1", ... It does not change
// across restarts.
func (c *Cluster) Instance(i int) string { return instanceName(i) }

func instanceName(i int) string { return fmt.Sprintf("backend-%d", i) }

// Close stops the balancer and every backend, as if all were killed, and
// returns when none of their goroutines is left. Clients see their
// connections dropped. Close is idempotent; after it, Kill and Restart do
// nothing and Restart returns an error.
func (c *Cluster) Close() {
	c.life.Lock()
	defer c.life.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	backends := c.backends
	c.mu.Unlock()

	for _, b := range backends {
		c.stopBackend(b)
	}
	c.cancel()
	if c.lb != nil {
		c.lb.Close()
		<-c.lbDone
	}
	c.lbConns.wait()
	c.bg.Wait()
}

// Kill makes backend i die at once: the balancer marks it down, its
// listener and every connection to it close (in-flight requests and SSE
// streams included: the client's connection through the balancer is dropped),
// the contexts of its running tool calls are cancelled, and its SDK sessions
// are gone. Kill returns when all of that has happened. Killing a dead
// backend does nothing. Kill panics if i is out of range.
func (c *Cluster) Kill(i int) {
	c.life.Lock()
	defer c.life.Unlock()
	c.mu.Lock()
	closed, b := c.closed, c.backends[i]
	c.mu.Unlock()
	if closed {
		return
	}
	c.logf("kill %s", b.instance)
	c.stopBackend(b)
}

// Restart replaces backend i by a fresh one, with a new SDK handler that
// knows no session, and marks it up. It listens on the old port if it can
// and on a new one otherwise (the balancer follows). A live backend is
// killed first. Restart returns an error if the cluster is closed or no
// listener can be opened. It panics if i is out of range.
func (c *Cluster) Restart(i int) error {
	c.life.Lock()
	defer c.life.Unlock()
	c.mu.Lock()
	closed, old := c.closed, c.backends[i]
	c.mu.Unlock()
	if closed {
		return errors.New("testserver: Restart on a closed cluster")
	}
	c.stopBackend(old)
	b, err := c.startBackend(i, old.addr)
	if err != nil {
		b, err = c.startBackend(i, "127.0.0.1:0")
		if err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.backends[i] = b
	c.mu.Unlock()
	c.logf("restart %s on %s", b.instance, b.addr)
	return nil
}

// Alive reports whether the balancer sends requests to backend i. It panics
// if i is out of range.
func (c *Cluster) Alive(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.backends[i].alive
}

// InFlight returns how many requests the balancer has in flight to backend
// i, long-lived SSE streams included: the count least-connections balances.
// It panics if i is out of range.
func (c *Cluster) InFlight(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.backends[i].active
}

// BackendFor returns the backend the balancer's stick table holds for a
// session ID, learned from the Mcp-Session-Id of a backend's response. The
// entry stays after the backend dies (requests are then redispatched) and
// goes when the session is deleted with HTTP DELETE.
func (c *Cluster) BackendFor(sessionID string) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.stick[sessionID]
	return i, ok
}

// ToolRuns returns how many times the body of tool ran to completion on any
// backend, counted after its side effect: the way to prove or refute double
// execution.
func (c *Cluster) ToolRuns(tool string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.toolRuns[tool]
}

func (c *Cluster) ran(tool string, req *mcp.CallToolRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.toolRuns[tool]++
	if req != nil && req.Params != nil {
		if key, ok, _ := resume.IdempotencyKeyFrom(req.Params.Meta); ok {
			c.keyRuns[key]++
		}
		c.lastMeta[tool] = req.Params.Meta
	}
}

// LastMeta returns the _meta of the last call of tool that ran to
// completion, as the server received it.
func (c *Cluster) LastMeta(tool string) map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastMeta[tool]
}

// KeyRuns returns how many times a tool body ran for calls carrying the
// idempotency key key (resume.IdempotencyKeyMeta in _meta): the per-call
// marker that tells whether a call whose outcome was unknown ran, and
// proves that none ran twice.
func (c *Cluster) KeyRuns(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keyRuns[key]
}

// Running returns how many calls of tool are executing on the backends
// right now: a test waits for it to kill a backend in the middle of a call.
// resume_session is not counted.
func (c *Cluster) Running(tool string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runningNow[tool]
}

func (c *Cluster) running(tool string, delta int) {
	c.mu.Lock()
	c.runningNow[tool] += delta
	c.mu.Unlock()
}

// Counter returns the counter stored for a session ID (or for the key a
// stateless client sent, see [MetaSessionKey]), and 0 if there is none.
func (c *Cluster) Counter(sessionID string) int {
	v, err := replica.NewValues(c.store, sessionID)
	if err != nil {
		return 0
	}
	n, _, _ := replica.GetJSON[int](context.Background(), v, CounterKey)
	return n
}

// Requests returns how many HTTP requests (POST, GET and DELETE alike)
// reached the balancer, faulted ones included: a client that sends nothing,
// say behind an open circuit breaker, leaves it unchanged.
func (c *Cluster) Requests() int { return int(c.requests.Load()) }

// Connects returns how many initialize requests reached the balancer, a
// count of client (re)connections to legacy servers.
func (c *Cluster) Connects() int { return int(c.connects.Load()) }

// Discovers returns how many server/discover requests reached the balancer,
// the probe a go-sdk client sends before initialize unless it pins a legacy
// protocol version.
func (c *Cluster) Discovers() int { return int(c.discovers.Load()) }

// Expire makes the backend holding sessionID forget it, as a session timeout
// would: its SDK session closes, and the backend answers 404 "session not
// found" to every later request carrying that ID.
func (c *Cluster) Expire(sessionID string) {
	c.forget(sessionID)
}

func (c *Cluster) logf(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf(format, args...)
	}
}

// errorLog routes a net/http server's own complaints to Logf, since library
// code must not write to stderr.
func (c *Cluster) errorLog(name string) *log.Logger {
	if c.opts.Logf == nil {
		return log.New(io.Discard, "", 0)
	}
	return log.New(logfWriter(c.opts.Logf), name+": ", 0)
}

type logfWriter func(format string, args ...any)

func (w logfWriter) Write(p []byte) (int, error) {
	w("%s", p)
	return len(p), nil
}
