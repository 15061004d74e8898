package replica_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/mcpkit/resilience/internal/proctest"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/memstore"
	"github.com/mcpkit/resilience/resume/redisstore"
	"github.com/mcpkit/resilience/resume/replica"
)

// The ownership regression tests run through the public API (tools that
// use SessionValues, resume_session, NewValues) on the memory store and on a
// real redis-server.

// anonymous is the client name that ownerServer serves without a principal.
const anonymous = "anonymous"

// ownerServer is an MCP server with resume_session and two tools that use
// SessionValues: put {key, value, ttl_ms} and get {key}. It stands in for a
// server behind bearer-token authentication: a request's principal is its
// client's name (none for the name [anonymous]).
type ownerServer struct {
	store  replica.Store
	server *mcp.Server
}

type putIn struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	TTLMS int64  `json:"ttl_ms,omitempty"`
}

type getIn struct {
	Key string `json:"key"`
}

type getOut struct {
	Value string `json:"value"`
	Found bool   `json:"found"`
}

func newOwnerServer(store replica.Store) *ownerServer {
	s := mcp.NewServer(&mcp.Implementation{Name: "owners", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "put"}, func(ctx context.Context, req *mcp.CallToolRequest, in putIn) (*mcp.CallToolResult, struct{}, error) {
		v, err := replica.SessionValues(store, req)
		if err != nil {
			return nil, struct{}{}, err
		}
		return nil, struct{}{}, v.WithTTL(time.Duration(in.TTLMS)*time.Millisecond).Set(ctx, in.Key, []byte(in.Value))
	})
	mcp.AddTool(s, &mcp.Tool{Name: "get"}, func(ctx context.Context, req *mcp.CallToolRequest, in getIn) (*mcp.CallToolResult, getOut, error) {
		v, err := replica.SessionValues(store, req)
		if err != nil {
			return nil, getOut{}, err
		}
		b, ok, err := v.Get(ctx, in.Key)
		return nil, getOut{Value: string(b), Found: ok}, err
	})
	replica.AddTool(s, store, nil)
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if r, ok := req.(*mcp.CallToolRequest); ok {
				if name := r.Session.InitializeParams().ClientInfo.Name; name != anonymous {
					r.Extra = &mcp.RequestExtra{TokenInfo: &auth.TokenInfo{UserID: name, Expiration: time.Now().Add(time.Hour)}}
				}
			}
			return next(ctx, method, req)
		}
	})
	return &ownerServer{store: store, server: s}
}

// connect opens session id as principal (the client's name) over in-memory
// transports, closed when t ends.
func (o *ownerServer) connect(t *testing.T, principal, id string) *mcp.ClientSession {
	t.Helper()
	st, ct := mcp.NewInMemoryTransports()
	ss, err := o.server.Connect(t.Context(), idTransport{st, id}, nil)
	if err != nil {
		t.Fatalf("server Connect: %v", err)
	}
	c := mcp.NewClient(&mcp.Implementation{Name: principal, Version: "1"}, nil)
	cs, err := c.Connect(t.Context(), idTransport{ct, id}, nil)
	if err != nil {
		t.Fatalf("client Connect as %q: %v", principal, err)
	}
	t.Cleanup(func() {
		cs.Close()
		ss.Wait()
	})
	return cs
}

// idTransport gives an in-memory connection a session ID, as streamable
// HTTP does.
type idTransport struct {
	mcp.Transport
	id string
}

func (t idTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return idConn{c, t.id}, nil
}

type idConn struct {
	mcp.Connection
	id string
}

func (c idConn) SessionID() string { return c.id }

