package testserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
)

const sessionIDHeader = "Mcp-Session-Id"

// maxBody bounds the POST body the balancer reads to match faults: far above
// the SDK's own 4 MiB limit, so the backend is the one to refuse.
const maxBody = 16 << 20

// unavailableBody is what HAProxy answers when no server is up, byte for
// byte, so that clients meet the real thing.
const unavailableBody = "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n"

// rpcInfo is what the balancer learned from a POST's JSON-RPC body.
type rpcInfo struct {
	body  []byte
	calls []rpcCall // the requests (not notifications, not responses)
}

type rpcCall struct {
	method string
	tool   string // for tools/call
}

func (info *rpcInfo) String() string {
	var parts []string
	for _, call := range info.calls {
		if call.tool != "" {
			parts = append(parts, call.method+"("+call.tool+")")
		} else {
			parts = append(parts, call.method)
		}
	}
	if len(parts) == 0 {
		return "no request"
	}
	return strings.Join(parts, ",")
}

type rpcInfoKey struct{}

// serveBalancer is the balancer's handler: count, apply a fault if one
// matches, and otherwise proxy.
func (c *Cluster) serveBalancer(w http.ResponseWriter, r *http.Request) {
	c.requests.Add(1)
	info, err := peek(w, r)
	if err != nil {
		status := http.StatusBadRequest
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(w, "balancer: reading the request body: "+err.Error(), status)
		return
	}
	if info != nil {
		for _, call := range info.calls {
			switch call.method {
			case "initialize":
				c.connects.Add(1)
			case "server/discover":
				c.discovers.Add(1)
			}
		}
		r = r.WithContext(context.WithValue(r.Context(), rpcInfoKey{}, info))
		if f, ok := c.takeFault(info); ok {
			c.logf("balancer: %s %s session=%q: fault %v", r.Method, info, r.Header.Get(sessionIDHeader), f.Kind)
			if c.applyFault(w, r, f) {
				return
			}
		}
	}
	c.proxy.ServeHTTP(w, r)
}

// peek reads a POST's body, keeps it for matching and for sending it again
// to a second backend after a failed dial, and puts it back for the proxy. It
// returns nil for other methods.
func peek(w http.ResponseWriter, r *http.Request) (*rpcInfo, error) {
	if r.Method != http.MethodPost {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	info := &rpcInfo{body: body}

	type message struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	var msgs []message
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		json.Unmarshal(trimmed, &msgs) // a malformed body is the backend's to refuse
	} else {
		var m message
		if json.Unmarshal(trimmed, &m) == nil {
			msgs = append(msgs, m)
		}
	}
	for _, m := range msgs {
		if m.Method == "" || len(m.ID) == 0 || string(m.ID) == "null" {
			continue
		}
		call := rpcCall{method: m.Method}
		if m.Method == "tools/call" {
			var p struct {
				Name string `json:"name"`
			}
			if json.Unmarshal(m.Params, &p) == nil {
				call.tool = p.Name
			}
		}
		info.calls = append(info.calls, call)
	}
	return info, nil
}

func (c *Cluster) newProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// balancerTransport chooses the backend; this only makes the
			// outgoing URL absolute.
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "backend.invalid"
		},
		Transport: balancerTransport{c},
		// SSE must reach the client as it is written, not when a buffer
		// fills.
		FlushInterval: -1,
		ErrorLog:      c.errorLog("balancer proxy"),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The backend took the request and died before answering, or
			// the client went away. A balancer cannot know whether the
			// request ran, and must not pretend it did not by answering a
			// status: the client's connection drops, as it would have
			// with no balancer.
			c.logf("balancer: %s session=%q: backend failed: %v; dropping the client connection", r.Method, r.Header.Get(sessionIDHeader), err)
			hijackClose(w)
		},
	}
}

// balancerTransport sends each request to the backend chosen by the stick
// table or by least connections, and learns stickiness from the responses.
type balancerTransport struct{ c *Cluster }

// proxyCall is one request in flight to a backend, cancelled by Kill.
type proxyCall struct{ cancel context.CancelFunc }

