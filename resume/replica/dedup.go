package replica

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume"
)

// LineageKey is the session key in which [Dedup] records the lineage of a
// session: the ID of the first session of a chain of resumes. resume_session
// copies it with the rest of the state, so a call replayed on a resumed
// session finds the record its first attempt left.
const LineageKey = ReservedPrefix + "lineage"

// Defaults of [DedupOptions].
const (
	DefaultDedupTTL   = 24 * time.Hour
	DefaultDedupWait  = 30 * time.Second
	DefaultDedupLease = 4 * time.Second
)

// minDedupLease is the shortest lease [DedupWith] accepts; shorter ones are
// raised to it, so that renewals (every third of a lease) never hammer the
// store.
const minDedupLease = 100 * time.Millisecond

// A replay that waits for a first execution reads the store after
// firstReplayPoll, then after twice as long each time, up to maxReplayPoll:
// quick when the tool is quick, and about two reads a second per waiting
// replay when it is slow. It also wakes when the claim's lease would lapse.
const (
	firstReplayPoll = 10 * time.Millisecond
	maxReplayPoll   = 500 * time.Millisecond
)

// DedupOptions configure [DedupWith]. Zero fields take their defaults.
type DedupOptions struct {
	// TTL is how long a result is kept for replays. 0 means
	// DefaultDedupTTL (24h).
	TTL time.Duration
	// Wait bounds how long a replay waits for a first execution still
	// running before it answers resume.CodeInProgress. 0 means DefaultDedupWait
	// (30s).
	Wait time.Duration
	// Lease is how long a first execution's claim on its key stays valid
	// unless renewed: the replica running it renews the claim every third
	// of Lease while the tool runs. A replay (on any replica) that finds a
	// claim not renewed for Lease, because the replica that held it died or
	// lost the store, answers resume.CodeOutcomeUnknown at once instead of
	// waiting for Wait. 0 means DefaultDedupLease (4s), so that such a
	// replay is answered within about 4s; values under 100ms are taken as
	// 100ms; negative disables the lease (replays of a dead replica's claim
	// then wait for Wait and answer resume.CodeInProgress). Each renewal is
	// one store update, made only while a call runs. The replicas' clocks
	// must agree to well within Lease, as NTP keeps them: a claim's renewal
	// time is written by one replica and read by another.
	Lease time.Duration

	// waiting, set by tests, is called when a replay starts waiting for a
	// first execution still running.
	waiting func()
}

// Dedup returns go-sdk server middleware that runs each tools/call carrying
// an idempotency key (in _meta [resume.IdempotencyKeyMeta]) at most once, and
// answers its replays with the stored result. Install it with
// server.AddReceivingMiddleware(Dedup(store, ttl)). It is
// [DedupWith] with the default Wait.
func Dedup(store Store, ttl time.Duration) mcp.Middleware {
	return DedupWith(store, &DedupOptions{TTL: ttl})
}

// DedupWith is [Dedup] with every option. It panics if store is nil (a
// start-up mistake).
//
// For a tools/call with a key, the first execution claims the key in store
// and stores its result (a success or an IsError result) when it returns;
// a multi-round-trip round that answers "input required" is not stored,
// and releases the key for the next round of the same call;
// a replay with the same key gets that result, marked with _meta
// [resume.ReplayedMeta], without running the tool. A replay that arrives while
// the first execution runs waits for it, up to Wait, then answers the
// JSON-RPC error resume.CodeInProgress; one whose first execution's replica
// stopped renewing its claim (see [DedupOptions.Lease]) answers
// resume.CodeOutcomeUnknown as soon as the claim lapses. A replay whose tool name or arguments
// differ from the first (compared by SHA-256 digest) answers resume.CodeKeyReused.
// Calls without a key pass through.
//
// Keys are scoped so that a client cannot reach another's results: by the
// authenticated principal (req.Extra.TokenInfo.UserID) when there is one,
// else by session lineage ([LineageKey]), which only resume_session
// carries from one session to the next. A request with neither (a
// stateless transport without authentication) is not deduplicated.
//
// Two rules make the guarantee hold; tools under Dedup must follow them:
// an execution that fails while its request context is cancelled is taken
// to have had no effect (its claim is released so a replay runs), and a
// tool's effect should be one atomic store update. A server process that
// dies while a tool runs, or between its effect and storing its result,
// leaves the claim pending and no longer renewed: replays then answer
// resume.CodeOutcomeUnknown (within Lease of its death) until TTL, and
// never run the call twice.
//
// The middleware adds resume.DedupCapability to the experimental
// capabilities of initialize and server/discover results, so clients know
// they may replay, with its scope ("principal" or "session"); it leaves it
// out for a client that has neither (a stateless server without
// authentication), whose calls it cannot deduplicate.
func DedupWith(store Store, opts *DedupOptions) mcp.Middleware {
	if store == nil {
		panic("DedupWith: nil store")
	}
	d := &dedup{store: store, ttl: DefaultDedupTTL, wait: DefaultDedupWait, lease: DefaultDedupLease, instance: rand.Text()}
	if opts != nil {
		if opts.TTL > 0 {
			d.ttl = opts.TTL
		}
		if opts.Wait > 0 {
			d.wait = opts.Wait
		}
		switch {
		case opts.Lease < 0:
			d.lease = 0
		case opts.Lease > 0:
			d.lease = max(opts.Lease, minDedupLease)
		}
		d.waiting = opts.waiting
	}
	return d.middleware
}

