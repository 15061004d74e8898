package replica

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// check refuses, with the go-sdk handler's own answers, a request that
// the stock handler would refuse before looking at its session: a
// DNS-rebinding Host, a method other than GET, POST and DELETE, wrong
// media types, a missing session ID, an unsupported protocol version. It
// bounds the body, and returns the request with the context the go-sdk's
// transport needs (see versionContexts).
func (h *Handler) check(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	if !h.opts.DisableLocalhostProtection && rebinding(r) {
		http.Error(w, fmt.Sprintf("Forbidden: invalid Host header %s", quoteCut(r.Host, h.opts.MaxLoggedBytes)), http.StatusForbidden)
		return nil, false
	}
	if r.Body != nil && h.opts.MaxRequestBodyBytes > 0 {
		r.Body = http.MaxBytesReader(w, r.Body, h.opts.MaxRequestBodyBytes)
	}
	id := r.Header.Get("Mcp-Session-Id")
	switch r.Method {
	case http.MethodPost:
		if mediaType(r.Header.Get("Content-Type")) != "application/json" {
			http.Error(w, "Content-Type must be 'application/json'", http.StatusUnsupportedMediaType)
			return nil, false
		}
		if jsonOK, streamOK := accepts(r.Header.Values("Accept")); !jsonOK || !streamOK {
			http.Error(w, "Accept must contain both 'application/json' and 'text/event-stream'", http.StatusBadRequest)
			return nil, false
		}
	case http.MethodGet:
		if _, streamOK := accepts(r.Header.Values("Accept")); !streamOK {
			http.Error(w, "Accept must contain 'text/event-stream' for GET requests", http.StatusBadRequest)
			return nil, false
		}
		if id == "" {
			http.Error(w, "Bad Request: GET requires an Mcp-Session-Id header", http.StatusBadRequest)
			return nil, false
		}
	case http.MethodDelete:
		if id == "" {
			http.Error(w, "Bad Request: DELETE requires an Mcp-Session-Id header", http.StatusBadRequest)
			return nil, false
		}
		return r, true // served without the transport
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return nil, false
	}
	ctx, ok := h.versions.context(w, r, h.getServer(r))
	if !ok {
		return nil, false
	}
	return r.WithContext(ctx), true
}

// versionContexts gives a request the context that the go-sdk's own
// handler gives it before handing it to a StreamableServerTransport: one
// carrying the request's protocol version, under a context key the SDK
// does not export. Without it the transport takes every request for
// protocol 2025-03-26 and writes no priming event, so a client could never
// resume a response stream with Last-Event-ID.
//
// The only exported way to get such a context is to let the SDK's handler
// build it. A probe (a POST without a session ID and without a body, on a
// context of its own) goes to one stock handler, built once, whose
// getServer sees the probe's context and then, once the handler has
// checked the Mcp-Protocol-Version header, a context derived from it: that
// one carries the version. getServer keeps it, and returns nil so that the
// stock handler creates nothing (it answers 400 into a sink). The kept
// context (the carrier) holds the version and nothing of any request, so
// it is kept per server and version, and a request's own context is
// merged with it (versionedContext): one map lookup per request.
//
// A version the handler refuses is not kept, and nor is one the SDK lets
// through unchecked (2026-07-28 and later, which the transport refuses):
// such requests pay for a probe, and the cache stays as small as the set
// of versions the servers support.
type versionContexts struct {
	stock *mcp.StreamableHTTPHandler

	mu       sync.Mutex
	carriers map[versionKey]context.Context
}

type versionKey struct {
	srv     *mcp.Server
	version string
}

// maxCarriers bounds the cache of carriers. It only fills past a few
// entries per server if getServer returns many servers.
const maxCarriers = 256

// firstStatelessVersion is the first protocol version whose requests the
// SDK's handler does not check against the server's supported versions.
const firstStatelessVersion = "2026-07-28"

type probeKey struct{}

// probe is one run of the stock handler.
type probe struct {
	ctx     context.Context // the context the probe was sent with
	srv     *mcp.Server
	carrier context.Context // the derived context, if the version passed
}

func (v *versionContexts) init() {
	v.carriers = make(map[versionKey]context.Context)
	v.stock = mcp.NewStreamableHTTPHandler(func(req *http.Request) *mcp.Server {
		p, ok := req.Context().Value(probeKey{}).(*probe)
		if !ok {
			return nil
		}
		if req.Context() == p.ctx {
			// The version check: it reads the server's own supported
			// versions.
			return p.srv
		}
		p.carrier = req.Context()
		return nil
	}, &mcp.StreamableHTTPOptions{DisableLocalhostProtection: true})
}

// context returns r's context carrying its protocol version, or answers r
// as the stock handler would (an unsupported version) and returns false.
func (v *versionContexts) context(w http.ResponseWriter, r *http.Request, srv *mcp.Server) (context.Context, bool) {
	version := r.Header.Get("Mcp-Protocol-Version")
	key := versionKey{srv, version}
	v.mu.Lock()
	carrier := v.carriers[key]
	v.mu.Unlock()
	if carrier == nil {
		p := &probe{srv: srv}
		p.ctx = context.WithValue(context.Background(), probeKey{}, p)
		req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, "/", http.NoBody)
		if err != nil {
			http.Error(w, "building the protocol version probe: "+err.Error(), http.StatusInternalServerError)
			return nil, false
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if version != "" {
			req.Header.Set("Mcp-Protocol-Version", version)
		}
		var sink responseSink
		v.stock.ServeHTTP(&sink, req)
		if p.carrier == nil {
			for k, vals := range sink.header {
				w.Header()[k] = vals
			}
			w.WriteHeader(cmp.Or(sink.status, http.StatusBadRequest))
			_, _ = w.Write(sink.body.Bytes())
			return nil, false
		}
		carrier = p.carrier
		if version < firstStatelessVersion {
			v.mu.Lock()
			if len(v.carriers) < maxCarriers {
				v.carriers[key] = carrier
			}
			v.mu.Unlock()
		}
	}
	return versionedContext{r.Context(), carrier}, true
}

// versionedContext is a request's context that also answers the values
// of a carrier. The carrier is a value context over context.Background,
// so it adds values and nothing else: no deadline, no cancellation.
type versionedContext struct {
	context.Context
	carrier context.Context
}

func (c versionedContext) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.carrier.Value(key)
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
