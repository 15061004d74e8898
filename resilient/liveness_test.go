package resilient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/internal/faultproxy"
	"github.com/mcpkit/resilience/resilient"
)

// waitServer is a go-sdk server whose tools wait (silently: no progress,
// no bytes) for a number of milliseconds, or until released. It counts
// the probes it answers and the runs of each tool.
type waitServer struct {
	server  *mcp.Server
	probes  atomic.Int64
	runs    sync.Map // tool name -> *atomic.Int64
	started chan string
	release chan struct{}
}

type waitInput struct {
	MS int `json:"ms"`
}

func newWaitServer() *waitServer { return newWaitServerOpts(nil) }

func newWaitServerOpts(opts *mcp.ServerOptions) *waitServer {
	ws := &waitServer{started: make(chan string, 64), release: make(chan struct{})}
	s := mcp.NewServer(&mcp.Implementation{Name: "wait", Version: "1"}, opts)
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			// The probes: ping, or tools/list on 2026-07-28 sessions (the
			// tests never list tools themselves).
			if method == "ping" || method == "tools/list" {
				ws.probes.Add(1)
			}
			return next(ctx, method, req)
		}
	})
	handler := func(name string) mcp.ToolHandlerFor[waitInput, any] {
		return func(ctx context.Context, _ *mcp.CallToolRequest, in waitInput) (*mcp.CallToolResult, any, error) {
			ws.counter(name).Add(1)
			select {
			case ws.started <- name:
			default: // nobody is watching starts (a benchmark's replays)
			}
			select {
			case <-time.After(time.Duration(in.MS) * time.Millisecond):
			case <-ws.release:
			case <-ctx.Done():
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil, nil
		}
	}
	mcp.AddTool(s, &mcp.Tool{Name: "read_wait", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, handler("read_wait"))
	mcp.AddTool(s, &mcp.Tool{Name: "write_wait"}, handler("write_wait"))
	ws.server = s
	return ws
}

// releaseUntil releases waiting tool runs until the call behind errc
// returns, and returns its error: which run takes a release is not
// known (a replay, or a first run its client gave up on).
func releaseUntil(ws *waitServer, errc <-chan error) error {
	for {
		select {
		case err := <-errc:
			return err
		case ws.release <- struct{}{}:
		}
	}
}

func (ws *waitServer) counter(name string) *atomic.Int64 {
	v, _ := ws.runs.LoadOrStore(name, new(atomic.Int64))
	return v.(*atomic.Int64)
}

func (ws *waitServer) waitStarted(t *testing.T, name string) {
	t.Helper()
	select {
	case got := <-ws.started:
		if got != name {
			t.Fatalf("tool started: got %q, want %q", got, name)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("tool %q never started", name)
	}
}

// proxied starts ws over real loopback HTTP (streamable, 2025-11-25
// sessions) behind a fault proxy.
func proxied(t testing.TB, ws *waitServer) *faultproxy.Proxy {
	return proxiedKind(t, ws, "streamable")
}

// proxiedKind is proxied with the kind of server: "streamable" (2025-11-25
// sessions), "stateless" (2026-07-28, no session, no ping) or "sse"
// (2024-11-05 HTTP+SSE).
func proxiedKind(t testing.TB, ws *waitServer, kind string) *faultproxy.Proxy {
	t.Helper()
	var h http.Handler
	switch kind {
	case "streamable":
		h = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return ws.server }, nil)
	case "stateless":
		h = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return ws.server }, &mcp.StreamableHTTPOptions{Stateless: true})
	case "sse":
		h = mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return ws.server }, nil)
	}
	srv := httptest.NewServer(h)
	p, err := faultproxy.Start(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Heal()
		close(ws.release)
		p.Close()
		// Sessions whose client was replaced behind a dead route never got
		// their DELETE.
		for ss := range ws.server.Sessions() {
			_ = ss.Close()
		}
		srv.Close()
	})
	return p
}

func callWait(ctx context.Context, c resilient.Session, tool string, ms int) (*mcp.CallToolResult, error) {
	return c.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"ms": ms}})
}

