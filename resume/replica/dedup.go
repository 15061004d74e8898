package replica

import (
	"bytes"
	"context"
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
	DefaultDedupTTL  = 24 * time.Hour
	DefaultDedupWait = 30 * time.Second
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
// JSON-RPC error resume.CodeInProgress. A replay whose tool name or arguments
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
// dies between a tool's effect and storing its result leaves the claim
// pending: replays then answer resume.CodeInProgress until TTL, never run twice.
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
	d := &dedup{store: store, ttl: DefaultDedupTTL, wait: DefaultDedupWait}
	if opts != nil {
		if opts.TTL > 0 {
			d.ttl = opts.TTL
		}
		if opts.Wait > 0 {
			d.wait = opts.Wait
		}
		d.waiting = opts.waiting
	}
	return d.middleware
}

type dedup struct {
	store   Store
	ttl     time.Duration
	wait    time.Duration
	waiting func() // see DedupOptions.waiting
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
		return nil, fmt.Errorf("resume: idempotency scope: %w", err)
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
	_, err = d.store.Update(ctx, ns, storeKey, d.ttl, func(old []byte, ok bool) ([]byte, error) {
		if !ok {
			claimed = true
			return encodeRecord(record{State: statePending, Digest: digest, Started: time.Now().UTC()})
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
		return nil, fmt.Errorf("resume: idempotency record for key %q: %w", key, err)
	}
	if claimed {
		return d.runFirst(ctx, next, method, req, ns, storeKey, digest)
	}
	waited := false
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
		if time.Since(prior.Started) >= d.wait {
			return nil, &jsonrpc.Error{Code: resume.CodeInProgress, Message: fmt.Sprintf(
				"a call with idempotency key %q started %v ago and has not finished; it was not run again", key, time.Since(prior.Started).Round(time.Millisecond))}
		}
		if !waited && d.waiting != nil {
			d.waiting()
		}
		waited = true
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return nil, err
		}
		b, ok, err := d.store.Get(ctx, ns, storeKey)
		switch {
		case err != nil:
			return nil, fmt.Errorf("resume: idempotency record for key %q: %w", key, err)
		case !ok:
			// The first execution was aborted and released its claim.
			return d.callTool(ctx, next, method, req)
		}
		if prior, err = decodeRecord(b); err != nil {
			return nil, err
		}
	}
}

// runFirst runs the tool for the request that claimed the key and records
// its result.
func (d *dedup) runFirst(ctx context.Context, next mcp.MethodHandler, method string, req *mcp.CallToolRequest, ns, storeKey, digest string) (mcp.Result, error) {
	res, err := next(ctx, method, req)
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
	// still goes to this caller; the claim stays pending, so a replay
	// answers resume.CodeInProgress and never runs twice.
	_ = d.record(ctx, ns, storeKey, digest, tr)
	return res, nil
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
}

var errBadRecord = errors.New("resume: corrupt idempotency record")

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
