package resume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Status is the outcome resume_session reports.
type Status string

// The statuses of resume_session. The reference (Python) server answers
// "resumed" with keys_copied 0 for an unknown session; that is accepted as
// StatusResumed.
const (
	StatusResumed     Status = "resumed"
	StatusSameSession Status = "same_session"
	StatusNotFound    Status = "not_found"
)

// Result is what the server reported about a resume.
type Result struct {
	Status     Status `json:"status"`
	KeysCopied int    `json:"keys_copied"`
	// Instance names the server replica that answered, when it says.
	Instance string `json:"instance,omitempty"`
}

// A Resumer restores the server-side state of an old session on a new one.
// The resilient client calls it once per reconnect when the old session had
// an ID, with the new session and the old ID.
//
// Errors matching [ErrUnsupported] are reported as "resume skipped", and
// errors matching [ErrRejected] or holding a JSON-RPC error from the server
// as "resume failed": either way the reconnect stands and the client keeps
// the old ID to resume from next time. Any other error means no answer came
// (the new session died too): the client drops that session and dials
// another, as for a failed connection.
// Implementations must be safe for concurrent use.
type Resumer interface {
	Resume(ctx context.Context, cs *mcp.ClientSession, oldSessionID string) (Result, error)
}

// None is a Resumer that never resumes: each reconnect starts from an empty
// session. Its Resume returns an error matching [ErrUnsupported].
var None Resumer = none{}

type none struct{}

func (none) Resume(context.Context, *mcp.ClientSession, string) (Result, error) {
	return Result{}, fmt.Errorf("%w: resume disabled (resume.None)", ErrUnsupported)
}

// Tool is the default Resumer: it calls the resume_session tool
// ({"old_session_id": ID}) and reads {"status","keys_copied","instance"}
// from the structured content, or from JSON in the first text block for
// servers that send only text. The zero value is ready to use.
type Tool struct {
	// Name is the tool to call. Empty means [ToolName] ("resume_session").
	Name string
	// Arg is the argument that carries the old ID. Empty means [ToolArg]
	// ("old_session_id").
	Arg string
}

// Resume implements [Resumer].
func (t Tool) Resume(ctx context.Context, cs *mcp.ClientSession, oldSessionID string) (Result, error) {
	name, arg := t.Name, t.Arg
	if name == "" {
		name = ToolName
	}
	if arg == "" {
		arg = ToolArg
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: map[string]any{arg: oldSessionID}})
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		if isUnknownTool(err, name) {
			return Result{}, fmt.Errorf("%w: tool %q: %v", ErrUnsupported, name, err)
		}
		return Result{}, fmt.Errorf("%w: %w", ErrResumeFailed, err)
	}
	if res.IsError {
		text := firstText(res)
		if saysUnknownTool(text, name) {
			return Result{}, fmt.Errorf("%w: tool %q: %s", ErrUnsupported, name, text)
		}
		return Result{}, fmt.Errorf("%w: %w: tool %q returned an error: %s", ErrResumeFailed, ErrRejected, name, text)
	}
	return parseResult(res)
}

func parseResult(res *mcp.CallToolResult) (Result, error) {
	var raw []byte
	if res.StructuredContent != nil {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			return Result{}, fmt.Errorf("%w: %w: structured content: %v", ErrResumeFailed, ErrRejected, err)
		}
		raw = b
	} else {
		raw = []byte(firstText(res))
	}
	var r Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return Result{}, fmt.Errorf("%w: %w: answer is not {\"status\",\"keys_copied\"} JSON: %v", ErrResumeFailed, ErrRejected, err)
	}
	switch r.Status {
	case StatusResumed, StatusSameSession, StatusNotFound:
	default:
		return Result{}, fmt.Errorf("%w: %w: unknown status %q", ErrResumeFailed, ErrRejected, r.Status)
	}
	if r.KeysCopied < 0 {
		return Result{}, fmt.Errorf("%w: %w: keys_copied is %d", ErrResumeFailed, ErrRejected, r.KeysCopied)
	}
	return r, nil
}

func firstText(res *mcp.CallToolResult) string {
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			return t.Text
		}
	}
	return ""
}

// isUnknownTool reports whether err is a server's protocol error saying it
// has no tool name: -32601 (method not found), or any error whose text says
// so (see [saysUnknownTool]). The SDKs give no code of their own for it:
// go-sdk and mcp-go answer -32602 (invalid params), a code that also means
// arguments the tool refused, so the code alone does not tell.
func isUnknownTool(err error, name string) bool {
	var we *jsonrpc.Error
	if errors.As(err, &we) && we.Code == jsonrpc.CodeMethodNotFound {
		return true
	}
	return saysUnknownTool(err.Error(), name)
}

// saysUnknownTool reports whether msg, a server's error text (a protocol
// error's message or the text of an IsError result), says that tool name
// does not exist. Text is all the SDKs leave, and each words it its own way:
//
//	go-sdk               unknown tool "resume_session"               (-32602)
//	mcp-go v1.2          tool 'resume_session' not found: tool not found (-32602)
//	TypeScript SDK 1.32  MCP error -32602: Tool resume_session not found
//	                     (an IsError result: McpServer turns the error into one)
//	Python SDK (FastMCP) Unknown tool: resume_session
//
// A resume_session tool that exists and fails ("old session not found")
// does not match: the words must name a tool, not a session.
func saysUnknownTool(msg, name string) bool {
	m := strings.ToLower(msg)
	if strings.Contains(m, "unknown tool") || strings.Contains(m, "no such tool") {
		return true
	}
	m = strings.NewReplacer(`"`, "", "'", "", "`", "").Replace(m)
	n := strings.ToLower(name)
	return strings.Contains(m, "tool "+n+" not found") ||
		strings.Contains(m, "tool "+n+" does not exist") ||
		strings.Contains(m, "tool not found: "+n)
}
