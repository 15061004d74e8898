package replica

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume"
)

// ToolOptions configures the resume_session tool. A nil *ToolOptions and a
// zero field mean the documented defaults.
type ToolOptions struct {
	// TTL is how long the copied keys live in the new session. Zero or less
	// means the store's default TTL.
	TTL time.Duration

	// Instance names this server replica in every answer (the "instance"
	// field), so operators and tests can see which replica resumed a
	// session. Empty leaves the field out.
	Instance string
}

// AddTool registers the resume_session tool on server. Given
// {"old_session_id": ID} it copies every key of session ID in store into the
// calling session, in one atomic [Store.Copy], and answers a [resume.Result] as
// structured content and as JSON text:
//
//   - [resume.StatusSameSession] when ID is the calling session's own ID: nothing
//     is copied;
//   - [resume.StatusNotFound] with keys_copied 0 when ID has no live keys (it never
//     existed, or expired);
//   - [resume.StatusResumed] with the number of keys copied otherwise.
//
// The tool answers a tool error (IsError, never a protocol error) and copies
// nothing when the request has no session ID (a stateless transport), when ID
// fails [ValidateSessionID] (so a '*', '?' or '[' never reaches a store), when
// the old session belongs to another principal, or when the store fails. It
// is annotated as idempotent: copying the same old session twice leaves the
// same state.
//
// # Owners
//
// Every session the server half writes has an owner, recorded under
// [OwnerKey] before its first value: the authenticated principal that
// created it ([Principal]: the UserID of the request's auth.TokenInfo), or
// no principal for a session created without one. The tool copies a
// session owned by a principal only for a request of that principal: a
// request of another principal, or one with no principal at all, gets a
// tool error matching [ErrNotOwner] in its text, and nothing is copied into
// its session. A session owned by no principal, or with no owner record at
// all (written by a server that shares the store and knows nothing of
// owners), can be copied by anyone who knows its ID; session IDs are
// unguessable. The current session must be the caller's own: the tool
// refuses to copy into a session another principal owns, and the owner
// record of the current session is never replaced by the old one's.
// keys_copied does not count the owner record. See the package doc,
// "Owners", for how the check and the copy are ordered.
//
// AddTool panics if server or store is nil, as [mcp.AddTool] panics on an
// invalid tool: both are mistakes made at start-up, not at run time. The tool
// is safe for concurrent use if store is.
func AddTool(server *mcp.Server, store Store, opts *ToolOptions) {
	if server == nil || store == nil {
		panic("AddTool: nil server or store")
	}
	rt := &resumeTool{store: store}
	if opts != nil {
		rt.opts = *opts
	}
	openWorld := false // it touches only the session store
	mcp.AddTool(server, &mcp.Tool{
		Name:  resume.ToolName,
		Title: "Resume session",
		Description: "Copy the state of an earlier MCP session into this one after a reconnect. " +
			"Argument " + resume.ToolArg + " is the Mcp-Session-Id of the earlier session. " +
			`Answers {"status":"resumed"|"same_session"|"not_found","keys_copied":N}.`,
		Annotations: &mcp.ToolAnnotations{
			Title: "Resume session",
			// Copying the same old session again rewrites the same values.
			IdempotentHint: true,
			// DestructiveHint stays unset (true by the spec's default):
			// keys of the same name in the current session are replaced.
			OpenWorldHint: &openWorld,
		},
	}, rt.call)
}

// resumeInput is the tool's argument object. Its JSON name must equal
// resume.ToolArg (a test checks the inferred schema).
type resumeInput struct {
	OldSessionID string `json:"old_session_id" jsonschema:"the Mcp-Session-Id of the earlier session whose state to copy into this session"`
}

type resumeTool struct {
	store Store
	opts  ToolOptions
}

// stageTTL is how long the staged copy of an old session lives if the
// resume that made it dies before removing it: the staged keys sit in a
// session no client can name, and a minute bounds the memory a crash leaves.
const stageTTL = time.Minute

