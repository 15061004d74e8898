//lint:file-ignore SA1019 a session's log level (logging/setLevel, deprecated by SEP-2577 but still served to clients before 2026-07-28) is part of what an adopted session keeps.

package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/memstore"
)

// cluster is several replicas, each a Handler over its own *mcp.Server,
// sharing one store and one event store, behind a balancer that sends
// every request to the replica the test picks.
type cluster struct {
	// cutResult, when set, cuts the connection of the response that would
	// carry a tools/call result, on whichever replica wrote it, and sends
	// every later request to replica cutTo: a replica that died after the
	// tool finished, before the client got the answer.
	cutResult atomic.Bool
	cutTo     int32
	resumed   atomic.Int32 // GETs with Last-Event-ID
	rr        atomic.Bool  // round robin instead of target
	next      atomic.Int32
	opts      *HandlerOptions // of every handler; EventStore is set
	store     *memstore.Store
	events    *mcp.MemoryEventStore
	replicas  []*testReplica
	target    atomic.Int32
	url       string
	logged    chan string // log notifications the client received
}

type testReplica struct {
	name     string
	srv      *mcp.Server
	handler  atomic.Pointer[Handler]
	requests atomic.Int32
	statuses sync.Map // HTTP status -> count
}

type incrOut struct {
	Counter  int    `json:"counter"`
	Instance string `json:"instance"`
}

func newCluster(t *testing.T, n int, authed bool) *cluster {
	t.Helper()
	return newClusterWith(t, n, authed, nil)
}

func newClusterWith(t *testing.T, n int, authed bool, opts *HandlerOptions) *cluster {
	t.Helper()
	c := &cluster{opts: opts, store: memstore.New(0), events: mcp.NewMemoryEventStore(nil), logged: make(chan string, 16)}
	for i := range n {
		name := string(rune('A' + i))
		srv := mcp.NewServer(&mcp.Implementation{Name: "replica-" + name, Version: "1"}, &mcp.ServerOptions{
			SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
			UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
		})
		mcp.AddTool(srv, &mcp.Tool{Name: "incr"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, incrOut, error) {
			v, err := SessionValues(c.store, req)
			if err != nil {
				return nil, incrOut{}, err
			}
			n, err := UpdateJSON(ctx, v, "counter", func(n int, _ bool) (int, error) { return n + 1, nil })
			if err != nil {
				return nil, incrOut{}, err
			}
			// Sent only if the session's log level admits info.
			_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: fmt.Sprintf("incr %d on %s", n, name)})
			return nil, incrOut{Counter: n, Instance: name}, nil
		})
		r := &testReplica{name: name, srv: srv}
		c.restart(t, r)
		c.replicas = append(c.replicas, r)
	}
	verify := func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		return &auth.TokenInfo{UserID: token, Expiration: time.Now().Add(time.Hour)}, nil
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := c.target.Load()
		if c.rr.Load() {
			i = (c.next.Add(1) - 1) % int32(len(c.replicas))
		}
		rep := c.replicas[i]
		rep.requests.Add(1)
		if r.Method == http.MethodGet && r.Header.Get("Last-Event-ID") != "" {
			c.resumed.Add(1)
		}
		sw := &statusWriter{ResponseWriter: w, cut: &c.cutResult}
		var h http.Handler = rep.handler.Load()
		if authed {
			h = auth.RequireBearerToken(verify, nil)(h)
		}
		h.ServeHTTP(sw, r)
		v, _ := rep.statuses.LoadOrStore(sw.status, new(atomic.Int32))
		v.(*atomic.Int32).Add(1)
		if sw.cutDone {
			c.target.Store(c.cutTo)
			panic(http.ErrAbortHandler) // the connection drops, unfinished
		}
	}))
	t.Cleanup(ts.Close)
	c.url = ts.URL
	return c
}

func (c *cluster) to(i int) { c.target.Store(int32(i)) }

// roundRobin makes the balancer send each request to the next replica.
func (c *cluster) roundRobin() { c.rr.Store(true) }

