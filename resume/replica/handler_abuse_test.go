package replica_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/mcpkit/resilience/internal/proctest"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume/memstore"
	"github.com/mcpkit/resilience/resume/redisstore"
	"github.com/mcpkit/resilience/resume/replica"
)

// The adopting handler against hostile and unlucky clients, on each store:
// the in-memory one and a real redis-server.

// backend is a store and an event store shared by replicas, and a count
// of what they hold.
type backend struct {
	store  replica.Store
	events mcp.EventStore
	// keys counts what the store and the event store hold.
	keys func(t *testing.T) int
}

// eachBackend runs test on the memory stores and on a dedicated
// redis-server (fresh for each subtest).
func eachBackend(t *testing.T, test func(t *testing.T, b *backend)) {
	t.Run("memstore", func(t *testing.T) {
		store := &trackedStore{Store: memstore.New(0)}
		events := &trackedEvents{EventStore: mcp.NewMemoryEventStore(nil)}
		test(t, &backend{store: store, events: events, keys: func(t *testing.T) int {
			return store.live(t) + events.live()
		}})
	})
	t.Run("redis", func(t *testing.T) {
		srv := proctest.StartRedis(t, nil)
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: time.Second, MaxRetries: -1})
		t.Cleanup(func() { rdb.Close() })
		store, err := redisstore.New(rdb, nil)
		if err != nil {
			t.Fatalf("redisstore.New: %v", err)
		}
		events, err := redisstore.NewEventStore(rdb, nil)
		if err != nil {
			t.Fatalf("redisstore.NewEventStore: %v", err)
		}
		test(t, &backend{store: store, events: events, keys: func(t *testing.T) int {
			n, err := rdb.DBSize(context.Background()).Result()
			if err != nil {
				t.Fatalf("DBSIZE: %v", err)
			}
			return int(n)
		}})
	})
}

// trackedStore remembers every key written, so that live can count those
// still there.
type trackedStore struct {
	replica.Store
	mu      sync.Mutex
	written map[[2]string]bool
}

func (s *trackedStore) note(session, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written == nil {
		s.written = make(map[[2]string]bool)
	}
	s.written[[2]string{session, key}] = true
}

func (s *trackedStore) Set(ctx context.Context, session, key string, value []byte, ttl time.Duration) error {
	s.note(session, key)
	return s.Store.Set(ctx, session, key, value, ttl)
}

func (s *trackedStore) Update(ctx context.Context, session, key string, ttl time.Duration, fn func([]byte, bool) ([]byte, error)) ([]byte, error) {
	s.note(session, key)
	return s.Store.Update(ctx, session, key, ttl, fn)
}

func (s *trackedStore) live(t *testing.T) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.written {
		_, ok, err := s.Store.Get(context.Background(), k[0], k[1])
		if err != nil {
			t.Fatalf("Get(%q, %q): %v", k[0], k[1], err)
		}
		if ok {
			n++
		}
	}
	return n
}

// trackedEvents counts the sessions that have events: opened and not
// closed (the go-sdk's MemoryEventStore drops a session's events only on
// SessionClosed).
type trackedEvents struct {
	mcp.EventStore
	mu       sync.Mutex
	sessions map[string]bool
}

func (e *trackedEvents) Open(ctx context.Context, session, stream string) error {
	e.mu.Lock()
	if e.sessions == nil {
		e.sessions = make(map[string]bool)
	}
	e.sessions[session] = true
	e.mu.Unlock()
	return e.EventStore.Open(ctx, session, stream)
}

func (e *trackedEvents) SessionClosed(ctx context.Context, session string) error {
	e.mu.Lock()
	delete(e.sessions, session)
	e.mu.Unlock()
	return e.EventStore.SessionClosed(ctx, session)
}

func (e *trackedEvents) live() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sessions)
}

// replicaServer is one replica: a Handler over a server with an echo tool,
// behind bearer-token auth when authed (the token is the principal).
type replicaServer struct {
	url     string
	handler *replica.Handler
	// calls counts getServer's calls per principal.
	calls sync.Map // string -> *atomic.Int32
}

