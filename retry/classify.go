package retry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Class is what an error tells about a call: whether the server ran it and
// whether the session survived. See the package documentation.
type Class int

// The classes, from the most to the least certain. The zero value, OK, is
// the class of a nil error.
const (
	OK Class = iota
	Cancelled
	Protocol
	NotSent
	Transient
	SessionClosed
	SessionLost
	Ambiguous
)

var classNames = [...]string{"ok", "cancelled", "protocol", "not_sent", "transient", "session_closed", "session_lost", "ambiguous"}

// String returns the class's name as it appears in logs: "ok", "cancelled",
// "protocol", "not_sent", "transient", "session_closed", "session_lost" or
// "ambiguous".
func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "unknown"
	}
	return classNames[c]
}

// JSON-RPC codes the go-sdk uses internally (internal/jsonrpc2/wire.go) and
// that reach callers only as *jsonrpc.Error values.
const (
	codeRejected      = -32005 // ErrRejected: a local transport failure, not a server answer
	codeClientClosing = -32003
	codeServerClosing = -32004
)

// Classify sorts an error returned by a go-sdk client call into a [Class].
// A nil error is [OK]. An error it does not recognise is [Ambiguous]: when in
// doubt, assume the call may have run.
//
// Classify is a pure function, safe for concurrent use.
func Classify(err error) Class {
	if err == nil {
		return OK
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Cancelled
	}
	// A session the SDK already shut down sends nothing: the request never
	// left the client.
	if errors.Is(err, mcp.ErrConnectionClosed) {
		return SessionClosed
	}
	rejected, serverCodes := rpcCodes(err)
	for _, code := range serverCodes {
		if code == codeClientClosing || code == codeServerClosing {
			return SessionClosed
		}
	}
	// A 404 for the session: the request that got it did not run, but the
	// SDK fails every call in flight on the connection with it, so it does
	// not say which request that was.
	if errors.Is(err, mcp.ErrSessionMissing) {
		return SessionLost
	}
	if c, ok := classifyText(err.Error()); ok {
		return c
	}
	if isDialError(err) {
		return NotSent
	}
	if rejected {
		// A transport rejection that also carries the server's own JSON-RPC
		// error (a 4xx with a JSON-RPC body) is the server's answer.
		if len(serverCodes) > 0 {
			return Protocol
		}
		return Ambiguous
	}
	if len(serverCodes) > 0 {
		return Protocol
	}
	return Ambiguous
}

// classifyText holds every decision made from error text. The go-sdk
// reports HTTP statuses, other SDKs' session-lost bodies and stream
// terminations only as strings (in go-sdk v1.8.0 they are part of an
// error's message; no type or sentinel carries them), so this is the one
// place that matches text; each string has its own test case.
func classifyText(msg string) (Class, bool) {
	lower := strings.ToLower(msg)
	switch {
	// TypeScript servers (-32001, id null) and Python servers (-32600,
	// id "server-error") answer 404 with a "Session not found" body; legacy
	// Python servers answer 400 "No valid session ID provided".
	case strings.Contains(lower, "session not found"),
		strings.Contains(lower, "no valid session id"),
		strings.Contains(lower, "session terminated"):
		return SessionLost, true
	// Statuses arrive as http.StatusText at the end of the message. 429 and
	// 503 are refusals: the server (or a balancer with no backend) did not
	// run the request.
	case hasStatus(msg, http.StatusTooManyRequests), hasStatus(msg, http.StatusServiceUnavailable):
		return Transient, true
	// 500, 502 and 504 may come after the backend started the work.
	case hasStatus(msg, http.StatusInternalServerError), hasStatus(msg, http.StatusBadGateway),
		hasStatus(msg, http.StatusGatewayTimeout):
		return Ambiguous, true
	// The server refused the caller; retrying with the same credentials
	// cannot help.
	case hasStatus(msg, http.StatusUnauthorized), hasStatus(msg, http.StatusForbidden):
		return Protocol, true
	// The server answered the handshake with a version the SDK does not
	// speak: retrying cannot change it.
	case strings.Contains(lower, "unsupported protocol version"):
		return Protocol, true
	// The SSE stream carrying the answer ended before the answer.
	case strings.Contains(lower, "request terminated without response"):
		return Ambiguous, true
	}
	return OK, false
}

// hasStatus reports whether msg ends with the text the go-sdk appends for an
// HTTP status (": Service Unavailable").
func hasStatus(msg string, code int) bool {
	return strings.HasSuffix(msg, ": "+http.StatusText(code))
}

// rpcCodes walks the whole error tree (fmt's multi-%w makes it a tree) and
// reports whether it holds the SDK's transport rejection, and the codes of
// every other JSON-RPC error in it.
func rpcCodes(err error) (rejected bool, codes []int64) {
	walkRPC(err, func(we *jsonrpc.Error) {
		if we.Code == codeRejected {
			rejected = true
		} else {
			codes = append(codes, we.Code)
		}
	})
	return rejected, codes
}

// walkRPC calls f for every *jsonrpc.Error in err's tree.
func walkRPC(err error, f func(*jsonrpc.Error)) {
	if err == nil {
		return
	}
	if we, ok := err.(*jsonrpc.Error); ok {
		f(we)
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walkRPC(u.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walkRPC(e, f)
		}
	}
}

// isDialError reports whether err comes from opening a connection: the
// request cannot have left the client.
func isDialError(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
