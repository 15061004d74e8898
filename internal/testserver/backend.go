package testserver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume/replica"
)

// backend is one incarnation of backend slot index: an SDK server behind
// its own HTTP server. Restart makes a new backend for the slot; a stopped
// backend never runs again.
type backend struct {
	index     int
	instance  string
	addr      string // host:port it listens on
	server    *mcp.Server
	handler   http.Handler
	adopting  *replica.Handler // with Options.Adopt
	srv       *http.Server
	serveDone chan struct{}
	conns     conns
	// ctx is the base of every request and tool call of this backend:
	// cancelling it is what kills in-flight work.
	ctx    context.Context
	cancel context.CancelFunc
	// transport carries the balancer's requests to this backend only, so
	// that its idle connections can be dropped with it.
	transport *http.Transport

	// Guarded by Cluster.mu.
	alive    bool
	stopped  bool
	active   int                     // requests in flight through the balancer
	inflight map[*proxyCall]struct{} // those requests
}

// startBackend starts a fresh backend for slot i listening on addr.
func (c *Cluster) startBackend(i int, addr string) (*backend, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("testserver: %s: %w", instanceName(i), err)
	}
	b := &backend{
		index:     i,
		instance:  instanceName(i),
		addr:      ln.Addr().String(),
		serveDone: make(chan struct{}),
		transport: &http.Transport{MaxIdleConnsPerHost: 32},
		alive:     true,
		inflight:  make(map[*proxyCall]struct{}),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if b.server, err = c.newMCPServer(b); err != nil {
		b.cancel()
		ln.Close()
		return nil, fmt.Errorf("testserver: %s: %w", b.instance, err)
	}
	var sdk http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return b.server }, &mcp.StreamableHTTPOptions{
		Stateless:    c.opts.Stateless,
		JSONResponse: c.opts.JSONResponse,
	})
	if c.opts.Adopt && !c.opts.Stateless {
		b.adopting = replica.NewHandler(func(*http.Request) *mcp.Server { return b.server }, c.store, &replica.HandlerOptions{EventStore: c.events})
		sdk = b.adopting
	}
	b.handler = c.forgetting(b.diesMidResponse(sdk))
	b.srv = &http.Server{
		Handler:     b.handler,
		BaseContext: func(net.Listener) context.Context { return b.ctx },
		ConnState:   b.conns.track,
		ErrorLog:    c.errorLog(b.instance),
	}
	go func() {
		defer close(b.serveDone)
		b.srv.Serve(ln)
	}()
	return b, nil
}

// stopBackend kills b. The order matters: the balancer stops choosing it;
// cancelling b.ctx ends every tool call and hanging SSE stream (which lets
// the SDK sessions close without waiting for work that would never finish);
// only then does the balancer abandon b's requests, so that clients see
// their connections drop after b has stopped working, as with a dead
// process.
func (c *Cluster) stopBackend(b *backend) {
	c.mu.Lock()
	if b.stopped {
		c.mu.Unlock()
		return
	}
	b.stopped = true
	b.alive = false
	var cancels []context.CancelFunc
	for call := range b.inflight {
		cancels = append(cancels, call.cancel)
	}
	c.mu.Unlock()

	// The backend's work ends first, as in a process that dies: once its
	// clients see their connections drop, no tool of it may still write
	// (a late write would land after the client resumed elsewhere). Its
	// answers are not sent either (diesMidResponse).
	b.cancel()
	for _, cancel := range cancels {
		cancel()
	}
	b.srv.Close()
	for ss := range b.server.Sessions() {
		ss.Close()
	}
	if b.adopting != nil {
		b.adopting.Close()
	}
	<-b.serveDone
	b.conns.wait()
	b.transport.CloseIdleConnections()
}

// forgetting answers 404 "session not found", as the go-sdk does, for a
// session the cluster has forgotten. The SDK session is also closed (see
// forget), but its Close waits for in-flight calls; this wrapper makes the
// 404 immediate.
func (c *Cluster) forgetting(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get(sessionIDHeader); id != "" {
			c.mu.Lock()
			gone := c.forgotten[id]
			c.mu.Unlock()
			if gone {
				http.Error(w, "session not found", http.StatusNotFound)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// forget makes every backend drop session id for good.
func (c *Cluster) forget(id string) {
	if id == "" {
		return
	}
	c.mu.Lock()
	c.forgotten[id] = true
	backends := append([]*backend(nil), c.backends...)
	c.mu.Unlock()
	c.logf("forget session %s", id)
	for _, b := range backends {
		for ss := range b.server.Sessions() {
			if ss.ID() == id {
				// Close waits for the session's in-flight calls, which must
				// not hold up the request that asked for the fault.
				c.bg.Go(func() { ss.Close() })
			}
		}
	}
}

// conns counts a server's connections until each is closed or hijacked, so
// that stopping a server can wait for its handlers. http.Server reports
// StateNew from its Serve goroutine, so once Serve has returned no
// connection is added, and wait cannot race with track.
type conns struct{ wg sync.WaitGroup }

func (c *conns) track(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		c.wg.Add(1)
	case http.StateClosed, http.StateHijacked:
		c.wg.Done()
	}
}

// wait returns when every connection is closed. Call it after Serve returned.
func (c *conns) wait() { c.wg.Wait() }

// diesMidResponse makes a killed backend write nothing more, as a dead
// process would: the answer of a tool that a Kill cancelled ("context
// canceled") must not reach the client as if the server had sent it.
func (b *backend) diesMidResponse(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&dyingWriter{ResponseWriter: w, ctx: b.ctx}, r)
		if b.ctx.Err() != nil {
			panic(http.ErrAbortHandler) // close the connection, send nothing
		}
	})
}

// dyingWriter drops every write once its backend is killed.
type dyingWriter struct {
	http.ResponseWriter
	ctx context.Context
}

func (d *dyingWriter) WriteHeader(code int) {
	if d.ctx.Err() == nil {
		d.ResponseWriter.WriteHeader(code)
	}
}

func (d *dyingWriter) Write(p []byte) (int, error) {
	if err := d.ctx.Err(); err != nil {
		return 0, err
	}
	return d.ResponseWriter.Write(p)
}

func (d *dyingWriter) Flush() {
	if f, ok := d.ResponseWriter.(http.Flusher); ok && d.ctx.Err() == nil {
		f.Flush()
	}
}

func (d *dyingWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
