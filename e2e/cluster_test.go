//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/mcpkit/resilience/examples/demotools"
	"github.com/mcpkit/resilience/internal/proctest"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume/redisstore"
	"github.com/mcpkit/resilience/retry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Bounds of the waits for processes to come up or change state. Health
// checks are 2s apart and need two in a row, so HAProxy takes up to ~6s to
// put a restarted replica back.
const (
	buildTimeout  = 3 * time.Minute
	readyTimeout  = 15 * time.Second
	rotateTimeout = 30 * time.Second
)

// The deployments' balancer configurations, used as they are but for their
// ports: sticky HAProxy for haserver -adopt=false; HAProxy and nginx
// without stickiness for haserver's default, which adopts sessions.
const (
	haproxyStickyConfig = "../examples/ha/haproxy-sticky.cfg"
	haproxyConfig       = "../examples/ha/haproxy.cfg"
	nginxConfig         = "../examples/ha/nginx.conf"
)

// deployment says what startDeployment starts.
type deployment struct {
	// balancer is "haproxy" or "nginx".
	balancer string
	// sticky runs haserver -adopt=false behind the sticky HAProxy
	// configuration; otherwise the replicas adopt sessions and the
	// balancer is not sticky.
	sticky bool
	// serverArgs are added to every haserver's command line.
	serverArgs []string
	// redisCluster runs the replicas on a 6-node Redis Cluster (3
	// primaries, 3 replicas, proctest.StartRedisCluster) instead of one
	// persistent redis-server.
	redisCluster bool
}

// cluster is a running deployment: Redis, three haserver replicas, a
// balancer.
type cluster struct {
	t        *testing.T
	dep      deployment
	bin      string                 // the built haserver
	redis    *proctest.Redis        // one Redis, unless dep.redisCluster
	rcluster *proctest.RedisCluster // with dep.redisCluster
	rdb      redis.UniversalClient  // a direct view of Redis, for checks
	replicas []*replica
	haproxy  *proctest.Proc // the balancer, HAProxy or nginx
	base     string         // the balancer's frontend, http://127.0.0.1:port
	url      string         // base + /mcp
}

type replica struct {
	name string
	addr string
	proc *proctest.Proc
}

// startCluster builds haserver and starts the sticky deployment
// (haserver -adopt=false behind sticky HAProxy); everything is killed when
// t ends.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	return startDeployment(t, deployment{balancer: "haproxy", sticky: true})
}

// startDeployment builds haserver and starts dep; everything is killed
// when t ends.
func startDeployment(t *testing.T, dep deployment) *cluster {
	t.Helper()
	balancerPath := proctest.Binary(t, dep.balancer)
	c := &cluster{t: t, dep: dep, bin: buildServer(t)}
	where := ""
	if dep.redisCluster {
		c.rcluster = proctest.StartRedisCluster(t)
		c.rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.rcluster.Addrs(), DialerRetries: 1})
		where = "cluster " + strings.Join(c.rcluster.Addrs(), ",")
	} else {
		// Persistent, so that a Redis restart keeps the sessions' state.
		c.redis = proctest.StartRedis(t, &proctest.RedisOptions{Persist: true})
		c.rdb = redis.NewClient(&redis.Options{Addr: c.redis.Addr, MaxRetries: -1, DialerRetries: 1})
		where = c.redis.Addr
	}
	t.Cleanup(func() { c.rdb.Close() })

	for i := range 3 {
		r := &replica{name: fmt.Sprintf("mcp-%d", i+1)}
		c.replicas = append(c.replicas, r)
		c.startReplica(r, true)
	}
	if dep.balancer == "nginx" {
		c.startNginx(balancerPath)
	} else {
		c.startHAProxy(balancerPath)
	}
	t.Logf("deployment up: redis %s, %s, %s %s (sticky %v)", where, c.describeReplicas(), dep.balancer, c.base, dep.sticky)
	return c
}

