package resilient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/retry"
)

// Client is a drop-in for [*mcp.ClientSession] that survives the loss of its
// session. When a call fails because the server lost the session or the
// connection died, the client connects again (once, for all callers),
// resumes the old session's server-side state, restores the logging level
// and resource subscriptions, and replays the call when that cannot run it
// twice. See the package documentation for the rules.
//
// A Client is safe for concurrent use. Its methods have the signatures of
// the SDK session's; they additionally return [ErrClosed],
// [ErrCircuitOpen], [ErrOutcomeUnknown] and [retry.ErrExhausted].
type Client struct {
	client         *mcp.Client
	factory        TransportFactory
	policy         retry.Policy
	resumer        resume.Resumer
	sessionOpts    mcp.ClientSessionOptions
	connectTimeout time.Duration
	showResumeTool bool
	hiddenTool     string
	log            *zap.Logger
	onEvent        func(Event)
	breaker        *gobreaker.TwoStepCircuitBreaker[struct{}] // nil when disabled
	budget         *retry.Budget                              // nil when disabled

	// ctx ends at Close; it bounds the reconnect goroutine.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	cur        *conn
	closed     bool
	flight     *flight
	resumeFrom string // the session whose server state is the client's
	// lineage changes whenever a reconnect loses the server-side state (a
	// resume skipped or failed): a call whose first attempt ran in another
	// lineage cannot count on the server's deduplication.
	lineage  uint64
	state    sessionState
	tools    map[string]toolHints
	toolsGen uint64 // generation whose tool list filled tools

	// Attempts in flight, cancelled by Close (see runAttempt).
	attemptsMu sync.Mutex
	attempts   map[uint64]context.CancelFunc // nil once closed
	attemptID  uint64

	// Breaker transitions are reported by gobreaker under its own lock;
	// they wait here until the goroutine that caused them can emit them.
	pendingMu sync.Mutex
	pending   []Event

	stats counters
}

// conn is one SDK session and the generation number it holds.
type conn struct {
	cs    *mcp.ClientSession
	gen   uint64
	dead  chan struct{} // closed when cs.Wait returns
	dedup bool          // the server deduplicates tools/call by idempotency key
	obs   *observer     // the HTTP traffic of a StreamableHTTP transport; nil otherwise
}

func (c *conn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// flight is a reconnect in progress; callers that failed on the same
// generation wait for it instead of starting their own.
type flight struct {
	done chan struct{}
	err  error
}

type toolHints struct{ readOnly, idempotent bool }

// Connect connects to the server through a transport from newTransport and
// returns a Client on the new session. The first connection is attempted
// once: an error here means the server could not be reached or refused the
// handshake (the error says which), or an option was out of range (the
// error names it).
//
// client's handlers, middleware and roots apply to every session the Client
// creates. ctx bounds the first connection only.
func Connect(ctx context.Context, client *mcp.Client, newTransport TransportFactory, opts *Options) (*Client, error) {
	if client == nil {
		return nil, errors.New("resilient: Connect: mcp.Client is nil")
	}
	if newTransport == nil {
		return nil, errors.New("resilient: Connect: TransportFactory is nil")
	}
	if opts == nil {
		opts = &Options{}
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	c := &Client{
		client:         client,
		factory:        newTransport,
		policy:         opts.Retry.WithDefaults(),
		resumer:        opts.Resumer,
		connectTimeout: opts.ConnectTimeout,
		showResumeTool: opts.ShowResumeTool,
		log:            opts.Logger,
		onEvent:        opts.OnEvent,
		tools:          map[string]toolHints{},
		attempts:       map[uint64]context.CancelFunc{},
	}
	if c.resumer == nil {
		c.resumer = resume.Tool{}
	}
	c.hiddenTool = resume.ToolName
	if t, ok := c.resumer.(resume.Tool); ok && t.Name != "" {
		c.hiddenTool = t.Name
	}
	if opts.SessionOptions != nil {
		c.sessionOpts = *opts.SessionOptions
	}
	if c.connectTimeout == 0 {
		c.connectTimeout = defaultConnectTimeout
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	c.breaker = c.newBreaker(opts.Breaker)
	if opts.Budget.Tokens >= 0 {
		b, err := retry.NewBudget(opts.Budget.Tokens, opts.Budget.Ratio)
		if err != nil {
			return nil, fmt.Errorf("resilient: Options.Budget: %w", err)
		}
		c.budget = b
	}

	c.ctx, c.cancel = context.WithCancel(context.Background())
	cs, obs, err := c.dial(ctx)
	if err != nil {
		c.cancel()
		return nil, fmt.Errorf("resilient: connect: %w", err)
	}
	if ir := cs.InitializeResult(); ir != nil && c.sessionOpts.ProtocolVersion == "" {
		c.sessionOpts.ProtocolVersion = ir.ProtocolVersion
	}
	c.cur = c.watch(cs, obs, 1)
	c.resumeFrom = cs.ID()
	if opts.ResumeFrom != "" {
		c.resumeFrom = opts.ResumeFrom
		events, err := c.resume(cs, opts.ResumeFrom)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("resilient: connect: resume from %q: %w", opts.ResumeFrom, err)
		}
		for _, ev := range events {
			c.emit(ev)
		}
	}
	c.log.Info("connected", zap.String("session_id", cs.ID()), zap.Uint64("generation", 1),
		zap.String("protocol_version", c.sessionOpts.ProtocolVersion))
	return c, nil
}

func (c *Client) newBreaker(s BreakerSettings) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	if s.ConsecutiveFailures < 0 {
		return nil
	}
	fails := uint32(s.ConsecutiveFailures)
	if fails == 0 {
		fails = defaultBreakerFails
	}
	timeout := s.OpenTimeout
	if timeout == 0 {
		timeout = defaultBreakerTimeout
	}
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "mcp",
		MaxRequests: uint32(s.HalfOpenRequests),
		Timeout:     timeout,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= fails },
		IsExcluded:  func(err error) bool { return errors.Is(err, errNotCounted) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			c.pendingMu.Lock()
			c.pending = append(c.pending, Event{Kind: EventBreakerStateChanged, Time: time.Now(), From: from.String(), To: to.String()})
			c.pendingMu.Unlock()
		},
	})
}

