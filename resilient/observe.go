package resilient

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/retry"
)

// The SDK cannot say whether the request behind an error reached the
// server: a 404 for one request fails the whole streamable connection, and
// every call in flight on it then gets the same ErrSessionMissing, whether
// its own request was refused (it did not run) or accepted (it may have).
// The transports made by StreamableHTTP watch their own HTTP traffic to
// tell the two apart, and to know when a dead session's requests are over.

// httpTransport is the transport StreamableHTTP makes: the SDK's, with an
// observer on its HTTP client. Wrapping the Transport (not the Connection
// it returns) leaves the SDK's connection untouched.
type httpTransport struct {
	*mcp.StreamableClientTransport
	obs *observer
}

// observer counts the POSTs of one transport still in flight.
type observer struct {
	mu       sync.Mutex
	inflight int
	idle     chan struct{} // closed while inflight == 0
}

func newObserver() *observer {
	idle := make(chan struct{})
	close(idle)
	return &observer{idle: idle}
}

func (o *observer) begin() {
	o.mu.Lock()
	if o.inflight == 0 {
		o.idle = make(chan struct{})
	}
	o.inflight++
	o.mu.Unlock()
}

func (o *observer) end() {
	o.mu.Lock()
	o.inflight--
	if o.inflight == 0 {
		close(o.idle)
	}
	o.mu.Unlock()
}

// waitIdle waits until no POST is in flight, or ctx ends.
func (o *observer) waitIdle(ctx context.Context) {
	o.mu.Lock()
	idle := o.idle
	o.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
	}
}

// probe records the POSTs of one attempt of a call. The attempt's call
// provably did not run only if every POST it started was refused: answered
// with a non-2xx status, or never connected. A POST still waiting for its
// answer, or answered 2xx, may have run it.
type probe struct {
	sent, refused atomic.Int32
}

// mayHaveRun reports whether the attempt's request may have reached and
// run on the server.
func (p *probe) mayHaveRun() bool { return p.sent.Load() != p.refused.Load() }

type probeKey struct{}

func withProbe(ctx context.Context, p *probe) context.Context {
	return context.WithValue(ctx, probeKey{}, p)
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
		return rt.next.RoundTrip(req)
	}
	p, _ := req.Context().Value(probeKey{}).(*probe)
	if p != nil {
		p.sent.Add(1)
	}
	rt.obs.begin()
	resp, err := rt.next.RoundTrip(req)
	if err != nil {
		rt.obs.end()
		if p != nil && retry.Classify(err) == retry.NotSent {
			p.refused.Add(1)
		}
		return nil, err
	}
	if p != nil && (resp.StatusCode < 200 || resp.StatusCode >= 300) {
		p.refused.Add(1)
	}
	// The request is in flight until its response (an SSE stream, maybe)
	// has been read to the end or closed.
	resp.Body = &endingBody{ReadCloser: resp.Body, obs: rt.obs}
	return resp, nil
}

// endingBody ends its request's flight, once, at the end of its body.
type endingBody struct {
	io.ReadCloser
	obs   *observer
	ended atomic.Bool
}

func (b *endingBody) end() {
	if b.ended.CompareAndSwap(false, true) {
		b.obs.end()
	}
}

func (b *endingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
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
	return &c
}
