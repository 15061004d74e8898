// Command failover shows the product's main job: a resilient MCP client
// keeps working while the backend that holds its session dies.
//
// It starts an in-process cluster of three go-sdk MCP servers behind a
// sticky load balancer with a shared session store, connects a
// resilient.Client, increments a counter and adds notes, kills the backend
// holding the session in the middle of the run, and keeps going. It prints
// what happens, and exits 1 if the counter or the notes come out wrong.
//
//	go run ./examples/failover
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/internal/testserver"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/retry"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cluster, err := testserver.Start(&testserver.Options{Backends: 3})
	if err != nil {
		return err
	}
	defer cluster.Close()
	say("cluster: 3 MCP backends behind a sticky balancer at %s, one shared session store", cluster.URL())

	c, err := connect(ctx, cluster.URL(), say)
	if err != nil {
		return err
	}
	defer c.Close()
	backend, _ := cluster.BackendFor(c.ID())
	say("client: connected, session %s on %s\n", short(c.ID()), cluster.Instance(backend))

	want := 0
	increment := func() error {
		res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "increment_counter"})
		if err != nil {
			return err
		}
		var r struct {
			Counter  int    `json:"counter"`
			Instance string `json:"instance"`
		}
		if err := decode(res, &r); err != nil {
			return err
		}
		want++
		say("  increment_counter -> counter=%d   (served by %s)", r.Counter, r.Instance)
		if r.Counter != want {
			return fmt.Errorf("counter is %d, want %d", r.Counter, want)
		}
		return nil
	}
	addNote := func(note string) error {
		res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"note": note}})
		if err != nil {
			return err
		}
		var r struct {
			Count    int    `json:"notes_count"`
			Instance string `json:"instance"`
		}
		if err := decode(res, &r); err != nil {
			return err
		}
		say("  add_note(%q) -> %d note(s)   (served by %s)", note, r.Count, r.Instance)
		return nil
	}

	say("step 1: normal work on the sticky backend")
	for range 3 {
		if err := increment(); err != nil {
			return err
		}
	}
	if err := addNote("before the crash"); err != nil {
		return err
	}

	backend, _ = cluster.BackendFor(c.ID())
	say("\nstep 2: *** killing %s, which holds session %s ***", cluster.Instance(backend), short(c.ID()))
	cluster.Kill(backend)
	for range 2 {
		if err := increment(); err != nil {
			return err
		}
	}
	if err := addNote("after the crash"); err != nil {
		return err
	}

	say("\nstep 3: the connection drops after increment_counter ran on the server")
	cluster.Inject(testserver.Fault{Kind: testserver.DropAfterTool, Method: "tools/call", Tool: "increment_counter"})
	_, err = c.CallTool(ctx, &mcp.CallToolParams{Name: "increment_counter"})
	if !errors.Is(err, resilient.ErrOutcomeUnknown) {
		return fmt.Errorf("a lost answer to increment_counter gave %v, want ErrOutcomeUnknown", err)
	}
	say("  increment_counter -> error: outcome unknown, NOT replayed (a replay could count twice)")
	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"})
	if err != nil {
		return err
	}
	var got struct {
		Counter int `json:"counter"`
	}
	if err := decode(res, &got); err != nil {
		return err
	}
	say("  get_counter -> counter=%d: the lost call ran exactly once", got.Counter)
	if got.Counter != want+1 {
		return fmt.Errorf("counter is %d after one lost increment, want %d", got.Counter, want+1)
	}
	want++
	if err := increment(); err != nil {
		return err
	}

	res, err = c.CallTool(ctx, &mcp.CallToolParams{Name: "list_notes"})
	if err != nil {
		return err
	}
	var notes struct {
		Notes []string `json:"notes"`
	}
	if err := decode(res, &notes); err != nil {
		return err
	}
	say("  list_notes -> %q", notes.Notes)
	if len(notes.Notes) != 2 {
		return fmt.Errorf("notes = %q, want the 2 notes added", notes.Notes)
	}

	s := c.Stats()
	say("\nstats: %d calls, %d reconnects, %d resumes (%d keys copied), %d replays, %d outcome unknown; now generation %d, breaker %s",
		s.Calls, s.Reconnects, s.Resumes, s.KeysCopied, s.Replays, s.OutcomeUnknown, s.Generation, s.Breaker)
	say("the counter is %d: every acknowledged increment counted once, no call ran twice", want)

	if err := dedupStep(ctx, say); err != nil {
		return err
	}
	say("\ndone")
	return nil
}

