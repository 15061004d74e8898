package resilient_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
)

// blockingServer has a write ("block") and a read ("block_read") that run
// until their request's context ends or release is closed.
func blockingServer(release <-chan struct{}) *mcp.Server {
	s := echoServer()
	wait := func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-release:
			return &mcp.CallToolResult{}, nil
		}
	}
	schema := map[string]any{"type": "object"}
	s.AddTool(&mcp.Tool{Name: "block", InputSchema: schema}, wait)
	s.AddTool(&mcp.Tool{Name: "block_read", InputSchema: schema, Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, wait)
	return s
}

// asyncRT is handlerRT whose requests end with their context, as over a
// real connection, while the handler may still run.
type asyncRT struct{ *handlerRT }

func (rt asyncRT) RoundTrip(req *http.Request) (*http.Response, error) {
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := rt.handlerRT.RoundTrip(req)
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		return r.resp, r.err
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
}

func inProcessClient(t *testing.T, srv *mcp.Server) (*resilient.Client, *handlerRT) {
	t.Helper()
	rt := &handlerRT{h: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{JSONResponse: true})}
	factory := resilient.StreamableHTTPTransport(mcp.StreamableClientTransport{
		Endpoint: "http://mcp.test/mcp", HTTPClient: &http.Client{Transport: asyncRT{rt}}, DisableStandaloneSSE: true})
	c, err := resilient.Connect(context.Background(), newClient(), factory, &resilient.Options{
		Breaker: resilient.BreakerSettings{ConsecutiveFailures: -1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, rt
}

// A call its deadline ends after failed attempts says why: the error
// matches the context's and carries the last failure. Every attempt was
// refused (503): it provably did not run, and is not reported unknown.
func TestDeadlineErrorCarriesLastFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		c, rt := inProcessClient(t, blockingServer(release))
		rt.refuse.Store(1 << 20)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "block"})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want it to match context.DeadlineExceeded", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "last error") || !strings.Contains(msg, "Service Unavailable") {
			t.Errorf("err = %q, want the last failure (Service Unavailable) in it", msg)
		}
		if errors.Is(err, resilient.ErrOutcomeUnknown) {
			t.Errorf("err = %v matches ErrOutcomeUnknown; every attempt was refused, none ran", err)
		}
	})
}

// A write sent and then cut by the caller's deadline may have run: the
// error matches the deadline and ErrOutcomeUnknown. A read cut the same
// way is harmless to repeat: it matches the deadline only. (The client
// learns annotations on a failure's path within the call's own bounds;
// once the caller's context has ended there is none left, so here the
// tools are listed first.)
func TestDeadlineOnAWriteInFlightIsUnknown(t *testing.T) {
	for _, tt := range []struct {
		tool    string
		unknown bool
	}{{"block", true}, {"block_read", false}} {
		t.Run(tt.tool, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				defer close(release)
				c, _ := inProcessClient(t, blockingServer(release))
				if _, err := c.ListTools(context.Background(), nil); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: tt.tool})
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want it to match context.DeadlineExceeded", err)
				}
				if got := errors.Is(err, resilient.ErrOutcomeUnknown); got != tt.unknown {
					t.Errorf("errors.Is(%v, ErrOutcomeUnknown) = %v, want %v", err, got, tt.unknown)
				}
			})
		})
	}
}