// restart gives replica r a new handler, which has no local session: as a
// replica that restarted, or one that never saw the session.
func (c *cluster) restart(t *testing.T, r *testReplica) {
	var opts HandlerOptions
	if c.opts != nil {
		opts = *c.opts
	}
	opts.EventStore = c.events
	h := NewHandler(func(*http.Request) *mcp.Server { return r.srv }, c.store, &opts)
	if old := r.handler.Swap(h); old != nil {
		old.Close()
	}
	t.Cleanup(func() { h.Close() })
}

func (c *cluster) handler(i int) *Handler { return c.replicas[i].handler.Load() }

func (c *cluster) connect(t *testing.T, token string) *mcp.ClientSession {
	t.Helper()
	return c.connectSSE(t, token, false)
}

// connectSSE connects; with standaloneSSE the client also holds the
// hanging GET stream, on the replica that serves it.
func (c *cluster) connectSSE(t *testing.T, token string, standaloneSSE bool) *mcp.ClientSession {
	t.Helper()
	var hc *http.Client
	if token != "" {
		hc = &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			c.logged <- fmt.Sprint(req.Params.Data)
		},
	})
	// Without standaloneSSE: the hanging GET pins itself to one replica,
	// which makes which replica serves what depend on timing.
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: c.url, HTTPClient: hc, DisableStandaloneSSE: !standaloneSSE}, nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// status404s counts the 404 answers of every replica.
func (c *cluster) status(code int) int {
	total := 0
	for _, r := range c.replicas {
		if v, ok := r.statuses.Load(code); ok {
			total += int(v.(*atomic.Int32).Load())
		}
	}
	return total
}

type statusWriter struct {
	http.ResponseWriter
	status  int
	cut     *atomic.Bool
	cutDone bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.cutDone || strings.Contains(string(b), `"structuredContent"`) && w.cut.CompareAndSwap(true, false) {
		w.cutDone = true
		return 0, errors.New("connection cut by the test")
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func incr(t *testing.T, cs *mcp.ClientSession) incrOut {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "incr"})
	if err != nil {
		t.Fatalf("CallTool(incr): %v", err)
	}
	if res.IsError {
		t.Fatalf("CallTool(incr): tool error %v", res.Content)
	}
	var out incrOut
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return out
}

func TestHandlerServesSessionOnEveryReplica(t *testing.T) {
	for _, sse := range []bool{false, true} {
		t.Run(fmt.Sprintf("standaloneSSE=%v", sse), func(t *testing.T) { testServesSessionOnEveryReplica(t, sse) })
	}
}

func testServesSessionOnEveryReplica(t *testing.T, standaloneSSE bool) {
	c := newCluster(t, 3, false)
	c.to(0)
	cs := c.connectSSE(t, "", standaloneSSE)
	id := cs.ID()
	if id == "" {
		t.Fatal("session ID is empty, want one")
	}
	if got := cs.InitializeResult().Capabilities.Experimental[resume.AdoptCapability]; !cmp.Equal(got, map[string]any{"eventStore": true}) {
		t.Errorf("capability %s = %v, want {eventStore: true}", resume.AdoptCapability, got)
	}
	for i, want := range []string{"B", "C", "A", "C", "B"} {
		c.to(int(want[0] - 'A'))
		got := incr(t, cs)
		if got.Instance != want || got.Counter != i+1 {
			t.Errorf("call %d = %+v, want counter %d on %s", i+1, got, i+1, want)
		}
		if cs.ID() != id {
			t.Errorf("session ID after call %d = %q, want %q", i+1, cs.ID(), id)
		}
	}
	for _, r := range c.replicas {
		if r.requests.Load() == 0 {
			t.Errorf("replica %s served no request", r.name)
		}
	}
	if n := c.status(http.StatusNotFound); n != 0 {
		t.Errorf("404 answers = %d, want 0", n)
	}
}

