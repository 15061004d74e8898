//go:build interop

package interop

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
)

// TestNilArguments records what a TS SDK server answers to a tools/call
// whose Arguments is nil (untyped: the SDK sends {}) or a nil map
// (map[string]any(nil): the SDK sends null), through a raw session and
// through the resilient client, and checks that the client, a drop-in,
// answers as the raw session does.
func TestNilArguments(t *testing.T) {
	e := newEnv(t)
	s := tsServer(t, e, "sse")
	start := time.Now()
	raw := e.connectRaw(s)
	c, _ := e.connect(s)
	outcome := func(sess resilient.Session, args any) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter", Arguments: args})
		switch {
		case err != nil:
			return "error: " + err.Error()
		case res.IsError:
			return "tool error: " + textOf(res)
		default:
			return "ok: " + textOf(res)
		}
	}
	var summary string
	for _, tc := range []struct {
		name string
		args any
	}{
		{"untyped nil", nil},
		{"nil map", map[string]any(nil)},
	} {
		want, got := outcome(raw, tc.args), outcome(c, tc.args)
		t.Logf("%s Arguments: raw session %q, resilient %q", tc.name, want, got)
		if got != want {
			t.Errorf("%s Arguments: resilient client %q, raw session %q; want the same (a drop-in)", tc.name, got, want)
		}
		first, _, _ := strings.Cut(got, "\n")
		summary += fmt.Sprintf("%s: %s; ", tc.name, first)
	}
	report(t, "ts-sdk-sse", "streamable", "nil-arguments", start, summary)
}
