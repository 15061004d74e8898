//go:build interop

package interop

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
)

// everything is @modelcontextprotocol/server-everything over one
// transport: how to connect (raw and resilient) and how to kill the server
// the client is on.
type everything struct {
	transport string
	// factory makes the resilient client's transports; raw the raw
	// session's transport.
	factory func() resilient.TransportFactory
	raw     func() mcp.Transport
	// restart kills the server the client is on and brings one back,
	// returning when it was ready.
	restart func() time.Time
	hasID   bool
}

// stdioProcs starts server-everything over stdio, remembering every process
// so that the test can kill the one in use and stop all of them at the end.
type stdioProcs struct {
	node string
	mu   sync.Mutex
	cmds []*exec.Cmd
}

func (p *stdioProcs) newCmd() *exec.Cmd {
	cmd := exec.Command(p.node, everythingPath(), "stdio")
	p.mu.Lock()
	p.cmds = append(p.cmds, cmd)
	p.mu.Unlock()
	return cmd
}

// killLatest SIGKILLs the newest process (the one the client is on).
func (p *stdioProcs) killLatest(t *testing.T) {
	p.mu.Lock()
	cmd := p.cmds[len(p.cmds)-1]
	p.mu.Unlock()
	if cmd.Process == nil {
		t.Fatal("the stdio server was never started")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("killing the stdio server (pid %d): %v", cmd.Process.Pid, err)
	}
}

// stopAll kills every process still running, by PID; the SDK reaps them.
func (p *stdioProcs) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cmd := range p.cmds {
		if cmd.Process != nil && cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}
}

func everythingKinds(t *testing.T, e *env) []everything {
	node := nodePath(t)
	procs := &stdioProcs{node: node}
	t.Cleanup(procs.stopAll)
	stdio := everything{
		transport: "stdio",
		factory: func() resilient.TransportFactory {
			return resilient.CommandTransport(procs.newCmd, 500*time.Millisecond)
		},
		raw: func() mcp.Transport {
			return &mcp.CommandTransport{Command: procs.newCmd(), TerminateDuration: 500 * time.Millisecond}
		},
		restart: func() time.Time { procs.killLatest(t); return time.Now() },
	}
	var kinds []everything
	kinds = append(kinds, stdio)
	for _, tr := range []string{"sse", "streamableHttp"} {
		s := everythingServer(t, tr)
		k := everything{transport: tr, restart: s.restart, hasID: tr == "streamableHttp"}
		if tr == "sse" {
			k.transport = "sse"
			k.factory = func() resilient.TransportFactory { return resilient.SSE(s.url(), e.hc) }
			k.raw = func() mcp.Transport { return &mcp.SSEClientTransport{Endpoint: s.url(), HTTPClient: e.hc} }
		} else {
			k.transport = "streamable"
			k.factory = func() resilient.TransportFactory { return resilient.StreamableHTTP(s.url(), e.hc) }
			k.raw = func() mcp.Transport { return &mcp.StreamableClientTransport{Endpoint: s.url(), HTTPClient: e.hc} }
		}
		kinds = append(kinds, k)
	}
	return kinds
}

func connectEverything(t *testing.T, k everything, ev *events) *resilient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := resilient.Connect(ctx, newMCPClient(), k.factory(), &resilient.Options{OnEvent: ev.add})
	if err != nil {
		t.Fatalf("resilient.Connect to server-everything over %s: %v", k.transport, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestEverything runs server-everything over stdio, SSE and streamable HTTP:
// the resilient client answers as a raw session does, and a server killed
// (and, over HTTP, restarted) between two calls does not fail the second.
func TestEverything(t *testing.T) {
	e := newEnv(t)
	for _, k := range everythingKinds(t, e) {
		t.Run(k.transport+"/identical", func(t *testing.T) {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			raw, err := newMCPClient().Connect(ctx, k.raw(), nil)
			if err != nil {
				t.Fatalf("raw Connect: %v", err)
			}
			defer raw.Close()
			c := connectEverything(t, k, &events{})
			rawTools, err := raw.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			tools, err := c.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(asJSON(t, rawTools), asJSON(t, tools)); diff != "" {
				t.Errorf("ListTools differs (-raw +resilient):\n%s", diff)
			}
			for _, p := range []*mcp.CallToolParams{
				{Name: "echo", Arguments: map[string]any{"message": "hi"}},
				{Name: "get-sum", Arguments: map[string]any{"a": 2, "b": 3}},
				{Name: "get-sum", Arguments: map[string]any{"a": "two"}},
				{Name: "no-such-tool", Arguments: map[string]any{}},
			} {
				want, wantErr := raw.CallTool(ctx, p)
				got, gotErr := c.CallTool(ctx, p)
				if fmt.Sprint(wantErr) != fmt.Sprint(gotErr) {
					t.Errorf("%s: error %v, raw session's %v", p.Name, gotErr, wantErr)
				}
				if diff := cmp.Diff(asJSON(t, want), asJSON(t, got)); diff != "" {
					t.Errorf("%s: result differs (-raw +resilient):\n%s", p.Name, diff)
				}
			}
			report(t, "server-everything", k.transport, "identical", start, "")
		})

		t.Run(k.transport+"/restart-between-calls", func(t *testing.T) {
			start := time.Now()
			ev := &events{}
			c := connectEverything(t, k, ev)
			if _, err := call(c, "echo", map[string]any{"message": "before"}, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			ready := k.restart()
			res, err := call(c, "echo", map[string]any{"message": "after"}, 30*time.Second)
			recovered := time.Since(ready)
			if err != nil || res.IsError {
				t.Fatalf("echo after the server was killed = %v, %v\nevents:\n  %s", res, err, ev)
			}
			if got := textOf(res); got != "Echo: after" {
				t.Errorf("echo = %q, want %q", got, "Echo: after")
			}
			st := c.Stats()
			if st.ResumeFailures != 0 {
				t.Errorf("Stats.ResumeFailures = %d, want 0 (server-everything has no resume_session: skipped)\nevents:\n  %s", st.ResumeFailures, ev)
			}
			if k.hasID && st.ResumesSkipped != 1 {
				t.Errorf("Stats.ResumesSkipped = %d, want 1\nevents:\n  %s", st.ResumesSkipped, ev)
			}
			report(t, "server-everything", k.transport, "restart-between-calls", start, fmt.Sprintf("recovered %v after the server was ready", recovered.Round(time.Millisecond)))
		})
	}
}

// TestStdioCloseIsQuick: server-everything does not exit when its stdin
// closes, so with the SDK's default TerminateDuration every Close waits 5 s;
// CommandTransport's terminate duration bounds it.
func TestStdioCloseIsQuick(t *testing.T) {
	node := nodePath(t)
	procs := &stdioProcs{node: node}
	t.Cleanup(procs.stopAll)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := resilient.Connect(ctx, newMCPClient(), resilient.CommandTransport(procs.newCmd, 300*time.Millisecond), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call(c, "echo", map[string]any{"message": "x"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	c.Close()
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("Close took %v with a 300ms terminate duration, want well under the SDK's default 5s", took)
	}
	report(t, "server-everything", "stdio", "close-with-terminate-duration", start, fmt.Sprintf("Close took %v", time.Since(t0).Round(time.Millisecond)))
}