type dedup struct {
	store    Store
	ttl      time.Duration
	wait     time.Duration
	lease    time.Duration // 0: claims are not leased
	instance string        // this Dedup's name in its claims
	waiting  func()        // see DedupOptions.waiting
}

func (d *dedup) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		switch method {
		case "tools/call":
			if r, ok := req.(*mcp.CallToolRequest); ok {
				return d.callTool(ctx, next, method, r)
			}
		case "initialize", "server/discover":
			res, err := next(ctx, method, req)
			if err == nil {
				if scope := advertisedScope(req); scope != "" {
					advertise(res, scope)
				}
			}
			return res, err
		}
		return next(ctx, method, req)
	}
}

// advertise adds resume.DedupCapability to the capabilities of an
// initialize or server/discover result.
func advertise(res mcp.Result, scope string) {
	value := map[string]any{"meta": resume.IdempotencyKeyMeta, "scope": scope}
	switch r := res.(type) {
	case *mcp.InitializeResult:
		advertiseCapability(&r.Capabilities, resume.DedupCapability, value)
	case *mcp.DiscoverResult:
		advertiseCapability(&r.Capabilities, resume.DedupCapability, value)
	}
}

// advertisedScope is the scope in which the calls of the client that sent
// req will be deduplicated, as the capability states it: "principal" for
// an authenticated request, "session" for one on a session, and "" for
// neither (a stateless, unauthenticated client): Dedup would let its
// calls through, so it is not told that replays are safe.
func advertisedScope(req mcp.Request) string {
	if Principal(req) != "" {
		return resume.DedupScopePrincipal
	}
	if s := req.GetSession(); s != nil && s.ID() != "" {
		return resume.DedupScopeSession
	}
	return ""
}

// advertiseCapability sets an experimental capability in a copy of *caps
// (the server may share one capabilities value between sessions).
func advertiseCapability(caps **mcp.ServerCapabilities, name string, value any) {
	c := mcp.ServerCapabilities{}
	if *caps != nil {
		c = **caps
	}
	c.Experimental = maps.Clone(c.Experimental)
	if c.Experimental == nil {
		c.Experimental = map[string]any{}
	}
	c.Experimental[name] = value
	*caps = &c
}

func (d *dedup) callTool(ctx context.Context, next mcp.MethodHandler, method string, req *mcp.CallToolRequest) (mcp.Result, error) {
	if req.Params == nil {
		return next(ctx, method, req)
	}
	key, ok, err := resume.IdempotencyKeyFrom(req.Params.Meta)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}
	}
	if !ok {
		return next(ctx, method, req)
	}
	ns, ok, err := d.scope(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("replica: idempotency scope: %w", err)
	}
	if !ok {
		return next(ctx, method, req)
	}
	digest, err := callDigest(req.Params.Name, req.Params.Arguments)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}
	}
	storeKey := "idem:" + key

	// Claim the key, or learn who has it.
	var claimed bool
	var prior record
	claim := rand.Text()
	_, err = d.store.Update(ctx, ns, storeKey, d.ttl, func(old []byte, ok bool) ([]byte, error) {
		if !ok {
			claimed = true
			now := time.Now().UTC()
			return encodeRecord(record{State: statePending, Digest: digest, Started: now,
				Replica: d.instance, Claim: claim, Renewed: now, LeaseMS: d.lease.Milliseconds()})
		}
		claimed = false
		r, err := decodeRecord(old)
		if err != nil {
			return nil, err
		}
		prior = r
		return old, nil
	})
	if err != nil {
		return nil, fmt.Errorf("replica: idempotency record for key %q: %w", key, err)
	}
	if claimed {
		return d.runFirst(ctx, next, method, req, ns, storeKey, digest, claim)
	}
	waited := false
	poll := firstReplayPoll
	for {
		if prior.Digest != digest {
			return nil, &jsonrpc.Error{Code: resume.CodeKeyReused, Message: fmt.Sprintf(
				"idempotency key %q was already used for a different call (tool %q or its arguments differ); nothing was run", key, req.Params.Name)}
		}
		if prior.State == stateDone {
			res, err := prior.result()
			if err != nil {
				return nil, err
			}
			return res, nil
		}
		now := time.Now()
		if lapse, ok := prior.lapse(); ok && !now.Before(lapse) {
			return nil, &jsonrpc.Error{Code: resume.CodeOutcomeUnknown, Message: fmt.Sprintf(
				"a call with idempotency key %q started %v ago on replica %s, which stopped renewing its claim %v ago without storing a result; it may or may not have run, and it was not run again",
				key, now.Sub(prior.Started).Round(time.Millisecond), prior.Replica, now.Sub(prior.Renewed).Round(time.Millisecond))}
		}
		if now.Sub(prior.Started) >= d.wait {
			return nil, &jsonrpc.Error{Code: resume.CodeInProgress, Message: fmt.Sprintf(
				"a call with idempotency key %q started %v ago and has not finished; it was not run again", key, now.Sub(prior.Started).Round(time.Millisecond))}
		}
		if !waited && d.waiting != nil {
			d.waiting()
		}
		waited = true
		// Back off, but wake when the answer would change: at the end of
		// Wait, and when the claim would lapse unless renewed.
		pause := min(poll, prior.Started.Add(d.wait).Sub(now))
		if lapse, ok := prior.lapse(); ok {
			pause = min(pause, lapse.Sub(now))
		}
		poll = min(2*poll, maxReplayPoll)
		if err := sleepCtx(ctx, pause); err != nil {
			return nil, err
		}
		b, ok, err := d.store.Get(ctx, ns, storeKey)
		switch {
		case err != nil:
			return nil, fmt.Errorf("replica: idempotency record for key %q: %w", key, err)
		case !ok:
			// The first execution was aborted and released its claim.
			return d.callTool(ctx, next, method, req)
		}
		if prior, err = decodeRecord(b); err != nil {
			return nil, err
		}
	}
}

