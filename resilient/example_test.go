package resilient_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/retry"
)

type greetIn struct {
	Name string `json:"name"`
}

// newGreeter returns an MCP server with one read-only tool, as any go-sdk
// server would be written.
func newGreeter() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "greeter", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "greet", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(_ context.Context, _ *mcp.CallToolRequest, in greetIn) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello, " + in.Name}}}, nil, nil
		})
	return s
}

func textOf(res *mcp.CallToolResult) string {
	if len(res.Content) == 0 {
		return ""
	}
	if t, ok := res.Content[0].(*mcp.TextContent); ok {
		return t.Text
	}
	return ""
}

// Connect a resilient client and call a tool, exactly as with an SDK
// session.
func ExampleConnect() {
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return newGreeter() }, nil))
	defer srv.Close()

	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "my-agent", Version: "1"}, nil)
	c, err := resilient.Connect(ctx, client, resilient.StreamableHTTP(srv.URL, nil), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "greet", Arguments: map[string]any{"name": "Ada"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(textOf(res))
	// Output: hello, Ada
}

// restartable is an HTTP server whose MCP server can be replaced by a
// fresh one, as when the server process restarts: its sessions end, and
// the new one knows none of them.
type restartable struct {
	h      atomic.Pointer[http.Handler]
	server *mcp.Server
}

func (r *restartable) restart() {
	if r.server != nil {
		for ss := range r.server.Sessions() {
			_ = ss.Close()
		}
	}
	server := newGreeter()
	r.server = server
	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	r.h.Store(&h)
}

func (r *restartable) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	(*r.h.Load()).ServeHTTP(w, req)
}

// The server restarts between two calls and forgets the session. The
// second call's request is refused (404, session unknown), so it provably
// did not run: the client connects again and sends it on the new session.
// The caller sees only the answer.
func ExampleClient_CallTool_failover() {
	handler := &restartable{}
	handler.restart()
	srv := httptest.NewServer(handler)
	defer srv.Close()
	defer handler.restart() // end the last server's sessions

	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "my-agent", Version: "1"}, nil)
	c, err := resilient.Connect(ctx, client, resilient.StreamableHTTP(srv.URL, nil), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for _, name := range []string{"Ada", "Grace"} {
		if name == "Grace" {
			handler.restart()
			fmt.Println("the server restarted")
		}
		res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "greet", Arguments: map[string]any{"name": name}})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(textOf(res))
	}
	s := c.Stats()
	fmt.Printf("reconnects: %d, replays: %d, resumes skipped: %d (the server has no resume_session)\n",
		s.Reconnects, s.Replays, s.ResumesSkipped)
	// Output:
	// hello, Ada
	// the server restarted
	// hello, Grace
	// reconnects: 1, replays: 1, resumes skipped: 1 (the server has no resume_session)
}

// Per-call overrides ride on the context, each for the one call it is
// passed to: here a call the server does not annotate as idempotent is
// declared safe to replay, and another is bounded tighter than the
// client's policy. Reusing an override's context for another call is an
// error, never a silent inheritance.
func ExampleClient_CallTool_overrides() {
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return newGreeter() }, nil))
	defer srv.Close()
	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "my-agent", Version: "1"}, nil)
	c, err := resilient.Connect(ctx, client, resilient.StreamableHTTP(srv.URL, nil), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	greet := &mcp.CallToolParams{Name: "greet", Arguments: map[string]any{"name": "Ada"}}
	idem := retry.Idempotent(ctx)
	_, err = c.CallTool(idem, greet)
	fmt.Println("retry.Idempotent:", err)

	_, err = c.CallTool(retry.WithPolicy(ctx, retry.Policy{MaxAttempts: 1}), greet)
	fmt.Println("one attempt at most:", err)

	_, err = c.CallTool(idem, greet)
	fmt.Println("the same override again:", err)
	// Output:
	// retry.Idempotent: <nil>
	// one attempt at most: <nil>
	// the same override again: resilient: tools/call: retry: per-call override already used by an earlier call: retry.Idempotent; derive a new context for each call
}