func TestHandlerCarriesLogLevelAndSubscriptions(t *testing.T) {
	// Every request reads the record: the change applies at once.
	c := newClusterWith(t, 3, false, &HandlerOptions{RecordLease: -1})
	c.to(0)
	cs := c.connect(t, "")
	incr(t, cs) // A: no level set, nothing logged
	c.to(1)
	incr(t, cs) // B adopts before the level is set
	c.to(2)
	if err := cs.SetLoggingLevel(t.Context(), &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatalf("SetLoggingLevel on C: %v", err)
	}
	if err := cs.Subscribe(t.Context(), &mcp.SubscribeParams{URI: "test://r"}); err != nil {
		t.Fatalf("Subscribe on C: %v", err)
	}
	// B holds a copy made before the level was set: it must catch up. A
	// drops its copy and adopts afresh from the record.
	c.restart(t, c.replicas[0])
	for _, target := range []int{1, 0} {
		c.to(target)
		got := incr(t, cs)
		select {
		case msg := <-c.logged:
			if want := fmt.Sprintf("incr %d on %s", got.Counter, got.Instance); msg != want {
				t.Errorf("log message = %q, want %q", msg, want)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("no log message from %s after the level was set on C", got.Instance)
		}
	}
	for _, r := range c.replicas {
		h := r.handler.Load()
		h.mu.Lock()
		ls := h.sessions[cs.ID()]
		h.mu.Unlock()
		if ls == nil {
			continue
		}
		ls.mu.Lock()
		subs := ls.known.Subscriptions
		ls.mu.Unlock()
		if len(subs) != 1 || subs[0] != "test://r" {
			t.Errorf("replica %s knows subscriptions %q, want [test://r]", r.name, subs)
		}
	}
}

// A result that finished on a replica that died before delivering it
// reaches the client from another replica, from the shared event store
// (Last-Event-ID), and the tool does not run again.
func TestHandlerReplaysUndeliveredResultFromAnotherReplica(t *testing.T) {
	c := newCluster(t, 2, false)
	c.to(0)
	cs := c.connect(t, "")
	id := cs.ID()
	c.cutTo = 1
	c.cutResult.Store(true)
	got := incr(t, cs)
	if got.Counter != 1 || got.Instance != "A" {
		t.Errorf("call cut after it finished = %+v, want counter 1 computed on A", got)
	}
	if c.cutResult.Load() {
		t.Fatal("the result was never cut: the test proved nothing")
	}
	if n := c.resumed.Load(); n == 0 {
		t.Error("no GET with Last-Event-ID reached a replica")
	}
	if n := c.replicas[1].requests.Load(); n == 0 {
		t.Error("replica B served nothing: the replay did not come from it")
	}
	if got := incr(t, cs); got.Counter != 2 || got.Instance != "B" {
		t.Errorf("next call = %+v, want counter 2 on B (the cut call ran once)", got)
	}
	if cs.ID() != id {
		t.Errorf("session ID = %q, want %q", cs.ID(), id)
	}
	if n := c.status(http.StatusNotFound); n != 0 {
		t.Errorf("404 answers = %d, want 0", n)
	}
}

// An idle local copy is closed; the session lives on in the store, and the
// next request adopts it again.
func TestHandlerIdleTimeout(t *testing.T) {
	c := newClusterWith(t, 1, false, &HandlerOptions{IdleTimeout: 20 * time.Millisecond})
	cs := c.connect(t, "")
	incr(t, cs)
	h := c.handler(0)
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		_, held := h.sessions[cs.ID()]
		h.mu.Unlock()
		if !held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle local copy was not closed within 5s")
		}
		time.Sleep(5 * time.Millisecond) // bounded polling of the handler's state
	}
	if got := incr(t, cs); got.Counter != 2 {
		t.Errorf("call after the idle close = %+v, want counter 2", got)
	}
	if n := c.status(http.StatusNotFound); n != 0 {
		t.Errorf("404 answers = %d, want 0", n)
	}
}