// cutEvents records the failed attempts that liveness cut.
type cutEvents struct{ ch chan resilient.Event }

func newCutEvents() *cutEvents { return &cutEvents{ch: make(chan resilient.Event, 16)} }

func (e *cutEvents) on(ev resilient.Event) {
	if ev.Kind == resilient.EventAttemptFailed && errors.Is(ev.Err, resilient.ErrRouteDead) {
		e.ch <- ev
	}
}

// A tool that stays silent far longer than Idle on a healthy route is never
// cut: each probe is answered and re-arms the wait.
func TestLivenessSlowToolNotCut(t *testing.T) {
	ws := newWaitServer()
	p := proxied(t, ws)
	c, err := resilient.Connect(context.Background(), newClient(), resilient.StreamableHTTP("http://"+p.Addr(), nil),
		&resilient.Options{Liveness: resilient.LivenessSettings{Idle: 100 * time.Millisecond, ProbeTimeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := callWait(context.Background(), c, "write_wait", 1500); err != nil {
		t.Fatalf("slow silent tool: got %v, want success", err)
	}
	if got := ws.counter("write_wait").Load(); got != 1 {
		t.Errorf("runs of write_wait: got %d, want 1", got)
	}
	if got := c.Stats().LivenessCuts; got != 0 {
		t.Errorf("Stats().LivenessCuts: got %d, want 0", got)
	}
	// The probes ran (this is what kept the call alive), at most one per
	// Idle.
	if got := ws.probes.Load(); got < 3 || got > 16 {
		t.Errorf("probes during a 1.5s silent call with Idle 100ms: got %d, want 3..16", got)
	}
}

// A write in flight when the route goes dead ends with ErrOutcomeUnknown
// wrapping ErrRouteDead, not with the caller's deadline, and is not run
// twice.
func TestLivenessBlackHoleCutsWrite(t *testing.T) {
	ws := newWaitServer()
	p := proxied(t, ws)
	cuts := newCutEvents()
	c, err := resilient.Connect(context.Background(), newClient(), resilient.StreamableHTTP("http://"+p.Addr(), nil),
		&resilient.Options{OnEvent: cuts.on, Liveness: resilient.LivenessSettings{Idle: 200 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := callWait(ctx, c, "write_wait", 60_000)
		errc <- err
	}()
	ws.waitStarted(t, "write_wait")
	p.BlackHole()
	select {
	case <-cuts.ch:
	case err := <-errc:
		t.Fatalf("call ended before liveness cut it: %v", err)
	}
	// The reconnect that follows the cut needs the route back.
	p.Heal()
	err = <-errc
	if !errors.Is(err, resilient.ErrOutcomeUnknown) || !errors.Is(err, resilient.ErrRouteDead) {
		t.Fatalf("got %v, want ErrOutcomeUnknown wrapping ErrRouteDead", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v: the caller's deadline, want the cut", err)
	}
	if got := ws.counter("write_wait").Load(); got != 1 {
		t.Errorf("runs of write_wait: got %d, want 1", got)
	}
}

// A read in flight when the route goes dead is cut and replayed: it is
// answered once the route heals, well before the caller's deadline.
func TestLivenessBlackHoleReplaysRead(t *testing.T) {
	ws := newWaitServer()
	p := proxied(t, ws)
	cuts := newCutEvents()
	c, err := resilient.Connect(context.Background(), newClient(), resilient.StreamableHTTP("http://"+p.Addr(), nil),
		&resilient.Options{OnEvent: cuts.on, Liveness: resilient.LivenessSettings{Idle: 200 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := callWait(ctx, c, "read_wait", 60_000)
		errc <- err
	}()
	ws.waitStarted(t, "read_wait")
	p.BlackHole()
	select {
	case <-cuts.ch:
	case err := <-errc:
		t.Fatalf("call ended before liveness cut it: %v", err)
	}
	p.Heal()
	if err := releaseUntil(ws, errc); err != nil {
		t.Fatalf("read cut by liveness: got %v, want it replayed and answered", err)
	}
	if got := c.Stats().Replays; got < 1 {
		t.Errorf("Stats().Replays: got %d, want at least 1", got)
	}
}

// With liveness disabled, nothing cuts an attempt on a dead route: only
// the caller's deadline ends it. This is what the tests above rely on
// liveness for.
func TestLivenessDisabled(t *testing.T) {
	ws := newWaitServer()
	p := proxied(t, ws)
	c, err := resilient.Connect(context.Background(), newClient(), resilient.StreamableHTTP("http://"+p.Addr(), nil),
		&resilient.Options{Liveness: resilient.LivenessSettings{Idle: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := callWait(ctx, c, "write_wait", 60_000)
		errc <- err
	}()
	ws.waitStarted(t, "write_wait")
	p.BlackHole()
	err = <-errc
	p.Heal()
	if errors.Is(err, resilient.ErrRouteDead) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the caller's deadline", err)
	}
	if got := ws.probes.Load(); got != 0 {
		t.Errorf("probes with liveness disabled: got %d, want 0", got)
	}
}

func TestLivenessRejectsBadSettings(t *testing.T) {
	for _, tc := range []struct {
		s    resilient.LivenessSettings
		want string
	}{
		{resilient.LivenessSettings{ProbeTimeout: -time.Second}, "Options.Liveness.ProbeTimeout"},
		{resilient.LivenessSettings{Idle: time.Millisecond}, "Options.Liveness.Idle"},
	} {
		_, err := resilient.Connect(context.Background(), newClient(), func() mcp.Transport { return nil },
			&resilient.Options{Liveness: tc.s})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error naming %s", tc.s, err, tc.want)
		}
	}
}

// gate holds back every message read while shut: a wedged peer, or a
// black hole, on a transport the client cannot watch.
type gate struct {
	mu   sync.Mutex
	open chan struct{}
}

func newGate() *gate {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gate) shut() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *gate) reopen() {
	g.mu.Lock()
	close(g.open)
	g.mu.Unlock()
}

func (g *gate) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

type gatedTransport struct {
	mcp.Transport
	g *gate
}

func (t *gatedTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	conn, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &gatedConn{Connection: conn, g: t.g}, nil
}

type gatedConn struct {
	mcp.Connection
	g *gate
}

func (c *gatedConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	msg, err := c.Connection.Read(ctx)
	if err != nil {
		return nil, err
	}
	select {
	case <-c.g.wait():
		return msg, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// inMemoryGated returns a factory of in-memory transports to ws whose
// incoming messages pass through g, and closes the server sessions at
// cleanup.
func inMemoryGated(t *testing.T, ws *waitServer, g *gate) resilient.TransportFactory {
	var mu sync.Mutex
	var sessions []*mcp.ServerSession
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, ss := range sessions {
			_ = ss.Close()
		}
	})
	return func() mcp.Transport {
		ct, st := mcp.NewInMemoryTransports()
		ss, err := ws.server.Connect(context.Background(), st, nil)
		if err != nil {
			t.Error(err)
			return nil
		}
		mu.Lock()
		sessions = append(sessions, ss)
		mu.Unlock()
		return &gatedTransport{Transport: ct, g: g}
	}
}

// On a transport the client cannot watch (in memory here, stdio alike),
// a wedged peer is found by the probe: the silent attempt is cut within
// the documented bound, Idle*6/5 + ProbeTimeout, and a silent call on a
// live peer is never cut, with at most one probe per Idle.
func TestLivenessInMemory(t *testing.T) {
	t.Run("wedged", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ws := newWaitServer()
			g := newGate()
			cuts := newCutEvents()
			c, err := resilient.Connect(context.Background(), newClient(), inMemoryGated(t, ws, g), &resilient.Options{OnEvent: cuts.on})
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				_, err := callWait(context.Background(), c, "write_wait", 3_600_000)
				errc <- err
			}()
			<-ws.started
			start := time.Now()
			g.shut()
			<-cuts.ch
			if took, bound := time.Since(start), 5*time.Second*6/5+2*time.Second; took > bound {
				t.Errorf("cut after %v, want within %v", took, bound)
			}
			g.reopen()
			err = <-errc
			if !errors.Is(err, resilient.ErrOutcomeUnknown) || !errors.Is(err, resilient.ErrRouteDead) {
				t.Errorf("got %v, want ErrOutcomeUnknown wrapping ErrRouteDead", err)
			}
			if err := c.Close(); err != nil {
				t.Error(err)
			}
			close(ws.release)
		})
	})
	t.Run("policing", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ws := newWaitServer()
			c, err := resilient.Connect(context.Background(), newClient(), inMemoryGated(t, ws, newGate()), nil)
			if err != nil {
				t.Fatal(err)
			}
			// Ten calls silent for 60s on one session: the probes are
			// the session's, not the calls', at most one per Idle.
			var wg sync.WaitGroup
			for range 10 {
				wg.Go(func() {
					if _, err := callWait(context.Background(), c, "write_wait", 60_000); err != nil {
						t.Errorf("60s silent tool: got %v, want success", err)
					}
				})
			}
			wg.Wait()
			if got := ws.probes.Load(); got < 5 || got > 12 {
				t.Errorf("probes during ten concurrent 60s silent calls: got %d, want 5..12", got)
			}
			if err := c.Close(); err != nil {
				t.Error(err)
			}
			close(ws.release)
		})
	})
	t.Run("slow", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ws := newWaitServer()
			c, err := resilient.Connect(context.Background(), newClient(), inMemoryGated(t, ws, newGate()), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := callWait(context.Background(), c, "write_wait", 60_000); err != nil {
				t.Fatalf("60s silent tool: got %v, want success", err)
			}
			// One probe per Idle (5s) at most, over 60s.
			if got := ws.probes.Load(); got < 5 || got > 12 {
				t.Errorf("probes during a 60s silent call: got %d, want 5..12", got)
			}
			if err := c.Close(); err != nil {
				t.Error(err)
			}
			close(ws.release)
		})
	})
}

