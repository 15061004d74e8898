package resilient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/internal/testserver"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/retry"
)

// counterOf reads the counter tools' structured answer.
func counterOf(res *mcp.CallToolResult) int {
	var r struct {
		Counter int `json:"counter"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	_ = json.Unmarshal(b, &r)
	return r.Counter
}

// Connect a resilient client and call a tool, exactly as with an SDK
// session.
func ExampleConnect() {
	cluster, err := testserver.Start(nil) // three MCP backends behind a balancer
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()

	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "my-agent", Version: "1"}, nil)
	c, err := resilient.Connect(ctx, client, resilient.StreamableHTTP(cluster.URL(), nil), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "increment_counter"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("counter:", counterOf(res))
	// Output: counter: 1
}

// The backend holding the session dies between two calls. The second call
// finds the session gone, reconnects, resumes the old session's state on
// another backend, and runs there: the caller sees only the answer.
func ExampleClient_CallTool_failover() {
	cluster, err := testserver.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "my-agent", Version: "1"}, nil)
	c, err := resilient.Connect(ctx, client, resilient.StreamableHTTP(cluster.URL(), nil), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for i := range 2 {
		if i == 1 {
			backend, _ := cluster.BackendFor(c.ID())
			cluster.Kill(backend)
			fmt.Println("the backend holding the session died")
		}
		res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "increment_counter"})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("counter:", counterOf(res))
	}
	s := c.Stats()
	fmt.Printf("reconnects: %d, resumes: %d, replays: %d\n", s.Reconnects, s.Resumes, s.Replays)
	// Output:
	// counter: 1
	// the backend holding the session died
	// counter: 2
	// reconnects: 1, resumes: 1, replays: 1
}

// Per-call overrides ride on the context. Here the answer to a
// non-idempotent call is lost after the server ran it: by default the
// client does not replay it and says the outcome is unknown; a caller that
// knows the call is safe to repeat says so with retry.Idempotent.
func ExampleClient_CallTool_overrides() {
	cluster, err := testserver.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "my-agent", Version: "1"}, nil)
	c, err := resilient.Connect(ctx, client, resilient.StreamableHTTP(cluster.URL(), nil), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	note := &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"note": "hello"}}
	cluster.Inject(testserver.Fault{Kind: testserver.DropBeforeTool, Method: "tools/call", Tool: "add_note"})
	_, err = c.CallTool(ctx, note)
	fmt.Println("default: outcome unknown:", errors.Is(err, resilient.ErrOutcomeUnknown))

	cluster.Inject(testserver.Fault{Kind: testserver.DropBeforeTool, Method: "tools/call", Tool: "add_note"})
	_, err = c.CallTool(retry.Idempotent(ctx), note)
	fmt.Println("retry.Idempotent: error:", err)

	// A tighter policy for one call: a single attempt, no retry.
	cluster.Inject(testserver.Fault{Kind: testserver.Unavailable, Method: "tools/call"})
	_, err = c.CallTool(retry.WithPolicy(ctx, retry.Policy{MaxAttempts: 1, MaxElapsed: time.Second}), note)
	fmt.Println("one attempt: exhausted:", errors.Is(err, retry.ErrExhausted))
	// Output:
	// default: outcome unknown: true
	// retry.Idempotent: error: <nil>
	// one attempt: exhausted: true
}

// A server that deduplicates by idempotency key (resume.Dedup) turns the
// unknown outcome into a safe replay: the replay gets the result of the
// single execution.
func ExampleClient_CallTool_dedup() {
	cluster, err := testserver.Start(&testserver.Options{Dedup: true})
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "my-agent", Version: "1"}, nil)
	c, err := resilient.Connect(ctx, client, resilient.StreamableHTTP(cluster.URL(), nil), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	cluster.Inject(testserver.Fault{Kind: testserver.DropAfterTool, Method: "tools/call", Tool: "increment_counter"})
	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "increment_counter"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("counter:", counterOf(res))
	fmt.Println("times the tool ran:", cluster.ToolRuns("increment_counter"))
	// Output:
	// counter: 1
	// times the tool ran: 1
}
