package retry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/retry"
)

// The errors below are built the way go-sdk v1.8.0 builds them (see its
// mcp/transport.go and mcp/streamable.go), one for each kind of failure
// the client can see.

var errRejected = &jsonrpc.Error{Code: -32005, Message: "rejected by transport"}

// calling wraps as mcp/transport.go call() does.
func calling(err error) error { return fmt.Errorf("calling %q: %w", "tools/call", err) }

// sendFailed wraps a client.Do failure as streamable.go does.
func sendFailed(err error) error {
	return calling(fmt.Errorf("sending %q: %w: %w", "tools/call", errRejected, &url.Error{Op: "Post", URL: "http://127.0.0.1:1", Err: err}))
}

// status wraps a transient HTTP status as checkResponse does.
func status(text string) error {
	return calling(fmt.Errorf("%w: sending %q: %v", errRejected, "tools/call", text))
}

// body wraps a non-2xx JSON-RPC error body as checkResponse does.
func body(code int64, msg, statusText string) error {
	return calling(fmt.Errorf("sending %q: %w: %w: %v", "tools/call", &jsonrpc.Error{Code: code, Message: msg}, errRejected, statusText))
}

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	sessionMissing := calling(fmt.Errorf("sending %q: failed to connect (session ID: ABC): %w", "tools/call", mcp.ErrSessionMissing))
	tests := []struct {
		name string
		err  error
		want retry.Class
	}{
		{"nil", nil, retry.OK},
		{"context canceled", context.Canceled, retry.Cancelled},
		{"deadline exceeded", context.DeadlineExceeded, retry.Cancelled},
		{"connection refused at connect", fmt.Errorf("calling %q: %w", "initialize", sendFailed(refused)), retry.NotSent},
		{"connection refused", sendFailed(refused), retry.NotSent},
		{"dns failure", sendFailed(&net.DNSError{Err: "no such host", Name: "mcp.invalid"}), retry.NotSent},
		{"EOF after the request was written", sendFailed(io.EOF), retry.Ambiguous},
		{"connection reset", sendFailed(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), retry.Ambiguous},
		{"request terminated without response", calling(errors.New("request terminated without response")), retry.Ambiguous},
		{"failed to reconnect, flattened", calling(errors.New(`sending "tools/call": failed to reconnect (session ID: X): connection failed after 2 attempts: Get "http://127.0.0.1:1": dial tcp 127.0.0.1:1: connect: connection refused`)), retry.Ambiguous},
		{"404 for a known session", sessionMissing, retry.SessionLost},
		{"later calls on the broken session", fmt.Errorf("%w: calling %q: %v", mcp.ErrConnectionClosed, "tools/call", "client is closing: "+sessionMissing.Error()), retry.SessionClosed},
		{"standalone SSE gave up", fmt.Errorf("%w: calling %q: %v", mcp.ErrConnectionClosed, "tools/call", "client is closing: standalone SSE stream: failed to reconnect"), retry.SessionClosed},
		{"stdio: peer died in flight", calling(io.EOF), retry.Ambiguous},
		{"stdio: later calls", fmt.Errorf("%w: calling %q: %v", mcp.ErrConnectionClosed, "tools/call", "client is closing: EOF"), retry.SessionClosed},
		{"404 JSON body with id, Python", body(-32600, "Session not found", "Not Found"), retry.SessionLost},
		{"404 JSON body, TypeScript code", body(-32001, "Session not found", "Not Found"), retry.SessionLost},
		{"legacy 400 no valid session ID", body(-32600, "Bad Request: No valid session ID provided", "Bad Request"), retry.SessionLost},
		{"python client text session terminated", errors.New("Session terminated"), retry.SessionLost},
		{"unsupported protocol version at the handshake", errors.New(`unsupported protocol version: "1999-01-01"`), retry.Protocol},
		{"503", status("Service Unavailable"), retry.Transient},
		{"429", status("Too Many Requests"), retry.Transient},
		{"500", status("Internal Server Error"), retry.Ambiguous},
		{"502", status("Bad Gateway"), retry.Ambiguous},
		{"504", status("Gateway Timeout"), retry.Ambiguous},
		{"401 without OAuth", calling(fmt.Errorf("sending %q: %v", "tools/call", "Unauthorized")), retry.Protocol},
		{"403", calling(fmt.Errorf("sending %q: %v", "tools/call", "Forbidden")), retry.Protocol},
		{"unknown tool, legacy", calling(&jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: `unknown tool "x"`}), retry.Protocol},
		{"unknown tool, 2026 over HTTP 400", body(jsonrpc.CodeInvalidParams, `unknown tool "x"`, "Bad Request"), retry.Protocol},
		{"404 method not found is not session loss (a server without the method answers 404)", body(jsonrpc.CodeMethodNotFound, "method not found", "Not Found"), retry.Protocol},
		{"tool handler's own JSON-RPC error", calling(&jsonrpc.Error{Code: -32000, Message: "quota"}), retry.Protocol},
		{"client closing code without the sentinel", calling(&jsonrpc.Error{Code: -32003, Message: "client is closing"}), retry.SessionClosed},
		{"unknown error", errors.New("something odd"), retry.Ambiguous},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retry.Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%q) = %v, want %v", errString(tt.err), got, tt.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestClassString(t *testing.T) {
	for c, want := range map[retry.Class]string{
		retry.OK: "ok", retry.Cancelled: "cancelled", retry.Protocol: "protocol", retry.NotSent: "not_sent",
		retry.Transient: "transient", retry.SessionClosed: "session_closed", retry.SessionLost: "session_lost", retry.Ambiguous: "ambiguous", retry.Class(99): "unknown",
	} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"", "Service Unavailable", "session not found", "request terminated without response", ": Bad Gateway"} {
		f.Add(s, int64(-32005))
	}
	f.Fuzz(func(t *testing.T, msg string, code int64) {
		errs := []error{
			errors.New(msg),
			calling(errors.New(msg)),
			body(code, msg, msg),
			status(msg),
		}
		for _, err := range errs {
			c := retry.Classify(err)
			if c == retry.OK {
				t.Fatalf("Classify(%q) = ok for a non-nil error", err)
			}
			if c.String() == "unknown" {
				t.Fatalf("Classify(%q) = %d, not a defined class", err, int(c))
			}
		}
	})
}
