//go:build fault

package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/mcpkit/resilience/internal/faultproxy"
	"github.com/mcpkit/resilience/internal/proctest"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/retry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const readyTimeout = 20 * time.Second

// need skips t when part of the setup is missing, and fails it under
// CI=true (CI installs everything).
func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %v; CI=true requires it (.ci/run installs it)", what, err)
	}
	t.Skipf("%s: %v (required under CI=true)", what, err)
}

// route is a server behind the fault proxy.
type route struct {
	t     *testing.T
	proxy *faultproxy.Proxy
	url   string // the MCP endpoint through the proxy
}

func newRoute(t *testing.T, upstream, path string) *route {
	t.Helper()
	p, err := faultproxy.Start(upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return &route{t: t, proxy: p, url: "http://" + p.Addr() + path}
}

// waitTCP waits until addr accepts connections or proc exits.
func waitTCP(p *proctest.Proc, addr string) error {
	return p.WaitFor(readyTimeout, func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// haDeployment starts redis-server, three haserver replicas (adopting
// sessions; deduplicating tools/call when dedup is set, as -dedup does)
// and nginx, and returns the route to nginx through the fault proxy.
func haDeployment(t *testing.T, dedup bool) *route {
	t.Helper()
	_, err := exec.LookPath("nginx")
	need(t, "nginx", err)
	_, err = exec.LookPath("redis-server")
	need(t, "redis-server", err)
	bin := filepath.Join(t.TempDir(), "haserver")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/mcpkit/resilience/examples/haserver").CombinedOutput(); err != nil {
		t.Fatalf("go build examples/haserver: %v\n%s", err, out)
	}
	redis := proctest.StartRedis(t, nil)
	var addrs []string
	for i := range 3 {
		addr := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
		name := fmt.Sprintf("mcp-%d", i+1)
		p := proctest.Start(t, name, bin, "-addr", addr, "-instance", name, "-redis", redis.URL(),
			"-session-ttl", "10m", "-shutdown-timeout", "2s", fmt.Sprintf("-dedup=%v", dedup))
		if err := waitTCP(p, addr); err != nil {
			t.Fatalf("starting %s: %v\n%s", name, err, p.Output())
		}
		addrs = append(addrs, addr)
	}
	raw, err := os.ReadFile("../examples/ha/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	front := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
	cfg := string(raw)
	for from, to := range map[string]string{"127.0.0.1:8081": front, "127.0.0.1:8001": addrs[0], "127.0.0.1:8002": addrs[1], "127.0.0.1:8003": addrs[2]} {
		if !strings.Contains(cfg, from) {
			t.Fatalf("examples/ha/nginx.conf no longer contains %s: update the fault suite with it", from)
		}
		cfg = strings.ReplaceAll(cfg, from, to)
	}
	prefix := t.TempDir()
	file := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ng := proctest.Start(t, "nginx", proctest.Binary(t, "nginx"), "-p", prefix, "-c", file, "-e", "stderr")
	if err := waitTCP(ng, front); err != nil {
		t.Fatalf("starting nginx: %v\n%s", err, ng.Output())
	}
	return newRoute(t, front, "/mcp")
}

// tsServer is the TypeScript SDK's server of interop/node, counting its
// tool runs in its own redis-server.
type tsServer struct {
	t     *testing.T
	node  string
	redis *proctest.Redis
	port  int
	proc  *proctest.Proc
}

func startTS(t *testing.T) (*tsServer, *route) {
	t.Helper()
	node, err := exec.LookPath("node")
	need(t, "node", err)
	_, err = os.Stat("../interop/node/node_modules/@modelcontextprotocol/sdk/package.json")
	need(t, "interop/node/node_modules (cd interop/node && npm ci)", err)
	_, err = exec.LookPath("redis-server")
	need(t, "redis-server", err)
	s := &tsServer{t: t, node: node, redis: proctest.StartRedis(t, nil), port: proctest.FreePort(t)}
	s.start()
	return s, newRoute(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), "/mcp")
}

func (s *tsServer) start() {
	s.t.Helper()
	s.proc = proctest.StartEnv(s.t, "ts-sdk-legacy", []string{"PORT=" + strconv.Itoa(s.port), "REDIS_URL=" + s.redis.URL()},
		s.node, filepath.Join("..", "interop", "node", "tsserver.js"), "--style", "legacy")
	if err := waitTCP(s.proc, net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))); err != nil {
		s.t.Fatalf("starting the TS server: %v\n%s", err, s.proc.Output())
	}
}

// runs returns the server's counts of started and finished increments.
func (s *tsServer) runs(c resilient.Session) (starts, runs int) {
	s.t.Helper()
	res, err := call(c, "runs", nil, 10*time.Second)
	if err != nil {
		s.t.Fatalf("runs: %v", err)
	}
	var out struct{ Starts, Runs int }
	if err := json.Unmarshal([]byte(textOf(res)), &out); err != nil {
		s.t.Fatalf("runs: %v (%q)", err, textOf(res))
	}
	return out.Starts, out.Runs
}

// connect connects a resilient.Client with the default liveness settings
// (the ones under test) through r, with its own HTTP connection pool.
func connect(t *testing.T, r *route, onEvent func(resilient.Event)) *resilient.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, err := resilient.Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "fault", Version: "1"}, nil),
		resilient.StreamableHTTP(r.url, &http.Client{Transport: tr}), &resilient.Options{
			Retry:   retry.Policy{InitialBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond},
			OnEvent: onEvent,
		})
	if err != nil {
		t.Fatalf("resilient.Connect(%s): %v", r.url, err)
	}
	t.Cleanup(func() {
		r.proxy.Heal()
		r.proxy.SetSlowClose(0)
		_ = c.Close()
		tr.CloseIdleConnections()
	})
	return c
}

func call(c resilient.Session, tool string, args map[string]any, within time.Duration) (*mcp.CallToolResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if args == nil {
		args = map[string]any{} // the TypeScript SDK refuses null arguments
	}
	res, err := c.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err == nil && res.IsError {
		err = fmt.Errorf("%s: tool error: %s", tool, textOf(res))
	}
	return res, err
}

func textOf(res *mcp.CallToolResult) string {
	if res == nil {
		return ""
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// counter reads haserver's counter result.
func counter(t *testing.T, res *mcp.CallToolResult) int {
	t.Helper()
	raw, _ := json.Marshal(res.StructuredContent)
	var out struct{ Counter int }
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("counter result: %v (%s)", err, raw)
	}
	return out.Counter
}

// outcome is how one call ended, timed from the fault.
type outcome struct {
	res *mcp.CallToolResult
	err error
	at  time.Time
}

// async runs a call in the background; the 30s deadline is a backstop
// beyond every bound the tests check.
func async(c resilient.Session, tool string, args map[string]any) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		res, err := call(c, tool, args, 30*time.Second)
		ch <- outcome{res: res, err: err, at: time.Now()}
	}()
	return ch
}

func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	_ = t
	// On stdout, so that the lines stand alone in go test -v's output.
	fmt.Println("FIGURE " + fmt.Sprintf(format, args...))
}