// call calls a tool and returns its result; a protocol error fails t.
func call(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return res
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func mustPut(t *testing.T, cs *mcp.ClientSession, key, value string, ttl time.Duration) {
	t.Helper()
	if res := call(t, cs, "put", map[string]any{"key": key, "value": value, "ttl_ms": ttl.Milliseconds()}); res.IsError {
		t.Fatalf("put %q: %s", key, text(res))
	}
}

// get reads key of cs's session through the get tool.
func get(t *testing.T, cs *mcp.ClientSession, key string) (string, bool) {
	t.Helper()
	res := call(t, cs, "get", map[string]any{"key": key})
	if res.IsError {
		t.Fatalf("get %q: %s", key, text(res))
	}
	m, _ := res.StructuredContent.(map[string]any)
	v, _ := m["value"].(string)
	found, _ := m["found"].(bool)
	return v, found
}

// resumeFrom calls resume_session on cs.
func resumeFrom(t *testing.T, cs *mcp.ClientSession, old string) *mcp.CallToolResult {
	t.Helper()
	return call(t, cs, resume.ToolName, map[string]any{resume.ToolArg: old})
}

// storeCase is one store the regression tests run on.
type storeCase struct {
	name string
	// open returns an empty store whose default TTL is ttl; rdb is its
	// Redis client, nil for the memory store.
	open func(t *testing.T, ttl time.Duration) (replica.Store, *redis.Client)
}

// stores returns the memory store and, once redis-server is started, a
// Redis store (proctest fails the test under CI=true if it is missing).
func stores(t *testing.T) []storeCase {
	t.Helper()
	mem := storeCase{"memstore", func(_ *testing.T, ttl time.Duration) (replica.Store, *redis.Client) { return memstore.New(ttl), nil }}
	var (
		once sync.Once
		rdb  *redis.Client
	)
	red := storeCase{"redis", func(t *testing.T, ttl time.Duration) (replica.Store, *redis.Client) {
		once.Do(func() {
			srv := proctest.StartRedis(t, nil)
			rdb = redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: time.Second, MaxRetries: -1})
			t.Cleanup(func() { rdb.Close() })
		})
		if err := rdb.FlushDB(t.Context()).Err(); err != nil {
			t.Fatalf("FLUSHDB: %v", err)
		}
		s, err := redisstore.New(rdb, &redisstore.Options{DefaultTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return s, rdb
	}}
	return []storeCase{mem, red}
}

// checkNoStaging fails t if a resume left a staging session behind in
// Redis (rdb nil: the memory store, which lists no sessions).
func checkNoStaging(t *testing.T, rdb *redis.Client) {
	t.Helper()
	if rdb == nil {
		return
	}
	// A test's own redis-server: KEYS is fine here.
	left, err := rdb.Keys(t.Context(), "*mcpkit-resume-*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("keys left by resume_session's staging: %q", left)
	}
}

// Flaw 1: a value written with a long TTL, then one with the default, left
// the owner record with the default's TTL: once it expired, another
// principal's resume_session copied the long-lived secret.
func TestOwnerOutlivesValues(t *testing.T) {
	const def = time.Minute       // the store's default TTL
	const long = 30 * time.Minute // the secret's TTL, far beyond def plus any grace

	t.Run("memstore", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := newOwnerServer(memstore.New(def))
			alice := srv.connect(t, "alice", "ALICE1")
			mustPut(t, alice, "secret", "s3cret", long)
			mustPut(t, alice, "note", "n", 0)
			// Long after every record written with the default TTL is gone,
			// while the secret lives on.
			time.Sleep(long / 2)
			mallory := srv.connect(t, "mallory", "MALLORY1")
			res := resumeFrom(t, mallory, "ALICE1")
			if !res.IsError || !strings.Contains(text(res), "refused") {
				t.Errorf("mallory's resume_session of alice's session = IsError %v, %q; want a refusal", res.IsError, text(res))
			}
			if v, ok := get(t, mallory, "secret"); ok {
				t.Errorf("mallory's session holds alice's secret %q", v)
			}
			if v, ok := get(t, alice, "secret"); !ok || v != "s3cret" {
				t.Errorf("alice's secret = %q, %v; want it still there", v, ok)
			}
			// And the owner still lets its owner in.
			again := srv.connect(t, "alice", "ALICE2")
			if res := resumeFrom(t, again, "ALICE1"); res.IsError || !strings.Contains(text(res), `"resumed"`) {
				t.Errorf("alice's own resume = IsError %v, %q; want resumed", res.IsError, text(res))
			}
		})
	})

	t.Run("redis", func(t *testing.T) {
		// Waiting out a real owner record takes over a minute (the grace),
		// so on Redis the test reads the records' TTLs, which decide it.
		store, rdb := stores(t)[1].open(t, time.Second)
		srv := newOwnerServer(store)
		alice := srv.connect(t, "alice", "ALICE1")
		mustPut(t, alice, "secret", "s3cret", long)
		mustPut(t, alice, "note", "n", 0)
		ctx := t.Context()
		secret, err := rdb.PTTL(ctx, redisstore.Key("ALICE1", "secret")).Result()
		if err != nil {
			t.Fatal(err)
		}
		owner, err := rdb.PTTL(ctx, redisstore.Key("ALICE1", replica.OwnerKey)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if owner < secret {
			t.Errorf("owner record TTL %v < the secret's %v: the secret would outlive its owner", owner, secret)
		}
		// With short TTLs, the owner record outlives the values on a real
		// expiry too: wait for the value to expire (bounded), then check.
		short := srv.connect(t, "bob", "BOB1")
		mustPut(t, short, "v", "1", 1500*time.Millisecond)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, ok := get(t, short, "v"); !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a 1.5 s value was still there after 10 s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n, err := rdb.Exists(ctx, redisstore.Key("BOB1", replica.OwnerKey)).Result(); err != nil || n != 1 {
			t.Errorf("owner record of BOB1 after its value expired: EXISTS = %d, %v; want 1", n, err)
		}
	})
}

