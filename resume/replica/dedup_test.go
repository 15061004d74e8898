package replica

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/memstore"
)

// dedupServer serves a stateful MCP server with Dedup installed and two
// tools: bump (counts its runs) and slow (blocks until release is closed,
// or fails when its context ends).
type dedupServer struct {
	url     string
	runs    atomic.Int32
	release chan struct{}
	store   *memstore.Store
}

type bumpIn struct {
	N int `json:"n,omitempty"`
}

type bumpOut struct {
	Run int32 `json:"run"`
}

func newDedupServer(t *testing.T, opts *DedupOptions) *dedupServer {
	t.Helper()
	d := &dedupServer{release: make(chan struct{}), store: memstore.New(0)}
	s := mcp.NewServer(&mcp.Implementation{Name: "dedup", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "bump"}, func(_ context.Context, _ *mcp.CallToolRequest, in bumpIn) (*mcp.CallToolResult, bumpOut, error) {
		return nil, bumpOut{Run: d.runs.Add(1)}, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "slow"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, bumpOut, error) {
		select {
		case <-d.release:
			return nil, bumpOut{Run: d.runs.Add(1)}, nil
		case <-ctx.Done():
			return nil, bumpOut{}, ctx.Err()
		}
	})
	AddTool(s, d.store, nil)
	s.AddReceivingMiddleware(DedupWith(d.store, opts))
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	d.url = srv.URL
	return d
}

func (d *dedupServer) connect(t *testing.T) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: d.url, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func keyed(name, key string, args map[string]any) *mcp.CallToolParams {
	return &mcp.CallToolParams{Name: name, Arguments: args, Meta: mcp.Meta{resume.IdempotencyKeyMeta: key}}
}

func runOf(t *testing.T, res *mcp.CallToolResult) int32 {
	t.Helper()
	if res.IsError {
		t.Fatalf("IsError result: %s", res.Content[0].(*mcp.TextContent).Text)
	}
	m, ok := res.StructuredContent.(map[string]any)
	if !ok {
		t.Fatalf("structured content %T, want an object", res.StructuredContent)
	}
	n, _ := m["run"].(float64)
	return int32(n)
}

func TestDedupReplayReturnsStoredResult(t *testing.T) {
	d := newDedupServer(t, nil)
	cs := d.connect(t)
	ctx := context.Background()
	if _, ok := cs.InitializeResult().Capabilities.Experimental[resume.DedupCapability]; !ok {
		t.Errorf("capabilities %+v do not advertise %s", cs.InitializeResult().Capabilities, resume.DedupCapability)
	}
	first, err := cs.CallTool(ctx, keyed("bump", "k1", map[string]any{"n": 1}))
	if err != nil {
		t.Fatal(err)
	}
	again, err := cs.CallTool(ctx, keyed("bump", "k1", map[string]any{"n": 1}))
	if err != nil {
		t.Fatal(err)
	}
	if runOf(t, first) != 1 || runOf(t, again) != 1 || d.runs.Load() != 1 {
		t.Errorf("runs: first %d, replay %d, total %d; want 1, 1, 1", runOf(t, first), runOf(t, again), d.runs.Load())
	}
	if again.Meta[resume.ReplayedMeta] != true || first.Meta[resume.ReplayedMeta] != nil {
		t.Errorf("replayed marker: first %v, replay %v; want absent, true", first.Meta[resume.ReplayedMeta], again.Meta[resume.ReplayedMeta])
	}
	// Without a key, or with another key, the tool runs.
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "bump", Arguments: map[string]any{"n": 1}}); err != nil {
		t.Fatal(err)
	}
	if res, err := cs.CallTool(ctx, keyed("bump", "k2", map[string]any{"n": 1})); err != nil || runOf(t, res) != 3 {
		t.Errorf("another key: %v, %v; want run 3", res, err)
	}
}

