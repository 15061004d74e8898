//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/examples/demotools"
	"github.com/mcpkit/resilience/resilient"
)

// The replicas' log lines that say a session was adopted, or a request on
// a session refused (Handler's Logger), and the balancers' lines of a 404.
var (
	adoptedLine = regexp.MustCompile(`msg="session adopted"`)
	refusedLine = regexp.MustCompile(`msg="request refused".*status=404|session not found`)
	status404   = regexp.MustCompile(`\s404\s`)
	toolStarted = regexp.MustCompile(`msg="tool started".* tool=slow_increment`)
)

// TestInvisibleFailover: three replicas that adopt sessions, behind a
// balancer without stickiness (HAProxy, then nginx). The replica that
// served the session's last call is SIGKILLed between two calls; the next
// call succeeds with the count continued, on the same session, with no
// reconnect and no resume on the client and no 404 anywhere.
func TestInvisibleFailover(t *testing.T) {
	for _, balancer := range []string{"haproxy", "nginx"} {
		t.Run(balancer, func(t *testing.T) {
			c := startDeployment(t, deployment{balancer: balancer})
			cl := c.connect()
			id := cl.ID()
			var served []string
			var plain []time.Duration
			for want := 1; want <= 6; want++ {
				t0 := time.Now()
				got := cl.mustCall("increment_counter", nil)
				if want > 1 {
					plain = append(plain, time.Since(t0))
				}
				if got.Counter != want {
					t.Fatalf("counter = %d, want %d", got.Counter, want)
				}
				served = append(served, got.Instance)
			}
			// Round robin cycles through the three replicas: the one that
			// served the call three calls ago is the balancer's next pick,
			// so the next call meets the dead replica and the balancer must
			// go on to another. Should the cycle not be regular, the one
			// that served the last call dies.
			last := demotools.CounterResult{Instance: served[len(served)-1]}
			if served[len(served)-3] == served[len(served)-6] {
				last.Instance = served[len(served)-3]
			}
			c.kill(c.replica(last.Instance), "it served the session, and is the balancer's next pick")

			start := time.Now()
			got := cl.mustCall("increment_counter", nil)
			took := time.Since(start)
			if got.Counter != 7 {
				t.Errorf("counter after the kill = %d, want 7 (continued)", got.Counter)
			}
			if got.Instance == last.Instance {
				t.Errorf("served by %s, which is dead", got.Instance)
			}
			for want := 8; want <= 10; want++ {
				if got := cl.mustCall("increment_counter", nil); got.Counter != want {
					t.Errorf("counter = %d, want %d", got.Counter, want)
				}
			}
			if cl.ID() != id {
				t.Errorf("session ID = %s, want %s (the same session)", cl.ID(), id)
			}
			if n := c.counterInRedis(id); n != 10 {
				t.Errorf("counter in Redis = %d, want 10", n)
			}
			st := cl.Stats()
			if st.Reconnects != 0 || st.Resumes != 0 {
				t.Errorf("client stats: reconnects=%d resumes=%d, want 0 and 0", st.Reconnects, st.Resumes)
			}
			c.checkNo404(true)
			label := ""
			if balancer != "haproxy" {
				label = " (" + balancer + ")"
			}
			slices.Sort(plain)
			median := plain[len(plain)/2]
			fmt.Printf("FIGURE invisible failover%s: %v reconnects=%d resumes=%d (plain call median %v: %.1fx)\n", label,
				took.Round(time.Millisecond), st.Reconnects, st.Resumes, median.Round(100*time.Microsecond), float64(took)/float64(median))
		})
	}
}