// copyGatedStore holds the first Copy out of session from until release is
// closed, after closing reached: the window in which a resume_session has
// checked the old session's owner and not yet copied it.
type copyGatedStore struct {
	replica.Store
	from    string
	once    sync.Once
	reached chan struct{}
	release chan struct{}
}

func (g *copyGatedStore) Copy(ctx context.Context, from, to string, ttl time.Duration) (int, error) {
	if from == g.from {
		g.once.Do(func() {
			close(g.reached)
			<-g.release
		})
	}
	return g.Store.Copy(ctx, from, to, ttl)
}

// Flaw 2: resume_session checked the old session's owner, then copied: a
// first write landing between the two was copied into the attacker's
// session, though the call answered a tool error.
func TestResumeRefusedCopiesNothing(t *testing.T) {
	for _, sc := range stores(t) {
		t.Run(sc.name, func(t *testing.T) {
			base, rdb := sc.open(t, time.Hour)
			store := &copyGatedStore{Store: base, from: "ALICE1", reached: make(chan struct{}), release: make(chan struct{})}
			srv := newOwnerServer(store)
			alice := srv.connect(t, "alice", "ALICE1")
			mallory := srv.connect(t, "mallory", "MALLORY1")

			done := make(chan *mcp.CallToolResult, 1)
			go func() {
				res, err := mallory.CallTool(t.Context(), &mcp.CallToolParams{Name: resume.ToolName, Arguments: map[string]any{resume.ToolArg: "ALICE1"}})
				if err != nil {
					res = &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "protocol error: " + err.Error()}}}
				}
				done <- res
			}()
			select {
			case <-store.reached:
			case res := <-done:
				t.Fatalf("resume_session ended before copying: IsError %v, %q", res.IsError, text(res))
			}
			// Alice's first write lands while mallory's resume is between
			// its owner check and its copy.
			mustPut(t, alice, "secret", "s3cret", 0)
			close(store.release)
			res := <-done
			if !res.IsError || !strings.Contains(text(res), "refused") {
				t.Errorf("mallory's resume_session = IsError %v, %q; want a refusal", res.IsError, text(res))
			}
			if v, ok := get(t, mallory, "secret"); ok {
				t.Errorf("mallory's session holds alice's secret %q after a refused resume", v)
			}
			keys, err := base.Keys(t.Context(), "MALLORY1")
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if k != replica.OwnerKey {
					t.Errorf("mallory's session holds key %q after a refused resume", k)
				}
			}
			checkNoStaging(t, rdb)
		})
	}
}

