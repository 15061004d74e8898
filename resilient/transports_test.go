package resilient_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/examples/demotools"
	"github.com/mcpkit/resilience/internal/testserver"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume/memstore"
)

// serverKind is one kind of server the client must work with: how to
// start it, connect to it, and kill the server the session is on.
type serverKind struct {
	name string
	// start returns the transport factory and a function that kills the
	// server the client's session is on (it comes back by itself, or
	// another serves).
	start func(t *testing.T) (resilient.TransportFactory, func(c *resilient.Client))
}

func clusterKind(name string, opts testserver.Options) serverKind {
	k := serverKind{name: name}
	k.start = func(t *testing.T) (resilient.TransportFactory, func(*resilient.Client)) {
		cl := startCluster(t, &opts)
		return resilient.StreamableHTTP(cl.URL(), nil), func(c *resilient.Client) {
			if i, ok := cl.BackendFor(c.ID()); ok {
				cl.Kill(i)
				return
			}
			// Stateless: no stickiness; kill every backend but one.
			for i := 1; i < cl.Backends(); i++ {
				cl.Kill(i)
			}
		}
	}
	return k
}

// stdioKind runs the test binary itself as a stdio server; killing it
// kills the child process, and the client starts a new one.
func stdioKind() serverKind {
	return serverKind{name: "stdio", start: func(t *testing.T) (resilient.TransportFactory, func(*resilient.Client)) {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var cmds []*exec.Cmd
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			for _, cmd := range cmds {
				if cmd.ProcessState == nil && cmd.Process != nil {
					t.Errorf("stdio server %d was not reaped by Close", cmd.Process.Pid)
				}
			}
		})
		factory := resilient.Command(func() *exec.Cmd {
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), stdioServerEnv+"=1")
			mu.Lock()
			cmds = append(cmds, cmd)
			mu.Unlock()
			return cmd
		})
		kill := func(*resilient.Client) {
			mu.Lock()
			cmd := cmds[len(cmds)-1]
			mu.Unlock()
			if err := cmd.Process.Kill(); err != nil {
				t.Fatalf("kill stdio server: %v", err)
			}
		}
		return factory, kill
	}}
}

// sseKind serves the 2024-11-05 HTTP+SSE protocol; killing it restarts the
// server on the same address, which drops every stream.
func sseKind() serverKind {
	return serverKind{name: "sse", start: func(t *testing.T) (resilient.TransportFactory, func(*resilient.Client)) {
		s := mcp.NewServer(&mcp.Implementation{Name: "sse-test", Version: "1"}, nil)
		if err := demotools.Register(s, demotools.Options{Store: memstore.New(0), Instance: "sse"}); err != nil {
			t.Fatal(err)
		}
		handler := mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return s }, nil)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		var mu sync.Mutex
		srv := &http.Server{Handler: handler}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			_ = srv.Close()
		})
		kill := func(*resilient.Client) {
			mu.Lock()
			defer mu.Unlock()
			_ = srv.Close()
			var ln net.Listener
			for range 100 {
				if ln, err = net.Listen("tcp", addr); err == nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("relisten on %s: %v", addr, err)
			}
			srv = &http.Server{Handler: handler}
			go func() { _ = srv.Serve(ln) }()
		}
		return resilient.SSE("http://"+addr, nil), kill
	}}
}

// TestServerKinds runs the core scenarios against every kind of server:
// a call works; after the server dies, the next call works on a new
// connection; a write whose answer is lost is not replayed.
func TestServerKinds(t *testing.T) {
	kinds := []serverKind{
		clusterKind("stateful streamable HTTP", testserver.Options{}),
		clusterKind("stateless streamable HTTP", testserver.Options{Stateless: true}),
		clusterKind("JSON response", testserver.Options{JSONResponse: true}),
		stdioKind(),
		sseKind(),
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			factory, kill := k.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			client := mcp.NewClient(&mcp.Implementation{Name: "kinds", Version: "1"}, nil)
			c, err := resilient.Connect(ctx, client, factory, &resilient.Options{Retry: fastPolicy})
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer c.Close()

			if _, err := callCounter(ctx, t, c, "increment_counter"); err != nil {
				t.Fatalf("increment: %v", err)
			}
			kill(c)
			// The SDK notices a dead stdio or SSE peer asynchronously.
			if r, err := callCounter(ctx, t, c, "get_counter"); err != nil {
				t.Fatalf("get_counter after the server died: %v", err)
			} else if c.ID() != "" && r.Counter != 1 {
				t.Errorf("counter after failover = %d, want 1 (resumed)", r.Counter)
			}
			if _, err := callCounter(ctx, t, c, "increment_counter"); err != nil {
				t.Errorf("increment after failover: %v", err)
			}
		})
	}
}

// A stateless server has no session to resume; the client still retries,
// and notices a dead server by the call's own error.
func TestStatelessNoResume(t *testing.T) {
	cl := startCluster(t, &testserver.Options{Stateless: true})
	c, _ := connect(t, cl, nil)
	if c.ID() != "" {
		t.Fatalf("ID() = %q on a stateless server, want empty", c.ID())
	}
	if v := c.InitializeResult().ProtocolVersion; v != "2026-07-28" {
		t.Errorf("negotiated %q, want 2026-07-28", v)
	}
	mustCounter(t, c, "get_counter")
	cl.Inject(testserver.Fault{Kind: testserver.DropAfterTool, Method: "tools/call", Tool: "get_counter"})
	mustCounter(t, c, "get_counter")
	if n := c.Stats().Resumes; n != 0 {
		t.Errorf("%d resumes against a stateless server, want 0", n)
	}
	if s := c.Stats(); s.Replays != 1 {
		t.Errorf("Stats = %+v, want the lost read replayed once", s)
	}
}

// The protocol version negotiated first is pinned: reconnects to a legacy
// server do not probe it with server/discover again.
func TestProtocolVersionPinned(t *testing.T) {
	cl := startCluster(t, nil)
	c, _ := connect(t, cl, nil)
	mustCounter(t, c, "increment_counter")
	discovers, connects := cl.Discovers(), cl.Connects()
	for range 3 {
		i, _ := cl.BackendFor(c.ID())
		cl.Kill(i)
		mustCounter(t, c, "get_counter")
		if err := cl.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	if got := cl.Discovers() - discovers; got != 0 {
		t.Errorf("%d server/discover probes during 3 reconnects, want 0", got)
	}
	if got := cl.Connects() - connects; got != 3 {
		t.Errorf("%d initialize requests during 3 reconnects, want 3", got)
	}
	if v := c.InitializeResult().ProtocolVersion; v != "2025-11-25" {
		t.Errorf("protocol after reconnects = %q, want the pinned 2025-11-25", v)
	}
}

// Close with a call stuck on a server that never answers returns at once:
// the call gets ErrClosed.
func TestCloseWithHungCall(t *testing.T) {
	cl := startCluster(t, nil)
	c, _ := connect(t, cl, nil)
	mustCounter(t, c, "get_counter")
	cl.Inject(testserver.Fault{Kind: testserver.Latency, Method: "tools/call", Delay: time.Minute})
	before := cl.Requests()
	errc := make(chan error, 1)
	go func() {
		_, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: "get_counter"})
		errc <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); cl.Requests() == before; {
		if time.Now().After(deadline) {
			t.Fatal("the call reached no server within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return with a call stuck on the server")
	}
	if err := <-errc; !errors.Is(err, resilient.ErrClosed) {
		t.Errorf("stuck call: err = %v, want ErrClosed", err)
	}
}