// watch starts the goroutine that notices when cs dies by itself (a failed
// standalone SSE stream, keepalive, a dead stdio process).
func (c *Client) watch(cs *mcp.ClientSession, obs *observer, gen uint64) *conn {
	cn := &conn{cs: cs, gen: gen, dead: make(chan struct{}), dedup: advertisesDedup(cs), obs: obs}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_ = cs.Wait()
		close(cn.dead)
	}()
	return cn
}

// advertisesDedup reports whether the session's server runs resume.Dedup.
// Without a session ID the server has no lineage to scope keys by, so the
// client does not count on it.
func advertisesDedup(cs *mcp.ClientSession) bool {
	ir := cs.InitializeResult()
	if cs.ID() == "" || ir == nil || ir.Capabilities == nil {
		return false
	}
	_, ok := ir.Capabilities.Experimental[resume.DedupCapability]
	return ok
}

// dial opens one new SDK session, and returns the observer of its HTTP
// traffic when the transport has one.
func (c *Client) dial(ctx context.Context) (*mcp.ClientSession, *observer, error) {
	t := c.factory()
	if t == nil {
		return nil, nil, errors.New("resilient: TransportFactory returned a nil transport")
	}
	var obs *observer
	if ht, ok := t.(*httpTransport); ok {
		obs = ht.obs
	}
	opts := c.sessionOpts
	ctx, cancel := context.WithTimeout(ctx, c.connectTimeout)
	defer cancel()
	cs, err := c.client.Connect(ctx, &detached{Transport: t, life: c.ctx}, &opts)
	return cs, obs, err
}

// detached connects its transport under the client's lifetime instead of
// the handshake's context. The SSE transport ties its event stream to the
// context given to Connect: bounding the handshake with it would cut the
// stream as soon as the handshake ended. While Connect runs, the
// handshake's context still bounds it.
type detached struct {
	mcp.Transport
	life context.Context
	// end ends the connection's context early if the handshake fails; on
	// success the connection lives until the client is closed.
	end context.CancelFunc
}

func (d *detached) Connect(ctx context.Context) (mcp.Connection, error) {
	life, end := context.WithCancel(d.life)
	d.end = end
	stop := context.AfterFunc(ctx, end)
	conn, err := d.Transport.Connect(life)
	if !stop() {
		// The handshake's context ended while connecting.
		if err == nil {
			_ = conn.Close()
		}
		return nil, ctx.Err()
	}
	if err != nil {
		end()
		return nil, err
	}
	return conn, nil
}

// current returns the session calls should use now.
func (c *Client) current() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	return c.cur, nil
}

// Session returns the SDK session in use now. It changes after a reconnect,
// so do not keep it: call Session again.
func (c *Client) Session() *mcp.ClientSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.cs
}

// ID returns the current session's ID: "" for sessions without one
// (stateless 2026-07-28 servers, stdio). It changes after a reconnect.
func (c *Client) ID() string { return c.Session().ID() }

// InitializeResult returns what the server of the current session said at
// connection.
func (c *Client) InitializeResult() *mcp.InitializeResult { return c.Session().InitializeResult() }