// Flaw 4: the first authenticated writer became the owner of an anonymous
// session's state, and its anonymous creator could no longer resume it.
func TestAnonymousSessionCannotBeClaimed(t *testing.T) {
	for _, sc := range stores(t) {
		t.Run(sc.name, func(t *testing.T) {
			store, rdb := sc.open(t, time.Hour)
			srv := newOwnerServer(store)
			creator := srv.connect(t, anonymous, "ANON1")
			mustPut(t, creator, "cart", "3 apples", 0)

			// An authenticated principal reaches the same session (the SDK
			// binds no principal to a session created without one).
			mallory := srv.connect(t, "mallory", "ANON1")
			res := call(t, mallory, "put", map[string]any{"key": "cart", "value": "mallory's"})
			if !res.IsError || !strings.Contains(text(res), replica.ErrNotOwner.Error()) {
				t.Errorf("mallory's write into the anonymous session = IsError %v, %q; want %v", res.IsError, text(res), replica.ErrNotOwner)
			}
			// The creator still resumes its own session, with its state.
			later := srv.connect(t, anonymous, "ANON2")
			if res := resumeFrom(t, later, "ANON1"); res.IsError || !strings.Contains(text(res), `"resumed"`) {
				t.Fatalf("the creator's resume_session = IsError %v, %q; want resumed", res.IsError, text(res))
			}
			if v, ok := get(t, later, "cart"); !ok || v != "3 apples" {
				t.Errorf("resumed cart = %q, %v; want the creator's", v, ok)
			}
			checkNoStaging(t, rdb)
			// And a session created by a principal stays closed to writes
			// without one.
			alice := srv.connect(t, "alice", "ALICE1")
			mustPut(t, alice, "k", "v", 0)
			anon := srv.connect(t, anonymous, "ALICE1")
			if res := call(t, anon, "put", map[string]any{"key": "k", "value": "x"}); !res.IsError {
				t.Errorf("an anonymous write into alice's session succeeded")
			}
		})
	}
}

// NewValues wrote with no owner check at all.
func TestNewValuesChecksOwner(t *testing.T) {
	for _, sc := range stores(t) {
		t.Run(sc.name, func(t *testing.T) {
			store, _ := sc.open(t, time.Hour)
			srv := newOwnerServer(store)
			ctx := t.Context()
			alice := srv.connect(t, "alice", "ALICE1")
			mustPut(t, alice, "k", "alice's", 0)

			v, err := replica.NewValues(store, "ALICE1")
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Set(ctx, "k", []byte("overwritten")); !errors.Is(err, replica.ErrNotOwner) {
				t.Errorf("NewValues Set into alice's session: err = %v, want %v", err, replica.ErrNotOwner)
			}
			if _, err := v.Update(ctx, "k", func([]byte, bool) ([]byte, error) { return []byte("overwritten"), nil }); !errors.Is(err, replica.ErrNotOwner) {
				t.Errorf("NewValues Update into alice's session: err = %v, want %v", err, replica.ErrNotOwner)
			}
			if err := v.Delete(ctx, "k"); !errors.Is(err, replica.ErrNotOwner) {
				t.Errorf("NewValues Delete in alice's session: err = %v, want %v", err, replica.ErrNotOwner)
			}
			if got, ok := get(t, alice, "k"); !ok || got != "alice's" {
				t.Errorf("alice's value = %q, %v; want unchanged", got, ok)
			}

			// A session first written through NewValues belongs to no
			// principal: none can claim it later.
			fresh, err := replica.NewValues(store, "SERVER1")
			if err != nil {
				t.Fatal(err)
			}
			if err := fresh.Set(ctx, "k", []byte("server's")); err != nil {
				t.Fatal(err)
			}
			bob := srv.connect(t, "bob", "SERVER1")
			if res := call(t, bob, "put", map[string]any{"key": "k", "value": "bob's"}); !res.IsError {
				t.Errorf("bob's write into a session without a principal succeeded")
			}
			if err := fresh.Set(ctx, "k", []byte("again")); err != nil {
				t.Errorf("NewValues writes again into its session: %v", err)
			}
		})
	}
}

