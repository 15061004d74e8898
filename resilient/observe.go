package resilient

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient/internal/engine"
	"github.com/mcpkit/resilience/retry"
)

// The SDK cannot say whether the request behind an error reached the
// server: a 404 for one request fails the whole streamable connection, and
// every call in flight on it then gets the same ErrSessionMissing, whether
// its own request was refused (it did not run) or accepted (it may have);
// and a refusal whose body the SDK cannot decode (the TypeScript SDK's 400
// with "id": null) reads only "Bad Request". The transports made by
// StreamableHTTP and SSE watch their own HTTP traffic: what they saw of a
// call's own request is the evidence engine.Decide trusts over the error's
// text. They also see the Retry-After headers the SDK drops, and know when
// a dead session's requests are over.

// observedTransport is a transport that watches its HTTP requests.
type observedTransport interface {
	mcp.Transport
	observer() *observer
	endpoint() string
}

// httpTransport is the transport StreamableHTTP makes: the SDK's, with an
// observer on its HTTP client. Wrapping the Transport (not the Connection
// it returns) leaves the SDK's connection untouched.
type httpTransport struct {
	*mcp.StreamableClientTransport
	obs *observer
}

func (t *httpTransport) observer() *observer { return t.obs }
func (t *httpTransport) endpoint() string    { return t.Endpoint }

// sseTransport is the transport SSE makes: the SDK's 2024-11-05 HTTP+SSE
// client, with an observer on its HTTP client.
type sseTransport struct {
	*mcp.SSEClientTransport
	obs *observer
}

func (t *sseTransport) observer() *observer { return t.obs }
func (t *sseTransport) endpoint() string    { return t.Endpoint }

// observer counts the POSTs of one transport still in flight.
type observer struct {
	mu       sync.Mutex
	inflight int
	idle     chan struct{} // made by a waiter, closed when inflight drops to 0

	// For liveness: lastRead is when any response of the transport (a
	// POST's, or an event stream's) last carried a byte (unix
	// nanoseconds): a server that answers anything on the session is
	// alive, however long one call of it is silent. closeIdle closes the
	// HTTP client's pooled connections.
	lastRead  atomic.Int64
	closeIdle func()
}

func newObserver() *observer { return &observer{} }

func (o *observer) begin() {
	o.mu.Lock()
	o.inflight++
	o.mu.Unlock()
}

func (o *observer) end() {
	o.mu.Lock()
	o.inflight--
	if o.inflight == 0 && o.idle != nil {
		close(o.idle)
		o.idle = nil
	}
	o.mu.Unlock()
}

// waitIdle waits until no POST is in flight, or ctx ends.
func (o *observer) waitIdle(ctx context.Context) {
	o.mu.Lock()
	if o.inflight == 0 {
		o.mu.Unlock()
		return
	}
	if o.idle == nil {
		o.idle = make(chan struct{})
	}
	idle := o.idle
	o.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
	}
}

// probe records what became of the POSTs of one attempt: the evidence of
// whether its call may have run.
type probe struct {
	mu           sync.Mutex
	posts        int
	notConnected int           // POSTs that never connected
	refused      int           // POSTs answered with a status proving they did not run
	status       int           // the last non-2xx status seen
	retryAfter   time.Duration // from a 429 or 503
	// lastRead is when a response body of the attempt last carried a
	// byte (unix nanoseconds), for liveness.
	lastRead atomic.Int64
}

// evidence returns what the transport saw of the attempt's requests. The
// call provably did not run only if every POST it started never connected
// or was refused; a POST still waiting for its answer, answered 2xx, or
// answered with a status that proves nothing (500, 502, 504) may have run
// it. A nil probe (a transport that does not watch) saw nothing.
func (p *probe) evidence() (engine.Request, int) {
	if p == nil {
		return engine.RequestUnobserved, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.notConnected == p.posts:
		return engine.RequestNotSent, 0
	case p.notConnected+p.refused == p.posts:
		return engine.RequestRefused, p.status
	}
	return engine.RequestMayHaveRun, p.status
}

// retryAfterHint returns the Retry-After of a 429 or 503 the attempt got.
func (p *probe) retryAfterHint() time.Duration {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retryAfter
}

// sentNone reports whether no POST was sent under the probe's context.
func (p *probe) sentNone() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.posts == 0
}

func (p *probe) sent() {
	p.mu.Lock()
	p.posts++
	p.mu.Unlock()
}

func (p *probe) failed(err error) {
	if retry.Classify(err) != retry.NotSent {
		return // it may have been written before the connection failed
	}
	p.mu.Lock()
	p.notConnected++
	p.mu.Unlock()
}

func (p *probe) answered(resp *http.Response) {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status = code
	if !engine.ProvesNotRun(code) {
		return
	}
	p.refused++
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		if d, ok := engine.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			p.retryAfter = d
		}
	}
}

type probeKey struct{}

// probeCtx is an attempt's context carrying its probe.
type probeCtx struct {
	context.Context
	probe probe
}

func (c *probeCtx) Value(key any) any {
	if key == (probeKey{}) {
		return &c.probe
	}
	return c.Context.Value(key)
}

// observingRoundTripper feeds an observer and the probe of the attempt
// whose context a request carries (the SDK builds each POST with the
// caller's context).
type observingRoundTripper struct {
	next http.RoundTripper
	obs  *observer
}

func (rt *observingRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost {
		resp, err := rt.next.RoundTrip(req)
		if err == nil && req.Method == http.MethodGet {
			resp.Body = &streamBody{ReadCloser: resp.Body, obs: rt.obs}
		}
		return resp, err
	}
	p, _ := req.Context().Value(probeKey{}).(*probe)
	if p != nil {
		p.sent()
	}
	rt.obs.begin()
	resp, err := rt.next.RoundTrip(req)
	if err != nil {
		rt.obs.end()
		if p != nil {
			p.failed(err)
		}
		return nil, err
	}
	if p != nil {
		p.answered(resp)
	}
	// The request is in flight until its response (an SSE stream, maybe)
	// has been read to the end or closed.
	resp.Body = &endingBody{ReadCloser: resp.Body, obs: rt.obs, p: p}
	return resp, nil
}

// CloseIdleConnections closes the idle connections of the wrapped
// transport, when it has any: http.Client.CloseIdleConnections reaches
// them through it.
func (rt *observingRoundTripper) CloseIdleConnections() {
	if ci, ok := rt.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// streamBody records when an event stream of the session (SSE's, or the
// standalone stream of streamable HTTP) carries a byte.
type streamBody struct {
	io.ReadCloser
	obs *observer
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.obs.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

// endingBody ends its request's flight, once, at the end of its body.
type endingBody struct {
	io.ReadCloser
	obs   *observer
	p     *probe // the attempt's, if any: its bytes are signs of life
	ended atomic.Bool
}

func (b *endingBody) end() {
	if b.ended.CompareAndSwap(false, true) {
		b.obs.end()
	}
}

func (b *endingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		now := time.Now().UnixNano()
		b.obs.lastRead.Store(now)
		if b.p != nil {
			b.p.lastRead.Store(now)
		}
	}
	if err != nil {
		b.end()
	}
	return n, err
}

func (b *endingBody) Close() error {
	b.end()
	return b.ReadCloser.Close()
}

// observedClient returns a copy of hc (nil: http.DefaultClient) whose
// transport feeds obs.
func observedClient(hc *http.Client, obs *observer) *http.Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := *hc
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = &observingRoundTripper{next: next, obs: obs}
	obs.closeIdle = c.CloseIdleConnections
	return &c
}
