package resilient_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/internal/testserver"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/retry"
)

// soakEnv sets the chaos soak's duration, e.g. RESILIENCE_SOAK=2m. The
// default run soaks for 3 seconds (1 with -short).
const soakEnv = "RESILIENCE_SOAK"

func soakDuration(t *testing.T) time.Duration {
	if v := os.Getenv(soakEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive duration such as 2m", soakEnv, v)
		}
		return d
	}
	if testing.Short() {
		return time.Second
	}
	return 3 * time.Second
}

// TestChaosSoak runs 16 goroutines mixing writes and reads on one client
// while a random backend is killed and restarted every 100-300ms, then
// checks the books: with the server deduplicating, every write succeeded
// and ran exactly once; without, no write ran twice, and the counter equals
// the acknowledged increments plus those whose outcome was unknown and that
// did run (each call's idempotency key is its marker on the server).
func TestChaosSoak(t *testing.T) {
	d := soakDuration(t)
	for _, dedup := range []bool{true, false} {
		t.Run(fmt.Sprintf("dedup=%v", dedup), func(t *testing.T) { soak(t, dedup, d) })
	}
}

type soakCall struct {
	tool, key, note string
	err             error
}

func soak(t *testing.T, dedup bool, d time.Duration) {
	cl := startCluster(t, &testserver.Options{Backends: 3, Dedup: dedup})
	c, _ := connect(t, cl, &resilient.Options{
		Retry:   retry.Policy{MaxAttempts: 50, InitialBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxElapsed: 30 * time.Second},
		Breaker: resilient.BreakerSettings{ConsecutiveFailures: 20, OpenTimeout: 50 * time.Millisecond},
	})
	ctx, cancel := context.WithTimeout(context.Background(), d+60*time.Second)
	defer cancel()
	stop := time.Now().Add(d)

	var chaos sync.WaitGroup
	kills := 0
	chaos.Add(1)
	go func() {
		defer chaos.Done()
		for time.Now().Before(stop) {
			time.Sleep(time.Duration(100+rand.IntN(200)) * time.Millisecond)
			i := rand.IntN(cl.Backends())
			cl.Kill(i)
			kills++
			time.Sleep(20 * time.Millisecond)
			if err := cl.Restart(i); err != nil {
				t.Errorf("Restart(%d): %v", i, err)
				return
			}
		}
	}()

	const workers = 16
	calls := make([][]soakCall, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(stop); n++ {
				call := soakCall{key: fmt.Sprintf("w%d-%d", w, n)}
				params := &mcp.CallToolParams{}
				switch r := rand.IntN(10); {
				case r < 4:
					call.tool = "increment_counter"
				case r < 6:
					call.tool = "add_note"
					call.note = call.key
					params.Arguments = map[string]any{"note": call.note}
				case r < 8:
					call.tool = "get_counter"
				default:
					call.tool = "list_notes"
				}
				params.Name = call.tool
				params.Meta = keyMeta(call.key)
				res, err := c.CallTool(ctx, params)
				if err == nil && res.IsError {
					err = fmt.Errorf("tool error: %s", toolText(res))
				}
				call.err = err
				calls[w] = append(calls[w], call)
			}
		}()
	}
	wg.Wait()
	chaos.Wait()
	for i := range cl.Backends() {
		if !cl.Alive(i) {
			if err := cl.Restart(i); err != nil {
				t.Fatalf("Restart(%d): %v", i, err)
			}
		}
	}

	counter := mustCounter(t, c, "get_counter").Counter
	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "list_notes"})
	if err != nil {
		t.Fatalf("list_notes: %v", err)
	}
	noteCount := map[string]int{}
	for _, n := range decode[testserver.NotesResult](t, res).Notes {
		noteCount[n]++
	}

	var total, increments, ackIncrements, unknown, unknownRan, notes int
	ranIncrements := 0
	issuedNotes := map[string]bool{}
	for _, wc := range calls {
		for _, call := range wc {
			total++
			write := call.tool == "increment_counter" || call.tool == "add_note"
			outcomeUnknown := errors.Is(call.err, resilient.ErrOutcomeUnknown)
			switch {
			case call.err == nil:
			case outcomeUnknown && write && !dedup:
				unknown++
			default:
				t.Errorf("%s (key %s): %v", call.tool, call.key, call.err)
			}
			if !write {
				continue
			}
			runs := cl.KeyRuns(call.key)
			if runs > 1 {
				t.Errorf("%s (key %s) ran %d times", call.tool, call.key, runs)
			}
			if call.err == nil && runs != 1 {
				t.Errorf("%s (key %s) was acknowledged but ran %d times", call.tool, call.key, runs)
			}
			if outcomeUnknown && runs == 1 {
				unknownRan++
			}
			switch call.tool {
			case "increment_counter":
				increments++
				ranIncrements += runs
				if call.err == nil {
					ackIncrements++
				}
			case "add_note":
				notes++
				issuedNotes[call.note] = true
				if got := noteCount[call.note]; got != runs {
					t.Errorf("note %s appears %d times, but its call ran %d times", call.note, got, runs)
				}
			}
		}
	}
	for n, k := range noteCount {
		if !issuedNotes[n] {
			t.Errorf("note %q (x%d) was never issued", n, k)
		}
	}
	if counter != ranIncrements {
		t.Errorf("counter = %d, but increments ran %d times", counter, ranIncrements)
	}
	if dedup && counter != increments {
		t.Errorf("with dedup: counter = %d, want every one of the %d increments issued", counter, increments)
	}
	if counter < ackIncrements || counter > ackIncrements+unknown {
		t.Errorf("counter = %d, want between the %d acknowledged increments and that plus the %d unknown outcomes", counter, ackIncrements, unknown)
	}
	if increments == 0 || notes == 0 || kills == 0 {
		t.Errorf("the soak did nothing: %d increments, %d notes, %d kills", increments, notes, kills)
	}
	s := c.Stats()
	t.Logf("dedup=%v %v: %d calls (%d increments, %d notes), %d kills; client: %d reconnects, %d resumes, %d replays, %d retries, %d outcome unknown (%d of them ran); counter %d",
		dedup, d, total, increments, notes, kills, s.Reconnects, s.Resumes, s.Replays, s.Retries, s.OutcomeUnknown, unknownRan, counter)
}

func toolText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}
