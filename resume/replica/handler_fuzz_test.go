package replica_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume/memstore"
	"github.com/mcpkit/resilience/resume/replica"
)

// FuzzHandlerRequest sends the adopting handler requests built from
// hostile headers (Mcp-Session-Id, Mcp-Protocol-Version, Content-Type,
// Accept, Host on a loopback address) and bodies, on an unknown session or
// (live) on a live one. Whatever the request, the handler answers within
// the request's time, with a client error or a success, and an answer
// whose size is bounded by the request's; a session ID that cannot be one
// is never served. The seed corpus (testdata/fuzz/FuzzHandlerRequest) holds
// the hostile inputs the handler was tried with.
func FuzzHandlerRequest(f *testing.F) {
	store := memstore.New(0)
	srv := mcp.NewServer(&mcp.Implementation{Name: "fuzz", Version: "1"}, &mcp.ServerOptions{
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, struct{}, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, struct{}{}, nil
	})
	h := replica.NewHandler(func(*http.Request) *mcp.Server { return srv }, store, &replica.HandlerOptions{
		EventStore: mcp.NewMemoryEventStore(nil),
		// Sessions the fuzzer initializes must not fill the limits.
		MaxSessionsPerClient: -1,
		MaxPendingSessions:   -1,
	})
	f.Cleanup(func() { h.Close() })

	serve := func(method, session, version, contentType, accept, host string, body []byte, loopback bool) *httptest.ResponseRecorder {
		// The bound ends a GET's event stream, which otherwise lasts as
		// long as its client.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if loopback {
			ctx = context.WithValue(ctx, http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80})
		}
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", strings.NewReader(string(body)))
		req.Method = method
		req.Host = host
		for k, v := range map[string]string{"Mcp-Session-Id": session, "Mcp-Protocol-Version": version, "Content-Type": contentType, "Accept": accept} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	init := serve(http.MethodPost, "", "", "application/json", "application/json, text/event-stream", "localhost",
		[]byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"fuzz","version":"1"}}}`), false)
	live := init.Header().Get("Mcp-Session-Id")
	if init.Code != http.StatusOK || live == "" {
		f.Fatalf("initialize: %d %q", init.Code, init.Body.String())
	}
	serve(http.MethodPost, live, "2025-06-18", "application/json", "application/json, text/event-stream", "localhost", []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), false)

	f.Add("POST", "", "2025-06-18", "application/json", "application/json, text/event-stream", "localhost", []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`), true, false)
	f.Fuzz(func(t *testing.T, method, session, version, contentType, accept, host string, body []byte, useLive, loopback bool) {
		if useLive {
			session = live
		}
		start := time.Now()
		w := serve(method, session, version, contentType, accept, host, body, loopback)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("answered after %v", d)
		}
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Errorf("status %d (%q)", w.Code, w.Body.String())
		}
		// The go-sdk's answers may quote the body and the headers (a
		// request ID, a protocol version); nothing else grows them.
		in := len(body) + len(session) + len(version) + len(contentType) + len(accept) + len(host)
		if max := 2*in + 4096; w.Body.Len() > max && method != http.MethodGet {
			t.Errorf("an answer of %d bytes to a request of %d", w.Body.Len(), in)
		}
		if session != "" && replica.ValidateSessionID(session) != nil && w.Code < 300 {
			t.Errorf("session ID %q, which cannot be one, served with status %d", session, w.Code)
		}
	})
}
