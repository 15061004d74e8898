package resilient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/examples/demotools"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume/memstore"
	"github.com/mcpkit/resilience/resume/replica"
	"github.com/mcpkit/resilience/retry"
)

// flakyServer is an in-memory MCP server that can be killed and started
// again, for tests under testing/synctest: while it is down, dials fail
// with connection refused; killing it closes every session. Its state
// lives in a store that survives restarts, as a real server's would in
// Redis.
type flakyServer struct {
	mu       sync.Mutex
	up       bool
	gen      int
	store    replica.Store
	sessions []*mcp.ServerSession
	runs     map[string]int
}

func newFlakyServer() *flakyServer {
	return &flakyServer{up: true, gen: 1, store: memstore.New(0), runs: map[string]int{}}
}

func (s *flakyServer) factory() mcp.Transport {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.up {
		return refusedTransport{}
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "flaky", Version: "1"}, nil)
	err := demotools.Register(srv, demotools.Options{Store: s.store, Instance: fmt.Sprintf("gen-%d", s.gen), Ran: func(tool string, _ *mcp.CallToolRequest) {
		s.mu.Lock()
		s.runs[tool]++
		s.mu.Unlock()
	}})
	if err != nil {
		panic(err)
	}
	// slow_read is a read-only tool that takes a second: a read in flight.
	mcp.AddTool(srv, &mcp.Tool{Name: "slow_read", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, struct{}, error) {
			select {
			case <-time.After(time.Second):
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "read"}}}, struct{}{}, nil
			case <-ctx.Done():
				return nil, struct{}{}, ctx.Err()
			}
		})
	ct, st := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(context.Background(), st, nil)
	if err != nil {
		panic(err)
	}
	s.sessions = append(s.sessions, ss)
	return ct
}

// kill stops the server as SIGKILL would: every connection drops.
func (s *flakyServer) kill() {
	s.mu.Lock()
	s.up = false
	sessions := s.sessions
	s.sessions = nil
	s.mu.Unlock()
	for _, ss := range sessions {
		_ = ss.Close()
	}
}

func (s *flakyServer) start() {
	s.mu.Lock()
	s.up, s.gen = true, s.gen+1
	s.mu.Unlock()
}

func (s *flakyServer) ran(tool string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[tool]
}

// refusedTransport is a server that is not listening.
type refusedTransport struct{}

func (refusedTransport) Connect(context.Context) (mcp.Connection, error) {
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
}

type result struct {
	res *mcp.CallToolResult
	err error
	at  time.Time
}

// TestRestartRideThrough proves that the client rides through a restart of
// its only server, with the default Options and a simulated clock: the
// server is killed and back after 2s and after 10s. A read in flight is replayed, a write
// issued while the server is down runs exactly once, and a write in flight
// ends in ErrOutcomeUnknown having run at most once.
func TestRestartRideThrough(t *testing.T) {
	for _, outage := range []time.Duration{2 * time.Second, 10 * time.Second} {
		t.Run(outage.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newFlakyServer()
				ctx := context.Background()
				c, err := resilient.Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil), s.factory, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if r := mustCounter(t, c, "increment_counter"); r.Counter != 1 {
					t.Fatalf("counter = %d, want 1", r.Counter)
				}
				call := func(name string, args map[string]any) chan result {
					ch := make(chan result, 1)
					go func() {
						res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
						ch <- result{res, err, time.Now()}
					}()
					return ch
				}
				read := call("slow_read", nil)
				write := call("slow_increment", map[string]any{"delay_ms": 5000})
				synctest.Wait() // both are running on the server
				s.kill()
				time.Sleep(500 * time.Millisecond)
				issuedWhileDown := call("increment_counter", nil)
				time.Sleep(outage - 500*time.Millisecond)
				s.start()
				back := time.Now()

				if r := <-read; r.err != nil {
					t.Errorf("read in flight: %v, want it replayed", r.err)
				}
				w := <-issuedWhileDown
				if w.err != nil {
					t.Fatalf("write issued while down: %v, want it sent once the server is back", w.err)
				}
				if got := decode[counterResult](t, w.res); got.Counter != 2 {
					t.Errorf("write issued while down: counter = %d, want 2 (it ran once)", got.Counter)
				}
				if n := s.ran("increment_counter"); n != 2 {
					t.Errorf("increment_counter ran %d times, want 2", n)
				}
				if r := <-write; !errors.Is(r.err, resilient.ErrOutcomeUnknown) {
					t.Errorf("write in flight: err = %v, want ErrOutcomeUnknown", r.err)
				}
				if n := s.ran("slow_increment"); n > 1 {
					t.Errorf("slow_increment ran %d times, want at most once", n)
				}
				t.Logf("outage %v: the write issued while down answered %v after the server was back", outage, w.at.Sub(back))
			})
		})
	}
}

