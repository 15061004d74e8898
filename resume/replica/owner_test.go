package replica

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/memstore"
)

// authServer serves resume_session and the "put" tool of resumeServer behind
// optional bearer-token authentication: a request with "Authorization:
// Bearer NAME" is the principal NAME (the token "anonymous" is valid but has
// no UserID); a request without the header is unauthenticated.
func authServer(t *testing.T, store Store) string {
	t.Helper()
	server := putServer(store, nil)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	verify := func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		info := &auth.TokenInfo{Expiration: time.Now().Add(time.Hour)}
		if token != "anonymous" {
			info.UserID = token
		}
		return info, nil
	}
	authed := auth.RequireBearerToken(verify, nil)(h)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			authed.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// connectAs connects as principal token; "" connects without a token.
func connectAs(t *testing.T, url, token string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	hc := &http.Client{}
	if token != "" {
		hc.Transport = bearer{token, http.DefaultTransport}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "resume-auth-client", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatalf("Connect as %q: %v", token, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func TestAddToolOwners(t *testing.T) {
	store := &copyCounter{Store: memstore.New(0)}
	url := authServer(t, store)
	alice := connectAs(t, url, "alice")
	callTool(t, alice, "put", map[string]any{"key": "a", "value": "1"})
	callTool(t, alice, "put", map[string]any{"key": "b", "value": "2"})
	if diff := cmp.Diff(map[string]string{"a": "1", "b": "2", OwnerKey: "alice"}, dump(t, store, alice.ID())); diff != "" {
		t.Fatalf("alice's session after two writes (-want +got):\n%s", diff)
	}
	// An unowned session, written without a token.
	open := connectAs(t, url, "")
	callTool(t, open, "put", map[string]any{"key": "x", "value": "9"})

	t.Run("refusals", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			caller   string // token; "" for none
			oldID    string
			wantText []string
		}{
			{"another principal", "bob", alice.ID(), []string{"refused, nothing copied", "another principal", alice.ID()}},
			{"no principal", "", alice.ID(), []string{"refused, nothing copied", "another principal", "carries no principal"}},
			{"token without a user ID", "anonymous", alice.ID(), []string{"refused, nothing copied", "carries no principal"}},
			{"malformed", "bob", "not a session id", []string{resume.ToolArg, "not allowed"}},
			{"glob star", "bob", alice.ID()[:4] + "*", []string{resume.ToolArg, `'*'`}},
			{"glob question mark", "bob", alice.ID()[:len(alice.ID())-1] + "?", []string{resume.ToolArg, `'?'`}},
			{"glob bracket", "bob", "[A-Z]*", []string{resume.ToolArg, `'['`}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cs := connectAs(t, url, tc.caller)
				before := store.copies.Load()
				res := callTool(t, cs, resume.ToolName, map[string]any{resume.ToolArg: tc.oldID})
				text := resultText(res)
				t.Logf("tool error: %s", text)
				if !res.IsError {
					t.Fatalf("IsError = false, want true; content %q", text)
				}
				for _, want := range tc.wantText {
					if !strings.Contains(text, want) {
						t.Errorf("error text %q does not contain %q", text, want)
					}
				}
				if strings.Contains(text, "alice") {
					t.Errorf("error text %q names the owner", text)
				}
				if n := store.copies.Load() - before; n != 0 {
					t.Errorf("store Copy calls = %d, want 0", n)
				}
				// Nothing but, at most, the owner record fixed for the
				// caller's own session.
				got := dump(t, store, cs.ID())
				if owner, ok := got[OwnerKey]; ok && owner != tokenUser(tc.caller) {
					t.Errorf("owner of the caller's session = %q, want %q", owner, tokenUser(tc.caller))
				}
				delete(got, OwnerKey)
				if len(got) != 0 {
					t.Errorf("caller's session after a refusal = %q, want no values", got)
				}
			})
		}
	})

	t.Run("owner resumes", func(t *testing.T) {
		again := connectAs(t, url, "alice")
		got := decodeResult(t, callTool(t, again, resume.ToolName, map[string]any{resume.ToolArg: alice.ID()}))
		if diff := cmp.Diff(resume.Result{Status: resume.StatusResumed, KeysCopied: 2}, got); diff != "" {
			t.Errorf("answer (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]string{"a": "1", "b": "2", OwnerKey: "alice"}, dump(t, store, again.ID())); diff != "" {
			t.Errorf("resumed session (-want +got):\n%s", diff)
		}
	})

	t.Run("session without a principal", func(t *testing.T) {
		// Anyone who holds its ID may copy it, and an authenticated caller
		// owns the result.
		bob := connectAs(t, url, "bob")
		got := decodeResult(t, callTool(t, bob, resume.ToolName, map[string]any{resume.ToolArg: open.ID()}))
		if diff := cmp.Diff(resume.Result{Status: resume.StatusResumed, KeysCopied: 1}, got); diff != "" {
			t.Errorf("answer (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]string{"x": "9", OwnerKey: "bob"}, dump(t, store, bob.ID())); diff != "" {
			t.Errorf("resumed session (-want +got):\n%s", diff)
		}
		anon := connectAs(t, url, "")
		if got := decodeResult(t, callTool(t, anon, resume.ToolName, map[string]any{resume.ToolArg: open.ID()})); got.Status != resume.StatusResumed || got.KeysCopied != 1 {
			t.Errorf("unauthenticated resume of an unowned session = %+v, want resumed, 1 key", got)
		}
		if diff := cmp.Diff(map[string]string{"x": "9", OwnerKey: ""}, dump(t, store, anon.ID())); diff != "" {
			t.Errorf("unauthenticated resumed session, owned by no principal (-want +got):\n%s", diff)
		}
	})

	t.Run("current session owned by another", func(t *testing.T) {
		// The store is shared with something that does not bind sessions
		// to principals, and recorded another owner for the caller's ID.
		carol := connectAs(t, url, "carol")
		mustSet(t, store, carol.ID(), OwnerKey, "mallory")
		before := store.copies.Load()
		res := callTool(t, carol, resume.ToolName, map[string]any{resume.ToolArg: open.ID()})
		if !res.IsError || !strings.Contains(resultText(res), "is not owned by the caller") {
			t.Errorf("answer = IsError %v, %q; want a refusal", res.IsError, resultText(res))
		}
		if n := store.copies.Load() - before; n != 0 {
			t.Errorf("store Copy calls = %d, want 0", n)
		}
		if diff := cmp.Diff(map[string]string{OwnerKey: "mallory"}, dump(t, store, carol.ID())); diff != "" {
			t.Errorf("caller's session (-want +got):\n%s", diff)
		}
	})
}

func TestValuesOwner(t *testing.T) {
	ctx := t.Context()
	store := memstore.New(0)
	alice := &Values{store: store, session: "S1", principal: "alice"}
	if err := alice.Set(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if got := decodeOwner([]byte(mustGet(t, store, "S1", OwnerKey))).Principal; got != "alice" {
		t.Errorf("owner = %q, want alice", got)
	}

	bob := &Values{store: store, session: "S1", principal: "bob"}
	nobody, err := NewValues(store, "S1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		write func() error
		want  error
	}{
		{"Set by another principal", func() error { return bob.Set(ctx, "k", []byte("bob")) }, ErrNotOwner},
		{"Update by another principal", func() error {
			_, err := bob.Update(ctx, "k", func([]byte, bool) ([]byte, error) { return []byte("bob"), nil })
			return err
		}, ErrNotOwner},
		{"Delete by another principal", func() error { return bob.Delete(ctx, "k") }, ErrNotOwner},
		{"Set of the owner key", func() error { return alice.Set(ctx, OwnerKey, []byte("bob")) }, ErrReservedKey},
		{"Set of the owner key without a principal", func() error { return nobody.Set(ctx, OwnerKey, []byte("bob")) }, ErrReservedKey},
		{"Update of the owner key", func() error {
			_, err := nobody.Update(ctx, OwnerKey, func([]byte, bool) ([]byte, error) { return []byte("bob"), nil })
			return err
		}, ErrReservedKey},
		{"Delete of the owner key", func() error { return nobody.Delete(ctx, OwnerKey) }, ErrReservedKey},
		{"Set of the lineage key", func() error { return alice.Set(ctx, LineageKey, []byte("S0")) }, ErrReservedKey},
		{"Set of another reserved key", func() error { return nobody.Set(ctx, ReservedPrefix+"anything", []byte("x")) }, ErrReservedKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.write(); !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
			if diff := cmp.Diff(map[string]string{"k": "v", OwnerKey: "alice"}, dump(t, store, "S1")); diff != "" {
				t.Errorf("session after a refused write (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOwnerRecordTTL(t *testing.T) {
	for _, tc := range []struct {
		name       string
		defaultTTL time.Duration
		valuesTTL  time.Duration
	}{
		{"store default", time.Hour, 0},
		{"shorter than the default", time.Hour, time.Minute},
		{"longer than the default", time.Minute, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				store := memstore.New(tc.defaultTTL)
				v := (&Values{store: store, session: "S1", principal: "alice"}).WithTTL(tc.valuesTTL)
				if err := v.Set(ctx, "k", []byte("v")); err != nil {
					t.Fatal(err)
				}
				lifetime := max(tc.defaultTTL, tc.valuesTTL)
				time.Sleep(lifetime)
				if diff := cmp.Diff([]string{OwnerKey}, keys(t, store, "S1")); diff != "" {
					t.Errorf("keys when the longest value TTL passed (-want +got):\n%s", diff)
				}
				// The record is extended with a grace of headroom, so that
				// steady writes do not rewrite it each time.
				time.Sleep(2 * ownerGrace)
				if got := keys(t, store, "S1"); len(got) != 0 {
					t.Errorf("keys after the grace = %q, want none", got)
				}
			})
		})
	}
}

func TestPrincipal(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  mcp.Request
		want string
	}{
		{"nil request", nil, ""},
		{"no extra", &mcp.CallToolRequest{}, ""},
		{"no token", &mcp.CallToolRequest{Extra: &mcp.RequestExtra{}}, ""},
		{"token without user", &mcp.CallToolRequest{Extra: &mcp.RequestExtra{TokenInfo: &auth.TokenInfo{}}}, ""},
		{"user", &mcp.CallToolRequest{Extra: &mcp.RequestExtra{TokenInfo: &auth.TokenInfo{UserID: "alice"}}}, "alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Principal(tc.req); got != tc.want {
				t.Errorf("Principal = %q, want %q", got, tc.want)
			}
		})
	}
}

// tokenUser is the UserID that authServer gives a token.
func tokenUser(token string) string {
	if token == "anonymous" {
		return ""
	}
	return token
}

func keys(t *testing.T, s Store, session string) []string {
	t.Helper()
	k, err := s.Keys(t.Context(), session)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fixOwner fixes a session's owner at creation, for the adopting handler:
// afterwards no other principal, and for a session created without one no
// principal at all, can write into it.
func TestFixOwner(t *testing.T) {
	ctx := t.Context()
	store := memstore.New(0)
	for _, tc := range []struct {
		session, creator, other string
	}{
		{"ANON", "", "alice"},
		{"ALICE", "alice", "bob"},
		{"ALICE2", "alice", ""},
	} {
		t.Run(tc.session, func(t *testing.T) {
			if err := fixOwner(ctx, store, tc.session, tc.creator); err != nil {
				t.Fatalf("fixOwner(%q): %v", tc.creator, err)
			}
			if err := fixOwner(ctx, store, tc.session, tc.creator); err != nil {
				t.Errorf("fixOwner(%q) again: %v", tc.creator, err)
			}
			if err := fixOwner(ctx, store, tc.session, tc.other); !errors.Is(err, ErrNotOwner) {
				t.Errorf("fixOwner(%q) after %q: err = %v, want %v", tc.other, tc.creator, err, ErrNotOwner)
			}
			other := &Values{store: store, session: tc.session, principal: tc.other}
			if err := other.Set(ctx, "k", []byte("v")); !errors.Is(err, ErrNotOwner) {
				t.Errorf("write for %q: err = %v, want %v", tc.other, err, ErrNotOwner)
			}
			creator := &Values{store: store, session: tc.session, principal: tc.creator}
			if err := creator.Set(ctx, "k", []byte("v")); err != nil {
				t.Errorf("write for the creator %q: %v", tc.creator, err)
			}
			if diff := cmp.Diff(map[string]string{"k": "v", OwnerKey: tc.creator}, dump(t, store, tc.session)); diff != "" {
				t.Errorf("session (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("store error", func(t *testing.T) {
		broken := &copyCounter{Store: failingStore{store}}
		if err := fixOwner(ctx, broken, "S9", "alice"); err == nil || !strings.Contains(err.Error(), "owner of session S9") {
			t.Errorf("fixOwner on a failing store: err = %v, want one naming the session's owner", err)
		}
	})
}

// failingStore fails every read.
type failingStore struct{ Store }

func (failingStore) Get(context.Context, string, string) ([]byte, bool, error) {
	return nil, false, errors.New("store down")
}
