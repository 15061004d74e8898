package resume

import (
	"context"
	"errors"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// resumeAgainst runs Tool{}.Resume against an in-memory go-sdk server whose
// resume_session tool is handler; a nil handler registers no tool at all.
func resumeAgainst(t *testing.T, handler mcp.ToolHandler) error {
	t.Helper()
	server := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
	if handler != nil {
		server.AddTool(&mcp.Tool{Name: ToolName, InputSchema: map[string]any{"type": "object"}}, handler)
	}
	st, ct := mcp.NewInMemoryTransports()
	ss, err := server.Connect(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	_, err = Tool{}.Resume(t.Context(), cs, "OLD")
	return err
}

func protocolError(code int64, msg string) mcp.ToolHandler {
	return func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return nil, &jsonrpc.Error{Code: code, Message: msg}
	}
}

func toolError(msg string) mcp.ToolHandler {
	return func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}, nil
	}
}

// TestResumeMissingToolIsSkipped: each SDK words "no such tool" its own way,
// and each of them is a skipped resume (ErrUnsupported), never a failed one.
// The texts are the servers' own, seen by the interop suite
// (go test -tags interop ./interop/...).
func TestResumeMissingToolIsSkipped(t *testing.T) {
	tests := []struct {
		name    string
		handler mcp.ToolHandler
	}{
		{"go-sdk: no tool registered", nil},
		{"go-sdk wording", protocolError(jsonrpc.CodeInvalidParams, `unknown tool "resume_session"`)},
		{"mcp-go v1.2.1", protocolError(jsonrpc.CodeInvalidParams, `tool 'resume_session' not found: tool not found`)},
		{"TypeScript SDK 1.32.2 (IsError result)", toolError("MCP error -32602: Tool resume_session not found")},
		{"TypeScript SDK, older (protocol error)", protocolError(jsonrpc.CodeInvalidParams, "MCP error -32602: Tool resume_session not found")},
		{"Python SDK (FastMCP)", toolError("Unknown tool: resume_session")},
		{"method not found", protocolError(jsonrpc.CodeMethodNotFound, "Method not found")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := resumeAgainst(t, tc.handler)
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("Resume = %v, want an error matching ErrUnsupported", err)
			}
			if errors.Is(err, ErrResumeFailed) {
				t.Errorf("Resume = %v, matches ErrResumeFailed; a missing tool is skipped, not failed", err)
			}
		})
	}
}

// TestResumeToolFailureIsNotSkipped: a resume_session tool that exists and
// fails, even with "not found" in its words, is a failed resume.
func TestResumeToolFailureIsNotSkipped(t *testing.T) {
	tests := []struct {
		name     string
		handler  mcp.ToolHandler
		rejected bool
	}{
		{"tool error naming the session", toolError("session OLD not found"), true},
		{"tool error, other", toolError("store unavailable"), true},
		{"invalid params", protocolError(jsonrpc.CodeInvalidParams, "old_session_id: not found in arguments"), false},
		{"internal error", protocolError(jsonrpc.CodeInternalError, "tool resume_session failed"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := resumeAgainst(t, tc.handler)
			if !errors.Is(err, ErrResumeFailed) || errors.Is(err, ErrUnsupported) {
				t.Errorf("Resume = %v, want an error matching ErrResumeFailed and not ErrUnsupported", err)
			}
			if got := errors.Is(err, ErrRejected); got != tc.rejected {
				t.Errorf("errors.Is(err, ErrRejected) = %v, want %v (err %v)", got, tc.rejected, err)
			}
		})
	}
}