// TestFullOutageRecovers: calls made while the breaker is open fail at
// once, dials are bounded by the open periods whatever the number of
// callers, and calls flow again one open period at most after the server
// is back, without waiting out a fixed period.
func TestFullOutageRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFlakyServer()
		ctx := context.Background()
		c, err := resilient.Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil), s.factory, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		mustCounter(t, c, "increment_counter")
		s.kill()
		start := time.Now()
		// 100 callers keep calling for 60s: most fail fast once the
		// breaker is open.
		var wg sync.WaitGroup
		var mu sync.Mutex
		open := 0
		for range 100 {
			wg.Go(func() {
				for time.Since(start) < 60*time.Second {
					_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"})
					mu.Lock()
					if errors.Is(err, resilient.ErrCircuitOpen) {
						open++
					}
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
				}
			})
		}
		wg.Wait()
		dials := c.Stats().Dials
		s.start()
		back := time.Now()
		// The first probe after the server is back closes the breaker.
		for {
			_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"})
			if err == nil {
				break
			}
			if !errors.Is(err, resilient.ErrCircuitOpen) {
				t.Fatalf("after the outage: %v", err)
			}
			if time.Since(back) > time.Minute {
				t.Fatalf("the breaker still open a minute after the server came back: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if d := time.Since(back); d > time.Second {
			t.Errorf("calls flowed again %v after the server was back, want within one open period (at most 960ms) and a poll", d)
		}
		if open == 0 {
			t.Error("no call failed fast with ErrCircuitOpen during 60s of outage")
		}
		// Default settings: about 5s of dials under the policy's backoff
		// (10), then one per open period of 640-960ms: at most 10+55/0.64.
		if dials > 96 {
			t.Errorf("%d dials in 60s of outage with 100 callers, want them bounded by the open periods (<= 96)", dials)
		}
		t.Logf("60s outage, 100 callers: %d dials, %d calls failed fast, recovered %v after the server was back", dials, open, time.Since(back))
	})
}

// TestWaitForReady: a call made while the breaker is open waits for the
// server within its bounds when it asks to.
func TestWaitForReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFlakyServer()
		ctx := context.Background()
		c, err := resilient.Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil), s.factory,
			&resilient.Options{Breaker: resilient.BreakerSettings{ConsecutiveFailures: 1}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		mustCounter(t, c, "increment_counter")
		s.kill()
		// A call notices the dead session and starts the reconnect; its
		// first dial fails and opens the breaker.
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := c.CallTool(short, &mcp.CallToolParams{Name: "get_counter"}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call with a 1s deadline during the outage: err = %v, want DeadlineExceeded", err)
		}
		if _, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"}); !errors.Is(err, resilient.ErrCircuitOpen) {
			t.Fatalf("call while open: err = %v, want ErrCircuitOpen", err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := c.CallTool(retry.WaitForReady(ctx), &mcp.CallToolParams{Name: "get_counter"})
			done <- err
		}()
		time.Sleep(5 * time.Second)
		s.start()
		if err := <-done; err != nil {
			t.Errorf("WaitForReady call: %v, want it answered once the server is back", err)
		}
	})
}

// unauthorized is a server that refuses every handshake.
type unauthorized struct{}

func (unauthorized) Connect(context.Context) (mcp.Connection, error) {
	return nil, errors.New(`calling "initialize": sending "initialize": Unauthorized`)
}

// Connect tries the first connection again while the server says "not
// yet", and returns a refusal at once.
func TestConnectWaitsForServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFlakyServer()
		s.kill()
		go func() {
			time.Sleep(3 * time.Second)
			s.start()
		}()
		start := time.Now()
		c, err := resilient.Connect(context.Background(), mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil), s.factory, nil)
		if err != nil {
			t.Fatalf("Connect to a server starting 3s later: %v", err)
		}
		defer c.Close()
		if d := time.Since(start); d < 3*time.Second {
			t.Errorf("connected after %v, before the server was up", d)
		}
		if s := c.Stats(); s.Dials < 2 {
			t.Errorf("Stats.Dials = %d, want several", s.Dials)
		}

		start = time.Now()
		_, err = resilient.Connect(context.Background(), mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil),
			func() mcp.Transport { return unauthorized{} }, nil)
		if err == nil || !strings.Contains(err.Error(), "Unauthorized") {
			t.Errorf("Connect refused with 401: err = %v, want the refusal", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("a refused Connect took %v, want it to return at once", d)
		}

		s.kill()
		_, err = resilient.Connect(context.Background(), mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil), s.factory,
			&resilient.Options{Retry: retry.Policy{MaxAttempts: 2}})
		var ee *retry.ExhaustedError
		if !errors.As(err, &ee) || ee.Attempts != 2 || ee.Reason != retry.ReasonMaxAttempts {
			t.Errorf("Connect with MaxAttempts 2 to a dead server: err = %v, want ErrExhausted after 2 attempts", err)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = resilient.Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil), s.factory, nil)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("Connect until ctx ends: err = %v, want DeadlineExceeded and the last failure", err)
		}
	})
}
