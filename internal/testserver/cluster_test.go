package testserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mcpkit/resilience/resume"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// timeout bounds every call that should succeed or fail promptly.
const timeout = 10 * time.Second

func start(t *testing.T, opts *Options) *Cluster {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	opts.Logf = func(format string, args ...any) { t.Logf(format, args...) }
	c, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// connect opens a plain SDK session. Without the standalone SSE stream a
// lost session shows on the next call rather than a second later on the
// stream, which keeps the tests exact and fast.
func connect(t *testing.T, c *Cluster) *mcp.ClientSession {
	t.Helper()
	return connectWith(t, c, &mcp.StreamableClientTransport{Endpoint: c.URL(), DisableStandaloneSSE: true, MaxRetries: -1})
}

func connectWith(t *testing.T, c *Cluster, transport mcp.Transport) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "testclient", Version: "1"}, nil)
	cs, err := client.Connect(ctx, transport, nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func call(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) (*mcp.CallToolResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	return cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
}

// decode reads a tool's structured answer into a T, failing on any error.
func decode[T any](t *testing.T, res *mcp.CallToolResult, err error) T {
	t.Helper()
	var out T
	if err != nil {
		t.Fatalf("CallTool: %v", err)
	}
	if res.IsError {
		t.Fatalf("CallTool: tool error %v", res.Content)
	}
	raw, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("structured content %s: %v", raw, err)
	}
	return out
}

// callFor calls a tool that must succeed and decodes its answer.
func callFor[T any](t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) T {
	t.Helper()
	res, err := call(t, cs, tool, args)
	return decode[T](t, res, err)
}

func increment(t *testing.T, cs *mcp.ClientSession) CounterResult {
	t.Helper()
	res, err := call(t, cs, "increment_counter", nil)
	return decode[CounterResult](t, res, err)
}

func stickyBackend(t *testing.T, c *Cluster, cs *mcp.ClientSession) int {
	t.Helper()
	i, ok := c.BackendFor(cs.ID())
	if !ok {
		t.Fatalf("no stick table entry for session %q", cs.ID())
	}
	return i
}

