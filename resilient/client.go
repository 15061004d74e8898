package resilient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"

	"github.com/mcpkit/resilience/resilient/internal/engine"
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
	hooks          Hooks
	events         *eventQueue    // nil without Options.OnEvent
	budget         *engine.Budget // nil when disabled
	// writesMeta: the pinned protocol version is 2026-07-28 or later, under
	// which the SDK writes _meta into every request's params.
	writesMeta bool
	// brDirty is set while the breaker counts failures, so that a success
	// takes c.mu only when there is something to reset.
	brDirty atomic.Bool

	// ctx ends at Close; it bounds the client's goroutines and the
	// connections of its sessions.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	cur        *conn
	closed     bool
	flight     *flight // the reconnect in progress, if any
	br         *breaker
	resumeFrom string // the session whose server state is the client's
	// lineage changes whenever a reconnect loses the server-side state (a
	// resume skipped or failed): a call whose first attempt ran in another
	// lineage cannot count on the server's deduplication.
	lineage atomic.Uint64 // written under mu
	state   sessionState
	tools   *toolCache

	// Attempts in flight, cancelled by Close (see runAttempt).
	attemptsMu sync.Mutex
	attempts   map[uint64]context.CancelCauseFunc // nil once closed
	attemptID  uint64

	stats counters

	live *liveness // nil when Options.Liveness.Idle is negative
}

// conn is one SDK session and what it owns.
type conn struct {
	cs    *mcp.ClientSession
	gen   uint64
	dead  chan struct{}      // closed when cs.Wait returns
	end   context.CancelFunc // ends the connection's context
	dedup bool               // the server deduplicates tools/call by idempotency key
	// dedupPerPrincipal: it keeps keys per authenticated principal, not per
	// session lineage, so a reconnect that loses the lineage keeps them.
	dedupPerPrincipal bool
	// adopts: every replica serves the session (resume.AdoptCapability): a
	// dropped connection does not lose it.
	adopts bool
	obs    *observer // the HTTP traffic of an observed transport; nil otherwise
	host   string    // the server's host and port, when the transport says
	port   int
}

func (c *conn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// close closes the session and releases its context.
func (c *conn) close() error {
	err := c.cs.Close()
	c.end()
	return err
}

// flight is a reconnect in progress: the client's one prober. Callers that
// failed on the session it replaces wait for it instead of dialling.
type flight struct {
	done chan struct{}
	err  error // set before done is closed: nil when a new session is in place
	// info describes the reconnect for Hooks; complete once done is closed.
	info ReconnectInfo
}

// Connect connects to the server through a transport from newTransport and
// returns a Client on the new session.
//
// A first connection that fails in a way that says "not yet" (connection
// refused, 503, 429, a dropped connection, no answer within
// Options.ConnectTimeout) is tried again with the policy's backoff, until
// ctx ends, the policy's MaxElapsed (default 30s) has passed or its
// MaxAttempts (when set) are spent: a client may start while its server is
// still starting. A 429 or 503 with Retry-After is waited out, not sooner;
// one that asks for more than ctx or MaxElapsed leaves ends Connect at once
// with [retry.ErrExhausted] (reason [retry.ReasonRetryAfter]). A refusal (401, an
// unsupported protocol version, any JSON-RPC error) returns at once, and
// so does every failure when Options.ConnectOnce is set. The error says
// which failure it was; it matches ctx.Err() when ctx ended, and
// [retry.ErrExhausted] when MaxElapsed did. An option out of range fails
// with an error naming it.
//
// client's handlers, middleware and roots apply to every session the Client
// creates. Connect adds one receiving middleware to client, which watches
// notifications/tools/list_changed to keep the client's knowledge of tool
// annotations current (it passes every message on untouched). ctx bounds
// the first connection only.
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
		tools:          newToolCache(),
		attempts:       map[uint64]context.CancelCauseFunc{},
		br:             newBreaker(opts.Breaker),
		hooks:          opts.Hooks,
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
	if opts.Budget.Tokens >= 0 {
		b, err := engine.NewBudget(opts.Budget.Tokens, opts.Budget.Ratio)
		if err != nil {
			return nil, fmt.Errorf("resilient: Options.Budget: %w", err)
		}
		c.budget = b
	}
	watchListChanged(client, c.tools)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.live = newLiveness(c, opts.Liveness)
	if fn := eventFunc(opts.Hooks.Event, opts.OnEvent); fn != nil {
		c.events = newEventQueue(fn)
		go c.events.run(c.deliver)
	}

	cur, err := c.connectFirst(ctx, opts.ConnectOnce)
	if err != nil {
		c.cancel()
		c.wg.Wait()
		if c.events != nil {
			c.events.shutdown()
		}
		return nil, err
	}
	if ir := cur.cs.InitializeResult(); ir != nil && c.sessionOpts.ProtocolVersion == "" {
		c.sessionOpts.ProtocolVersion = ir.ProtocolVersion
	}
	// Protocol versions are dates: they compare as strings.
	c.writesMeta = c.sessionOpts.ProtocolVersion >= "2026-07-28"
	c.cur = cur
	c.resumeFrom = cur.cs.ID()
	c.log.Info("connected", zap.String("session_id", cur.cs.ID()), zap.Uint64("generation", 1),
		zap.String("protocol_version", c.sessionOpts.ProtocolVersion))
	if opts.ResumeFrom != "" {
		c.resumeFrom = opts.ResumeFrom
		events, err := c.resume(cur.cs)
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("resilient: connect: resume from %q: %w", opts.ResumeFrom, err)
		}
		for _, ev := range events {
			c.emit(ev)
		}
	}
	return c, nil
}

