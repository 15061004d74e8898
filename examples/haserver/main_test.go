package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/mcpkit/resilience/examples/demotools"
	"github.com/mcpkit/resilience/internal/proctest"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/redisstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseConfig(t *testing.T) {
	defaults := config{
		addr:            "127.0.0.1:8000",
		redisURL:        "redis://127.0.0.1:6379/0",
		replicaTimeout:  500 * time.Millisecond,
		adopt:           true,
		sessionTTL:      30 * time.Minute,
		shutdownTimeout: 10 * time.Second,
	}
	with := func(f func(*config)) config {
		c := defaults
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr string
	}{
		{name: "defaults", want: defaults},
		{
			name: "environment",
			env: map[string]string{
				"LISTEN_ADDR": ":9000", "INSTANCE_ID": "mcp-2", "REDIS_URL": "redis://r:6380/1",
				"STATELESS": "true", "SESSION_TTL": "1h", "SHUTDOWN_TIMEOUT": "3s", "DISABLE_LOCALHOST_PROTECTION": "1",
				"ADOPT": "false", "DEDUP": "true",
			},
			want: config{addr: ":9000", instance: "mcp-2", redisURL: "redis://r:6380/1", replicaTimeout: 500 * time.Millisecond, stateless: true, sessionTTL: time.Hour, shutdownTimeout: 3 * time.Second, allowAnyHost: true, dedup: true},
		},
		{
			name: "flags win over the environment",
			args: []string{"-addr", "127.0.0.1:8001", "-instance", "mcp-1", "-stateless=false", "-session-ttl", "5m", "-adopt"},
			env:  map[string]string{"LISTEN_ADDR": ":9000", "INSTANCE_ID": "mcp-2", "STATELESS": "true", "SESSION_TTL": "1h", "ADOPT": "false"},
			want: with(func(c *config) { c.addr, c.instance, c.sessionTTL = "127.0.0.1:8001", "mcp-1", 5*time.Minute }),
		},
		{
			name: "cluster",
			args: []string{"-redis-cluster", "10.0.0.1:7000, 10.0.0.2:7000", "-replica-acks", "1", "-replica-ack-timeout", "1s"},
			want: with(func(c *config) {
				c.redisCluster, c.replicaAcks, c.replicaTimeout = []string{"10.0.0.1:7000", "10.0.0.2:7000"}, 1, time.Second
			}),
		},
		{
			name: "sentinel from the environment",
			env:  map[string]string{"REDIS_SENTINEL": "mymaster@s1:26379,s2:26379", "REPLICA_ACKS": "1"},
			want: with(func(c *config) {
				c.sentinelMaster, c.sentinelAddrs, c.replicaAcks = "mymaster", []string{"s1:26379", "s2:26379"}, 1
			}),
		},
		{name: "cluster and URL", args: []string{"-redis", "redis://r:1/0", "-redis-cluster", "a:1"}, wantErr: "give one of -redis, -redis-cluster and -redis-sentinel"},
		{name: "cluster and sentinel", env: map[string]string{"REDIS_CLUSTER": "a:1", "REDIS_SENTINEL": "m@b:2"}, wantErr: "give one of"},
		{name: "bad cluster address", args: []string{"-redis-cluster", "a:1,b"}, wantErr: `-redis-cluster: "b" is not host:port`},
		{name: "sentinel without master", args: []string{"-redis-sentinel", "b:2"}, wantErr: "want master@host:port"},
		{name: "negative acks", args: []string{"-replica-acks", "-1"}, wantErr: "-replica-acks is -1"},
		{name: "bad environment", env: map[string]string{"STATELESS": "maybe"}, wantErr: `environment STATELESS="maybe"`},
		{name: "bad duration", env: map[string]string{"SESSION_TTL": "soon"}, wantErr: `environment SESSION_TTL="soon"`},
		{name: "zero TTL", args: []string{"-session-ttl", "0s"}, wantErr: "-session-ttl is 0s"},
		{name: "zero shutdown timeout", args: []string{"-shutdown-timeout", "0s"}, wantErr: "-shutdown-timeout is 0s"},
		{name: "empty instance", args: []string{"-instance", ""}, wantErr: "-instance is empty"},
		{name: "unknown flag", args: []string{"-port", "1"}, wantErr: "flag provided but not defined: -port"},
		{name: "stray argument", args: []string{"serve"}, wantErr: `unexpected arguments ["serve"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var usage bytes.Buffer
			got, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, &usage)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want.instance == "" {
				tc.want.instance = got.instance // the host name
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(config{})); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := parseConfig([]string{"-h"}, func(string) string { return "" }, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: error = %v, want flag.ErrHelp", err)
	}
}

// server is a haserver running in the test's process.
type server struct {
	url  string // of /mcp
	base string
	stop context.CancelFunc
	done chan error
	logs *lockedBuffer
}

// waitLog waits until the server has logged a line containing text. The log
// is the server's own account of what it did: polling it is how the test
// learns that a request reached a tool.
func (s *server) waitLog(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.logs.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not log %q within 10s", text)
		}
		time.Sleep(time.Millisecond) // poll interval
	}
}

// startServer serves cfg (its addr is ignored) on a loopback port until the
// test ends or stop is called.
func startServer(t *testing.T, cfg config) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.sessionTTL == 0 {
		cfg.sessionTTL = time.Minute
	}
	if cfg.shutdownTimeout == 0 {
		cfg.shutdownTimeout = 5 * time.Second
	}
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{base: "http://" + ln.Addr().String(), stop: cancel, done: make(chan error, 1), logs: logs}
	s.url = s.base + "/mcp"
	go func() { s.done <- serve(ctx, cfg, ln, slog.New(slog.NewTextHandler(logs, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := s.wait(t); err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return s
}

// wait returns serve's result, failing t if it takes more than 10s.
func (s *server) wait(t *testing.T) error {
	select {
	case err := <-s.done:
		s.done <- err // for the next wait
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return within 10s of its context's end")
		return nil
	}
}

func (s *server) health(t *testing.T) (int, healthAnswer) {
	t.Helper()
	resp, err := http.Get(s.base + "/health")
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	defer resp.Body.Close()
	var ans healthAnswer
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		t.Fatalf("GET /health: decoding: %v", err)
	}
	return resp.StatusCode, ans
}

func connect(t *testing.T, url string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "haserver-test", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func call[T any](t *testing.T, cs *mcp.ClientSession, params *mcp.CallToolParams) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		t.Fatalf("CallTool(%s): %v", params.Name, err)
	}
	if res.IsError {
		t.Fatalf("CallTool(%s): tool error %v", params.Name, res.Content)
	}
	var out T
	raw, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("CallTool(%s): structured content %s: %v", params.Name, raw, err)
	}
	return out
}

func TestServe(t *testing.T) {
	rs := proctest.StartRedis(t, nil)
	s := startServer(t, config{instance: "mcp-1", redisURL: rs.URL()})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()

	if code, ans := s.health(t); code != http.StatusOK || ans != (healthAnswer{Status: "ok", Instance: "mcp-1"}) {
		t.Errorf("/health = %d %+v, want 200 ok", code, ans)
	}

	old := connect(t, s.url)
	for range 2 {
		call[demotools.CounterResult](t, old, &mcp.CallToolParams{Name: "increment_counter"})
	}
	call[demotools.NotesCountResult](t, old, &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"note": "hi"}})
	// The state is in Redis, in the reference layout.
	if got := rdb.Get(t.Context(), redisstore.Key(old.ID(), "counter")).Val(); got != "2" {
		t.Errorf("Redis %s = %q, want 2", redisstore.Key(old.ID(), "counter"), got)
	}
	if ttl := rdb.PTTL(t.Context(), redisstore.Key(old.ID(), "counter")).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("TTL of the counter = %v, want at most the -session-ttl of 1m", ttl)
	}

	// Another session resumes the first one's state.
	cs := connect(t, s.url)
	got := call[resume.Result](t, cs, &mcp.CallToolParams{Name: resume.ToolName, Arguments: map[string]any{resume.ToolArg: old.ID()}})
	if diff := cmp.Diff(resume.Result{Status: resume.StatusResumed, KeysCopied: 2, Instance: "mcp-1"}, got); diff != "" {
		t.Errorf("resume_session (-want +got):\n%s", diff)
	}
	if got := call[demotools.CounterResult](t, cs, &mcp.CallToolParams{Name: "increment_counter"}); got.Counter != 3 {
		t.Errorf("counter after resuming = %d, want 3", got.Counter)
	}
	info := call[demotools.ServerInfo](t, cs, &mcp.CallToolParams{Name: "get_server_info"})
	if info != (demotools.ServerInfo{Instance: "mcp-1", SessionID: cs.ID()}) {
		t.Errorf("get_server_info = %+v", info)
	}

	// Without Redis the replica reports itself degraded, and recovers.
	if err := rs.Kill(); err != nil {
		t.Fatal(err)
	}
	if code, ans := s.health(t); code != http.StatusServiceUnavailable || ans != (healthAnswer{Status: "degraded", Instance: "mcp-1", Store: "unreachable"}) {
		t.Errorf("/health with Redis down = %d %+v, want 503 degraded", code, ans)
	}
	if err := rs.Restart(); err != nil {
		t.Fatal(err)
	}
	if code, _ := s.health(t); code != http.StatusOK {
		t.Errorf("/health after Redis came back = %d, want 200", code)
	}
}

func TestStateless(t *testing.T) {
	rs := proctest.StartRedis(t, nil)
	s := startServer(t, config{instance: "mcp-s", redisURL: rs.URL(), stateless: true})
	cs := connect(t, s.url)
	if info := call[demotools.ServerInfo](t, cs, &mcp.CallToolParams{Name: "get_server_info"}); info.SessionID != "" {
		t.Errorf("session ID of a stateless server = %q, want none", info.SessionID)
	}
	for want := 1; want <= 2; want++ {
		got := call[demotools.CounterResult](t, cs, &mcp.CallToolParams{Name: "increment_counter", Meta: mcp.Meta{demotools.MetaSessionKey: "alice"}})
		if got.Counter != want {
			t.Errorf("counter = %d, want %d", got.Counter, want)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	if got := rdb.Get(t.Context(), redisstore.Key("alice", "counter")).Val(); got != "2" {
		t.Errorf("Redis counter of alice = %q, want 2", got)
	}
}

func TestGracefulShutdown(t *testing.T) {
	rs := proctest.StartRedis(t, nil)
	s := startServer(t, config{instance: "mcp-1", redisURL: rs.URL()})
	cs := connect(t, s.url)

	type answer struct {
		res demotools.CounterResult
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "slow_increment", Arguments: map[string]any{"delay_ms": 500}})
		var a answer
		a.err = err
		if err == nil {
			raw, _ := json.Marshal(res.StructuredContent)
			a.err = json.Unmarshal(raw, &a.res)
		}
		answered <- a
	}()
	// The shutdown starts while the call runs: it must finish and answer.
	s.waitLog(t, "tool started")
	s.stop()
	a := <-answered
	if a.err != nil || a.res.Counter != 1 {
		t.Errorf("slow_increment across a shutdown = %+v, %v; want counter 1", a.res, a.err)
	}
	if err := s.wait(t); err != nil {
		t.Errorf("serve after a graceful shutdown = %v, want nil", err)
	}
	if _, err := http.Get(s.base + "/health"); err == nil {
		t.Error("GET /health after shutdown succeeded, want a refused connection")
	}
}

// lockedBuffer is a bytes.Buffer for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAdopt: two replicas on one Redis behind a proxy that the test
// switches; a session created on one goes on on the other, with the same
// ID, its state, and no reconnect.
func TestAdopt(t *testing.T) {
	rs := proctest.StartRedis(t, nil)
	a := startServer(t, config{instance: "mcp-a", redisURL: rs.URL(), adopt: true})
	b := startServer(t, config{instance: "mcp-b", redisURL: rs.URL(), adopt: true})
	var target atomic.Pointer[url.URL]
	proxy := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target.Load()) },
		FlushInterval: -1,
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close) // after the client's Close, which ends its streams through the proxy
	to := func(s *server) {
		u, err := url.Parse(s.base)
		if err != nil {
			t.Fatal(err)
		}
		target.Store(u)
	}
	to(a)
	cs := connect(t, front.URL+"/mcp")
	id := cs.ID()
	for i, s := range []*server{a, b, a, b} {
		to(s)
		got := call[demotools.CounterResult](t, cs, &mcp.CallToolParams{Name: "increment_counter"})
		want := demotools.CounterResult{Counter: i + 1, Instance: map[*server]string{a: "mcp-a", b: "mcp-b"}[s]}
		if got != want {
			t.Errorf("call %d = %+v, want %+v", i+1, got, want)
		}
		if cs.ID() != id {
			t.Errorf("session ID = %q, want %q", cs.ID(), id)
		}
	}
}

// TestServeReplicated serves from a Redis Cluster and from a Sentinel-managed
// primary, as the -redis-cluster and -redis-sentinel flags configure them,
// with replica-acknowledged writes and Dedup: the session's state, its
// resume into a session in another slot, and an idempotent call.
func TestServeReplicated(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) (config, redis.UniversalClient)
	}{
		{"cluster", func(t *testing.T) (config, redis.UniversalClient) {
			c := proctest.StartRedisCluster(t)
			return config{redisCluster: c.Addrs()[:2]}, redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
		}},
		{"sentinel", func(t *testing.T) (config, redis.UniversalClient) {
			s := proctest.StartRedisSentinel(t)
			return config{sentinelMaster: proctest.SentinelMaster, sentinelAddrs: s.SentinelAddrs()},
				redis.NewFailoverClient(&redis.FailoverOptions{MasterName: proctest.SentinelMaster, SentinelAddrs: s.SentinelAddrs()})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, rdb := tc.start(t)
			defer rdb.Close()
			cfg.instance, cfg.adopt, cfg.dedup = "mcp-1", true, true
			cfg.replicaAcks, cfg.replicaTimeout = 1, time.Second
			s := startServer(t, cfg)
			if code, ans := s.health(t); code != http.StatusOK {
				t.Fatalf("/health = %d %+v, want 200", code, ans)
			}
			old := connect(t, s.url)
			for range 2 {
				call[demotools.CounterResult](t, old, &mcp.CallToolParams{Name: "increment_counter"})
			}
			if got := rdb.Get(t.Context(), redisstore.Key(old.ID(), "counter")).Val(); got != "2" {
				t.Errorf("Redis %s = %q, want 2", redisstore.Key(old.ID(), "counter"), got)
			}
			cs := connect(t, s.url)
			got := call[resume.Result](t, cs, &mcp.CallToolParams{Name: resume.ToolName, Arguments: map[string]any{resume.ToolArg: old.ID()}})
			if got.Status != resume.StatusResumed || got.KeysCopied < 1 {
				t.Errorf("resume_session = %+v, want resumed", got)
			}
			// The same idempotency key twice: one execution.
			params := &mcp.CallToolParams{Name: "increment_counter", Meta: mcp.Meta{resume.IdempotencyKeyMeta: "k-1"}}
			first := call[demotools.CounterResult](t, cs, params)
			again := call[demotools.CounterResult](t, cs, params)
			if first.Counter != 3 || again.Counter != 3 {
				t.Errorf("counter after resuming and one idempotent call sent twice = %d then %d, want 3 both times", first.Counter, again.Counter)
			}
		})
	}
}