// failCopyInto fails the first Copy into session to, as a replica that dies
// in the middle of a resume would leave it: the copy into the caller's
// session never happened.
type failCopyInto struct {
	replica.Store
	to     string
	failed atomic.Bool
}

func (f *failCopyInto) Copy(ctx context.Context, from, to string, ttl time.Duration) (int, error) {
	if to == f.to && f.failed.CompareAndSwap(false, true) {
		return 0, errors.New("replica died mid-resume")
	}
	return f.Store.Copy(ctx, from, to, ttl)
}

// A resume that fails between staging the old session and copying it into
// the caller's session leaves the caller's session without any of it and
// nothing staged; the client's next resume_session copies everything.
func TestResumeInterruptedIsRepairedByResumingAgain(t *testing.T) {
	for _, sc := range stores(t) {
		t.Run(sc.name, func(t *testing.T) {
			base, rdb := sc.open(t, time.Hour)
			store := &failCopyInto{Store: base, to: "ALICE2"}
			srv := newOwnerServer(store)
			old := srv.connect(t, "alice", "ALICE1")
			mustPut(t, old, "a", "1", 0)
			mustPut(t, old, "b", "2", 0)
			cur := srv.connect(t, "alice", "ALICE2")
			if res := resumeFrom(t, cur, "ALICE1"); !res.IsError || !strings.Contains(text(res), "replica died mid-resume") {
				t.Fatalf("interrupted resume = IsError %v, %q; want the copy's failure", res.IsError, text(res))
			}
			for _, k := range []string{"a", "b"} {
				if v, ok := get(t, cur, k); ok {
					t.Errorf("after the interrupted resume, %q = %q; want absent", k, v)
				}
			}
			checkNoStaging(t, rdb)
			res := resumeFrom(t, cur, "ALICE1")
			if res.IsError || !strings.Contains(text(res), `"keys_copied":2`) {
				t.Fatalf("resume again = IsError %v, %q; want resumed, 2 keys", res.IsError, text(res))
			}
			for k, want := range map[string]string{"a": "1", "b": "2"} {
				if v, ok := get(t, cur, k); !ok || v != want {
					t.Errorf("after resuming again, %q = %q, %v; want %q", k, v, ok, want)
				}
			}
		})
	}
}

// A session whose only state is the lineage Dedup recorded for an
// unauthenticated call is no one's to claim either.
func TestAnonymousLineageCannotBeClaimed(t *testing.T) {
	for _, sc := range stores(t) {
		t.Run(sc.name, func(t *testing.T) {
			store, _ := sc.open(t, time.Hour)
			srv := newOwnerServer(store)
			srv.server.AddReceivingMiddleware(replica.Dedup(store, 0))
			creator := srv.connect(t, anonymous, "ANON1")
			if _, err := creator.CallTool(t.Context(), &mcp.CallToolParams{Name: "get", Arguments: map[string]any{"key": "k"},
				Meta: mcp.Meta{resume.IdempotencyKeyMeta: "key-1"}}); err != nil {
				t.Fatal(err)
			}
			mallory := srv.connect(t, "mallory", "ANON1")
			if res := call(t, mallory, "put", map[string]any{"key": "k", "value": "v"}); !res.IsError || !strings.Contains(text(res), replica.ErrNotOwner.Error()) {
				t.Errorf("mallory's write into a session holding only its lineage = IsError %v, %q; want %v", res.IsError, text(res), replica.ErrNotOwner)
			}
		})
	}
}
