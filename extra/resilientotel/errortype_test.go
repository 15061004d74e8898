package resilientotel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/retry"
)

func TestErrorType(t *testing.T) {
	wire := &jsonrpc.Error{Code: -32602, Message: "invalid params"}
	tests := []struct {
		name   string
		result any
		err    error
		want   string
	}{
		{"success", &mcp.CallToolResult{}, nil, ""},
		{"no result", nil, nil, ""},
		{"nil tool result", (*mcp.CallToolResult)(nil), nil, ""},
		{"tool error", &mcp.CallToolResult{IsError: true}, nil, "tool_error"},
		{"outcome unknown", nil, fmt.Errorf("%w: %w", resilient.ErrOutcomeUnknown, io.ErrUnexpectedEOF), "outcome_unknown"},
		{"outcome unknown over a deadline", nil, fmt.Errorf("%w: %w", resilient.ErrOutcomeUnknown, context.DeadlineExceeded), "outcome_unknown"},
		{"circuit open", nil, fmt.Errorf("%w: %w", resilient.ErrCircuitOpen, &net.OpError{Op: "dial", Err: errors.New("refused")}), "circuit_open"},
		{"exhausted over a JSON-RPC error", nil, fmt.Errorf("%w: %w", retry.ErrExhausted, wire), "exhausted"},
		{"closed", nil, resilient.ErrClosed, "closed"},
		{"canceled", nil, context.Canceled, "canceled"},
		{"deadline", nil, fmt.Errorf("calling: %w", context.DeadlineExceeded), "deadline_exceeded"},
		{"JSON-RPC error", nil, wire, "-32602"},
		{"wrapped JSON-RPC error", nil, fmt.Errorf("calling tool: %w", wire), "-32602"},
		{"other error: its Go type", nil, &net.OpError{Op: "dial", Err: errors.New("refused")}, "*net.OpError"},
		{"error wins over a result", &mcp.CallToolResult{IsError: true}, resilient.ErrClosed, "closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorType(tt.result, tt.err); got != tt.want {
				t.Errorf("errorType(%v, %v) = %q, want %q", tt.result, tt.err, got, tt.want)
			}
		})
	}
}
