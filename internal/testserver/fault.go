package testserver

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// FaultKind says what the balancer does to a request a [Fault] matches.
type FaultKind int

const (
	// DropBeforeTool closes the client's connection without forwarding the
	// request: no backend ever sees it. The go-sdk client reports
	// `rejected by transport: Post "...": EOF` and its session survives.
	DropBeforeTool FaultKind = iota + 1

	// DropAfterTool forwards the request, lets the backend run it and write
	// its whole response, throws the response away and closes the client's
	// connection: the tool ran, and the client cannot know it. This is the
	// double-execution trap; the client sees the same error as with
	// DropBeforeTool.
	DropAfterTool

	// NotFoundPlain answers 404 text/plain "session not found", as go-sdk
	// servers do, and makes the session really gone (see ExpireSession).
	NotFoundPlain

	// NotFoundJSONNullID answers 404 application/json
	// {"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}},
	// as TypeScript-SDK servers do, and makes the session gone.
	NotFoundJSONNullID

	// NotFoundJSONWithID answers 404 application/json
	// {"jsonrpc":"2.0","id":"server-error","error":{"code":-32600,"message":"Session not found"}},
	// as Python-SDK servers do, and makes the session gone.
	NotFoundJSONWithID

	// BadRequestNoSession answers 400 application/json
	// {"jsonrpc":"2.0","id":"server-error","error":{"code":-32600,"message":"Bad Request: No valid session ID provided"}},
	// as older Python-SDK servers do for an unknown session, and makes the
	// session gone.
	BadRequestNoSession

	// Unavailable answers 503 with HAProxy's "No server is available to
	// handle this request." page, without forwarding.
	Unavailable

	// Latency waits Fault.Delay, then forwards the request normally.
	Latency

	// ExpireSession makes the backend forget the request's session (see
	// Cluster.Expire), then forwards the request, which meets the SDK's own
	// 404 like every later request of that session.
	ExpireSession
)

var faultNames = [...]string{
	DropBeforeTool:      "DropBeforeTool",
	DropAfterTool:       "DropAfterTool",
	NotFoundPlain:       "NotFoundPlain",
	NotFoundJSONNullID:  "NotFoundJSONNullID",
	NotFoundJSONWithID:  "NotFoundJSONWithID",
	BadRequestNoSession: "BadRequestNoSession",
	Unavailable:         "Unavailable",
	Latency:             "Latency",
	ExpireSession:       "ExpireSession",
}

// String returns the constant's name.
func (k FaultKind) String() string {
	if k > 0 && int(k) < len(faultNames) {
		return faultNames[k]
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// Fault is a one-shot failure that the balancer applies to the next requests
// it matches. Only POSTs carrying at least one JSON-RPC request match:
// notifications, responses, GET and DELETE pass untouched.
type Fault struct {
	Kind FaultKind

	// Method is the JSON-RPC method to match ("tools/call", "tools/list",
	// "initialize", ...). Empty matches any request.
	Method string

	// Tool, for tools/call, is the tool name to match. Empty matches any
	// tool. A Tool with an empty Method matches only tools/call.
	Tool string

	// Count is how many matching requests the fault applies to. Zero or
	// less means 1.
	Count int

	// Delay is how long Latency waits.
	Delay time.Duration
}

// Inject queues f behind the faults already pending. A request meets at
// most one fault: the oldest pending one it matches. Inject panics on an
// unknown Kind, a mistake in the test.
func (c *Cluster) Inject(f Fault) {
	if f.Kind <= 0 || int(f.Kind) >= len(faultNames) {
		panic(fmt.Sprintf("testserver: Inject: unknown fault kind %v", f.Kind))
	}
	if f.Count <= 0 {
		f.Count = 1
	}
	c.mu.Lock()
	c.faults = append(c.faults, &f)
	c.mu.Unlock()
}

// takeFault consumes one application of the oldest pending fault that
// matches info.
func (c *Cluster) takeFault(info *rpcInfo) (Fault, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, f := range c.faults {
		if !f.matches(info) {
			continue
		}
		f.Count--
		if f.Count == 0 {
			c.faults = slices.Delete(c.faults, i, i+1)
		}
		return *f, true
	}
	return Fault{}, false
}

func (f *Fault) matches(info *rpcInfo) bool {
	for _, call := range info.calls {
		if f.Method != "" && call.method != f.Method {
			continue
		}
		if f.Tool != "" && (call.method != "tools/call" || call.tool != f.Tool) {
			continue
		}
		return true
	}
	return false
}

// applyFault applies f to r and reports whether it answered the request;
// if not, the balancer forwards it.
func (c *Cluster) applyFault(w http.ResponseWriter, r *http.Request, f Fault) (handled bool) {
	session := r.Header.Get(sessionIDHeader)
	switch f.Kind {
	case DropBeforeTool:
		hijackClose(w)
	case DropAfterTool:
		c.dropAfter(w, r)
	case NotFoundPlain:
		c.forget(session)
		// The go-sdk's words, from http.Error.
		http.Error(w, "session not found", http.StatusNotFound)
	case NotFoundJSONNullID:
		c.forget(session)
		writeBody(w, http.StatusNotFound, "application/json",
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}`)
	case NotFoundJSONWithID:
		c.forget(session)
		writeBody(w, http.StatusNotFound, "application/json",
			`{"jsonrpc":"2.0","id":"server-error","error":{"code":-32600,"message":"Session not found"}}`)
	case BadRequestNoSession:
		c.forget(session)
		writeBody(w, http.StatusBadRequest, "application/json",
			`{"jsonrpc":"2.0","id":"server-error","error":{"code":-32600,"message":"Bad Request: No valid session ID provided"}}`)
	case Unavailable:
		w.Header().Set("Cache-Control", "no-cache")
		writeBody(w, http.StatusServiceUnavailable, "text/html", unavailableBody)
	case Latency:
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
			return false
		case <-r.Context().Done():
			// The client gave up or the cluster is closing: drop the
			// connection rather than let net/http answer an empty 200.
			hijackClose(w)
		}
	case ExpireSession:
		c.forget(session)
		return false
	}
	return true
}

// dropAfter forwards r, waits for the backend's complete response, and then
// drops the client's connection without a byte of it.
func (c *Cluster) dropAfter(w http.ResponseWriter, r *http.Request) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = "http"
	out.URL.Host = "backend.invalid"
	resp, err := balancerTransport{c}.RoundTrip(out)
	if err == nil {
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		c.logf("balancer: dropped a %s response of %d bytes", resp.Status, n)
	}
	hijackClose(w)
}

func writeBody(w http.ResponseWriter, status int, contentType, body string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
}
