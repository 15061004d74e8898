package resilient

import (
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"

	"github.com/mcpkit/resilience/resilient/internal/engine"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/retry"
)

// Options configure a [Client]. A nil *Options means all defaults; every
// zero field means its documented default.
type Options struct {
	// Retry is the policy for each call and for the reconnect loop.
	// The zero value means the defaults of [retry.Policy].
	Retry retry.Policy

	// Breaker configures the circuit breaker that guards the server.
	Breaker BreakerSettings

	// Budget configures the retry budget shared by all calls.
	Budget BudgetSettings

	// Resumer restores server-side state after a reconnect. nil means
	// [resume.Tool]{} (the resume_session tool); [resume.None] disables it.
	Resumer resume.Resumer

	// ResumeFrom, when set, is the ID of a session of an earlier process
	// (an agent or CLI that restarted) whose server-side state the client
	// takes over at Connect: the Resumer is called on the first session
	// with this ID, as after a reconnect. Record [Client.ID] (or
	// Stats().SessionID) before exiting to fill it next time. The outcome is
	// reported like a reconnect's (EventResumed, EventResumeSkipped or
	// EventResumeFailed, and Stats); a failed resume does not fail Connect.
	// Default "": start from a new session's empty state.
	ResumeFrom string

	// SessionOptions are passed to every mcp.Client.Connect. After the first
	// connection the client pins the protocol version it negotiated, so
	// reconnects do not probe the server again.
	SessionOptions *mcp.ClientSessionOptions

	// ConnectTimeout bounds one connection attempt (transport, handshake,
	// resume). 0 means 10s.
	ConnectTimeout time.Duration

	// ShowResumeTool keeps the resume tool in ListTools and Tools results.
	// Default false: it is infrastructure, and an agent's model should not
	// see it.
	ShowResumeTool bool

	// Logger receives structured logs: attempts at Debug, reconnects and
	// resumes at Info, failures at Warn. nil means zap.NewNop(). Tool
	// arguments and results are never logged.
	Logger *zap.Logger

	// ConnectOnce makes Connect try the first connection once, instead of
	// trying again (within its context and the policy's MaxElapsed) on
	// failures that say "not yet". Default false.
	ConnectOnce bool

	// Liveness configures how an attempt on a dead route (a black-holed
	// network, a half-open connection, a wedged server) is detected and
	// cut, while an attempt on a live but slow server is never cut.
	// The zero value means the defaults of [LivenessSettings]: probe after
	// 5s of silence, 2s per probe.
	Liveness LivenessSettings

	// Hooks wrap each call and each attempt, for tracing and metrics.
	// Default: none.
	Hooks Hooks

	// OnEvent, when set, receives an [Event] for everything the client does
	// on its own, in the order things happened. It is called on a goroutine
	// of the client's, one event at a time, never while the client holds a
	// lock and never from inside a wait of the client's: it may call any
	// method of the client, Close included. A slow OnEvent delays only the
	// events after it, never a call. A panic in OnEvent is recovered,
	// logged at Error with its stack and counted in Stats.CallbackPanics.
	OnEvent func(Event)
}

// BreakerSettings configure the circuit breaker. It counts consecutive
// failures that show the server unreachable or refusing (connection
// refused, 429, 503, failed dials); any answer from the server resets the
// count. Lost sessions and ambiguous failures are expected during failover
// and are not counted; the dials of the reconnect they cause are. While
// open, calls fail at once with [ErrCircuitOpen] (unless made with
// [retry.WaitForReady]) and the client probes the server with a dial once
// per open period; the first probe that connects closes it. Calls already
// waiting for a reconnect when it opens keep waiting, within their bounds.
type BreakerSettings struct {
	// ConsecutiveFailures opens the breaker. 0 means 10: with the default
	// policy, a single caller's server must be unreachable for about 5s,
	// so that a restart is ridden through without failing new calls, while
	// many callers failing at once open it at once. Negative disables the
	// breaker (the client then dials with the policy's backoff for as long
	// as a reconnect lasts).
	ConsecutiveFailures int
	// OpenTimeout is the open period: how long the breaker stays open
	// between the client's probes; each period is jittered by ±20%. It is
	// also how late, at most, the client notices that the server is back.
	// 0 means 800ms: the first probe after a restarting server is back
	// comes within a second.
	OpenTimeout time.Duration
	// MaxOpenTimeout, when above OpenTimeout, lets each failed probe
	// double the open period up to it: fewer dials to a server that stays
	// down, a later return noticed. 0 (the default) or less than
	// OpenTimeout means OpenTimeout: the period never grows.
	MaxOpenTimeout time.Duration
}

// BudgetSettings configure the retry budget: a token bucket shared by
// every call of a client, after gRPC's retry throttling. Each re-send that
// reached the server and failed again costs a token, each success earns
// Ratio back, and re-sends are allowed while more than half the tokens
// remain.
type BudgetSettings struct {
	// Tokens is the budget's size. 0 means 100. Negative disables the
	// budget.
	Tokens float64
	// Ratio is the tokens each success earns back. 0 means 0.1.
	Ratio float64
}

const (
	defaultConnectTimeout = 10 * time.Second
	defaultBreakerFails   = 10
	defaultOpenTimeout    = 800 * time.Millisecond
)

// validate reports the first field out of range, naming it.
func (o *Options) validate() error {
	if err := o.Retry.Validate(); err != nil {
		return fmt.Errorf("resilient: Options.Retry: %w", err)
	}
	switch {
	case o.ConnectTimeout < 0:
		return fmt.Errorf("resilient: Options.ConnectTimeout is %v; want 0 (default %v) or more", o.ConnectTimeout, defaultConnectTimeout)
	case o.Breaker.OpenTimeout < 0:
		return fmt.Errorf("resilient: Options.Breaker.OpenTimeout is %v; want 0 (default %v) or more", o.Breaker.OpenTimeout, defaultOpenTimeout)
	case o.Breaker.MaxOpenTimeout < 0:
		return fmt.Errorf("resilient: Options.Breaker.MaxOpenTimeout is %v; want 0 (the default: OpenTimeout) or more", o.Breaker.MaxOpenTimeout)
	case o.Liveness.validate() != nil:
		return o.Liveness.validate()
	case o.Budget.Tokens >= 0 && o.Budget.Ratio < 0:
		return fmt.Errorf("resilient: Options.Budget.Ratio is %v; want 0 (default %v) or more", o.Budget.Ratio, engine.DefaultBudgetRatio)
	}
	return nil
}
