package resilient_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/retry"
)

// handlerRT serves HTTP requests by calling a handler in process, so that
// a streamable HTTP client runs inside a synctest bubble; while refuse is
// positive, POSTs are answered 503 with a Retry-After header instead.
type handlerRT struct {
	h          http.Handler
	refuse     atomic.Int32
	retryAfter string
}

func (rt *handlerRT) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && rt.refuse.Add(-1) >= 0 {
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
			Header: http.Header{"Retry-After": {rt.retryAfter}}, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
	}
	rec := httptest.NewRecorder()
	rt.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

func retryAfterClient(t *testing.T, retryAfter string, opts *resilient.Options) (*resilient.Client, *handlerRT) {
	t.Helper()
	srv := echoServer()
	rt := &handlerRT{retryAfter: retryAfter,
		h: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{JSONResponse: true})}
	factory := resilient.StreamableHTTPTransport(mcp.StreamableClientTransport{
		Endpoint: "http://mcp.test/mcp", HTTPClient: &http.Client{Transport: rt}, DisableStandaloneSSE: true})
	c, err := resilient.Connect(context.Background(), newClient(), factory, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, rt
}

// A 503 with Retry-After is waited out, longer than the policy's backoff,
// and the call then succeeds on the same session.
func TestRetryAfterHonoured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rt := retryAfterClient(t, "3", nil)
		rt.refuse.Store(1)
		start := time.Now()
		if _, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}}); err != nil {
			t.Fatalf("call refused once with Retry-After: %v", err)
		}
		if d := time.Since(start); d < 3*time.Second {
			t.Errorf("sent again after %v, want the server's Retry-After of 3s", d)
		}
		if s := c.Stats(); s.Reconnects != 0 || s.Retries != 1 {
			t.Errorf("Stats = %+v, want one retry on the same session", s)
		}
	})
}

// A Retry-After beyond the call's bounds ends the call at once, saying so.
func TestRetryAfterBeyondBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rt := retryAfterClient(t, "60", &resilient.Options{Retry: retry.Policy{MaxElapsed: 10 * time.Second}})
		rt.refuse.Store(1)
		start := time.Now()
		_, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}})
		var ee *retry.ExhaustedError
		if !errors.As(err, &ee) || ee.Reason != retry.ReasonRetryAfter {
			t.Fatalf("err = %v, want ErrExhausted naming Retry-After", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("returned after %v, want at once", d)
		}
		// The caller's own deadline, shorter than Retry-After, ends the
		// call with the context's error and the refusal, at once too.
		rt.refuse.Store(1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}}); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "Service Unavailable") {
			t.Errorf("err = %v, want context.DeadlineExceeded carrying the 503", err)
		}
	})
}

// Connect waits out a Retry-After on the handshake too, not sooner.
func TestConnectHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := echoServer()
		rt := &handlerRT{retryAfter: "2",
			h: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{JSONResponse: true})}
		// go-sdk tries server/discover first and falls back to initialize:
		// refuse both.
		rt.refuse.Store(2)
		factory := resilient.StreamableHTTPTransport(mcp.StreamableClientTransport{
			Endpoint: "http://mcp.test/mcp", HTTPClient: &http.Client{Transport: rt}, DisableStandaloneSSE: true})
		start := time.Now()
		c, err := resilient.Connect(context.Background(), newClient(), factory, nil)
		if err != nil {
			t.Fatalf("Connect refused once with Retry-After: %v", err)
		}
		defer c.Close()
		if d := time.Since(start); d < 2*time.Second {
			t.Errorf("dialled again after %v, want the server's Retry-After of 2s", d)
		}
		if s := c.Stats(); s.Dials != 2 {
			t.Errorf("Stats.Dials = %d, want 2", s.Dials)
		}
	})
}

// A Retry-After on the handshake beyond Connect's deadline ends Connect at
// once, saying why.
func TestConnectRetryAfterBeyondDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := echoServer()
		rt := &handlerRT{retryAfter: "60",
			h: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{JSONResponse: true})}
		// go-sdk tries server/discover first and falls back to initialize:
		// refuse both.
		rt.refuse.Store(2)
		factory := resilient.StreamableHTTPTransport(mcp.StreamableClientTransport{
			Endpoint: "http://mcp.test/mcp", HTTPClient: &http.Client{Transport: rt}, DisableStandaloneSSE: true})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		_, err := resilient.Connect(ctx, newClient(), factory, nil)
		var ex *retry.ExhaustedError
		if !errors.As(err, &ex) || ex.Reason != retry.ReasonRetryAfter {
			t.Fatalf("Connect = %v, want retry.ExhaustedError with ReasonRetryAfter", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Connect gave up after %v, want at once", d)
		}
	})
}
