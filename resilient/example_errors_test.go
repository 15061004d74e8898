package resilient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/retry"
)

// handle is how a caller tells the errors of a call apart: each one asks
// for a different reaction. The order matters where an error matches more
// than one (a refused call after failed attempts matches both
// ErrCircuitOpen and the attempts' errors).
func handle(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, resilient.ErrClosed):
		return "ErrClosed: the client was closed; connect a new one"
	case errors.Is(err, resilient.ErrCircuitOpen):
		return "ErrCircuitOpen: the server is down; fail fast, or wait with retry.WaitForReady"
	case errors.Is(err, resilient.ErrOutcomeUnknown):
		return "ErrOutcomeUnknown: it may have run; look before calling again"
	case errors.Is(err, retry.ErrExhausted):
		return "retry.ErrExhausted: every attempt failed; try later"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "the caller's context ended"
	default:
		return "the server's answer: " + err.Error()
	}
}

// faultyServer is an MCP server behind an HTTP handler that can fail the
// ways a network and a server do: it loses the answer of "charge" after
// running it, answers 503 to "busy", and refuses resume_session.
type faultyServer struct {
	charges atomic.Int32
	server  *mcp.Server
}

func (f *faultyServer) mcpServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "shop", Version: "1"}, nil)
	readOnly := &mcp.ToolAnnotations{ReadOnlyHint: true}
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	mcp.AddTool(s, &mcp.Tool{Name: "greet", Annotations: readOnly},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return text("hello"), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "busy", Annotations: readOnly},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return text("never reached"), nil, nil
		})
	// charge has no annotations: running it twice may be unsafe.
	mcp.AddTool(s, &mcp.Tool{Name: "charge"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			f.charges.Add(1)
			return text("charged"), nil, nil
		})
	// A server that cannot carry a session's state over answers
	// resume_session with an error.
	mcp.AddTool(s, &mcp.Tool{Name: resume.ToolName},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return nil, nil, errors.New("this server keeps no session state")
		})
	return s
}

func (f *faultyServer) handler() http.Handler {
	server := f.mcpServer()
	f.server = server
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		switch {
		case bytes.Contains(body, []byte(`"name":"busy"`)):
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		case bytes.Contains(body, []byte(`"name":"charge"`)):
			// The tool runs; its answer is lost with the connection.
			mcpHandler.ServeHTTP(httptest.NewRecorder(), r)
			panic(http.ErrAbortHandler)
		default:
			mcpHandler.ServeHTTP(w, r)
		}
	})
}

// Each error a call can end with, and how to tell them apart with
// errors.Is. A failed resume is not a call's error: it arrives as an event,
// and the calls go on, on a session that starts empty.
func Example_errors() {
	f := &faultyServer{}
	srv := httptest.NewServer(f.handler())
	defer srv.Close()
	defer func() { // end the sessions the server still holds
		for ss := range f.server.Sessions() {
			_ = ss.Close()
		}
	}()

	resumeFailed := make(chan bool, 1)
	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "my-agent", Version: "1"}, nil)
	c, err := resilient.Connect(ctx, client, resilient.StreamableHTTP(srv.URL, nil), &resilient.Options{
		Breaker: resilient.BreakerSettings{ConsecutiveFailures: 3, OpenTimeout: time.Minute, MaxOpenTimeout: time.Minute},
		OnEvent: func(ev resilient.Event) {
			if ev.Kind == resilient.EventResumeFailed {
				select {
				case resumeFailed <- errors.Is(ev.Err, resume.ErrResumeFailed):
				default:
				}
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	call := func(ctx context.Context, tool string) error {
		_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: tool})
		return err
	}

	fmt.Println("greet:", handle(call(ctx, "greet")))

	// The request is sent, the tool runs, the connection dies before the
	// answer: the client reconnects but does not send it again.
	fmt.Println("charge:", handle(call(ctx, "charge")), "| runs:", f.charges.Load())
	select {
	case failed := <-resumeFailed:
		fmt.Println("resume on the new session failed:", failed)
	case <-time.After(10 * time.Second):
		fmt.Println("no resume event within 10s")
	}

	// A read-only tool is retried, here at most twice.
	twice := retry.WithPolicy(ctx, retry.Policy{MaxAttempts: 2, InitialBackoff: time.Millisecond})
	fmt.Println("busy:", handle(call(twice, "busy")))

	// The server goes away: calls fail until the breaker opens, then at
	// once without sending anything.
	srv.Listener.Close()
	srv.CloseClientConnections()
	var last error
	for range 10 {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		last = call(retry.WithPolicy(ctx, retry.Policy{MaxAttempts: 2, InitialBackoff: time.Millisecond}), "greet")
		cancel()
		if errors.Is(last, resilient.ErrCircuitOpen) {
			break
		}
	}
	fmt.Println("greet, server down:", handle(last))

	c.Close()
	fmt.Println("greet after Close:", handle(call(ctx, "greet")))
	// Output:
	// greet: ok
	// charge: ErrOutcomeUnknown: it may have run; look before calling again | runs: 1
	// resume on the new session failed: true
	// busy: retry.ErrExhausted: every attempt failed; try later
	// greet, server down: ErrCircuitOpen: the server is down; fail fast, or wait with retry.WaitForReady
	// greet after Close: ErrClosed: the client was closed; connect a new one
}