func TestSticky(t *testing.T) {
	c := start(t, nil)
	cs := connect(t, c)
	if cs.ID() == "" {
		t.Fatal("session has no ID, want a stateful session")
	}
	b := stickyBackend(t, c, cs)
	var got []CounterResult
	for range 10 {
		got = append(got, increment(t, cs))
	}
	var want []CounterResult
	for n := 1; n <= 10; n++ {
		want = append(want, CounterResult{Counter: n, Instance: c.Instance(b)})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	if n := c.Counter(cs.ID()); n != 10 {
		t.Errorf("Counter = %d, want 10", n)
	}
	if n := c.ToolRuns("increment_counter"); n != 10 {
		t.Errorf("ToolRuns = %d, want 10", n)
	}
	if n := c.Connects(); n != 1 {
		t.Errorf("Connects = %d, want 1", n)
	}
	// discover, initialize, notifications/initialized, ten calls.
	if n := c.Requests(); n != 13 {
		t.Errorf("Requests = %d, want 13", n)
	}
	if n := c.Discovers(); n != 1 {
		t.Errorf("Discovers = %d, want 1 (the client probes before initialize)", n)
	}
	info := callFor[ServerInfo](t, cs, "get_server_info", nil)
	if diff := cmp.Diff(ServerInfo{Instance: c.Instance(b), SessionID: cs.ID()}, info); diff != "" {
		t.Errorf("get_server_info (-want +got):\n%s", diff)
	}
	if got := cs.InitializeResult().ServerInfo; got.Name != "testserver" || got.Title != c.Instance(b) {
		t.Errorf("server implementation = %+v, want name testserver and title %s", got, c.Instance(b))
	}
}

func TestSessionsSpread(t *testing.T) {
	c := start(t, nil)
	seen := make(map[int]bool)
	for range c.Backends() {
		// The balancer counts a request until it has copied the whole
		// answer, which may be after the client read it: wait until none
		// is left, or least connections sees a busy backend that is not.
		waitIdle(t, c)
		seen[stickyBackend(t, c, connect(t, c))] = true
	}
	if len(seen) != c.Backends() {
		t.Errorf("%d sessions went to backends %v, want one on each", c.Backends(), seen)
	}
}

// waitIdle waits until the balancer has no request in flight.
func waitIdle(t *testing.T, c *Cluster) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		busy := 0
		for i := range c.Backends() {
			busy += c.InFlight(i)
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests still in flight after %v", busy, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestKillStickyBackend(t *testing.T) {
	c := start(t, nil)
	old := connect(t, c)
	increment(t, old)
	increment(t, old)
	k := stickyBackend(t, c, old)
	c.Kill(k)
	if c.Alive(k) {
		t.Fatalf("Alive(%d) after Kill = true", k)
	}

	_, err := call(t, old, "increment_counter", nil)
	if !errors.Is(err, mcp.ErrSessionMissing) {
		t.Fatalf("call after Kill = %v, want an error matching mcp.ErrSessionMissing", err)
	}
	t.Logf("client error after Kill: %v", err)

	// The realistic recovery: a new session elsewhere resumes the old one.
	cs := connect(t, c)
	if b := stickyBackend(t, c, cs); b == k {
		t.Fatalf("new session went to killed backend %d", k)
	}
	got := callFor[resume.Result](t, cs, resume.ToolName, map[string]any{resume.ToolArg: old.ID()})
	if got.Status != resume.StatusResumed || got.KeysCopied != 1 {
		t.Errorf("resume_session = %+v, want resumed with 1 key", got)
	}
	if got := increment(t, cs); got.Counter != 3 {
		t.Errorf("counter after resume = %d, want 3", got.Counter)
	}
}

func TestKillInFlight(t *testing.T) {
	c := start(t, nil)
	cs := connect(t, c)
	increment(t, cs)
	k := stickyBackend(t, c, cs)
	errc := make(chan error, 1)
	go func() {
		_, err := call(t, cs, "slow_increment", map[string]any{"delay_ms": 60_000})
		errc <- err
	}()
	waitFor(t, "the slow call to run", func() bool { return c.Running("slow_increment") == 1 })
	c.Kill(k)
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("in-flight call succeeded on a killed backend")
		}
		if !errors.Is(err, io.EOF) {
			t.Errorf("in-flight call = %v, want a dropped connection (io.EOF)", err)
		}
		t.Logf("in-flight client error: %v", err)
	case <-time.After(timeout):
		t.Fatal("in-flight call still blocked after Kill")
	}
	if n := c.ToolRuns("slow_increment"); n != 0 {
		t.Errorf("ToolRuns(slow_increment) = %d, want 0: the killed call must not finish", n)
	}
	if n := c.Running("slow_increment"); n != 0 {
		t.Errorf("Running(slow_increment) after Kill = %d, want 0", n)
	}
	if n := c.Counter(cs.ID()); n != 1 {
		t.Errorf("Counter = %d, want 1", n)
	}
}

// TestKillStandaloneStream checks that Kill drops the standalone SSE stream
// too, so a default client notices the lost session on its own.
func TestKillStandaloneStream(t *testing.T) {
	c := start(t, nil)
	cs := connectWith(t, c, &mcp.StreamableClientTransport{Endpoint: c.URL()})
	increment(t, cs)
	k := stickyBackend(t, c, cs)
	waitFor(t, "the standalone stream to open", func() bool { return c.InFlight(k) == 1 })
	c.Kill(k)
	done := make(chan error, 1)
	go func() { done <- cs.Wait() }()
	select {
	case err := <-done:
		if !errors.Is(err, mcp.ErrSessionMissing) {
			t.Errorf("Wait = %v, want an error matching mcp.ErrSessionMissing", err)
		}
	case <-time.After(timeout):
		t.Fatal("session still up after its backend was killed")
	}
}

