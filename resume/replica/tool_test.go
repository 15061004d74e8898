package replica

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/memstore"
)

// copyCounter is a Store that counts Copy calls, to prove that a refused
// request never reaches the store's copy.
type copyCounter struct {
	Store
	copies atomic.Int32
	err    error // returned by Copy when set
}

func (c *copyCounter) Copy(ctx context.Context, from, to string, ttl time.Duration) (int, error) {
	c.copies.Add(1)
	if c.err != nil {
		return 0, c.err
	}
	return c.Store.Copy(ctx, from, to, ttl)
}

// resumeServer serves the resume_session tool and a "put" tool that writes
// into the caller's session, over stateful streamable HTTP on loopback.
func resumeServer(t *testing.T, store Store, opts *ToolOptions) string {
	t.Helper()
	server := putServer(store, opts)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

func connect(t *testing.T, url string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "resume-test-client", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func callTool(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("CallTool(%s): %v", name, err)
	}
	return res
}

func resultText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// decodeResult reads the answer from the structured content and checks that
// the text block says the same, as clients without structured content read
// the text.
func decodeResult(t *testing.T, res *mcp.CallToolResult) resume.Result {
	t.Helper()
	if res.IsError {
		t.Fatalf("resume_session: tool error %q", resultText(res))
	}
	raw, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	var structured, text resume.Result
	if err := json.Unmarshal(raw, &structured); err != nil {
		t.Fatalf("structured content %s: %v", raw, err)
	}
	if err := json.Unmarshal([]byte(resultText(res)), &text); err != nil {
		t.Fatalf("text content %q: %v", resultText(res), err)
	}
	if diff := cmp.Diff(structured, text); diff != "" {
		t.Errorf("text and structured content differ (-structured +text):\n%s", diff)
	}
	return structured
}

func TestAddTool(t *testing.T) {
	store := &copyCounter{Store: memstore.New(0)}
	url := resumeServer(t, store, &ToolOptions{Instance: "replica-1"})
	oldSession := connect(t, url)
	callTool(t, oldSession, "put", map[string]any{"key": "a", "value": "1"})
	callTool(t, oldSession, "put", map[string]any{"key": "b", "value": "2"})
	newSession := connect(t, url)
	callTool(t, newSession, "put", map[string]any{"key": "b", "value": "stale"})
	callTool(t, newSession, "put", map[string]any{"key": "c", "value": "3"})

	for _, tc := range []struct {
		name   string
		oldID  string
		want   resume.Result
		copies int32
	}{
		// Into a staging session, then from it.
		{"resumed", oldSession.ID(), resume.Result{Status: resume.StatusResumed, KeysCopied: 2, Instance: "replica-1"}, 2},
		{"resumed again", oldSession.ID(), resume.Result{Status: resume.StatusResumed, KeysCopied: 2, Instance: "replica-1"}, 2},
		{"same session", newSession.ID(), resume.Result{Status: resume.StatusSameSession, Instance: "replica-1"}, 0},
		{"not found", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", resume.Result{Status: resume.StatusNotFound, Instance: "replica-1"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := store.copies.Load()
			got := decodeResult(t, callTool(t, newSession, resume.ToolName, map[string]any{resume.ToolArg: tc.oldID}))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if n := store.copies.Load() - before; n != tc.copies {
				t.Errorf("store Copy calls = %d, want %d", n, tc.copies)
			}
			// The session was created without a principal: its owner
			// record says so, and stays the new session's own.
			want := map[string]string{"a": "1", "b": "2", "c": "3", OwnerKey: ""}
			if diff := cmp.Diff(want, dump(t, store, newSession.ID())); diff != "" {
				t.Errorf("state of the new session (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAddToolRejectsBadIDs(t *testing.T) {
	store := &copyCounter{Store: memstore.New(0)}
	url := resumeServer(t, store, nil)
	cs := connect(t, url)
	// Sessions a pattern would match, had the ID reached a pattern-matching
	// store.
	mustSet(t, store, "AB", "k", "v")
	mustSet(t, store, "ABC", "k", "v")
	mustSet(t, store, "a", "k", "v")
	mustSet(t, store, "mcpkit-dedup-0123", "k", "v")
	mustSet(t, store, "mcpkit-session-AB", "k", "v")

	for _, tc := range []struct {
		name     string
		args     map[string]any
		wantText []string // substrings of the tool error
	}{
		{"star", map[string]any{resume.ToolArg: "*"}, []string{resume.ToolArg, `"*"`, "not allowed"}},
		{"question mark", map[string]any{resume.ToolArg: "AB?"}, []string{resume.ToolArg, `"AB?"`, `'?'`}},
		{"colon", map[string]any{resume.ToolArg: "a:b"}, []string{resume.ToolArg, `"a:b"`, `':'`}},
		{"brackets", map[string]any{resume.ToolArg: "AB[C]"}, []string{resume.ToolArg, `'['`}},
		{"braces", map[string]any{resume.ToolArg: "{AB}"}, []string{resume.ToolArg, `'{'`}},
		{"space", map[string]any{resume.ToolArg: "AB C"}, []string{resume.ToolArg, `' '`}},
		{"newline", map[string]any{resume.ToolArg: "AB\n"}, []string{resume.ToolArg, `'\n'`}},
		{"non-ASCII", map[string]any{resume.ToolArg: "ABé"}, []string{resume.ToolArg, `'é'`}},
		{"empty", map[string]any{resume.ToolArg: ""}, []string{resume.ToolArg, "empty"}},
		{"200 characters", map[string]any{resume.ToolArg: strings.Repeat("A", 200)}, []string{resume.ToolArg, "200 bytes", "at most 128"}},
		{"missing", map[string]any{}, []string{resume.ToolArg}},
		{"not a string", map[string]any{resume.ToolArg: 42}, []string{resume.ToolArg}},
		{"a deduplication scope", map[string]any{resume.ToolArg: "mcpkit-dedup-0123"}, []string{resume.ToolArg, "reserved"}},
		{"an adopted session's record", map[string]any{resume.ToolArg: "mcpkit-session-AB"}, []string{resume.ToolArg, "reserved"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := callTool(t, cs, resume.ToolName, tc.args)
			if !res.IsError {
				t.Fatalf("IsError = false, want true; content %q", resultText(res))
			}
			text := resultText(res)
			t.Logf("tool error: %s", text)
			for _, want := range tc.wantText {
				if !strings.Contains(text, want) {
					t.Errorf("error text %q does not contain %q", text, want)
				}
			}
			if len(text) > 400 {
				t.Errorf("error text is %d bytes long, want a short message", len(text))
			}
			if n := store.copies.Load(); n != 0 {
				t.Errorf("store Copy calls = %d, want 0", n)
			}
			if keys, _ := store.Keys(t.Context(), cs.ID()); len(keys) != 0 {
				t.Errorf("keys of the session after a refused resume = %q, want none", keys)
			}
		})
	}
}

func TestAddToolStateless(t *testing.T) {
	store := &copyCounter{Store: memstore.New(0)}
	server := mcp.NewServer(&mcp.Implementation{Name: "resume-test", Version: "1"}, nil)
	AddTool(server, store, nil)
	// In-memory transports carry no session ID, like every stateless
	// transport.
	st, ct := mcp.NewInMemoryTransports()
	ss, err := server.Connect(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	res := callTool(t, cs, resume.ToolName, map[string]any{resume.ToolArg: "ABCDEF"})
	if !res.IsError || !strings.Contains(resultText(res), "resume_session needs a stateful session") {
		t.Errorf("answer = IsError %v, %q; want a tool error saying it needs a stateful session", res.IsError, resultText(res))
	}
	if n := store.copies.Load(); n != 0 {
		t.Errorf("store Copy calls = %d, want 0", n)
	}
}

func TestAddToolStoreError(t *testing.T) {
	errDown := errors.New("store is down")
	store := &copyCounter{Store: memstore.New(0), err: errDown}
	cs := connect(t, resumeServer(t, store, nil))
	res := callTool(t, cs, resume.ToolName, map[string]any{resume.ToolArg: "ABCDEF"})
	if !res.IsError || !strings.Contains(resultText(res), errDown.Error()) {
		t.Errorf("answer = IsError %v, %q; want a tool error with %q", res.IsError, resultText(res), errDown)
	}
}

func TestAddToolDefinition(t *testing.T) {
	cs := connect(t, resumeServer(t, memstore.New(0), nil))
	var tool *mcp.Tool
	for tl, err := range cs.Tools(t.Context(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		if tl.Name == resume.ToolName {
			tool = tl
		}
	}
	if tool == nil {
		t.Fatalf("tools/list has no %s", resume.ToolName)
	}
	if a := tool.Annotations; a == nil || a.ReadOnlyHint || !a.IdempotentHint {
		t.Errorf("annotations = %+v, want readOnlyHint false and idempotentHint true", a)
	}
	schema, err := json.Marshal(tool.InputSchema)
	if err != nil {
		t.Fatal(err)
	}
	var in struct {
		Properties map[string]struct {
			Type string `json:"type"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	if err := json.Unmarshal(schema, &in); err != nil {
		t.Fatal(err)
	}
	if p, ok := in.Properties[resume.ToolArg]; !ok || p.Type != "string" || len(in.Properties) != 1 {
		t.Errorf("input schema %s: want exactly one string property %q", schema, resume.ToolArg)
	}
	if diff := cmp.Diff([]string{resume.ToolArg}, in.Required); diff != "" {
		t.Errorf("required arguments (-want +got):\n%s", diff)
	}
	if tool.OutputSchema == nil {
		t.Error("no output schema, want one for the structured answer")
	}
}

// TestAddToolWithResumer checks that the client half understands the server
// half.
func TestAddToolWithResumer(t *testing.T) {
	store := memstore.New(0)
	url := resumeServer(t, store, &ToolOptions{Instance: "replica-1"})
	oldSession := connect(t, url)
	callTool(t, oldSession, "put", map[string]any{"key": "a", "value": "1"})
	newSession := connect(t, url)
	got, err := resume.Tool{}.Resume(t.Context(), newSession, oldSession.ID())
	if err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if diff := cmp.Diff(resume.Result{Status: resume.StatusResumed, KeysCopied: 1, Instance: "replica-1"}, got); diff != "" {
		t.Errorf("Resume (-want +got):\n%s", diff)
	}
}

func TestAddToolPanicsOnNil(t *testing.T) {
	server := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
	for _, tc := range []struct {
		name   string
		server *mcp.Server
		store  Store
	}{
		{"nil server", nil, memstore.New(0)},
		{"nil store", server, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("AddTool did not panic")
				}
			}()
			AddTool(tc.server, tc.store, nil)
		})
	}
}

// putServer is an MCP server with resume_session and a tool "put" that
// stores {"key","value"} in the caller's session.
func putServer(store Store, opts *ToolOptions) *mcp.Server {
	server := mcp.NewServer(&mcp.Implementation{Name: "resume-test", Version: "1"}, nil)
	AddTool(server, store, opts)
	type putIn struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	mcp.AddTool(server, &mcp.Tool{Name: "put"}, func(ctx context.Context, req *mcp.CallToolRequest, in putIn) (*mcp.CallToolResult, any, error) {
		v, err := SessionValues(store, req)
		if err != nil {
			return nil, nil, err
		}
		return nil, nil, v.Set(ctx, in.Key, []byte(in.Value))
	})
	return server
}