// runFirst runs the tool for the request that claimed the key, keeping the
// claim's lease alive while it runs, and records its result.
func (d *dedup) runFirst(ctx context.Context, next mcp.MethodHandler, method string, req *mcp.CallToolRequest, ns, storeKey, digest, claim string) (mcp.Result, error) {
	stop := d.keepClaim(ctx, ns, storeKey, claim)
	res, err := next(ctx, method, req)
	stop()
	tr, _ := res.(*mcp.CallToolResult)
	aborted := ctx.Err() != nil && (err != nil || tr == nil || tr.IsError)
	if err != nil || tr == nil || aborted || inputRequired(tr) {
		// A protocol error means the tool did not run; an execution that
		// failed because its request was cancelled is taken to have had no
		// effect. Either way a replay must be free to run it. An
		// input-required result (a multi-round-trip request, SEP-2322) is
		// not the call's outcome: the client answers it with another round
		// carrying the same key, which must run, and only the round that
		// completes the call is stored.
		_ = d.store.Delete(context.WithoutCancel(ctx), ns, storeKey)
		return res, err
	}
	// If the record cannot be stored, the tool has still run and its answer
	// still goes to this caller; the claim stays pending and is no longer
	// renewed, so a replay answers resume.CodeOutcomeUnknown and never runs
	// twice.
	_ = d.record(ctx, ns, storeKey, digest, tr)
	return res, nil
}

// errClaimLost stops the renewal of a claim that is no longer pending
// under this claim's name.
var errClaimLost = errors.New("idempotency claim no longer held")