// Many clients at once, each request to the next replica: every session is
// adopted by every replica, concurrently, and every count is exact.
func TestHandlerConcurrentSessions(t *testing.T) {
	c := newCluster(t, 3, false)
	c.roundRobin()
	const clients, calls = 6, 15
	var wg sync.WaitGroup
	for range clients {
		cs := c.connectSSE(t, "", true)
		id := cs.ID()
		wg.Go(func() {
			for want := 1; want <= calls; want++ {
				res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "incr"})
				if err != nil {
					t.Errorf("session %s call %d: %v", id, want, err)
					return
				}
				var out incrOut
				b, _ := json.Marshal(res.StructuredContent)
				if err := json.Unmarshal(b, &out); err != nil || out.Counter != want {
					t.Errorf("session %s call %d = %s, want counter %d", id, want, b, want)
					return
				}
			}
			if cs.ID() != id {
				t.Errorf("session ID changed from %s to %s", id, cs.ID())
			}
		})
	}
	wg.Wait()
	if n := c.status(http.StatusNotFound); n != 0 {
		t.Errorf("404 answers = %d, want 0", n)
	}
}

func TestHandlerUnknownSession(t *testing.T) {
	c := newCluster(t, 1, false)
	for _, id := range []string{"NOSUCHSESSION", "mcpkit-dedup-00", "bad*id"} {
		resp := rawPost(t, c.url, id, "", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST with session %q: status %d, want 404", id, resp.StatusCode)
		}
	}
}

