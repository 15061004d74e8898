package resilient

import (
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"

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

	// OnEvent, when set, receives an [Event] for everything the client does
	// on its own. It is called synchronously, never while the client holds
	// a lock: on the goroutine of the call concerned, or, for reconnect
	// events, on the reconnect goroutine once the reconnect has finished
	// and before the calls waiting for it go on (so events arrive in the
	// order things happened). It may call the client's methods. It should
	// return quickly: a slow OnEvent delays the calls it reports on.
	// A panic in OnEvent is recovered, logged at Error with its stack and
	// counted in Stats.CallbackPanics; the call goes on.
	OnEvent func(Event)
}

// BreakerSettings configure the circuit breaker. It counts failed attempts
// that show the server unreachable or refusing (connection refused, 429,
// 503, failed reconnects); lost sessions and ambiguous failures are
// expected during failover and are not counted, the reconnect they cause
// is.
type BreakerSettings struct {
	// ConsecutiveFailures opens the breaker. 0 means 5; negative disables
	// the breaker.
	ConsecutiveFailures int
	// OpenTimeout is how long the breaker stays open before it lets a
	// trial attempt through (half-open). 0 means 30s.
	OpenTimeout time.Duration
	// HalfOpenRequests is how many trial attempts may run while half-open;
	// that many successes close it. 0 means 1.
	HalfOpenRequests int
}

// BudgetSettings configure the retry budget ([retry.Budget]).
type BudgetSettings struct {
	// Tokens is the budget's size. 0 means retry.DefaultBudgetTokens (100).
	// Negative disables the budget.
	Tokens float64
	// Ratio is the tokens each success earns back. 0 means
	// retry.DefaultBudgetRatio (0.1).
	Ratio float64
}

const (
	defaultConnectTimeout = 10 * time.Second
	defaultBreakerFails   = 5
	defaultBreakerTimeout = 30 * time.Second
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
		return fmt.Errorf("resilient: Options.Breaker.OpenTimeout is %v; want 0 (default %v) or more", o.Breaker.OpenTimeout, defaultBreakerTimeout)
	case o.Breaker.HalfOpenRequests < 0:
		return fmt.Errorf("resilient: Options.Breaker.HalfOpenRequests is %d; want 0 (default 1) or more", o.Breaker.HalfOpenRequests)
	case o.Budget.Tokens >= 0 && o.Budget.Ratio < 0:
		return fmt.Errorf("resilient: Options.Budget.Ratio is %v; want 0 (default %v) or more", o.Budget.Ratio, retry.DefaultBudgetRatio)
	}
	return nil
}