func TestFaults(t *testing.T) {
	c := start(t, nil)
	for _, tc := range []struct {
		kind FaultKind
		// check inspects the faulty call's error.
		check func(t *testing.T, err error)
		runs  int // tool bodies run by the faulty call
		// next is what the session's following call gets: nil means it
		// succeeds with the counter at 2+runs.
		next func(t *testing.T, err error)
	}{
		{kind: DropBeforeTool, check: isEOF, runs: 0},
		{kind: DropAfterTool, check: isEOF, runs: 1},
		{kind: NotFoundPlain, check: isSessionMissing, next: isConnectionClosed},
		{kind: NotFoundJSONNullID, check: isSessionMissing, next: isConnectionClosed},
		{
			kind: NotFoundJSONWithID,
			check: func(t *testing.T, err error) {
				isWireError(t, err, -32600, "Session not found")
				if errors.Is(err, mcp.ErrSessionMissing) {
					t.Errorf("error matches ErrSessionMissing; the go-sdk client sees only a JSON-RPC error here")
				}
			},
			next: isSessionMissing, // the session is gone on the server
		},
		{
			kind:  BadRequestNoSession,
			check: func(t *testing.T, err error) { isWireError(t, err, -32600, "No valid session ID provided") },
			next:  isSessionMissing,
		},
		{kind: Unavailable, check: func(t *testing.T, err error) { hasText(t, err, "Service Unavailable") }},
		{kind: ExpireSession, check: isSessionMissing, next: isConnectionClosed},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			cs := connect(t, c)
			increment(t, cs)
			before := c.ToolRuns("increment_counter")
			c.Inject(Fault{Kind: tc.kind, Method: "tools/call", Tool: "increment_counter"})
			_, err := call(t, cs, "increment_counter", nil)
			if err == nil {
				t.Fatalf("call with fault %v succeeded", tc.kind)
			}
			t.Logf("client error: %v", err)
			tc.check(t, err)
			if n := c.ToolRuns("increment_counter") - before; n != tc.runs {
				t.Errorf("tool ran %d times for the faulty call, want %d", n, tc.runs)
			}
			if n := c.Counter(cs.ID()); n != 1+tc.runs {
				t.Errorf("Counter after the faulty call = %d, want %d", n, 1+tc.runs)
			}
			res, err := call(t, cs, "increment_counter", nil)
			if tc.next != nil {
				if err == nil {
					t.Fatalf("next call succeeded: %v", res.StructuredContent)
				}
				t.Logf("next call: %v", err)
				tc.next(t, err)
				return
			}
			if got := decode[CounterResult](t, res, err); got.Counter != 2+tc.runs {
				t.Errorf("next call's counter = %d, want %d", got.Counter, 2+tc.runs)
			}
		})
	}
}

func TestLatency(t *testing.T) {
	c := start(t, nil)
	cs := connect(t, c)
	const delay = 100 * time.Millisecond
	c.Inject(Fault{Kind: Latency, Tool: "get_counter", Delay: delay})
	begin := time.Now()
	callFor[CounterResult](t, cs, "get_counter", nil)
	if d := time.Since(begin); d < delay {
		t.Errorf("call with %v latency took %v", delay, d)
	}
}