// buildServer builds examples/haserver into a temporary directory.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "haserver")
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/mcpkit/resilience/examples/haserver").CombinedOutput()
	if err != nil {
		t.Fatalf("go build examples/haserver: %v\n%s", err, out)
	}
	return bin
}

// startReplica starts r on its address (a new free port when newPort) and
// waits until its /health answers 200.
func (c *cluster) startReplica(r *replica, newPort bool) {
	c.t.Helper()
	var lastErr error
	for range 3 {
		if newPort || r.addr == "" {
			r.addr = fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(c.t))
		}
		r.proc = proctest.Start(c.t, r.name, c.bin, c.serverArgs(r)...)
		lastErr = r.proc.WaitFor(readyTimeout, func(ctx context.Context) error {
			return expectHealth(ctx, "http://"+r.addr, http.StatusOK)
		})
		if lastErr == nil {
			return
		}
		r.proc.Kill()
		if !newPort {
			break // its port is in the HAProxy configuration: no other will do
		}
	}
	c.t.Fatalf("starting %s: %v", r.name, lastErr)
}

// serverArgs is the command line of replica r.
func (c *cluster) serverArgs(r *replica) []string {
	args := []string{"-addr", r.addr, "-instance", r.name,
		"-session-ttl", "10m", "-shutdown-timeout", "2s", fmt.Sprintf("-adopt=%v", !c.dep.sticky)}
	if c.dep.redisCluster {
		args = append(args, "-redis-cluster", strings.Join(c.rcluster.Addrs(), ","))
	} else {
		args = append(args, "-redis", c.redis.URL())
	}
	return append(args, c.dep.serverArgs...)
}

// startHAProxy writes the HAProxy configuration with run-time ports and
// starts HAProxy in the foreground, waiting until it routes /health to a
// replica.
func (c *cluster) startHAProxy(path string) {
	c.t.Helper()
	config := haproxyConfig
	if c.dep.sticky {
		config = haproxyStickyConfig
	}
	raw, err := os.ReadFile(config)
	if err != nil {
		c.t.Fatal(err)
	}
	var lastErr error
	for range 3 {
		front, stats := proctest.FreePort(c.t), proctest.FreePort(c.t)
		cfg := string(raw)
		for from, to := range map[string]string{
			"127.0.0.1:8080": fmt.Sprintf("127.0.0.1:%d", front),
			"127.0.0.1:8404": fmt.Sprintf("127.0.0.1:%d", stats),
			"127.0.0.1:8001": c.replicas[0].addr,
			"127.0.0.1:8002": c.replicas[1].addr,
			"127.0.0.1:8003": c.replicas[2].addr,
		} {
			if !strings.Contains(cfg, from) {
				c.t.Fatalf("%s no longer contains %s: update the e2e tests with it", config, from)
			}
			cfg = strings.ReplaceAll(cfg, from, to)
		}
		file := filepath.Join(c.t.TempDir(), "haproxy.cfg")
		if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
			c.t.Fatal(err)
		}
		c.base = fmt.Sprintf("http://127.0.0.1:%d", front)
		c.url = c.base + "/mcp"
		c.haproxy = proctest.Start(c.t, "haproxy", path, "-f", file, "-db")
		lastErr = c.haproxy.WaitFor(readyTimeout, func(ctx context.Context) error {
			return expectHealth(ctx, c.base, http.StatusOK)
		})
		if lastErr == nil {
			return
		}
		c.haproxy.Kill()
	}
	c.t.Fatalf("starting haproxy: %v", lastErr)
}