func (t balancerTransport) RoundTrip(out *http.Request) (*http.Response, error) {
	c := t.c
	info, _ := out.Context().Value(rpcInfoKey{}).(*rpcInfo)
	session := out.Header.Get(sessionIDHeader)
	for {
		ctx, cancel := context.WithCancel(out.Context())
		call := &proxyCall{cancel: cancel}
		b := c.pick(out, session, info, call)
		if b == nil {
			cancel()
			return unavailable(out), nil
		}
		req := out.Clone(ctx)
		req.URL.Scheme = "http"
		req.URL.Host = b.addr
		req.Host = ""
		if info != nil {
			req.Body = io.NopCloser(bytes.NewReader(info.body))
			req.ContentLength = int64(len(info.body))
		}
		resp, err := b.transport.RoundTrip(req)
		if err != nil {
			c.end(b, call)
			if isDialError(err) && out.Context().Err() == nil {
				// The request never left: another backend may have it,
				// as HAProxy redispatches after a failed connect.
				c.markDown(b, err)
				continue
			}
			return nil, err
		}
		c.learn(out, session, resp, b)
		resp.Body = &callBody{ReadCloser: resp.Body, end: func() { c.end(b, call) }}
		return resp, nil
	}
}

// pick chooses a backend for a request and registers call on it, in one
// critical section so that least-connections counts are exact. It returns
// nil when no backend is alive.
func (c *Cluster) pick(r *http.Request, session string, info *rpcInfo, call *proxyCall) *backend {
	what := r.Method
	if info != nil {
		what += " " + info.String()
	}
	b, why := c.choose(session, call)
	if b == nil {
		c.logf("balancer: %s session=%q: %s: no backend alive, 503", what, session, why)
	} else {
		c.logf("balancer: %s session=%q -> %s (%s)", what, session, b.instance, why)
	}
	return b
}

// choose is pick's critical section; it returns why it chose as it did.
func (c *Cluster) choose(session string, call *proxyCall) (b *backend, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	why = "no session"
	if session != "" {
		why = "unknown session"
		if i, ok := c.stick[session]; ok {
			why = fmt.Sprintf("sticky %s is down, redispatch", instanceName(i))
			if cand := c.backends[i]; cand.alive {
				b, why = cand, "sticky"
			}
		}
	}
	if b == nil {
		b = c.leastConn()
		why += ", least connections"
	}
	if b != nil {
		b.active++
		b.inflight[call] = struct{}{}
	}
	return b, why
}

// leastConn returns the live backend with the fewest requests in flight;
// ties go round the slots so that new sessions spread. The caller holds c.mu.
func (c *Cluster) leastConn() *backend {
	var best *backend
	n := len(c.backends)
	for k := range n {
		b := c.backends[(c.next+k)%n]
		if b.alive && (best == nil || b.active < best.active) {
			best = b
		}
	}
	c.next = (c.next + 1) % n
	return best
}

// end unregisters a finished call and releases its context.
func (c *Cluster) end(b *backend, call *proxyCall) {
	c.mu.Lock()
	if _, ok := b.inflight[call]; ok {
		delete(b.inflight, call)
		b.active--
	}
	c.mu.Unlock()
	call.cancel()
}

// learn is HAProxy's "stick store-response": a response carrying a session
// ID binds it to the backend that issued it.
func (c *Cluster) learn(out *http.Request, session string, resp *http.Response, b *backend) {
	id := resp.Header.Get(sessionIDHeader)
	c.mu.Lock()
	learned := false
	if id != "" {
		if i, ok := c.stick[id]; !ok || i != b.index {
			c.stick[id] = b.index
			learned = true
		}
	}
	if out.Method == http.MethodDelete && session != "" && resp.StatusCode/100 == 2 {
		delete(c.stick, session)
	}
	c.mu.Unlock()
	if learned {
		c.logf("balancer: stick session %s -> %s", id, b.instance)
	}
}

// markDown is the passive health check: a backend that refuses connections
// is down until Restart.
func (c *Cluster) markDown(b *backend, err error) {
	c.mu.Lock()
	was := b.alive
	b.alive = false
	c.mu.Unlock()
	if was {
		c.logf("balancer: %s is down: %v", b.instance, err)
	}
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// callBody ends its call when the proxy is done with the response.
type callBody struct {
	io.ReadCloser
	once sync.Once
	end  func()
}

func (b *callBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.end)
	return err
}

func unavailable(out *http.Request) *http.Response {
	return &http.Response{
		Status:     "503 Service Unavailable",
		StatusCode: http.StatusServiceUnavailable,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":  {"text/html"},
			"Cache-Control": {"no-cache"},
		},
		Body:          io.NopCloser(strings.NewReader(unavailableBody)),
		ContentLength: int64(len(unavailableBody)),
		Request:       out,
	}
}

// hijackClose drops the client's connection without a response. The body
// has been read in full (peek), so the close is a clean FIN: the client sees
// EOF, as when a server dies.
func hijackClose(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// A response has begun: aborting is the only way left to drop it.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}