func TestHandlerChecksPrincipalOnAdoption(t *testing.T) {
	c := newCluster(t, 2, true)
	c.to(0)
	cs := c.connect(t, "alice")
	incr(t, cs)
	c.to(1)
	for _, method := range []string{http.MethodPost, http.MethodDelete} {
		resp := rawRequest(t, method, c.url, cs.ID(), "bob", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"incr"}}`)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s as bob on B: status %d, want 403", method, resp.StatusCode)
		}
	}
	h := c.handler(1)
	h.mu.Lock()
	adopted := h.sessions[cs.ID()]
	h.mu.Unlock()
	if adopted != nil {
		t.Error("B adopted alice's session for bob's request")
	}
	if got := incr(t, cs); got.Counter != 2 || got.Instance != "B" {
		t.Errorf("alice's call on B = %+v, want counter 2 on B", got)
	}
}

func TestHandlerDeleteEndsSessionEverywhere(t *testing.T) {
	// Every request reads the record: the DELETE applies at once.
	c := newClusterWith(t, 2, false, &HandlerOptions{RecordLease: -1})
	c.to(0)
	cs := c.connect(t, "")
	incr(t, cs)
	c.to(1)
	incr(t, cs) // B has a copy too
	id := cs.ID()
	c.to(0)
	if err := cs.Close(); err != nil {
		t.Fatalf("Close (DELETE on A): %v", err)
	}
	c.to(1)
	resp := rawPost(t, c.url, id, "", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST on B after DELETE on A: status %d, want 404", resp.StatusCode)
	}
}

func rawPost(t *testing.T, url, session, token, body string) *http.Response {
	t.Helper()
	return rawRequest(t, http.MethodPost, url, session, token, body)
}

func rawRequest(t *testing.T, method, url, session, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	req.Header.Set("Mcp-Session-Id", session)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// Within its RecordLease a replica serves its local copy without reading
// the record: a session deleted through another replica is still served
// there until the lease runs out, and answers 404 from then on.
func TestHandlerRecordLease(t *testing.T) {
	reads := &countingStore{Store: memstore.New(0)}
	c := newClusterWith(t, 2, false, &HandlerOptions{RecordLease: time.Hour})
	c.store = nil // the tool's values: unused here
	for _, r := range c.replicas {
		h := NewHandler(func(*http.Request) *mcp.Server { return r.srv }, reads, &HandlerOptions{RecordLease: time.Hour, EventStore: c.events})
		if old := r.handler.Swap(h); old != nil {
			old.Close()
		}
		t.Cleanup(func() { h.Close() })
	}
	c.to(0)
	cs := c.connect(t, "")
	id := cs.ID()
	// notifications/initialized is answered before it is handled (and its
	// handling fixes the session's owner in the store); a ping is handled
	// after it, so once the ping is answered A reads the store no more.
	if err := cs.Ping(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	c.to(1)
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	if resp := rawPost(t, c.url, id, "", list); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST on B (adoption): status %d, want 200", resp.StatusCode)
	}
	before := reads.gets.Load()
	for range 10 {
		if resp := rawPost(t, c.url, id, "", list); resp.StatusCode != http.StatusOK {
			t.Fatalf("POST on B: status %d, want 200", resp.StatusCode)
		}
	}
	if n := reads.gets.Load() - before; n != 0 {
		t.Errorf("10 requests within the lease read the store %d times, want 0", n)
	}
	c.to(0)
	if resp := rawRequest(t, http.MethodDelete, c.url, id, "", ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE on A: status %d, want 204", resp.StatusCode)
	}
	c.to(1)
	if resp := rawPost(t, c.url, id, "", list); resp.StatusCode != http.StatusOK {
		t.Errorf("POST on B within the lease after DELETE on A: status %d, want 200 (the lease is trusted)", resp.StatusCode)
	}
	// The lease runs out.
	h := c.handler(1)
	h.mu.Lock()
	ls := h.sessions[id]
	h.mu.Unlock()
	if ls == nil {
		t.Fatal("B holds no copy of the session")
	}
	ls.mu.Lock()
	ls.checked = ls.checked.Add(-2 * time.Hour)
	ls.mu.Unlock()
	if resp := rawPost(t, c.url, id, "", list); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST on B once the lease ran out: status %d, want 404", resp.StatusCode)
	}
}

// countingStore counts the reads of a store.
type countingStore struct {
	Store
	gets atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, session, key string) ([]byte, bool, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, session, key)
}

// A protocol version the server does not support is refused as the
// go-sdk's handler refuses it, every time: refusals are not cached.
func TestHandlerRefusesUnsupportedVersion(t *testing.T) {
	c := newCluster(t, 1, false)
	cs := c.connect(t, "")
	for _, version := range []string{"1999-01-01", "1999-01-01", "2025-13-99"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, c.url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Session-Id", cs.ID())
		req.Header.Set("Mcp-Protocol-Version", version)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "Unsupported protocol version") {
			t.Errorf("version %q: status %d %q, want 400 Unsupported protocol version", version, resp.StatusCode, body)
		}
	}
	incr(t, cs) // the session's own version is served
}

// A session's owner is fixed by the handshake that creates it, before any
// tool writes: "no principal" for an anonymous session, so that no later
// (authenticated) writer can claim its state.
func TestHandlerFixesOwnerAtCreation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		authed bool
		token  string
	}{
		{"anonymous", false, ""},
		{"principal", true, "alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 2, tc.authed)
			cs := c.connect(t, tc.token)
			// A ping is handled after notifications/initialized: the SDK
			// handles a session's messages in order.
			if err := cs.Ping(t.Context(), nil); err != nil {
				t.Fatal(err)
			}
			raw, ok, err := c.store.Get(t.Context(), cs.ID(), OwnerKey)
			if err != nil || !ok {
				t.Fatalf("owner record of a new session: ok %v, err %v; want one", ok, err)
			}
			if got := decodeOwner(raw).Principal; got != tc.token {
				t.Errorf("owner of a session created by %q = %q", tc.token, got)
			}
			if tc.authed {
				return
			}
			// A writer with a principal is refused the anonymous session's
			// state.
			if err := keepOwner(t.Context(), c.store, cs.ID(), "mallory", 0); !errors.Is(err, ErrNotOwner) {
				t.Errorf("mallory claiming an anonymous session: %v, want %v", err, ErrNotOwner)
			}
		})
	}
}
