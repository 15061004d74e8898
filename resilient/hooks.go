package resilient

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/retry"
)

// Hooks let instrumentation (traces, metrics) wrap what a [Client] does,
// the way gRPC's interceptors do. Each hook is optional; with none set the
// client pays one nil check per call and per attempt. Package
// github.com/mcpkit/resilience/extra/resilientotel implements them with
// OpenTelemetry.
//
// Call and Attempt run on the goroutine of the call, synchronously: they
// must be quick, safe for concurrent use, and must not call the client.
type Hooks struct {
	// Call wraps each call made through the client's methods: all its
	// attempts, waits and replays. It must call next exactly once, with
	// ctx or a context derived from it (one carrying a span, say), and
	// return next's error unchanged. The client fills info in as the call
	// runs: read it after next returns.
	Call func(ctx context.Context, info *CallInfo, next func(context.Context) error) error

	// Attempt wraps each attempt: one send of the call on one session. Same
	// contract as Call. Before calling next, the hook may add keys to
	// info.Meta, which the request then carries in its _meta (W3C trace
	// context: "traceparent", "tracestate"); the caller's params are never
	// changed. After next returns, info.Class is the attempt's outcome.
	Attempt func(ctx context.Context, info *AttemptInfo, next func(context.Context) error) error

	// Event receives every [Event], as Options.OnEvent does and before it,
	// on the same goroutine and in the same order: instrumentation counts
	// reconnects and breaker changes here, leaving OnEvent to the
	// application.
	Event func(Event)
}

// CallInfo describes one call, for [Hooks].Call.
type CallInfo struct {
	// Method is the JSON-RPC method ("tools/call"); Tool the tool's name,
	// for tools/call.
	Method, Tool string
	// SessionID, ProtocolVersion, ServerAddress and ServerPort describe
	// the session in use when the call started (see [AttemptInfo]): known
	// even for a call refused before any attempt (an open breaker).
	SessionID, ProtocolVersion string
	ServerAddress              string
	ServerPort                 int
	// Result is the call's result once next returned nil: a
	// *mcp.CallToolResult for tools/call, the SDK's result type of each
	// other method, nil for methods without one (ping).
	Result any
	// Attempts counts the sends of the call, Replays those made on a
	// session that replaced the one of an earlier attempt.
	Attempts, Replays int
	// Reconnects are the session replacements the call waited for, in
	// order. A replacement serves every call that waited for it: each of
	// them reports it.
	Reconnects []ReconnectInfo
}

// ReconnectInfo describes one session replacement.
type ReconnectInfo struct {
	// Start and End bound it: from the failure that started it to the new
	// session in use (or the reconnect's end without one).
	Start, End time.Time
	// OldSessionID is the session replaced; SessionID the new one.
	OldSessionID, SessionID string
	// Dials counts its connection attempts.
	Dials int
	// Resume is the server's answer to resume_session, when it answered;
	// ResumeErr says why there was no resume (skipped, failed) otherwise.
	Resume    *resume.Result
	ResumeErr error
	// Err is the reconnect's failure; nil when a new session is in place.
	Err error
}

// AttemptInfo describes one attempt, for [Hooks].Attempt.
type AttemptInfo struct {
	// Method and Tool are the call's.
	Method, Tool string
	// Attempt numbers the sends of the call (1 is the first); Replay is
	// true when the call was sent on a session that replaced the one of an
	// earlier attempt.
	Attempt int
	Replay  bool
	// SessionID and ProtocolVersion are those of the session the attempt
	// is sent on; Generation counts sessions (1 for the first).
	SessionID, ProtocolVersion string
	Generation                 uint64
	// ServerAddress and ServerPort come from the endpoint of the
	// StreamableHTTP and SSE factories ("" and 0 with other transports).
	ServerAddress string
	ServerPort    int
	// Meta is what the hook adds to the request's _meta. It starts empty.
	Meta map[string]any
	// Class is the attempt's outcome ([retry.OK] on success), once next
	// returned.
	Class retry.Class
}

// endpointOf returns the host and port of an HTTP endpoint, for
// AttemptInfo.
func endpointOf(endpoint string) (string, int) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "", 0
	}
	host, portText, err := net.SplitHostPort(u.Host)
	if err != nil {
		host = u.Host
		switch u.Scheme {
		case "https":
			portText = "443"
		default:
			portText = "80"
		}
	}
	port, _ := strconv.Atoi(portText)
	return host, port
}