// startNginx writes examples/ha/nginx.conf with run-time ports and starts
// nginx in the foreground, waiting until it routes /health to a replica.
func (c *cluster) startNginx(path string) {
	c.t.Helper()
	raw, err := os.ReadFile(nginxConfig)
	if err != nil {
		c.t.Fatal(err)
	}
	var lastErr error
	for range 3 {
		front := proctest.FreePort(c.t)
		cfg := string(raw)
		for from, to := range map[string]string{
			"127.0.0.1:8081": fmt.Sprintf("127.0.0.1:%d", front),
			"127.0.0.1:8001": c.replicas[0].addr,
			"127.0.0.1:8002": c.replicas[1].addr,
			"127.0.0.1:8003": c.replicas[2].addr,
		} {
			if !strings.Contains(cfg, from) {
				c.t.Fatalf("%s no longer contains %s: update the e2e tests with it", nginxConfig, from)
			}
			cfg = strings.ReplaceAll(cfg, from, to)
		}
		prefix := c.t.TempDir()
		file := filepath.Join(prefix, "nginx.conf")
		if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
			c.t.Fatal(err)
		}
		c.base = fmt.Sprintf("http://127.0.0.1:%d", front)
		c.url = c.base + "/mcp"
		c.haproxy = proctest.Start(c.t, "nginx", path, "-p", prefix, "-c", file, "-e", "stderr")
		lastErr = c.haproxy.WaitFor(readyTimeout, func(ctx context.Context) error {
			return expectHealth(ctx, c.base, http.StatusOK)
		})
		if lastErr == nil {
			return
		}
		c.haproxy.Kill()
	}
	c.t.Fatalf("starting nginx: %v\n%s", lastErr, c.haproxy.Output())
}

func (c *cluster) describeReplicas() string {
	var parts []string
	for _, r := range c.replicas {
		parts = append(parts, fmt.Sprintf("%s on %s (pid %d)", r.name, r.addr, r.proc.Pid()))
	}
	return strings.Join(parts, ", ")
}

func (c *cluster) replica(name string) *replica {
	c.t.Helper()
	for _, r := range c.replicas {
		if r.name == name {
			return r
		}
	}
	c.t.Fatalf("no replica %q", name)
	return nil
}

// kill kills replica r with SIGKILL and says so.
func (c *cluster) kill(r *replica, why string) {
	c.t.Helper()
	// Said before, so that it precedes what the client sees of it.
	c.t.Logf("KILLING %s (pid %d) with SIGKILL: %s", r.name, r.proc.Pid(), why)
	if err := r.proc.Kill(); err != nil {
		c.t.Fatal(err)
	}
}

// restart starts a killed replica again on its port and waits until it is
// healthy and HAProxy routes to the deployment again.
func (c *cluster) restart(r *replica) {
	c.t.Helper()
	c.startReplica(r, false)
	c.t.Logf("restarted %s (pid %d) on %s", r.name, r.proc.Pid(), r.addr)
}

// waitRouting waits until HAProxy answers /health with 200, that is until
// it has a replica in rotation.
func (c *cluster) waitRouting() {
	c.t.Helper()
	err := c.haproxy.WaitFor(rotateTimeout, func(ctx context.Context) error {
		return expectHealth(ctx, c.base, http.StatusOK)
	})
	if err != nil {
		c.t.Fatalf("HAProxy does not route: %v", err)
	}
}

// counterInRedis reads a session's counter straight from Redis, in the
// layout a Python server would read: the store's word, not the client's.
func (c *cluster) counterInRedis(session string) int {
	c.t.Helper()
	v, err := c.rdb.Get(c.t.Context(), redisstore.Key(session, demotools.CounterKey)).Int()
	if err == redis.Nil {
		return 0
	}
	if err != nil {
		c.t.Fatalf("reading the counter of session %s in Redis: %v", session, err)
	}
	return v
}

func expectHealth(ctx context.Context, base string, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s/health: %s, want %d", base, resp.Status, want)
	}
	return nil
}

// client is a resilient.Client on the deployment that logs what it does.
type client struct {
	*resilient.Client
	t *testing.T

	mu      sync.Mutex
	events  []resilient.Event
	changed chan struct{} // closed and replaced at each event
}