// connectFirst dials the first session, trying again on failures that say
// "not yet" (see Connect).
func (c *Client) connectFirst(ctx context.Context, once bool) (*conn, error) {
	start := time.Now()
	bo := engine.NewBackOff(c.policy)
	for attempt := 1; ; attempt++ {
		// The probe sees a 429 or 503 with Retry-After on the handshake.
		pctx := &probeCtx{Context: ctx}
		cn, err := c.dial(pctx, 1)
		if err == nil {
			return cn, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("resilient: connect: %w; last failure: %w", ctx.Err(), err)
		}
		class := retry.Classify(err)
		if once || class == retry.Protocol || errors.Is(err, errNilTransport) {
			return nil, fmt.Errorf("resilient: connect: %w", err)
		}
		if c.policy.MaxAttempts > 0 && attempt >= c.policy.MaxAttempts {
			return nil, fmt.Errorf("resilient: connect: %w", &retry.ExhaustedError{Attempts: attempt, Reason: retry.ReasonMaxAttempts, Last: err})
		}
		// Reported when Connect tries again; the last failure is its error.
		c.emit(Event{Kind: EventAttemptFailed, Method: "initialize", Class: class, Attempt: attempt, Err: err})
		wait := bo.NextBackOff()
		if wait == engine.Stop {
			return nil, fmt.Errorf("resilient: connect: %w", &retry.ExhaustedError{Attempts: attempt, Reason: retry.ReasonMaxElapsed, Last: err})
		}
		reason := retry.ReasonMaxElapsed
		if hint := pctx.probe.retryAfterHint(); hint > wait {
			// The server said when to come back: not sooner, and not at
			// all when that is past Connect's bounds.
			wait, reason = hint, retry.ReasonRetryAfter
		}
		deadline, bounded := ctx.Deadline()
		if c.policy.MaxElapsed > 0 && time.Since(start)+wait > c.policy.MaxElapsed ||
			reason == retry.ReasonRetryAfter && bounded && time.Until(deadline) < wait {
			return nil, fmt.Errorf("resilient: connect: %w", &retry.ExhaustedError{Attempts: attempt, Reason: reason, Last: err})
		}
		c.log.Debug("connect failed; trying again", zap.Int("attempt", attempt), zap.Stringer("class", class),
			zap.Duration("backoff", wait), zap.Error(err))
		if serr := sleep(ctx, wait); serr != nil {
			return nil, fmt.Errorf("resilient: connect: %w; last failure: %w", serr, err)
		}
	}
}

