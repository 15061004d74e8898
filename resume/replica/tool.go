package replica

import (
	"context"
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
// Sessions written for an authenticated principal ([Principal]: the UserID
// of the request's auth.TokenInfo) have an owner, recorded under [OwnerKey]
// by [Values] and by this tool. The tool copies an owned session only for a
// request of the same principal: a request of another principal, or one with
// no principal at all, gets a tool error matching [ErrNotOwner] in its text,
// and nothing is copied. After a copy for an authenticated caller the tool
// records the caller as the owner of the current session. Sessions without
// an owner (written by unauthenticated requests, or by a server that shares
// the store and knows nothing of owners) can be copied by anyone who knows
// their ID; session IDs are unguessable. keys_copied does not count the
// owner record.
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

// call answers one resume_session request. The steps run cheapest first, and
// every refusal happens before the store's Copy: nothing is written unless
// the copy is allowed.
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
	oldOwned, err := checkOwner(ctx, t.store, in.OldSessionID, caller)
	if err != nil {
		return nil, resume.Result{}, fmt.Errorf("%s: refused, nothing copied: %w", resume.ToolName, err)
	}
	// The session the caller is on must be its own too: the SDK binds a
	// session to the principal that created it, but the store may be
	// shared with servers that do not.
	if _, err := checkOwner(ctx, t.store, current, caller); err != nil {
		return nil, resume.Result{}, fmt.Errorf("%s: refused, nothing copied: %w", resume.ToolName, err)
	}
	// Copy alone decides between not_found and resumed: a separate Keys call
	// first would race with expiry.
	n, err := t.store.Copy(ctx, in.OldSessionID, current, t.opts.TTL)
	if err != nil {
		return nil, resume.Result{}, fmt.Errorf("%s: copying the state of session %s: %w", resume.ToolName, in.OldSessionID, err)
	}
	if oldOwned && n > 0 {
		n-- // the owner record came along; it is not the caller's state
	}
	if caller != "" {
		// After the copy, so that the record outlives the copied values
		// (see ownerTTL) even where the copy brought the old record along.
		if err := recordOwner(ctx, t.store, current, caller, t.opts.TTL); err != nil {
			return nil, resume.Result{}, fmt.Errorf("%s: recording the owner of session %s: %w", resume.ToolName, current, err)
		}
	}
	res.KeysCopied = n
	res.Status = resume.StatusResumed
	if n == 0 {
		res.Status = resume.StatusNotFound
	}
	return nil, res, nil
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
