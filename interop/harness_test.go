//go:build interop

package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/mcpkit/resilience/internal/proctest"
	"github.com/mcpkit/resilience/resilient"
)

// bins holds the Go programs TestMain builds once: the mcp-go server and
// the mcpcall CLI.
var bins struct{ mcpgo, mcpcall string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "interop-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		os.Exit(1)
	}
	bins.mcpgo = filepath.Join(dir, "mcpgo")
	bins.mcpcall = filepath.Join(dir, "mcpcall")
	for _, b := range []struct{ out, pkg string }{{bins.mcpgo, "./mcpgo"}, {bins.mcpcall, "../examples/mcpcall"}} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "interop: building %s: %v\n%s", b.pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need skips t when part of the suite's setup is missing, and fails it
// under CI=true (CI installs everything, so absence there is a broken
// setup).
func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %v; CI=true requires it (.ci/run installs it)", what, err)
	}
	t.Skipf("%s: %v; run (cd interop/node && npm ci) to install it (required under CI=true)", what, err)
}

// nodePath returns node from PATH and checks that interop/node has its
// packages installed.
func nodePath(t *testing.T) string {
	t.Helper()
	node := proctest.Binary(t, "node")
	for _, p := range []string{"@modelcontextprotocol/sdk", "@modelcontextprotocol/server-everything", "redis"} {
		_, err := os.Stat(filepath.Join("node", "node_modules", p, "package.json"))
		need(t, "interop/node/node_modules/"+p, err)
	}
	return node
}

// A server is one server process of the suite, always on the same
// loopback port, so that a restarted server is where the client left it.
type server struct {
	t         *testing.T
	name      string // for INTEROP lines: "ts-sdk-legacy", "mcp-go-stateful"...
	path      string
	args      []string
	env       []string
	port      int
	proc      *proctest.Proc
	mcpPath   string // "/mcp", "/sse"
	hasResume bool   // it has a resume_session tool
	stateless bool   // it issues no session IDs
	pin       string // protocol version the client pins, if any
}

// start starts the process and waits until its port accepts connections.
// It returns when it was ready.
func (s *server) start() time.Time {
	s.t.Helper()
	env := append([]string{"PORT=" + strconv.Itoa(s.port)}, s.env...)
	s.proc = proctest.StartEnv(s.t, s.name, env, s.path, s.args...)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	err := s.proc.WaitFor(20*time.Second, func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		s.t.Fatalf("starting %s: %v\n%s", s.name, err, s.proc.Output())
	}
	return time.Now()
}

// kill kills the process with SIGKILL and waits until it is gone.
func (s *server) kill() {
	s.t.Helper()
	if err := s.proc.Kill(); err != nil {
		s.t.Fatalf("killing %s: %v", s.name, err)
	}
}

// restart kills the server and starts it again on the same port; it returns
// when the new process was ready.
func (s *server) restart() time.Time {
	s.t.Helper()
	s.kill()
	return s.start()
}

func (s *server) url() string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", s.port, s.mcpPath)
}

// env is what one test needs: a fresh redis-server and the servers' counts
// in it.
type env struct {
	t     *testing.T
	redis *proctest.Redis
	rdb   *redis.Client
	hc    *http.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	r := proctest.StartRedis(t, nil)
	opts, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(func() {
		rdb.Close()
		tr.CloseIdleConnections()
	})
	return &env{t: t, redis: r, rdb: rdb, hc: &http.Client{Transport: tr}}
}

// count reads one of the servers' counters ("starts", "runs",
// "reads_started") from Redis.
func (e *env) count(key string) int {
	e.t.Helper()
	n, err := e.rdb.Get(context.Background(), key).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		e.t.Fatalf("reading %s from Redis: %v", key, err)
	}
	return n
}