// watch starts the goroutine that notices when cs dies by itself (a failed
// standalone SSE stream, keepalive, a dead stdio process).
func (c *Client) watch(cs *mcp.ClientSession, obs *observer, end context.CancelFunc, gen uint64) *conn {
	cn := &conn{cs: cs, gen: gen, dead: make(chan struct{}), end: end, obs: obs}
	cn.dedup, cn.dedupPerPrincipal, cn.adopts = serverTraits(cs)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_ = cs.Wait()
		close(cn.dead)
	}()
	return cn
}

// serverTraits reads what the session's server advertises of the server
// half: deduplication (and its scope) and session adoption.
func serverTraits(cs *mcp.ClientSession) (dedup, dedupPerPrincipal, adopts bool) {
	ir := cs.InitializeResult()
	if ir == nil || ir.Capabilities == nil {
		return false, false, false
	}
	exp := ir.Capabilities.Experimental
	_, adopts = exp[resume.AdoptCapability]
	v, ok := exp[resume.DedupCapability]
	if !ok {
		return false, false, adopts
	}
	scope := ""
	if m, isMap := v.(map[string]any); isMap {
		scope, _ = m["scope"].(string)
	}
	switch {
	case scope == resume.DedupScopePrincipal:
		// Keys are kept per authenticated principal: any session of it,
		// stateless ones included, finds them.
		return true, true, adopts
	case cs.ID() != "":
		// Per session lineage (or an older server that says no scope):
		// trusted while the lineage holds.
		return true, false, adopts
	}
	// No session, and no principal to scope keys by: nothing to trust.
	return false, false, adopts
}

// errNilTransport fails a dial whose factory returned no transport: a bug
// of the factory, which trying again cannot fix.
var errNilTransport = errors.New("resilient: TransportFactory returned a nil transport")

// dial opens one new SDK session as generation gen.
func (c *Client) dial(ctx context.Context, gen uint64) (*conn, error) {
	c.stats.dials.Add(1)
	t := c.factory()
	if t == nil {
		return nil, errNilTransport
	}
	var obs *observer
	var endpoint string
	if ot, ok := t.(observedTransport); ok {
		obs, endpoint = ot.observer(), ot.endpoint()
	}
	opts := c.sessionOpts
	ctx, cancel := context.WithTimeout(ctx, c.connectTimeout)
	defer cancel()
	d := &detached{Transport: t, life: c.ctx}
	cs, err := c.client.Connect(ctx, d, &opts)
	if err != nil {
		if d.end != nil {
			d.end()
		}
		return nil, err
	}
	cn := c.watch(cs, obs, d.end, gen)
	if endpoint != "" {
		cn.host, cn.port = endpointOf(endpoint)
	}
	return cn, nil
}

// detached connects its transport under the client's lifetime instead of
// the handshake's context. The SSE transport ties its event stream to the
// context given to Connect: bounding the handshake with it would cut the
// stream as soon as the handshake ended. While Connect runs, the
// handshake's context still bounds it.
type detached struct {
	mcp.Transport
	life context.Context
	// end ends the connection's context: when the handshake fails, or
	// when the session is closed.
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
		return nil, err
	}
	return conn, nil
}