// Close closes the current session and stops any reconnect in progress.
// Calls in flight and later calls return [ErrClosed]. Close waits for the
// client's goroutines to end; it is idempotent and returns the error of
// closing the session, if any.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	cur := c.cur
	c.mu.Unlock()
	c.cancel()
	c.cancelAttempts()
	err := cur.cs.Close()
	c.wg.Wait()
	c.log.Info("closed", zap.String("session_id", cur.cs.ID()), zap.Uint64("generation", cur.gen))
	if cur.isDead() && err != nil {
		// The session had already died; that is what the client is for,
		// not a failure to close.
		return nil
	}
	return err
}

// Wait blocks until [Client.Close] is called, and returns nil. Unlike the
// SDK session's Wait, it does not return when a session dies: the client
// replaces it.
func (c *Client) Wait() error {
	<-c.ctx.Done()
	return nil
}

// emit reports ev to OnEvent. It must not be called with c.mu held.
func (c *Client) emit(ev Event) {
	if c.onEvent == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	defer func() {
		// A bug in a metrics callback must not take down the call it
		// reports on, nor the reconnect goroutine (where a panic would end
		// the process); it is logged with its stack and counted instead.
		if r := recover(); r != nil {
			c.stats.callbackPanics.Add(1)
			c.log.Error("OnEvent panicked; event dropped", zap.Stringer("event", ev.Kind),
				zap.Any("panic", r), zap.StackSkip("stack", 1))
		}
	}()
	c.onEvent(ev)
}

// flushBreakerEvents emits the breaker transitions recorded since the last
// flush, and logs them.
func (c *Client) flushBreakerEvents() {
	c.pendingMu.Lock()
	evs := c.pending
	c.pending = nil
	c.pendingMu.Unlock()
	for _, ev := range evs {
		if ev.To == gobreaker.StateOpen.String() {
			c.log.Warn("circuit breaker opened", zap.String("from", ev.From))
		} else {
			c.log.Info("circuit breaker state changed", zap.String("from", ev.From), zap.String("to", ev.To))
		}
		c.emit(ev)
	}
}

// Stats is a snapshot of what a [Client] has done. Counters only grow.
type Stats struct {
	// Calls counts calls made through the client's methods.
	Calls int64
	// Retries counts attempts after the first, Replays those that re-sent a
	// call after its session was replaced.
	Retries, Replays int64
	// Reconnects counts sessions that replaced a dead one;
	// ReconnectFailures the reconnect loops that gave up.
	Reconnects, ReconnectFailures int64
	// Resumes, ResumesSkipped and ResumeFailures count the outcomes of
	// resume after each reconnect; KeysCopied adds up the keys resumed.
	Resumes, ResumesSkipped, ResumeFailures, KeysCopied int64
	// OutcomeUnknown counts calls that returned [ErrOutcomeUnknown].
	OutcomeUnknown int64
	// BudgetExhausted counts retries refused by the retry budget.
	BudgetExhausted int64
	// CallbackPanics counts panics recovered from Options.OnEvent.
	CallbackPanics int64
	// SessionID and Generation identify the current session (generation 1
	// is the first).
	SessionID  string
	Generation uint64
	// Breaker is the breaker's state: "closed", "half-open", "open", or
	// "disabled".
	Breaker string
}

type counters struct {
	calls, retries, replays, reconnects, reconnectFailures atomic.Int64
	resumes, resumesSkipped, resumeFailures, keysCopied    atomic.Int64
	outcomeUnknown, budgetExhausted, callbackPanics        atomic.Int64
}

// Stats returns a snapshot of the client's counters and current session.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	s := Stats{
		Calls:             c.stats.calls.Load(),
		Retries:           c.stats.retries.Load(),
		Replays:           c.stats.replays.Load(),
		Reconnects:        c.stats.reconnects.Load(),
		ReconnectFailures: c.stats.reconnectFailures.Load(),
		Resumes:           c.stats.resumes.Load(),
		ResumesSkipped:    c.stats.resumesSkipped.Load(),
		ResumeFailures:    c.stats.resumeFailures.Load(),
		KeysCopied:        c.stats.keysCopied.Load(),
		OutcomeUnknown:    c.stats.outcomeUnknown.Load(),
		BudgetExhausted:   c.stats.budgetExhausted.Load(),
		CallbackPanics:    c.stats.callbackPanics.Load(),
		SessionID:         cur.cs.ID(),
		Generation:        cur.gen,
		Breaker:           "disabled",
	}
	if c.breaker != nil {
		s.Breaker = c.breaker.State().String()
	}
	return s
}