// call answers one resume_session request. It copies in three steps, each
// of which touches one session's keys at a time (so that it holds on a
// store that spreads sessions over shards, like Redis Cluster):
//
//  1. fix the owner of the current session: the caller (it was fixed at
//     creation; keepOwner refuses if it is someone else's), for at least as
//     long as the copied values will live;
//  2. copy the old session, in one atomic [Store.Copy], into a fresh
//     staging session that no client can name; the owner check then reads
//     the owner record from that snapshot. Because [Values] writes a
//     session's owner record before its first value, and the record outlives
//     every value, a snapshot that holds any value holds the owner that
//     guarded it: the check cannot miss an owner that a concurrent first
//     write is recording;
//  3. only if the check passes, drop the owner record from the snapshot and
//     copy the rest into the current session; the staging session is then
//     removed (and expires after stageTTL in any case).
//
// A refused copy writes nothing into the current session; a crash between
// steps leaves at most the staged snapshot, which no client can reach and
// which expires. The copy is idempotent, so the client's next resume_session
// repairs a resume that died after step 3 began.
func (t *resumeTool) call(ctx context.Context, req *mcp.CallToolRequest, in resumeInput) (*mcp.CallToolResult, resume.Result, error) {
	current := req.Session.ID()
	if current == "" {
		return nil, resume.Result{}, fmt.Errorf("%s needs a stateful session: this request carries no Mcp-Session-Id, so there is no session to copy state into", resume.ToolName)
	}
	if err := checkClientSessionID(in.OldSessionID); err != nil {
		return nil, resume.Result{}, fmt.Errorf("%s: argument %s: %w", resume.ToolName, resume.ToolArg, err)
	}
	res := resume.Result{Instance: t.opts.Instance}
	if in.OldSessionID == current {
		res.Status = resume.StatusSameSession
		return nil, res, nil
	}
	caller := Principal(req)
	// The session the caller is on must be its own: the SDK binds a session
	// to the principal that created it, but the store may be shared with
	// servers that do not.
	if err := keepOwner(ctx, t.store, current, caller, t.opts.TTL); err != nil {
		return nil, resume.Result{}, fmt.Errorf("%s: refused, nothing copied: %w", resume.ToolName, err)
	}
	// A cheap refusal first, for the common case of a session owned before
	// this call; the check that counts is on the snapshot below.
	if err := checkOwner(ctx, t.store, in.OldSessionID, caller); err != nil {
		return nil, resume.Result{}, fmt.Errorf("%s: refused, nothing copied: %w", resume.ToolName, err)
	}
	stage, err := stageSession()
	if err != nil {
		return nil, resume.Result{}, fmt.Errorf("%s: %w", resume.ToolName, err)
	}
	defer t.unstage(ctx, stage)
	staged, err := t.store.Copy(ctx, in.OldSessionID, stage, stageTTL)
	if err != nil {
		return nil, resume.Result{}, fmt.Errorf("%s: copying the state of session %s: %w", resume.ToolName, in.OldSessionID, err)
	}
	res.Status = resume.StatusNotFound
	if staged == 0 {
		return nil, res, nil
	}
	raw, owned, err := t.store.Get(ctx, stage, OwnerKey)
	if err != nil {
		return nil, resume.Result{}, fmt.Errorf("%s: reading the owner of session %s: %w", resume.ToolName, in.OldSessionID, err)
	}
	if owned {
		if err := mayCopy(in.OldSessionID, decodeOwner(raw).Principal, caller); err != nil {
			return nil, resume.Result{}, fmt.Errorf("%s: refused, nothing copied: %w", resume.ToolName, err)
		}
		// The current session keeps its own record: the old one's could
		// expire sooner than values the current session already holds.
		if err := t.store.Delete(ctx, stage, OwnerKey); err != nil {
			return nil, resume.Result{}, fmt.Errorf("%s: copying the state of session %s: %w", resume.ToolName, in.OldSessionID, err)
		}
	}
	n, err := t.store.Copy(ctx, stage, current, t.opts.TTL)
	if err != nil {
		return nil, resume.Result{}, fmt.Errorf("%s: copying the state of session %s: %w", resume.ToolName, in.OldSessionID, err)
	}
	res.KeysCopied = n
	if n > 0 {
		res.Status = resume.StatusResumed
	}
	return nil, res, nil
}

// stageSession returns the name of a fresh staging session: random, and in
// the server half's own namespace, which resume_session and [NewValues]
// refuse to clients.
func stageSession() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("naming a staging session: %w", err)
	}
	return internalSessionPrefix + "resume-" + hex.EncodeToString(b[:]), nil
}

// unstage removes what a resume staged, even when the request was
// cancelled; what it fails to remove expires after stageTTL.
func (t *resumeTool) unstage(ctx context.Context, stage string) {
	ctx = context.WithoutCancel(ctx)
	keys, err := t.store.Keys(ctx, stage)
	if err != nil {
		return
	}
	for _, k := range keys {
		if t.store.Delete(ctx, stage, k) != nil {
			return
		}
	}
}

// ValidateSessionID is [resume.ValidateSessionID]: the rule of a session
// ID, shared with the client side. It is safe for concurrent use.
func ValidateSessionID(id string) error { return resume.ValidateSessionID(id) }

func quotePrefix(id string) string {
	const maxQuoted = 40
	if len(id) <= maxQuoted {
		return strconv.Quote(id)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return strconv.Quote(id[:cut]) + "..."
}