func startReplica(t *testing.T, b *backend, store replica.Store, opts *replica.HandlerOptions, authed bool) *replicaServer {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "replica", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, struct{}, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, struct{}{}, nil
	})
	var o replica.HandlerOptions
	if opts != nil {
		o = *opts
	}
	o.EventStore = b.events
	if store == nil {
		store = b.store
	}
	rs := &replicaServer{}
	rs.handler = replica.NewHandler(func(r *http.Request) *mcp.Server {
		p := ""
		if ti := auth.TokenInfoFromContext(r.Context()); ti != nil {
			p = ti.UserID
		}
		v, _ := rs.calls.LoadOrStore(p, new(atomic.Int32))
		v.(*atomic.Int32).Add(1)
		return srv
	}, store, &o)
	var h http.Handler = rs.handler
	if authed {
		h = auth.RequireBearerToken(func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
			return &auth.TokenInfo{UserID: token, Expiration: time.Now().Add(time.Hour)}, nil
		}, nil)(h)
	}
	ts := httptest.NewServer(h)
	rs.url = ts.URL
	t.Cleanup(func() {
		rs.handler.Close()
		ts.Close()
	})
	return rs
}

func (rs *replicaServer) callsOf(principal string) int32 {
	v, ok := rs.calls.Load(principal)
	if !ok {
		return 0
	}
	return v.(*atomic.Int32).Load()
}

const (
	initializeBody  = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	initializedBody = `{"jsonrpc":"2.0","method":"notifications/initialized"}`
	listBody        = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
)

type rawResponse struct {
	status  int
	header  http.Header
	session string
	body    string
}

// send makes one raw request; version "" sends no Mcp-Protocol-Version.
func send(t *testing.T, method, url, session, token, body string) rawResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{resp.StatusCode, resp.Header, resp.Header.Get("Mcp-Session-Id"), string(b)}
}

// initialize opens a session with raw requests; with done it also sends
// notifications/initialized, and a ping: the server answers a notification
// before it handles it, and handles a session's messages in order, so once
// the ping is answered the session is initialized on the server.
func initialize(t *testing.T, url, token string, done bool) string {
	t.Helper()
	resp := send(t, http.MethodPost, url, "", token, initializeBody)
	if resp.status != http.StatusOK || resp.session == "" {
		t.Fatalf("initialize: status %d, session %q, body %q", resp.status, resp.session, resp.body)
	}
	if done {
		finishInitialize(t, url, resp.session, token)
	}
	return resp.session
}

// finishInitialize sends notifications/initialized, and the ping that
// makes sure the server has handled it.
func finishInitialize(t *testing.T, url, session, token string) {
	t.Helper()
	if r := send(t, http.MethodPost, url, session, token, initializedBody); r.status != http.StatusAccepted {
		t.Fatalf("notifications/initialized: status %d, body %q", r.status, r.body)
	}
	if r := send(t, http.MethodPost, url, session, token, `{"jsonrpc":"2.0","id":99,"method":"ping"}`); r.status != http.StatusOK {
		t.Fatalf("ping: status %d, body %q", r.status, r.body)
	}
}