// connect connects a resilient.Client through HAProxy with short backoffs
// (the tests wait for real processes, not for politeness) and a breaker
// that opens after 3 failures for 1s.
func (c *cluster) connect() *client {
	c.t.Helper()
	cl := &client{t: c.t}
	if c.dep.balancer == "" {
		c.dep.balancer = "haproxy"
	}
	ctx, cancel := context.WithTimeout(c.t.Context(), 20*time.Second)
	defer cancel()
	rc, err := resilient.Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil),
		resilient.StreamableHTTP(c.url, nil), &resilient.Options{
			Retry:          retry.Policy{MaxAttempts: 4, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, MaxElapsed: 8 * time.Second},
			Breaker:        resilient.BreakerSettings{ConsecutiveFailures: 3, OpenTimeout: time.Second},
			ConnectTimeout: 5 * time.Second,
			OnEvent:        cl.record,
		})
	if err != nil {
		c.t.Fatalf("resilient.Connect(%s): %v", c.url, err)
	}
	cl.Client = rc
	c.t.Cleanup(func() { rc.Close() })
	c.t.Logf("client connected through %s: session %s", c.dep.balancer, rc.ID())
	return cl
}

func (cl *client) record(ev resilient.Event) {
	cl.mu.Lock()
	cl.events = append(cl.events, ev)
	if cl.changed != nil {
		close(cl.changed)
		cl.changed = nil
	}
	cl.mu.Unlock()
	switch ev.Kind {
	case resilient.EventAttemptFailed:
		cl.t.Logf("  client event: %s %s attempt %d failed (%s): %v", ev.Method, ev.Tool, ev.Attempt, ev.Class, ev.Err)
	case resilient.EventReconnected:
		cl.t.Logf("  client event: reconnected, session %s replaces %s", ev.SessionID, ev.OldSessionID)
	case resilient.EventResumed:
		cl.t.Logf("  client event: resume_session(%s) -> %s, %d keys copied, by %s", ev.OldSessionID, ev.Resume.Status, ev.Resume.KeysCopied, ev.Resume.Instance)
	case resilient.EventBreakerStateChanged:
		cl.t.Logf("  client event: breaker %s -> %s", ev.From, ev.To)
	default:
		cl.t.Logf("  client event: %s %s %v", ev.Kind, ev.Tool, ev.Err)
	}
}

// count returns how many events of kind the client reported.
func (cl *client) count(kind resilient.EventKind) int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n := 0
	for _, ev := range cl.events {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// waitEvent waits up to timeout for an event that match accepts: the
// client reports events from a queue, so one may arrive after the call
// that caused it has returned.
func (cl *client) waitEvent(timeout time.Duration, match func(resilient.Event) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		cl.mu.Lock()
		for _, ev := range cl.events {
			if match(ev) {
				cl.mu.Unlock()
				return true
			}
		}
		if cl.changed == nil {
			cl.changed = make(chan struct{})
		}
		changed := cl.changed
		cl.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

// eventsOf returns the events of kind.
func (cl *client) eventsOf(kind resilient.EventKind) []resilient.Event {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var out []resilient.Event
	for _, ev := range cl.events {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// call calls a counter tool (increment_counter, slow_increment,
// get_counter) and logs what the client saw.
func (cl *client) call(ctx context.Context, tool string, args map[string]any) (demotools.CounterResult, error) {
	res, err := cl.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	var out demotools.CounterResult
	if err == nil && res.IsError {
		err = fmt.Errorf("%s: tool error: %v", tool, res.Content)
	}
	if err == nil {
		raw, _ := json.Marshal(res.StructuredContent)
		err = json.Unmarshal(raw, &out)
	}
	if err != nil {
		cl.t.Logf("client saw: %s -> error: %v", tool, err)
	} else {
		cl.t.Logf("client saw: %s -> counter=%d from %s (session %s)", tool, out.Counter, out.Instance, cl.ID())
	}
	return out, err
}

// mustCall is call that fails the test on an error.
func (cl *client) mustCall(tool string, args map[string]any) demotools.CounterResult {
	cl.t.Helper()
	ctx, cancel := context.WithTimeout(cl.t.Context(), 20*time.Second)
	defer cancel()
	out, err := cl.call(ctx, tool, args)
	if err != nil {
		cl.t.Fatalf("%s: %v", tool, err)
	}
	return out
}