// waitCount polls count(key) until it reaches want (bounded).
func (e *env) waitCount(key string, want int, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := e.count(key)
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s in Redis = %d after %v, want %d", key, got, within, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The servers. Each starts on a free port and is killed when t ends.

func tsServer(t *testing.T, e *env, style string) *server {
	node := nodePath(t)
	s := &server{
		t: t, name: "ts-sdk-" + style, path: node, port: proctest.FreePort(t),
		args: []string{filepath.Join("node", "tsserver.js"), "--style", style},
		env:  []string{"REDIS_URL=" + e.redis.URL()}, mcpPath: "/mcp",
		hasResume: style == "sse" || style == "legacy", stateless: style == "stateless",
	}
	s.start()
	return s
}

func mcpgoServer(t *testing.T, e *env, mode string) *server {
	s := &server{
		t: t, name: "mcp-go-" + mode, path: bins.mcpgo, port: proctest.FreePort(t),
		args: []string{"-mode", mode}, env: []string{"REDIS_URL=" + e.redis.URL()}, mcpPath: "/mcp",
		stateless: mode == "stateless",
	}
	if mode == "stateful" {
		// go-sdk negotiates 2026-07-28 with mcp-go v1.2.1, which then gives
		// no session: pinned, the session is the 2025-11-25 kind.
		s.pin = "2025-11-25"
	}
	s.start()
	return s
}

func everythingPath() string {
	return filepath.Join("node", "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")
}

// everythingServer runs server-everything over "sse" or "streamableHttp".
func everythingServer(t *testing.T, transport string) *server {
	node := nodePath(t)
	s := &server{
		t: t, name: "server-everything", path: node, port: proctest.FreePort(t),
		args: []string{everythingPath(), transport}, mcpPath: "/mcp",
	}
	if transport == "sse" {
		s.mcpPath = "/sse"
		s.stateless = true // an SSE session has no ID to resume
	}
	s.start()
	return s
}

// events collects what the client reports, for messages.
type events struct {
	mu  sync.Mutex
	log []string
}

func (ev *events) add(e resilient.Event) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	s := e.Kind.String()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	ev.log = append(ev.log, s)
}

func (ev *events) String() string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return strings.Join(ev.log, "\n  ")
}

// connect makes a resilient client to s over streamable HTTP with the
// defaults (only the protocol pin that s needs), closed when t ends.
func (e *env) connect(s *server) (*resilient.Client, *events) {
	e.t.Helper()
	ev := &events{}
	opts := &resilient.Options{OnEvent: ev.add, ShowResumeTool: true}
	if s.pin != "" {
		opts.SessionOptions = &mcp.ClientSessionOptions{ProtocolVersion: s.pin}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := resilient.Connect(ctx, newMCPClient(), resilient.StreamableHTTP(s.url(), e.hc), opts)
	if err != nil {
		e.t.Fatalf("resilient.Connect to %s: %v", s.name, err)
	}
	e.t.Cleanup(func() { c.Close() })
	if s.stateless != (c.ID() == "") {
		e.t.Fatalf("%s: session ID %q, want one only from a stateful server (stateless %v)", s.name, c.ID(), s.stateless)
	}
	return c, ev
}

// connectRaw makes a plain go-sdk session to s, as a user without this
// library would, closed when t ends.
func (e *env) connectRaw(s *server) *mcp.ClientSession {
	e.t.Helper()
	var opts *mcp.ClientSessionOptions
	if s.pin != "" {
		opts = &mcp.ClientSessionOptions{ProtocolVersion: s.pin}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := newMCPClient().Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.url(), HTTPClient: e.hc}, opts)
	if err != nil {
		e.t.Fatalf("raw Connect to %s: %v", s.name, err)
	}
	e.t.Cleanup(func() { cs.Close() })
	return cs
}

func newMCPClient() *mcp.Client {
	return mcp.NewClient(&mcp.Implementation{Name: "interop", Version: "1"}, nil)
}

// call calls tool with args (nil: {}), bounded by within.
func call(s resilient.Session, tool string, args map[string]any, within time.Duration) (*mcp.CallToolResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if args == nil {
		args = map[string]any{}
	}
	return s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
}

// intResult reads the number a counter tool answers.
func intResult(t *testing.T, res *mcp.CallToolResult, err error) int {
	t.Helper()
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if res.IsError {
		t.Fatalf("call: tool error %s", textOf(res))
	}
	n, err := strconv.Atoi(textOf(res))
	if err != nil {
		t.Fatalf("answer %q is not a number", textOf(res))
	}
	return n
}

func textOf(res *mcp.CallToolResult) string {
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			return tc.Text
		}
	}
	b, _ := json.Marshal(res.Content)
	return string(b)
}

// report prints the INTEROP line of a scenario that passed.
func report(t *testing.T, server, transport, scenario string, start time.Time, extra string) {
	t.Helper()
	if t.Failed() {
		return
	}
	line := fmt.Sprintf("INTEROP %s %s %s: ok %v", server, transport, scenario, time.Since(start).Round(time.Millisecond))
	if extra != "" {
		line += " (" + extra + ")"
	}
	t.Log(line)
}

// callInt calls a counter tool without arguments and returns its number.
func callInt(t *testing.T, s resilient.Session, tool string, within time.Duration) int {
	t.Helper()
	res, err := call(s, tool, nil, within)
	return intResult(t, res, err)
}

// asJSON returns v as its JSON form decoded into plain values, for
// comparing SDK results (whose unexported fields go-cmp cannot see).
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encoding %T: %v", v, err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