// Sessions that never initialize leave nothing in the store or the event
// store once closed: POSTs that are not initialize, POSTs for unknown
// sessions (a failed adoption), sessions that answered initialize and
// never got notifications/initialized (closed by DELETE, by Close, or by
// their idle timeout). Initialized sessions stay, for other replicas.
func TestHandlerUninitializedSessionsLeaveNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		rs := startReplica(t, b, nil, nil, false)
		bodies := []string{
			listBody,
			`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`,
			initializedBody,
			`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]`,
			`{"jsonrpc":"2.0","id":1,"method":"initialize","params":"not an object"}`,
			`{`,
			`null`,
		}
		var opened []string
		for i := range 1000 {
			switch {
			case i%10 == 0: // initialize, and never notifications/initialized
				opened = append(opened, initialize(t, rs.url, "", false))
			case i%10 == 1: // a session nobody created: a failed adoption
				if r := send(t, http.MethodPost, rs.url, fmt.Sprintf("NOSUCHSESSION%03d", i), "", listBody); r.status != http.StatusNotFound {
					t.Fatalf("POST for an unknown session: status %d, want 404", r.status)
				}
			default:
				if r := send(t, http.MethodPost, rs.url, "", "", bodies[i%len(bodies)]); r.status >= 500 {
					t.Fatalf("POST %q: status %d", bodies[i%len(bodies)], r.status)
				}
			}
		}
		if n := b.keys(t); n == 0 {
			t.Fatal("the store holds nothing while 100 sessions are open: the count sees nothing")
		}
		for _, id := range opened[:10] {
			if r := send(t, http.MethodDelete, rs.url, id, "", ""); r.status != http.StatusNoContent {
				t.Fatalf("DELETE: status %d, want 204", r.status)
			}
		}
		rs.handler.Close()
		if n := b.keys(t); n != 0 {
			t.Errorf("after 1,000 uninitialized POSTs and Close: %d keys left, want 0", n)
		}

		// An initialized session stays for the other replicas.
		rs = startReplica(t, b, nil, nil, false)
		id := initialize(t, rs.url, "", true)
		rs.handler.Close()
		other := startReplica(t, b, nil, nil, false)
		if r := send(t, http.MethodPost, other.url, id, "", listBody); r.status != http.StatusOK {
			t.Errorf("an initialized session after its replica closed: status %d on another replica, want 200", r.status)
		}
	})
}

// A session that never initializes is gone once its idle timeout closes
// it.
func TestHandlerUninitializedSessionIdlesOut(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		rs := startReplica(t, b, nil, &replica.HandlerOptions{IdleTimeout: 10 * time.Millisecond}, false)
		for range 10 {
			initialize(t, rs.url, "", false)
		}
		deadline := time.Now().Add(10 * time.Second)
		for b.keys(t) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("10 s after 10 uninitialized sessions idled out: %d keys left, want 0", b.keys(t))
			}
			time.Sleep(10 * time.Millisecond) // a bounded poll of the store
		}
	})
}

// recordGatedStore holds the first read of a session record until released.
type recordGatedStore struct {
	replica.Store
	once    sync.Once
	reached chan struct{}
	release chan struct{}
}

func (s *recordGatedStore) Get(ctx context.Context, session, key string) ([]byte, bool, error) {
	if strings.HasPrefix(session, "mcpkit-session-") {
		s.once.Do(func() {
			close(s.reached)
			<-s.release
		})
	}
	return s.Store.Get(ctx, session, key)
}