// dedupNow reports whether the current session's server deduplicates.
func (c *Client) dedupNow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.dedup
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
// client's goroutines to end and for the events emitted before it to reach
// OnEvent (except when OnEvent itself calls Close: those events follow once
// it returns). It is idempotent, and returns the error of closing a live
// session, if any; closing a session that had already died is not an error.
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
	wasDead := cur.isDead()
	err := cur.close()
	c.live.stop()
	c.wg.Wait()
	c.log.Info("closed", zap.String("session_id", cur.cs.ID()), zap.Uint64("generation", cur.gen))
	if c.events != nil {
		c.events.shutdown()
	}
	if wasDead {
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

// emit queues ev for OnEvent. It never calls user code, so it may be called
// anywhere, locks held or not.
func (c *Client) emit(ev Event) {
	if c.events != nil {
		c.events.push(ev)
	}
}

// emitTransitions logs and reports breaker transitions, in order.
func (c *Client) emitTransitions(ts []transition) {
	for _, t := range ts {
		if t.to == BreakerOpen {
			c.log.Warn("circuit breaker opened", zap.Stringer("from", t.from))
		} else {
			c.log.Info("circuit breaker state changed", zap.Stringer("from", t.from), zap.Stringer("to", t.to))
		}
		c.emit(Event{Kind: EventBreakerStateChanged, From: t.from, To: t.to})
	}
}

// Stats is a snapshot of what a [Client] has done. Counters only grow.
type Stats struct {
	// Calls counts calls made through the client's methods.
	Calls int64
	// Retries counts attempts after the first, Replays those that re-sent a
	// call after its session was replaced.
	Retries, Replays int64
	// Dials counts connection attempts, the first included; Reconnects
	// the sessions that replaced a dead one; ReconnectFailures the
	// reconnects that ended without a session (a refusal, or Close).
	Dials, Reconnects, ReconnectFailures int64
	// Resumes, ResumesSkipped and ResumeFailures count the outcomes of
	// resume after each reconnect; KeysCopied adds up the keys resumed.
	Resumes, ResumesSkipped, ResumeFailures, KeysCopied int64
	// OutcomeUnknown counts calls that returned [ErrOutcomeUnknown].
	OutcomeUnknown int64
	// BudgetExhausted counts retries refused by the retry budget.
	BudgetExhausted int64
	// CallbackPanics counts panics recovered from Options.OnEvent.
	CallbackPanics int64
	// LivenessCuts counts attempts cut because their route was found dead
	// ([ErrRouteDead]).
	LivenessCuts int64
	// SessionID and Generation identify the current session (generation 1
	// is the first).
	SessionID  string
	Generation uint64
	// Breaker is the breaker's state.
	Breaker BreakerState
}

type counters struct {
	calls, retries, replays, dials, reconnects, reconnectFailures atomic.Int64
	resumes, resumesSkipped, resumeFailures, keysCopied           atomic.Int64
	outcomeUnknown, budgetExhausted, callbackPanics               atomic.Int64
	livenessCuts                                                  atomic.Int64
}

// Stats returns a snapshot of the client's counters and current session.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	cur := c.cur
	br := c.br.state()
	c.mu.Unlock()
	return Stats{
		Calls:             c.stats.calls.Load(),
		Retries:           c.stats.retries.Load(),
		Replays:           c.stats.replays.Load(),
		Dials:             c.stats.dials.Load(),
		Reconnects:        c.stats.reconnects.Load(),
		ReconnectFailures: c.stats.reconnectFailures.Load(),
		Resumes:           c.stats.resumes.Load(),
		ResumesSkipped:    c.stats.resumesSkipped.Load(),
		ResumeFailures:    c.stats.resumeFailures.Load(),
		KeysCopied:        c.stats.keysCopied.Load(),
		OutcomeUnknown:    c.stats.outcomeUnknown.Load(),
		BudgetExhausted:   c.stats.budgetExhausted.Load(),
		CallbackPanics:    c.stats.callbackPanics.Load(),
		LivenessCuts:      c.stats.livenessCuts.Load(),
		SessionID:         cur.cs.ID(),
		Generation:        cur.gen,
		Breaker:           br,
	}
}