func TestFaultMatching(t *testing.T) {
	c := start(t, nil)
	cs := connect(t, c)
	c.Inject(Fault{Kind: Unavailable, Tool: "get_counter", Count: 2})
	c.Inject(Fault{Kind: Unavailable, Method: "tools/list"})

	// Not matched: another tool.
	increment(t, cs)
	for i := range 2 {
		if _, err := call(t, cs, "get_counter", nil); err == nil {
			t.Errorf("get_counter #%d succeeded, want the fault", i+1)
		}
	}
	callFor[CounterResult](t, cs, "get_counter", nil)

	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	if _, err := cs.ListTools(ctx, nil); err == nil {
		t.Error("tools/list succeeded, want the fault")
	}
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("second tools/list: %v", err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	want := []string{"add_note", "get_counter", "get_server_info", "increment_counter", "list_notes", "resume_session", "slow_increment"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("tools (-want +got):\n%s", diff)
	}
}

func TestUnavailableWhenAllKilled(t *testing.T) {
	c := start(t, &Options{Backends: 2})
	cs := connect(t, c)
	increment(t, cs)
	c.Kill(0)
	c.Kill(1)
	_, err := call(t, cs, "increment_counter", nil)
	hasText(t, err, "Service Unavailable")

	// A 503 does not break an SDK session: once a backend is back, the
	// request reaches it, and the session is unknown there.
	k := stickyBackend(t, c, cs)
	if err := c.Restart(k); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	_, err = call(t, cs, "increment_counter", nil)
	isSessionMissing(t, err)

	fresh := connect(t, c)
	if got := increment(t, fresh); got.Counter != 1 || got.Instance != c.Instance(k) {
		t.Errorf("new session after Restart = %+v, want counter 1 on %s", got, c.Instance(k))
	}
}

func TestRestart(t *testing.T) {
	c := start(t, nil)
	cs := connect(t, c)
	increment(t, cs)
	k := stickyBackend(t, c, cs)
	// Restarting a live backend kills it first.
	if err := c.Restart(k); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if !c.Alive(k) {
		t.Fatalf("Alive(%d) after Restart = false", k)
	}
	_, err := call(t, cs, "increment_counter", nil)
	isSessionMissing(t, err)
	// The state survives in the store for resume_session to find.
	if n := c.Counter(cs.ID()); n != 1 {
		t.Errorf("Counter of the lost session = %d, want 1", n)
	}
	c.Kill(k)
	if err := c.Restart(k); err != nil {
		t.Fatalf("Restart of a dead backend: %v", err)
	}
	if !c.Alive(k) {
		t.Fatalf("Alive(%d) after Restart = false", k)
	}
}

// TestDialFailureMarksDown covers a backend that died without Kill: the
// balancer finds out when it cannot connect, and sends the request to
// another backend, which is safe because the request never left.
func TestDialFailureMarksDown(t *testing.T) {
	c := start(t, &Options{Backends: 2})
	c.mu.Lock()
	b := c.backends[0]
	c.mu.Unlock()
	b.srv.Close()
	for range 4 {
		cs := connect(t, c)
		if got := increment(t, cs); got.Instance != c.Instance(1) {
			t.Errorf("call answered by %s, want %s", got.Instance, c.Instance(1))
		}
	}
	if c.Alive(0) {
		t.Error("Alive(0) = true after its dial failed")
	}
}

func TestExpire(t *testing.T) {
	c := start(t, nil)
	cs := connect(t, c)
	other := connect(t, c)
	increment(t, cs)
	increment(t, other)
	c.Expire(cs.ID())
	_, err := call(t, cs, "increment_counter", nil)
	isSessionMissing(t, err)
	if got := increment(t, other); got.Counter != 2 {
		t.Errorf("other session's counter = %d, want 2", got.Counter)
	}
}

func TestDeleteForgetsStickiness(t *testing.T) {
	c := start(t, nil)
	cs := connect(t, c)
	id := cs.ID()
	stickyBackend(t, c, cs)
	if err := cs.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if i, ok := c.BackendFor(id); ok {
		t.Errorf("BackendFor after DELETE = %d, want no entry", i)
	}
}

func TestStateless(t *testing.T) {
	c := start(t, &Options{Stateless: true})
	cs := connect(t, c)
	if cs.ID() != "" {
		t.Fatalf("stateless session has ID %q", cs.ID())
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	instances := make(map[string]bool)
	for n := 1; n <= 6; n++ {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "increment_counter", Meta: mcp.Meta{MetaSessionKey: "alice"}})
		got := decode[CounterResult](t, res, err)
		if got.Counter != n {
			t.Errorf("increment #%d = %d", n, got.Counter)
		}
		instances[got.Instance] = true
	}
	if len(instances) < 2 {
		t.Errorf("stateless calls all went to %v, want them spread", instances)
	}
	if n := c.Counter("alice"); n != 6 {
		t.Errorf("Counter(alice) = %d, want 6", n)
	}
	increment(t, cs)
	if n := c.Counter(StatelessSession); n != 1 {
		t.Errorf("Counter(%s) = %d, want 1", StatelessSession, n)
	}
	if n := c.Connects(); n != 0 {
		t.Errorf("Connects = %d, want 0: 2026-07-28 has no initialize", n)
	}

	// Without sessions, a dead backend costs nothing but its in-flight calls.
	c.Kill(0)
	for range 3 {
		increment(t, cs)
	}
	// resume_session has nothing to resume into.
	res, err := call(t, cs, resume.ToolName, map[string]any{resume.ToolArg: "ABC"})
	if err != nil || !res.IsError {
		t.Errorf("resume_session on a stateless backend = %v, %v; want a tool error", res, err)
	}
}