// A replay on the session a client resumed into finds the first result:
// the lineage travels with resume_session.
func TestDedupAcrossResume(t *testing.T) {
	d := newDedupServer(t, nil)
	old := d.connect(t)
	ctx := context.Background()
	if _, err := old.CallTool(ctx, keyed("bump", "k", nil)); err != nil {
		t.Fatal(err)
	}
	resumed := d.connect(t)
	if _, err := (resume.Tool{}).Resume(ctx, resumed, old.ID()); err != nil {
		t.Fatal(err)
	}
	res, err := resumed.CallTool(ctx, keyed("bump", "k", nil))
	if err != nil {
		t.Fatal(err)
	}
	if runOf(t, res) != 1 || d.runs.Load() != 1 {
		t.Errorf("replay after resume ran the tool again: run %d, total %d", runOf(t, res), d.runs.Load())
	}
	// A session of another lineage with the same key does not see the
	// first client's result: it runs its own call.
	other := d.connect(t)
	res, err = other.CallTool(ctx, keyed("bump", "k", nil))
	if err != nil {
		t.Fatal(err)
	}
	if runOf(t, res) != 2 {
		t.Errorf("another client's reuse of the key got run %d, want its own run 2", runOf(t, res))
	}
}

func TestDedupRefusesMismatchedReplay(t *testing.T) {
	d := newDedupServer(t, nil)
	cs := d.connect(t)
	ctx := context.Background()
	if _, err := cs.CallTool(ctx, keyed("bump", "k", map[string]any{"n": 1})); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*mcp.CallToolParams{
		"other arguments": keyed("bump", "k", map[string]any{"n": 2}),
		"other tool":      keyed("slow", "k", nil),
	} {
		_, err := cs.CallTool(ctx, p)
		var we *jsonrpc.Error
		if !errors.As(err, &we) || we.Code != resume.CodeKeyReused || !strings.Contains(we.Message, "different call") {
			t.Errorf("%s: err = %v, want JSON-RPC %d saying the key was used for a different call", name, err, resume.CodeKeyReused)
		}
	}
	if got := d.runs.Load(); got != 1 {
		t.Errorf("tool ran %d times, want 1", got)
	}
}

func TestDedupRejectsBadKeys(t *testing.T) {
	d := newDedupServer(t, nil)
	cs := d.connect(t)
	for _, key := range []any{"", "a b", "k*", strings.Repeat("x", 129), 42} {
		_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "bump", Meta: mcp.Meta{resume.IdempotencyKeyMeta: key}})
		var we *jsonrpc.Error
		if !errors.As(err, &we) || we.Code != jsonrpc.CodeInvalidParams || !strings.Contains(we.Message, "idempotency key") {
			t.Errorf("key %v: err = %v, want invalid params naming the idempotency key", key, err)
		}
	}
	if got := d.runs.Load(); got != 0 {
		t.Errorf("tool ran %d times with bad keys, want 0", got)
	}
}