// One principal's refused adoption fails only that principal's request:
// the owner's requests that wait on the same adoption, on a replica that
// has not adopted the session yet, succeed.
func TestHandlerRefusalIsPerRequest(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		a := startReplica(t, b, nil, nil, true)
		id := initialize(t, a.url, "alice", true)
		gate := &recordGatedStore{Store: b.store, reached: make(chan struct{}), release: make(chan struct{})}
		bRep := startReplica(t, b, gate, nil, true)

		mallory := make(chan int, 1)
		go func() { mallory <- send(t, http.MethodPost, bRep.url, id, "mallory", listBody).status }()
		<-gate.reached // mallory's request is adopting the session on B
		const owners = 8
		statuses := make(chan int, owners)
		for i := range owners {
			go func() {
				r := send(t, http.MethodPost, bRep.url, id, "alice", fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`, 100+i))
				if r.status != http.StatusOK {
					t.Logf("alice's request: %d %q", r.status, r.body)
				}
				statuses <- r.status
			}()
		}
		// Every one of alice's requests has got past the checks that
		// precede the session lookup (getServer is called there): they
		// find mallory's adoption under way and wait for it.
		deadline := time.Now().Add(10 * time.Second)
		for bRep.callsOf("alice") < owners {
			if time.Now().After(deadline) {
				close(gate.release)
				t.Fatalf("alice's requests did not reach B within 10 s")
			}
			time.Sleep(time.Millisecond) // a bounded poll
		}
		close(gate.release)
		if got := <-mallory; got != http.StatusForbidden {
			t.Errorf("mallory's request: status %d, want 403", got)
		}
		for range owners {
			if got := <-statuses; got != http.StatusOK {
				t.Errorf("alice's request: status %d, want 200 (another principal's refusal failed it)", got)
			}
		}
	})
}

// A client holds at most MaxSessionsPerClient sessions on a replica, and a
// replica at most MaxPendingSessions uninitialized ones; over either
// limit a new session is refused with a status that proves it did not run
// (429 or 503, with Retry-After), and a freed place is used again.
func TestHandlerLimits(t *testing.T) {
	store := memstore.New(0)
	b := &backend{store: store, events: mcp.NewMemoryEventStore(nil)}
	t.Run("default sessions per client", func(t *testing.T) {
		rs := startReplica(t, b, nil, nil, true)
		for range replica.DefaultMaxSessionsPerClient {
			initialize(t, rs.url, "alice", true)
		}
		r := send(t, http.MethodPost, rs.url, "", "alice", initializeBody)
		checkRefused(t, r, http.StatusTooManyRequests)
		initialize(t, rs.url, "bob", true) // another client is not bound by alice's count
	})
	t.Run("sessions per client", func(t *testing.T) {
		rs := startReplica(t, b, nil, &replica.HandlerOptions{MaxSessionsPerClient: 3}, true)
		var ids []string
		for range 3 {
			ids = append(ids, initialize(t, rs.url, "alice", true))
		}
		checkRefused(t, send(t, http.MethodPost, rs.url, "", "alice", initializeBody), http.StatusTooManyRequests)
		if r := send(t, http.MethodDelete, rs.url, ids[0], "alice", ""); r.status != http.StatusNoContent {
			t.Fatalf("DELETE: status %d", r.status)
		}
		ids = append(ids[1:], initialize(t, rs.url, "alice", true)) // the freed place
		// An adoption counts too.
		other := startReplica(t, b, nil, &replica.HandlerOptions{MaxSessionsPerClient: 2}, true)
		for i, id := range ids[:2] {
			if r := send(t, http.MethodPost, other.url, id, "alice", listBody); r.status != http.StatusOK {
				t.Fatalf("adoption %d: status %d, want 200", i, r.status)
			}
		}
		checkRefused(t, send(t, http.MethodPost, other.url, ids[2], "alice", listBody), http.StatusTooManyRequests)
		checkRefused(t, send(t, http.MethodPost, other.url, ids[0], "alice", listBody), 0) // adopted already: served
	})
	t.Run("pending sessions", func(t *testing.T) {
		rs := startReplica(t, b, nil, &replica.HandlerOptions{MaxPendingSessions: 2}, false)
		first := initialize(t, rs.url, "", false)
		initialize(t, rs.url, "", false)
		checkRefused(t, send(t, http.MethodPost, rs.url, "", "", initializeBody), http.StatusServiceUnavailable)
		finishInitialize(t, rs.url, first, "")
		initialize(t, rs.url, "", false) // first is initialized: no longer pending
	})
	t.Run("no limits", func(t *testing.T) {
		rs := startReplica(t, b, nil, &replica.HandlerOptions{MaxSessionsPerClient: -1, MaxPendingSessions: -1}, false)
		for range replica.DefaultMaxSessionsPerClient + 1 {
			initialize(t, rs.url, "", false)
		}
	})
}

// checkRefused checks that r is an over-limit refusal with status want,
// or, for want 0, a success.
func checkRefused(t *testing.T, r rawResponse, want int) {
	t.Helper()
	if want == 0 {
		if r.status != http.StatusOK {
			t.Errorf("status %d, want 200", r.status)
		}
		return
	}
	if r.status != want {
		t.Fatalf("over the limit: status %d (%q), want %d", r.status, r.body, want)
	}
	if r.header.Get("Retry-After") == "" {
		t.Errorf("over the limit: no Retry-After")
	}
}

// What the handler logs of a request is bounded: a 10 KB session ID gives
// a short line.
func TestHandlerLogsAreBounded(t *testing.T) {
	var buf lockedBuffer
	b := &backend{store: memstore.New(0), events: mcp.NewMemoryEventStore(nil)}
	rs := startReplica(t, b, nil, &replica.HandlerOptions{Logger: slog.New(slog.NewTextHandler(&buf, nil))}, false)
	hostile := strings.Repeat("A", 10<<10)
	for _, method := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
		if r := send(t, method, rs.url, hostile, "", listBody); r.status != http.StatusNotFound {
			t.Errorf("%s with a 10 KB session ID: status %d, want 404", method, r.status)
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("logged %d lines, want 3 (one per refused request): %q", len(lines), buf.String())
	}
	for _, line := range lines {
		if len(line) > 1024 {
			t.Errorf("a log line of %d bytes for a refused request, want at most 1024: %.200s...", len(line), line)
		}
	}
}

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

// A session that is not initialized within InitializeTimeout is closed
// and leaves nothing behind, which frees its place among the pending
// sessions; an initialized session is not bound by it.
func TestHandlerInitializeTimeout(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		var buf lockedBuffer
		rs := startReplica(t, b, nil, &replica.HandlerOptions{
			InitializeTimeout:  20 * time.Millisecond,
			MaxPendingSessions: 1,
			Logger:             slog.New(slog.NewTextHandler(&buf, nil)),
		}, false)
		done := initialize(t, rs.url, "", true)
		initialize(t, rs.url, "", false)
		checkRefused(t, send(t, http.MethodPost, rs.url, "", "", initializeBody), http.StatusServiceUnavailable)
		// The pending session times out: its place is free again.
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := send(t, http.MethodPost, rs.url, "", "", initializeBody)
			if r.status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("10 s after InitializeTimeout (20ms): a new session still gets %d", r.status)
			}
			time.Sleep(10 * time.Millisecond) // a bounded poll
		}
		// The initialized session was never closed: it is served without
		// being adopted again.
		if r := send(t, http.MethodPost, rs.url, done, "", listBody); r.status != http.StatusOK {
			t.Errorf("the initialized session: status %d, want 200", r.status)
		}
		if strings.Contains(buf.String(), "session adopted") {
			t.Errorf("the initialized session was closed by InitializeTimeout and adopted again")
		}
		rs.handler.Close()
		// What is left: the initialized session only (its record, and its
		// events on Redis).
		other := startReplica(t, b, nil, nil, false)
		if r := send(t, http.MethodPost, other.url, done, "", listBody); r.status != http.StatusOK {
			t.Errorf("the initialized session on another replica: status %d, want 200", r.status)
		}
	})
}

// A resilient client refused by a limit retries, and connects once a
// place is free: the refusal is one it knows did not run, not a failure.
func TestHandlerLimitRefusalIsRetriedByResilientClient(t *testing.T) {
	b := &backend{store: memstore.New(0), events: mcp.NewMemoryEventStore(nil)}
	var refused atomic.Int32
	rs := startReplica(t, b, nil, &replica.HandlerOptions{MaxSessionsPerClient: 1}, false)
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusRecorder{ResponseWriter: w}
		rs.handler.ServeHTTP(sw, r)
		if sw.status == http.StatusTooManyRequests {
			refused.Add(1)
		}
	}))
	defer counting.Close()
	held := initialize(t, counting.URL, "", true) // the client's one place

	type result struct {
		rc  *resilient.Client
		err error
	}
	connected := make(chan result, 1)
	go func() {
		rc, err := resilient.Connect(t.Context(), mcp.NewClient(&mcp.Implementation{Name: "second", Version: "1"}, nil),
			resilient.StreamableHTTP(counting.URL, nil), nil)
		connected <- result{rc, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for refused.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the second session was not refused within 10 s")
		}
		time.Sleep(time.Millisecond) // a bounded poll
	}
	if r := send(t, http.MethodDelete, counting.URL, held, "", ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: status %d", r.status)
	}
	res := <-connected
	if res.err != nil {
		t.Fatalf("resilient.Connect after the place was freed: %v", res.err)
	}
	defer res.rc.Close()
	if _, err := res.rc.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo"}); err != nil {
		t.Errorf("CallTool: %v", err)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