func TestStatelessFaults(t *testing.T) {
	c := start(t, &Options{Stateless: true, Backends: 2})
	cs := connect(t, c)
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	inc := func() (*mcp.CallToolResult, error) {
		return cs.CallTool(ctx, &mcp.CallToolParams{Name: "increment_counter", Meta: mcp.Meta{MetaSessionKey: "bob"}})
	}
	for _, tc := range []struct {
		kind    FaultKind
		counter int // after the faulty call
		check   func(t *testing.T, err error)
	}{
		{DropBeforeTool, 0, isEOF},
		{DropAfterTool, 1, isEOF},
		{Unavailable, 1, func(t *testing.T, err error) { hasText(t, err, "Service Unavailable") }},
	} {
		c.Inject(Fault{Kind: tc.kind, Tool: "increment_counter"})
		_, err := inc()
		t.Logf("%v: client error: %v", tc.kind, err)
		tc.check(t, err)
		if n := c.Counter("bob"); n != tc.counter {
			t.Errorf("%v: Counter = %d, want %d", tc.kind, n, tc.counter)
		}
	}
	// Stateless sessions survive all of these.
	res, err := inc()
	if got := decode[CounterResult](t, res, err); got.Counter != 2 {
		t.Errorf("counter = %d, want 2", got.Counter)
	}
}

func TestConcurrentClients(t *testing.T) {
	c := start(t, nil)
	const sessions, calls = 6, 15
	var wg sync.WaitGroup
	var total atomic.Int64
	for range sessions {
		cs := connect(t, c)
		wg.Go(func() {
			ok := 0
			for range calls {
				res, err := call(t, cs, "increment_counter", nil)
				if err == nil && !res.IsError {
					ok++
				}
			}
			total.Add(int64(ok))
			if n := c.Counter(cs.ID()); n != ok {
				t.Errorf("session %s: Counter = %d, want %d successful increments", cs.ID(), n, ok)
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			c.Inject(Fault{Kind: Unavailable, Tool: "increment_counter"})
			c.Inject(Fault{Kind: Latency, Delay: time.Millisecond})
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	// A 503 never reaches a backend, so every run was acknowledged.
	if n, want := c.ToolRuns("increment_counter"), int(total.Load()); n != want {
		t.Errorf("ToolRuns = %d, want %d successful calls", n, want)
	}
}

func TestJSONResponse(t *testing.T) {
	c := start(t, &Options{JSONResponse: true, Backends: 1})
	cs := connect(t, c)
	increment(t, cs)
	c.Inject(Fault{Kind: DropAfterTool, Tool: "increment_counter"})
	_, err := call(t, cs, "increment_counter", nil)
	isEOF(t, err)
	if got := increment(t, cs); got.Counter != 3 {
		t.Errorf("counter = %d, want 3 (the dropped call ran)", got.Counter)
	}
}

func TestNoResumeTool(t *testing.T) {
	c := start(t, &Options{NoResumeTool: true, Backends: 1})
	cs := connect(t, c)
	_, err := call(t, cs, resume.ToolName, map[string]any{resume.ToolArg: "ABC"})
	if err == nil || !strings.Contains(err.Error(), "unknown tool") {
		t.Errorf("resume_session without the tool = %v, want unknown tool", err)
	}
}

func TestNotesAndResource(t *testing.T) {
	c := start(t, nil)
	cs := connect(t, c)
	for i, note := range []string{"one", "two"} {
		got := callFor[NotesCountResult](t, cs, "add_note", map[string]any{"note": note})
		if got.NotesCount != i+1 {
			t.Errorf("add_note #%d = %d", i+1, got.NotesCount)
		}
	}
	got := callFor[NotesResult](t, cs, "list_notes", nil)
	if diff := cmp.Diff([]string{"one", "two"}, got.Notes); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
	empty := callFor[NotesResult](t, connect(t, c), "list_notes", nil)
	if empty.Notes == nil || len(empty.Notes) != 0 {
		t.Errorf("notes of a new session = %#v, want an empty list", empty.Notes)
	}

	increment(t, cs)
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: CounterURI})
	if err != nil {
		t.Fatalf("ReadResource: %v", err)
	}
	if len(rr.Contents) != 1 || rr.Contents[0].Text != "1" {
		t.Errorf("resource contents = %+v, want the text 1", rr.Contents)
	}
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: CounterURI}); err != nil {
		t.Errorf("Subscribe: %v", err)
	}
	//lint:ignore SA1019 clients must still restore the log level of legacy sessions.
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Errorf("SetLoggingLevel: %v", err)
	}
}

