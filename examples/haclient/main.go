// Command haclient drives a counter through a highly available MCP
// deployment (examples/ha: HAProxy, haserver replicas, Redis) with a
// resilient.Client, so that you can kill replicas while it runs and watch
// it carry on.
//
//	go run ./examples/haclient -url http://127.0.0.1:8080/mcp -n 60 -every 1s
//
// Every second it calls increment_counter (or slow_increment with -delay)
// and prints the counter and the replica that answered, plus what the
// client does on its own: reconnects, resumes, replays. A call whose
// outcome is unknown (the replica died after receiving it) is not replayed;
// haclient then reads the counter to learn whether it ran. At the end it
// checks that the counter equals the increments that ran (no call ran
// twice), prints the client's statistics, and exits 1 if the check failed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/retry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "haclient:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("haclient", flag.ContinueOnError)
	fs.SetOutput(out)
	url := fs.String("url", "http://127.0.0.1:8080/mcp", "MCP endpoint (the balancer)")
	n := fs.Int("n", 30, "number of increments")
	every := fs.Duration("every", time.Second, "pause between increments")
	delay := fs.Duration("delay", 0, "call slow_increment, which waits this long before incrementing, instead of increment_counter")
	if err := fs.Parse(args); err != nil {
		return err
	}
	say := func(format string, args ...any) {
		fmt.Fprintf(out, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
	}

	connectCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "haclient", Version: "1"}, nil)
	c, err := resilient.Connect(connectCtx, client, resilient.StreamableHTTP(*url, nil), &resilient.Options{
		// Patient enough to ride out a replica's death and HAProxy's
		// health checks (2s apart), quick to try again.
		Retry:   retry.Policy{InitialBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second, MaxElapsed: 20 * time.Second},
		Breaker: resilient.BreakerSettings{OpenTimeout: 5 * time.Second},
		OnEvent: func(ev resilient.Event) { narrate(say, ev) },
	})
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", *url, err)
	}
	defer c.Close()
	say("connected to %s, session %s", *url, c.ID())

	// ran counts the increments known to have run; unsure those that may
	// have. The counter must end between the two: above ran+unsure means
	// some call ran twice.
	ran, unsure := 0, 0
	for i := 0; i < *n && ctx.Err() == nil; i++ {
		params := &mcp.CallToolParams{Name: "increment_counter"}
		if *delay > 0 {
			params = &mcp.CallToolParams{Name: "slow_increment", Arguments: map[string]any{"delay_ms": delay.Milliseconds()}}
		}
		var r counter
		err := call(ctx, c, params, &r)
		switch {
		case err == nil:
			ran++
			say("%s -> counter=%d (served by %s)", params.Name, r.Counter, r.Instance)
		case errors.Is(err, resilient.ErrOutcomeUnknown):
			unsure++
			say("%s -> OUTCOME UNKNOWN, not replayed: %v", params.Name, err)
		case ctx.Err() != nil:
		default:
			// Exhausted retries or an open breaker: never sent, or sent
			// and unanswered; count it as unsure, the counter will tell.
			unsure++
			say("%s -> failed: %v", params.Name, err)
		}
		if err == nil && r.Counter < ran {
			return fmt.Errorf("counter went back to %d after %d increments: the session's state was lost (did Redis restart without persistence?)", r.Counter, ran)
		}
		if err == nil && r.Counter > ran+unsure {
			return fmt.Errorf("counter is %d after %d increments that ran and %d that may have: a call ran twice", r.Counter, ran, unsure)
		}
		if err == nil && r.Counter > ran {
			// Some unsure calls ran after all: the counter says how many.
			unsure -= r.Counter - ran
			ran = r.Counter
		}
		select {
		case <-ctx.Done():
		case <-time.After(*every):
		}
	}

	finalCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var r counter
	if err := call(finalCtx, c, &mcp.CallToolParams{Name: "get_counter"}, &r); err != nil {
		return fmt.Errorf("reading the counter at the end: %w", err)
	}
	s := c.Stats()
	say("stats: %d calls, %d reconnects, %d resumes, %d replays, %d outcome unknown, breaker %s",
		s.Calls, s.Reconnects, s.Resumes, s.Replays, s.OutcomeUnknown, s.Breaker)
	if r.Counter < ran || r.Counter > ran+unsure {
		return fmt.Errorf("counter is %d; %d increments ran and %d may have: state was lost or a call ran twice", r.Counter, ran, unsure)
	}
	say("done: counter=%d; %d increments acknowledged, %d more of unknown outcome of which %d ran; none ran twice", r.Counter, ran, unsure, r.Counter-ran)
	return nil
}

type counter struct {
	Counter  int    `json:"counter"`
	Instance string `json:"instance"`
}

func call(ctx context.Context, c *resilient.Client, params *mcp.CallToolParams, out any) error {
	res, err := c.CallTool(ctx, params)
	if err != nil {
		return err
	}
	if res.IsError {
		return fmt.Errorf("%s: tool error: %v", params.Name, res.Content)
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// narrate prints the client's own actions as they happen.
func narrate(say func(string, ...any), ev resilient.Event) {
	switch ev.Kind {
	case resilient.EventAttemptFailed:
		say("  ! %s attempt %d failed (%s): %v", ev.Method, ev.Attempt, ev.Class, ev.Err)
	case resilient.EventReconnectStarted:
		say("  ~ session %s lost, reconnecting", ev.OldSessionID)
	case resilient.EventReconnected:
		say("  ~ reconnected in %v: session %s", ev.Duration.Round(time.Millisecond), ev.SessionID)
	case resilient.EventReconnectFailed:
		say("  ~ reconnect failed: %v", ev.Err)
	case resilient.EventResumed:
		say("  ~ resume_session(%s): %s, %d keys copied, by %s", ev.OldSessionID, ev.Resume.Status, ev.Resume.KeysCopied, ev.Resume.Instance)
	case resilient.EventResumeSkipped, resilient.EventResumeFailed:
		say("  ~ %s: %v", ev.Kind, ev.Err)
	case resilient.EventReplayed:
		say("  ~ replaying %s %s (%s)", ev.Method, ev.Tool, ev.Class)
	case resilient.EventBreakerStateChanged:
		say("  ~ circuit breaker %s -> %s", ev.From, ev.To)
	}
}
