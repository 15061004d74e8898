package resilient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/internal/testserver"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resilient/internal/engine"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/retry"
)

// With a deduplicating server, an answer lost after increment_counter ran
// is not a dilemma (compare TestDropAfterToolRan): the replay returns the
// single execution's result.
func TestDedupDropAfterToolRan(t *testing.T) {
	cl := startCluster(t, &testserver.Options{Dedup: true})
	c, _ := connect(t, cl, nil)
	mustCounter(t, c, "increment_counter")
	cl.Inject(testserver.Fault{Kind: testserver.DropAfterTool, Method: "tools/call", Tool: "increment_counter"})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "increment_counter", Meta: keyMeta("inc-2")})
	if err != nil {
		t.Fatalf("increment with the answer lost, dedup on: %v", err)
	}
	if got := decode[counterResult](t, res); got.Counter != 2 {
		t.Errorf("counter = %d, want 2: the value of its single execution", got.Counter)
	}
	if res.Meta[resume.ReplayedMeta] != true {
		t.Errorf("result _meta = %v, want the server's replayed marker", res.Meta)
	}
	if got := cl.ToolRuns("increment_counter"); got != 2 {
		t.Errorf("increment_counter ran %d times, want 2", got)
	}
	if got := cl.KeyRuns("inc-2"); got != 1 {
		t.Errorf("the call with key inc-2 ran %d times, want 1", got)
	}
	if s := c.Stats(); s.Replays != 1 || s.OutcomeUnknown != 0 {
		t.Errorf("Stats = %+v, want 1 replay, no outcome unknown", s)
	}
	if got := mustCounter(t, c, "get_counter"); got.Counter != 2 {
		t.Errorf("get_counter = %d, want 2", got.Counter)
	}
}

// retry.NotIdempotent forbids the replay even when the server deduplicates.
func TestDedupOverriddenByNotIdempotent(t *testing.T) {
	cl := startCluster(t, &testserver.Options{Dedup: true})
	c, _ := connect(t, cl, nil)
	mustCounter(t, c, "increment_counter")
	cl.Inject(testserver.Fault{Kind: testserver.DropAfterTool, Method: "tools/call", Tool: "increment_counter"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.CallTool(retry.NotIdempotent(ctx), &mcp.CallToolParams{Name: "increment_counter"})
	if !errors.Is(err, resilient.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
	}
	if got := cl.ToolRuns("increment_counter"); got != 2 {
		t.Errorf("increment_counter ran %d times, want 2", got)
	}
}

// The same key with other arguments is refused with a clear error and
// runs nothing.
func TestDedupMismatchedReplay(t *testing.T) {
	cl := startCluster(t, &testserver.Options{Dedup: true})
	c, _ := connect(t, cl, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"note": "a"}, Meta: keyMeta("note-1")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"note": "b"}, Meta: keyMeta("note-1")})
	if !engine.HasCode(err, resume.CodeKeyReused) {
		t.Fatalf("same key, other arguments: err = %v, want JSON-RPC %d", err, resume.CodeKeyReused)
	}
	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "list_notes"})
	if err != nil {
		t.Fatal(err)
	}
	notes := decode[testserver.NotesResult](t, res)
	if diff := cmp.Diff([]string{"a"}, notes.Notes); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
	if got := cl.ToolRuns("add_note"); got != 1 {
		t.Errorf("add_note ran %d times, want 1", got)
	}
	if _, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "add_note", Meta: keyMeta("bad key")}); !errors.Is(err, resume.ErrInvalidIdempotencyKey) {
		t.Errorf("invalid caller key: err = %v, want ErrInvalidIdempotencyKey", err)
	}
}

// keyMeta is the _meta of a call whose idempotency key the caller chose.
func keyMeta(key string) mcp.Meta { return mcp.Meta{resume.IdempotencyKeyMeta: key} }
