//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// replayBound is how soon a replay of a call whose replica died must be
// answered: the Dedup lease (replica.DefaultDedupLease, 4s) plus room for
// the balancer and the client's backoff.
const replayBound = 5 * time.Second

// TestDedupReplayAfterReplicaDeath: with Dedup on every replica,
// slow_increment is running on a replica when it is SIGKILLed. The client
// replays the call (Dedup makes that safe); the replica that gets the replay
// finds the dead replica's claim, sees its lease lapse, and answers that the
// outcome is unknown, within the lease rather than after Dedup's 30s Wait.
// The tool ran once, on the dead replica, and never again.
func TestDedupReplayAfterReplicaDeath(t *testing.T) {
	c := startDeployment(t, deployment{balancer: "haproxy", serverArgs: []string{"-dedup"}})
	cl := c.connect()
	cl.mustCall("increment_counter", nil)

	type answer struct {
		err error
		at  time.Time
	}
	answered := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		// Long enough that the replica dies before it increments.
		_, err := cl.call(ctx, "slow_increment", map[string]any{"delay_ms": 20000})
		answered <- answer{err, time.Now()}
	}()
	var running *replica
	err := c.redisWait(10*time.Second, func() error {
		for _, r := range c.replicas {
			if toolStarts(r.proc.Output(), "slow_increment") > 0 {
				running = r
				return nil
			}
		}
		return errors.New("no replica has started slow_increment")
	})
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	c.kill(running, "slow_increment is running on it, under Dedup")

	var a answer
	select {
	case a = <-answered:
	case <-time.After(45 * time.Second):
		t.Fatal("the call was not answered 45s after the kill")
	}
	took := a.at.Sub(killed)
	switch {
	case errors.Is(a.err, resilient.ErrOutcomeUnknown) && hasRPCCode(a.err, resume.CodeOutcomeUnknown):
		t.Logf("the replay was answered outcome unknown: %v", a.err)
	case a.err == nil:
		t.Errorf("the call succeeded, but the replica that ran it died before it incremented: it ran twice")
	default:
		t.Errorf("call error = %v, want ErrOutcomeUnknown carrying the server's JSON-RPC %d", a.err, resume.CodeOutcomeUnknown)
	}
	if took > replayBound {
		t.Errorf("answered %v after the kill, want within %v (the Dedup lease, not its 30s Wait)", took, replayBound)
	}
	// The client counts the re-send as a retry or a replay, depending on
	// what it knew of the first attempt.
	if st := cl.Stats(); st.Retries+st.Replays == 0 {
		t.Errorf("client stats %+v: the call was not sent again, so no replica answered for the dead one's claim", st)
	}
	starts := 0
	for _, r := range c.replicas {
		starts += toolStarts(r.proc.Output(), "slow_increment")
	}
	if starts != 1 {
		t.Errorf("slow_increment started %d times across the replicas, want 1", starts)
	}
	if got := cl.mustCall("get_counter", nil); got.Counter != 1 {
		t.Errorf("counter = %d, want 1: slow_increment died before incrementing and must not have run again", got.Counter)
	}
	fmt.Printf("FIGURE dedup replay after replica death: answered %v after SIGKILL (outcome unknown), tool runs %d\n", took.Round(time.Millisecond), starts)
}

// hasRPCCode reports whether any JSON-RPC error in err's tree has code.
func hasRPCCode(err error, code int64) bool {
	if err == nil {
		return false
	}
	if we, ok := err.(*jsonrpc.Error); ok && we.Code == code {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return hasRPCCode(u.Unwrap(), code)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if hasRPCCode(e, code) {
				return true
			}
		}
	}
	return false
}