// factoryFor returns the client transport factory for a server kind of
// proxiedKind.
func factoryFor(kind, url string) resilient.TransportFactory {
	if kind == "sse" {
		return resilient.SSE(url, nil)
	}
	return resilient.StreamableHTTP(url, nil)
}

// Liveness on every HTTP kind of session: 2025-11-25 (probed with ping),
// 2026-07-28 (no ping: probed with tools/list) and 2024-11-05 SSE (whose
// answers come on the session's event stream): a silent call on a healthy
// route is not cut, and a write on a black-holed one is.
func TestLivenessSessionKinds(t *testing.T) {
	for _, kind := range []string{"streamable", "stateless", "stateless-cached", "sse"} {
		t.Run(kind, func(t *testing.T) {
			ws := newWaitServer()
			minProbes := int64(2)
			if kind == "stateless-cached" {
				// Lists cached by the client for an hour: a tools/list
				// probe is answered from the SDK's cache.
				ws = newWaitServerOpts(&mcp.ServerOptions{SetCacheable: func(_ context.Context, _ mcp.Request, c *mcp.Cacheable) {
					c.TTLMs = 3_600_000
				}})
				kind = "stateless"
				// The pings that follow cached answers are refused by the
				// server before its middleware sees them.
				minProbes = 1
			}
			p := proxiedKind(t, ws, kind)
			cuts := newCutEvents()
			c, err := resilient.Connect(context.Background(), newClient(), factoryFor(kind, "http://"+p.Addr()),
				&resilient.Options{OnEvent: cuts.on, Liveness: resilient.LivenessSettings{Idle: 100 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			t.Logf("protocol version %s", c.InitializeResult().ProtocolVersion)
			if _, err := callWait(context.Background(), c, "write_wait", 1000); err != nil {
				t.Fatalf("slow silent tool: got %v, want success", err)
			}
			if got := ws.probes.Load(); got < minProbes {
				t.Errorf("probes during a 1s silent call with Idle 100ms: got %d, want at least %d", got, minProbes)
			}
			<-ws.started
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				_, err := callWait(ctx, c, "write_wait", 60_000)
				errc <- err
			}()
			ws.waitStarted(t, "write_wait")
			p.BlackHole()
			select {
			case <-cuts.ch:
			case err := <-errc:
				t.Fatalf("call ended before liveness cut it: %v", err)
			}
			p.Heal()
			if err := <-errc; !errors.Is(err, resilient.ErrOutcomeUnknown) || !errors.Is(err, resilient.ErrRouteDead) {
				t.Fatalf("got %v, want ErrOutcomeUnknown wrapping ErrRouteDead", err)
			}
		})
	}
}

// Connections that went half-open (black-holed, while new ones go
// through: a NAT or balancer that forgot them) are dropped from the pool
// when the route is found dead, so that the reconnect dials afresh instead
// of waiting out ConnectTimeout on a pooled dead connection.
func TestLivenessHalfOpenPool(t *testing.T) {
	ws := newWaitServer()
	p := proxied(t, ws)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16 // the default keeps 2, all of them busy by the time of the reconnect
	defer tr.CloseIdleConnections()
	cuts := newCutEvents()
	c, err := resilient.Connect(context.Background(), newClient(), resilient.StreamableHTTP("http://"+p.Addr(), &http.Client{Transport: tr}),
		&resilient.Options{OnEvent: cuts.on, ConnectTimeout: 2 * time.Second,
			Liveness: resilient.LivenessSettings{Idle: 200 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Fill the pool with idle connections.
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if _, err := callWait(context.Background(), c, "read_wait", 50); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for len(ws.started) > 0 {
		<-ws.started
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := callWait(ctx, c, "write_wait", 60_000)
		errc <- err
	}()
	ws.waitStarted(t, "write_wait")
	dials := c.Stats().Dials
	p.BlackHoleExisting()
	err = <-errc
	if !errors.Is(err, resilient.ErrOutcomeUnknown) || !errors.Is(err, resilient.ErrRouteDead) {
		t.Fatalf("got %v, want ErrOutcomeUnknown wrapping ErrRouteDead", err)
	}
	if got := c.Stats().Dials - dials; got != 1 {
		t.Errorf("dials to replace the session: got %d, want 1 (a new connection, not a pooled dead one)", got)
	}
}

// A stdio server that is alive but wedged (SIGSTOP: its pipes stay open,
// so no EOF ever comes) is found by the probe: a read made meanwhile is
// cut, the process replaced, and the read answered by the new one.
func TestLivenessStdioWedged(t *testing.T) {
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
			if cmd.Process != nil {
				_ = cmd.Process.Kill()
			}
		}
	})
	factory := resilient.CommandTransport(func() *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), stdioServerEnv+"=1")
		mu.Lock()
		cmds = append(cmds, cmd)
		mu.Unlock()
		return cmd
	}, 500*time.Millisecond)
	cuts := newCutEvents()
	c, err := resilient.Connect(context.Background(), newClient(), factory,
		&resilient.Options{OnEvent: cuts.on, Liveness: resilient.LivenessSettings{Idle: 200 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustCounter(t, c, "get_counter")
	mu.Lock()
	first := cmds[0]
	mu.Unlock()
	if err := first.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := callCounter(ctx, t, c, "get_counter"); err != nil {
		t.Fatalf("read on a wedged stdio server: got %v, want it replayed on a new process", err)
	}
	select {
	case <-cuts.ch:
	default:
		t.Error("the read was answered without a liveness cut")
	}
	if got := c.Stats().Reconnects; got != 1 {
		t.Errorf("Stats().Reconnects: got %d, want 1 (a new process)", got)
	}
	if got := c.Stats().LivenessCuts; got != 1 {
		t.Errorf("Stats().LivenessCuts: got %d, want 1", got)
	}
}