func TestLoggingAndUpdatesReachTheClient(t *testing.T) {
	c := start(t, &Options{Backends: 1})
	var mu sync.Mutex
	var logs []string
	updates := make(chan string, 10)
	client := mcp.NewClient(&mcp.Implementation{Name: "testclient", Version: "1"}, &mcp.ClientOptions{
		//lint:ignore SA1019 the cluster serves legacy sessions, whose logging clients still use.
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			mu.Lock()
			logs = append(logs, req.Params.Data.(string))
			mu.Unlock()
		},
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			updates <- req.Params.URI
		},
	})
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: c.URL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	//lint:ignore SA1019 clients must still restore the log level of legacy sessions.
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: CounterURI}); err != nil {
		t.Fatal(err)
	}
	increment(t, cs)
	select {
	case uri := <-updates:
		if uri != CounterURI {
			t.Errorf("update for %q, want %q", uri, CounterURI)
		}
	case <-ctx.Done():
		t.Fatal("no resource update after increment")
	}
	// The client handles notifications apart from results, so the log may
	// trail the call's answer.
	waitFor(t, "the log message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(logs) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"counter is 1"}, logs); diff != "" {
		t.Errorf("logs (-want +got):\n%s", diff)
	}
}

func TestCloseWithActiveClients(t *testing.T) {
	c, err := Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := connectWith(t, c, &mcp.StreamableClientTransport{Endpoint: c.URL()})
	increment(t, cs)
	k := stickyBackend(t, c, cs)
	errc := make(chan error, 1)
	go func() {
		_, err := call(t, cs, "slow_increment", map[string]any{"delay_ms": 60_000})
		errc <- err
	}()
	waitFor(t, "the slow call to run and the stream to open", func() bool {
		return c.Running("slow_increment") == 1 && c.InFlight(k) == 2
	})
	closed := make(chan struct{})
	go func() {
		c.Close()
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(timeout):
		t.Fatal("Close blocked with a call and a stream in flight")
	}
	if err := <-errc; err == nil {
		t.Error("in-flight call succeeded across Close")
	}
	c.Kill(0)
	if err := c.Restart(0); err == nil {
		t.Error("Restart after Close = nil, want an error")
	}
}

func TestInjectUnknownKindPanics(t *testing.T) {
	c := start(t, &Options{Backends: 1})
	defer func() {
		if recover() == nil {
			t.Error("Inject(FaultKind(0)) did not panic")
		}
	}()
	c.Inject(Fault{})
}

func TestBalancerProxiesOtherMethods(t *testing.T) {
	c := start(t, &Options{Backends: 1})
	// A GET without a session is the SDK's to refuse, through the balancer.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, c.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "Mcp-Session-Id") {
		t.Errorf("GET without session = %d %q, want the SDK's 400", resp.StatusCode, body)
	}
	http.DefaultClient.CloseIdleConnections()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isEOF(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, io.EOF) {
		t.Errorf("error = %v, want one matching io.EOF (a dropped connection)", err)
	}
}

func isSessionMissing(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, mcp.ErrSessionMissing) {
		t.Errorf("error = %v, want one matching mcp.ErrSessionMissing", err)
	}
}

func isConnectionClosed(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, mcp.ErrConnectionClosed) {
		t.Errorf("error = %v, want one matching mcp.ErrConnectionClosed", err)
	}
}

func isWireError(t *testing.T, err error, code int64, text string) {
	t.Helper()
	var we *jsonrpc.Error
	if !errors.As(err, &we) || we.Code != code || !strings.Contains(we.Message, text) {
		t.Errorf("error = %v (JSON-RPC %+v), want JSON-RPC code %d with %q", err, we, code, text)
	}
}

func hasText(t *testing.T, err error, text string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), text) {
		t.Errorf("error = %v, want one containing %q", err, text)
	}
}

// With Adopt, a session whose backend dies goes on through another backend,
// with the same session ID and its state.
func TestAdoptSurvivesKill(t *testing.T) {
	c := start(t, &Options{Adopt: true})
	cs := connect(t, c)
	id := cs.ID()
	for want := 1; want <= 2; want++ {
		if got := increment(t, cs); got.Counter != want {
			t.Fatalf("counter = %d, want %d", got.Counter, want)
		}
	}
	i, ok := c.BackendFor(id)
	if !ok {
		t.Fatal("no backend holds the session")
	}
	c.Kill(i)
	got := increment(t, cs)
	if got.Counter != 3 || got.Instance == instanceName(i) {
		t.Errorf("after killing %s: %+v, want counter 3 from another backend", instanceName(i), got)
	}
	if cs.ID() != id {
		t.Errorf("session ID = %s, want %s", cs.ID(), id)
	}
}
