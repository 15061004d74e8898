package resilientotel

import (
	"context"
	"errors"
	"strconv"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/retry"
)

// Values of error.type set by this package besides the JSON-RPC codes and
// Go type names.
const (
	ErrorTypeTool           = "tool_error" // the MCP conventions': a result with IsError
	ErrorTypeOutcomeUnknown = "outcome_unknown"
	ErrorTypeCircuitOpen    = "circuit_open"
	ErrorTypeExhausted      = "exhausted"
	ErrorTypeClosed         = "closed"
	ErrorTypeCanceled       = "canceled"
	ErrorTypeDeadline       = "deadline_exceeded"
)

// errorType returns the error.type of a call that returned result and err,
// and "" for a success. It is the one place that decides it, for client
// and server spans and for the duration metrics:
//
//   - a *mcp.CallToolResult with IsError: "tool_error";
//   - the client's sentinels, first match in this order: outcome_unknown,
//     circuit_open, exhausted, closed (each of them wraps a cause, which a
//     match on the cause would hide);
//   - context.Canceled, context.DeadlineExceeded: canceled,
//     deadline_exceeded;
//   - a JSON-RPC error: its code, as the conventions ask ("-32602");
//   - anything else: the Go type, as semconv.ErrorType names it.
func errorType(result any, err error) string {
	if err == nil {
		if r, ok := result.(*mcp.CallToolResult); ok && r != nil && r.IsError {
			return ErrorTypeTool
		}
		return ""
	}
	var wire *jsonrpc.Error
	switch {
	case errors.Is(err, resilient.ErrOutcomeUnknown):
		return ErrorTypeOutcomeUnknown
	case errors.Is(err, resilient.ErrCircuitOpen):
		return ErrorTypeCircuitOpen
	case errors.Is(err, retry.ErrExhausted):
		return ErrorTypeExhausted
	case errors.Is(err, resilient.ErrClosed):
		return ErrorTypeClosed
	case errors.Is(err, context.Canceled):
		return ErrorTypeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return ErrorTypeDeadline
	case errors.As(err, &wire):
		return strconv.FormatInt(wire.Code, 10)
	}
	return semconv.ErrorType(err).Value.AsString()
}

// rpcCode returns the JSON-RPC error code in err's chain.
func rpcCode(err error) (int64, bool) {
	var wire *jsonrpc.Error
	if errors.As(err, &wire) {
		return wire.Code, true
	}
	return 0, false
}