// TestUndeliveredResultFromAnotherReplica: a replica stores the result of
// add_note in the shared event store and dies before sending it (the
// -test-kill-after-event hook SIGKILLs it right after the store). The
// client gets that result from another replica, replayed from Redis with
// Last-Event-ID, and the tool ran once.
func TestUndeliveredResultFromAnotherReplica(t *testing.T) {
	c := startDeployment(t, deployment{balancer: "haproxy", serverArgs: []string{"-test-kill-after-event", `"notes_count"`}})
	cl := c.connect()
	id := cl.ID()
	cl.mustCall("increment_counter", nil)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := cl.CallTool(ctx, &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"note": "once"}})
	if err != nil {
		t.Fatalf("add_note: %v", err)
	}
	var note demotools.NotesCountResult
	raw, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(raw, &note); err != nil || note.NotesCount != 1 {
		t.Fatalf("add_note = %s (%v), want notes_count 1", raw, err)
	}
	dead := c.replica(note.Instance)
	select {
	case <-dead.proc.Exited():
	default:
		t.Fatalf("%s, which ran add_note, is still alive: the hook did not fire, the test proved nothing", note.Instance)
	}
	t.Logf("add_note ran on %s, which died before sending its result; the client got it anyway", note.Instance)

	res, err = cl.CallTool(ctx, &mcp.CallToolParams{Name: "list_notes"})
	if err != nil {
		t.Fatalf("list_notes: %v", err)
	}
	var notes demotools.NotesResult
	raw, _ = json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(raw, &notes); err != nil || len(notes.Notes) != 1 {
		t.Errorf("notes = %s (%v), want exactly one: add_note ran once", raw, err)
	}
	if cl.ID() != id {
		t.Errorf("session ID = %s, want %s", cl.ID(), id)
	}
	if st := cl.Stats(); st.Reconnects != 0 || st.Replays != 0 {
		t.Errorf("client stats: reconnects=%d replays=%d, want 0 and 0 (the result came from the event store)", st.Reconnects, st.Replays)
	}
	c.checkNo404(false)
}

// TestToolRunningWhenReplicaDies: slow_increment is running on a replica
// when it is SIGKILLed. The call ends in ErrOutcomeUnknown (or a success,
// had it been replayed safely), the increment ran at most once, and the
// session goes on.
func TestToolRunningWhenReplicaDies(t *testing.T) {
	c := startDeployment(t, deployment{balancer: "haproxy"})
	cl := c.connect()
	cl.mustCall("increment_counter", nil)

	type answer struct {
		out demotools.CounterResult
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := cl.call(ctx, "slow_increment", map[string]any{"delay_ms": 3000})
		answered <- answer{out, err}
	}()
	// Wait for the replica that runs it to say so, then kill it.
	var running *replica
	err := c.redisWait(10*time.Second, func() error {
		for _, r := range c.replicas {
			if toolStarted.MatchString(r.proc.Output()) {
				running = r
				return nil
			}
		}
		return errors.New("no replica has started slow_increment")
	})
	if err != nil {
		t.Fatal(err)
	}
	c.kill(running, "slow_increment is running on it")
	a := <-answered
	switch {
	case a.err == nil:
		t.Logf("the call succeeded after the kill (a safe replay): counter %d from %s", a.out.Counter, a.out.Instance)
	case errors.Is(a.err, resilient.ErrOutcomeUnknown):
		t.Logf("the call ended in ErrOutcomeUnknown, as it must when it may have run: %v", a.err)
	default:
		t.Errorf("call error = %v, want nil or one matching ErrOutcomeUnknown", a.err)
	}
	got := cl.mustCall("get_counter", nil)
	if got.Counter < 1 || got.Counter > 2 {
		t.Errorf("counter after the kill = %d, want 1 or 2 (slow_increment ran at most once)", got.Counter)
	}
	after := cl.mustCall("increment_counter", nil)
	if after.Counter != got.Counter+1 {
		t.Errorf("next increment = %d, want %d (the session goes on)", after.Counter, got.Counter+1)
	}
	st := cl.Stats()
	t.Logf("client stats: reconnects=%d resumes=%d replays=%d outcome-unknown=%d", st.Reconnects, st.Resumes, st.Replays, st.OutcomeUnknown)
}

// checkNo404 fails the test if a replica refused a request for an unknown
// session or a balancer logged a 404; with wantAdopted, at least one
// replica must have adopted a session (else the test proved nothing).
func (c *cluster) checkNo404(wantAdopted bool) {
	c.t.Helper()
	adopted := 0
	for _, r := range c.replicas {
		out := r.proc.Output()
		if refusedLine.MatchString(out) {
			c.t.Errorf("%s refused a request for an unknown session:\n%s", r.name, matchingLines(out, refusedLine))
		}
		adopted += len(adoptedLine.FindAllString(out, -1))
	}
	if out := c.haproxy.Output(); status404.MatchString(out) {
		c.t.Errorf("%s logged a 404:\n%s", c.dep.balancer, matchingLines(out, status404))
	}
	if wantAdopted && adopted == 0 {
		c.t.Error("no replica adopted a session: the balancer never moved the session")
	}
	c.t.Logf("sessions adopted by the replicas: %d", adopted)
}

func matchingLines(out string, re *regexp.Regexp) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if re.MatchString(l) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// redisWait polls cond every 20ms until it returns nil or timeout passes
// (bounded polling of another process's state).
func (c *cluster) redisWait(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-c.t.Context().Done():
			return c.t.Context().Err()
		}
	}
}