// dedupStep shows the same lost answer on a cluster whose servers run
// replica.Dedup: the client replays the call, and the server answers the
// replay with the first execution's result instead of running it again.
func dedupStep(ctx context.Context, say func(string, ...any)) error {
	say("\nstep 4: the same lost answer, on servers that deduplicate by idempotency key (replica.Dedup)")
	cluster, err := testserver.Start(&testserver.Options{Backends: 3, Dedup: true})
	if err != nil {
		return err
	}
	defer cluster.Close()
	c, err := connect(ctx, cluster.URL(), say)
	if err != nil {
		return err
	}
	defer c.Close()
	counter := func(res *mcp.CallToolResult) (int, error) {
		var r struct {
			Counter int `json:"counter"`
		}
		err := decode(res, &r)
		return r.Counter, err
	}
	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "increment_counter"})
	if err != nil {
		return err
	}
	n, err := counter(res)
	if err != nil {
		return err
	}
	say("  increment_counter -> counter=%d", n)
	cluster.Inject(testserver.Fault{Kind: testserver.DropAfterTool, Method: "tools/call", Tool: "increment_counter"})
	res, err = c.CallTool(ctx, &mcp.CallToolParams{Name: "increment_counter"})
	if err != nil {
		return fmt.Errorf("with dedup, a lost answer gave %v, want the replayed result", err)
	}
	if n, err = counter(res); err != nil {
		return err
	}
	say("  increment_counter -> counter=%d: the replay got the first execution's result; the tool ran %d times for 2 increments",
		n, cluster.ToolRuns("increment_counter"))
	if n != 2 || cluster.ToolRuns("increment_counter") != 2 {
		return fmt.Errorf("counter %d after %d runs, want 2 and 2", n, cluster.ToolRuns("increment_counter"))
	}
	return nil
}

// connect returns a resilient client on url that narrates what it does on
// its own.
func connect(ctx context.Context, url string, say func(string, ...any)) (*resilient.Client, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "failover-demo", Version: "1"}, nil)
	return resilient.Connect(ctx, client, resilient.StreamableHTTP(url, nil), &resilient.Options{
		Retry:   retry.Policy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
		OnEvent: func(ev resilient.Event) { narrate(say, ev) },
	})
}

// narrate prints the client's own actions as they happen.
func narrate(say func(string, ...any), ev resilient.Event) {
	switch ev.Kind {
	case resilient.EventAttemptFailed:
		say("    ! %s failed (%s): %v", ev.Method, ev.Class, ev.Err)
	case resilient.EventReconnectStarted:
		say("    ~ replacing session %s", short(ev.OldSessionID))
	case resilient.EventReconnected:
		say("    ~ reconnected in %v: new session %s", ev.Duration.Round(time.Millisecond), short(ev.SessionID))
	case resilient.EventResumed:
		say("    ~ resume_session(%s): %s, %d keys copied", short(ev.OldSessionID), ev.Resume.Status, ev.Resume.KeysCopied)
	case resilient.EventResumeSkipped, resilient.EventResumeFailed:
		say("    ~ %s: %v", ev.Kind, ev.Err)
	case resilient.EventReplayed:
		why := "the server never ran it"
		if ev.Class == retry.Ambiguous {
			why = "the tool is idempotent or the server deduplicates"
		}
		say("    ~ replaying %s %s: %s", ev.Method, ev.Tool, why)
	case resilient.EventBreakerStateChanged:
		say("    ~ circuit breaker %s -> %s", ev.From, ev.To)
	}
}

func decode(res *mcp.CallToolResult, v any) error {
	if res.IsError {
		return fmt.Errorf("tool error: %v", res.Content)
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