// keepClaim renews the lease of claim every third of the lease until the
// returned stop is called; stop returns once the renewing goroutine has
// ended. A renewal that fails on a store error is tried again at the next
// tick: if the store stays unreachable the lease lapses, and replays
// answer that the outcome is unknown, which it then is to them.
func (d *dedup) keepClaim(ctx context.Context, ns, storeKey, claim string) (stop func()) {
	if d.lease <= 0 {
		return func() {}
	}
	// The renewals outlive a cancelled request until the tool returns: an
	// execution finishing its cancellation is still running.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(d.lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			_, err := d.store.Update(ctx, ns, storeKey, d.ttl, func(old []byte, ok bool) ([]byte, error) {
				if !ok {
					return nil, errClaimLost
				}
				r, err := decodeRecord(old)
				if err != nil || r.State != statePending || r.Claim != claim {
					return nil, errClaimLost
				}
				r.Renewed = time.Now().UTC()
				return encodeRecord(r)
			})
			if errors.Is(err, errClaimLost) {
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// inputRequired reports whether a tool result asks the client for input
// (a multi-round-trip "input required" result, SEP-2322) instead of
// completing the call. Tool handlers mark one by setting InputRequests
// (an empty map is a load-shedding "retry later"); a decoded one says so
// with NeedsInput.
func inputRequired(tr *mcp.CallToolResult) bool {
	return tr.InputRequests != nil || tr.NeedsInput()
}

// record stores the result of a first execution for its replays.
func (d *dedup) record(ctx context.Context, ns, storeKey, digest string, tr *mcp.CallToolResult) error {
	raw, err := json.Marshal(tr)
	if err != nil {
		return err
	}
	b, err := encodeRecord(record{State: stateDone, Digest: digest, Started: time.Now().UTC(), Result: raw})
	if err != nil {
		return err
	}
	return d.store.Set(context.WithoutCancel(ctx), ns, storeKey, b, d.ttl)
}

// scope returns the store namespace of the request's idempotency keys:
// one per authenticated principal, else one per session lineage. ok is
// false when the request has neither.
func (d *dedup) scope(ctx context.Context, req *mcp.CallToolRequest) (ns string, ok bool, err error) {
	if extra := req.GetExtra(); extra != nil && extra.TokenInfo != nil && extra.TokenInfo.UserID != "" {
		return namespace("principal", extra.TokenInfo.UserID), true, nil
	}
	sess := req.GetSession()
	if sess == nil || sess.ID() == "" {
		return "", false, nil
	}
	id := sess.ID()
	// The lineage is a value of the session like any other: its owner (no
	// principal, here) is fixed first, so that no authenticated writer can
	// later claim a session whose only state is its lineage.
	if err := keepOwner(ctx, d.store, id, "", 0); err != nil {
		return "", false, err
	}
	lineage, err := d.store.Update(ctx, id, LineageKey, 0, func(old []byte, ok bool) ([]byte, error) {
		if ok {
			return old, nil
		}
		return []byte(id), nil
	})
	if err != nil {
		return "", false, err
	}
	return namespace("lineage", string(lineage)), true, nil
}

// namespace hashes a scope into a store session name: fixed length, only
// hex digits, so nothing a client sends shapes a store key.
func namespace(kind, id string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + id))
	return internalSessionPrefix + "dedup-" + hex.EncodeToString(sum[:16])
}

// callDigest identifies a call by its tool name and arguments. Arguments
// are canonicalised (decoded and re-encoded, which sorts object keys) so
// that a replay marshalled differently still matches.
func callDigest(name string, args json.RawMessage) (string, error) {
	canon := []byte("null")
	if len(bytes.TrimSpace(args)) > 0 {
		var v any
		dec := json.NewDecoder(bytes.NewReader(args))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return "", fmt.Errorf("tools/call arguments are not JSON: %v", err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return "", err
		}
		canon = b
	}
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

const (
	statePending = "pending"
	stateDone    = "done"
)

// record is what Dedup stores per idempotency key.
type record struct {
	State   string          `json:"state"`
	Digest  string          `json:"digest"`
	Started time.Time       `json:"started"`
	Result  json.RawMessage `json:"result,omitempty"`

	// A pending record's claim: the Dedup instance that runs the call, a
	// name of this claim (so that a renewal never extends another's), when
	// it was last renewed and for how long a renewal holds. A record
	// without a lease (LeaseMS 0) is waited for up to Wait.
	Replica string    `json:"replica,omitempty"`
	Claim   string    `json:"claim,omitempty"`
	Renewed time.Time `json:"renewed,omitzero"`
	LeaseMS int64     `json:"lease_ms,omitempty"`
}

// lapse returns when a pending record's claim lapses unless renewed; ok is
// false for a record without a lease.
func (r record) lapse() (time.Time, bool) {
	if r.State != statePending || r.LeaseMS <= 0 {
		return time.Time{}, false
	}
	return r.Renewed.Add(time.Duration(r.LeaseMS) * time.Millisecond), true
}

var errBadRecord = errors.New("replica: corrupt idempotency record")

func encodeRecord(r record) ([]byte, error) {
	return json.Marshal(r)
}

// decodeRecord parses a stored record and checks it is one Dedup wrote.
func decodeRecord(b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	switch {
	case r.State != statePending && r.State != stateDone:
		return record{}, fmt.Errorf("%w: state %q", errBadRecord, r.State)
	case len(r.Digest) != sha256.Size*2:
		return record{}, fmt.Errorf("%w: digest of %d characters", errBadRecord, len(r.Digest))
	case r.State == stateDone && len(r.Result) == 0:
		return record{}, fmt.Errorf("%w: done without a result", errBadRecord)
	case r.LeaseMS < 0:
		return record{}, fmt.Errorf("%w: lease of %d ms", errBadRecord, r.LeaseMS)
	}
	return r, nil
}

// result decodes the stored result and marks it as a replay.
func (r record) result() (*mcp.CallToolResult, error) {
	var res mcp.CallToolResult
	if err := json.Unmarshal(r.Result, &res); err != nil {
		return nil, fmt.Errorf("%w: result: %v", errBadRecord, err)
	}
	if res.Meta == nil {
		res.Meta = mcp.Meta{}
	}
	res.Meta[resume.ReplayedMeta] = true
	return &res, nil
}