// A replay that arrives while the first execution runs waits for it.
func TestDedupReplayWaitsForFirst(t *testing.T) {
	waiting := make(chan struct{})
	var once sync.Once
	d := newDedupServer(t, &DedupOptions{waiting: func() { once.Do(func() { close(waiting) }) }})
	a, b := d.connect(t), d.connect(t)
	// a's first keyed call records its lineage; b resumes from a, as a
	// client does after losing a.
	if _, err := a.CallTool(context.Background(), keyed("bump", "setup", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := (resume.Tool{}).Resume(context.Background(), b, a.ID()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	results := make([]*mcp.CallToolResult, 2)
	errs := make([]error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		results[0], errs[0] = a.CallTool(ctx, keyed("slow", "k", nil))
	}()
	// Wait until the first call holds the key, then replay it.
	waitClaimed(t, d.store, namespace("lineage", a.ID()))
	wg.Add(1)
	go func() {
		defer wg.Done()
		results[1], errs[1] = b.CallTool(ctx, keyed("slow", "k", nil))
	}()
	select {
	case <-waiting: // the replay waits for the first execution
	case <-ctx.Done():
		t.Fatal("the replay never waited for the first execution")
	}
	close(d.release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if runOf(t, results[0]) != 2 || runOf(t, results[1]) != 2 || d.runs.Load() != 2 {
		t.Errorf("runs %d and %d, total %d; want the one execution's result twice", runOf(t, results[0]), runOf(t, results[1]), d.runs.Load())
	}
}

// A replay that waits longer than Wait gets resume.CodeInProgress, and nothing
// runs twice.
func TestDedupInProgress(t *testing.T) {
	d := newDedupServer(t, &DedupOptions{Wait: 50 * time.Millisecond})
	cs := d.connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, keyed("slow", "k", nil))
		done <- err
	}()
	waitClaimed(t, d.store, namespace("lineage", cs.ID()))
	_, err := cs.CallTool(ctx, keyed("slow", "k", nil))
	var we *jsonrpc.Error
	if !errors.As(err, &we) || we.Code != resume.CodeInProgress {
		t.Errorf("replay while running: err = %v, want JSON-RPC %d", err, resume.CodeInProgress)
	}
	close(d.release)
	if err := <-done; err != nil {
		t.Errorf("first call: %v", err)
	}
	if got := d.runs.Load(); got != 1 {
		t.Errorf("runs = %d, want 1", got)
	}
}

// An execution aborted by its request's cancellation releases its claim:
// the replay runs.
func TestDedupAbortedFirstReleasesKey(t *testing.T) {
	d := newDedupServer(t, nil)
	cs := d.connect(t)
	short, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := cs.CallTool(short, keyed("slow", "k", nil)); err == nil {
		t.Fatal("slow call succeeded before release")
	}
	// The server sees the cancellation asynchronously; wait for the claim
	// to go.
	ns := namespace("lineage", cs.ID())
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := d.store.Get(context.Background(), ns, "idem:k"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the aborted call's claim was never released")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(d.release)
	res, err := cs.CallTool(context.Background(), keyed("slow", "k", nil))
	if err != nil || runOf(t, res) != 1 {
		t.Errorf("replay after an aborted first call: %v, %v; want it to run (run 1)", res, err)
	}
}

func TestValidateIdempotencyKey(t *testing.T) {
	for _, ok := range []string{"a", "ABC-def_1.2:3", strings.Repeat("k", 128), resume.NewIdempotencyKey()} {
		if err := resume.ValidateIdempotencyKey(ok); err != nil {
			t.Errorf("ValidateIdempotencyKey(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", " ", "a*", "a?", "a/b", "é", strings.Repeat("k", 129), "a\x00"} {
		if err := resume.ValidateIdempotencyKey(bad); !errors.Is(err, resume.ErrInvalidIdempotencyKey) {
			t.Errorf("ValidateIdempotencyKey(%q) = %v, want ErrInvalidIdempotencyKey", bad, err)
		}
	}
}

func FuzzIdempotencyKeyFrom(f *testing.F) {
	for _, s := range []string{"", "k", "ABC-def_1.2:3", "a b", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		got, ok, err := resume.IdempotencyKeyFrom(map[string]any{resume.IdempotencyKeyMeta: key})
		if !ok {
			t.Fatal("a present key reported absent")
		}
		if err == nil {
			if got != key {
				t.Fatalf("key %q came back as %q", key, got)
			}
			if resume.ValidateIdempotencyKey(got) != nil || strings.ContainsAny(got, "*?[]{} /\\\x00") {
				t.Fatalf("accepted key %q is unsafe", got)
			}
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	good, _ := encodeRecord(record{State: stateDone, Digest: strings.Repeat("a", 64), Started: time.Unix(0, 0).UTC(), Result: []byte(`{"content":[]}`)})
	f.Add(good)
	f.Add([]byte(`{"state":"pending","digest":"` + strings.Repeat("b", 64) + `"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, errBadRecord) {
				t.Fatalf("decodeRecord error %v does not match errBadRecord", err)
			}
			return
		}
		again, err := encodeRecord(r)
		if err != nil {
			t.Fatalf("encodeRecord of a decoded record: %v", err)
		}
		r2, err := decodeRecord(again)
		if err != nil || r2.State != r.State || r2.Digest != r.Digest || string(r2.Result) != string(r.Result) {
			t.Fatalf("round trip changed the record: %+v -> %+v (%v)", r, r2, err)
		}
		if r.State == stateDone {
			_, _ = r.result()
		}
	})
}

// greetServer is go-sdk's Example_mrtr "greet" tool behind Dedup: its
// first round asks for the user's name (an input-required result), its
// second greets and counts a run. stateless serves protocol 2026-07-28
// without sessions, behind bearer-token authentication (Dedup's scope is
// then the principal).
func greetServer(t *testing.T, stateless bool) (url string, rounds, runs *atomic.Int32) {
	t.Helper()
	rounds, runs = new(atomic.Int32), new(atomic.Int32)
	store := memstore.New(0)
	s := mcp.NewServer(&mcp.Implementation{Name: "greet", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "greet"}, func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		rounds.Add(1)
		if len(req.Params.InputResponses) == 0 {
			return &mcp.CallToolResult{
				InputRequests: mcp.InputRequestMap{"user_name": &mcp.ElicitParams{
					Message:         "What's your name?",
					RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}},
				}},
				RequestState: "step=1",
			}, nil, nil
		}
		name := req.Params.InputResponses["user_name"].(*mcp.ElicitResult).Content["name"].(string)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("Hello %s (run %d)", name, runs.Add(1))}}}, nil, nil
	})
	s.AddReceivingMiddleware(Dedup(store, time.Hour))
	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: stateless})
	if stateless {
		verify := func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
			return &auth.TokenInfo{UserID: token, Expiration: time.Now().Add(time.Hour)}, nil
		}
		h = auth.RequireBearerToken(verify, nil)(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, rounds, runs
}

// TestDedupMultiRoundTrip: a tool that asks for input (go-sdk's MRTR
// "greet") completes through Dedup, runs its final round once, and a
// replay of the call with the same key gets the final result, not the
// first round's question.
func TestDedupMultiRoundTrip(t *testing.T) {
	for _, stateless := range []bool{false, true} {
		t.Run(fmt.Sprintf("stateless=%v", stateless), func(t *testing.T) {
			url, rounds, runs := greetServer(t, stateless)
			var hc *http.Client
			if stateless {
				hc = &http.Client{Transport: bearer{token: "alice", next: http.DefaultTransport}}
			}
			c := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, &mcp.ClientOptions{
				ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
					return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "MCP Go"}}, nil
				},
			})
			cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, DisableStandaloneSSE: true}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			t.Logf("protocol %s, session %q", cs.InitializeResult().ProtocolVersion, cs.ID())
			for i, wantReplayed := range []bool{false, true} {
				res, err := cs.CallTool(t.Context(), keyed("greet", "greet-key-1", nil))
				if err != nil {
					t.Fatalf("call %d: %v", i+1, err)
				}
				if text := resultText(res); text != "Hello MCP Go (run 1)" {
					t.Errorf("call %d = %q, want %q", i+1, text, "Hello MCP Go (run 1)")
				}
				if got := res.Meta[resume.ReplayedMeta] == true; got != wantReplayed {
					t.Errorf("call %d replayed = %v, want %v", i+1, got, wantReplayed)
				}
			}
			if n := runs.Load(); n != 1 {
				t.Errorf("final rounds run = %d, want 1", n)
			}
			if n := rounds.Load(); n != 2 {
				t.Errorf("rounds run = %d, want 2 (ask, then greet; the replay ran none)", n)
			}
		})
	}
}

// TestDedupMultiRoundTripResilient is TestDedupMultiRoundTrip's stateless
// case through resilient.Client: the multi-round-trip call completes, once,
// and is not reported as an outcome unknown.
func TestDedupMultiRoundTripResilient(t *testing.T) {
	url, rounds, runs := greetServer(t, true)
	hc := &http.Client{Transport: bearer{token: "alice", next: http.DefaultTransport}}
	c := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, &mcp.ClientOptions{
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "MCP Go"}}, nil
		},
	})
	rc, err := resilient.Connect(t.Context(), c, resilient.StreamableHTTP(url, hc), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// No key from the caller: the client adds its own, since the server
	// advertises deduplication per principal (on a session without an ID).
	res, err := rc.CallTool(t.Context(), &mcp.CallToolParams{Name: "greet", Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("CallTool(greet) through resilient.Client: %v", err)
	}
	if text := resultText(res); text != "Hello MCP Go (run 1)" {
		t.Errorf("greet = %q, want %q", text, "Hello MCP Go (run 1)")
	}
	if runs.Load() != 1 || rounds.Load() != 2 {
		t.Errorf("rounds = %d, final rounds = %d; want 2 and 1", rounds.Load(), runs.Load())
	}
	if st := rc.Stats(); st.OutcomeUnknown != 0 || st.Retries != 0 {
		t.Errorf("client stats = %+v, want no retry and no outcome unknown", st)
	}
}

// TestExactlyOnceStateless: on a stateless 2026-07-28 server with bearer
// authentication, Dedup keeps idempotency keys per principal. Every
// increment, replayed from a new connection as a client would after a
// failure, runs once; another principal's same key is its own; and the
// capability is advertised to authenticated clients only.
func TestExactlyOnceStateless(t *testing.T) {
	store := memstore.New(0)
	var counter atomic.Int32
	s := mcp.NewServer(&mcp.Implementation{Name: "stateless", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "bump"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, bumpOut, error) {
		return nil, bumpOut{Run: counter.Add(1)}, nil
	})
	s.AddReceivingMiddleware(Dedup(store, time.Hour))
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true})
	verify := func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		return &auth.TokenInfo{UserID: token, Expiration: time.Now().Add(time.Hour)}, nil
	}
	authed := httptest.NewServer(auth.RequireBearerToken(verify, nil)(h))
	defer authed.Close()
	open := httptest.NewServer(h)
	defer open.Close()

	connect := func(url, token string) *mcp.ClientSession {
		t.Helper()
		var hc *http.Client
		if token != "" {
			hc = &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}
		}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).
			Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, DisableStandaloneSSE: true}, nil)
		if err != nil {
			t.Fatalf("Connect(%s): %v", url, err)
		}
		t.Cleanup(func() { cs.Close() })
		return cs
	}

	alice := connect(authed.URL, "alice")
	if alice.ID() != "" || alice.InitializeResult().ProtocolVersion < "2026-07-28" {
		t.Fatalf("session %q, protocol %s: want a stateless 2026-07-28 session", alice.ID(), alice.InitializeResult().ProtocolVersion)
	}
	want := map[string]any{"meta": resume.IdempotencyKeyMeta, "scope": resume.DedupScopePrincipal}
	if got := alice.InitializeResult().Capabilities.Experimental[resume.DedupCapability]; !cmp.Equal(got, want) {
		t.Errorf("capability advertised to alice = %v, want %v", got, want)
	}
	if got, ok := connect(open.URL, "").InitializeResult().Capabilities.Experimental[resume.DedupCapability]; ok {
		t.Errorf("capability advertised to an unauthenticated stateless client = %v, want none (its calls are not deduplicated)", got)
	}

	const increments = 10
	for i := range increments {
		key := fmt.Sprintf("inc-%d", i)
		first, err := alice.CallTool(t.Context(), keyed("bump", key, nil))
		if err != nil {
			t.Fatal(err)
		}
		// The replay comes on a new connection, as after a failover.
		replay, err := connect(authed.URL, "alice").CallTool(t.Context(), keyed("bump", key, nil))
		if err != nil {
			t.Fatal(err)
		}
		if runOf(t, first) != runOf(t, replay) || replay.Meta[resume.ReplayedMeta] != true {
			t.Errorf("increment %d: replay = run %d (replayed %v), want run %d from the store", i, runOf(t, replay), replay.Meta[resume.ReplayedMeta], runOf(t, first))
		}
	}
	if n := counter.Load(); n != increments {
		t.Errorf("counter = %d, want %d: each increment once", n, increments)
	}
	// Bob's key of the same name is his own.
	res, err := connect(authed.URL, "bob").CallTool(t.Context(), keyed("bump", "inc-0", nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta[resume.ReplayedMeta] == true || runOf(t, res) != increments+1 {
		t.Errorf("bob's call with alice's key = run %d (replayed %v), want a run of its own, %d", runOf(t, res), res.Meta[resume.ReplayedMeta], increments+1)
	}
}

// waitClaimed waits, for at most 10s, until the first execution of the
// call keyed "k" holds its claim in namespace ns.
func waitClaimed(t *testing.T, store Store, ns string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok, _ := store.Get(context.Background(), ns, "idem:k"); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the first execution held no claim within 10s")
		}
		time.Sleep(time.Millisecond) // a bounded poll of the store
	}
}
