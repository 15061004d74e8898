package replica_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume/memstore"
	"github.com/mcpkit/resilience/resume/replica"
)

// FuzzResumeToolArguments calls resume_session with hostile arguments,
// as an authenticated principal (mallory) on a server where another
// principal (alice) has a session holding a secret. Whatever the
// arguments (VICTIM in them stands for alice's session ID), the call is
// answered without a server error, mallory's session never gets alice's
// secret, and alice's state is untouched. The seed corpus is in
// testdata/fuzz/FuzzResumeToolArguments.
func FuzzResumeToolArguments(f *testing.F) {
	store := memstore.New(0)
	srv := mcp.NewServer(&mcp.Implementation{Name: "fuzz", Version: "1"}, nil)
	type putIn struct {
		Text string `json:"text"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "put"}, func(ctx context.Context, req *mcp.CallToolRequest, in putIn) (*mcp.CallToolResult, struct{}, error) {
		v, err := replica.SessionValues(store, req)
		if err != nil {
			return nil, struct{}{}, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, struct{}{}, v.Set(ctx, "text", []byte(in.Text))
	})
	replica.AddTool(srv, store, nil)
	h := replica.NewHandler(func(*http.Request) *mcp.Server { return srv }, store, &replica.HandlerOptions{MaxSessionsPerClient: -1})
	f.Cleanup(func() { h.Close() })
	authed := auth.RequireBearerToken(func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		return &auth.TokenInfo{UserID: token, Expiration: time.Now().Add(time.Hour)}, nil
	}, nil)(h)

	post := func(session, token, body string) *httptest.ResponseRecorder {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", strings.NewReader(body))
		req.Host = "localhost"
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+token)
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		}
		w := httptest.NewRecorder()
		authed.ServeHTTP(w, req)
		return w
	}
	open := func(token string) string {
		w := post("", token, initializeBody)
		id := w.Header().Get("Mcp-Session-Id")
		if w.Code != http.StatusOK || id == "" {
			f.Fatalf("initialize as %s: %d %q", token, w.Code, w.Body.String())
		}
		if w := post(id, token, initializedBody); w.Code != http.StatusAccepted {
			f.Fatalf("notifications/initialized as %s: %d %q", token, w.Code, w.Body.String())
		}
		return id
	}
	alice := open("alice")
	if w := post(alice, "alice", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"put","arguments":{"text":"secret"}}}`); !strings.Contains(w.Body.String(), `"ok"`) {
		f.Fatalf("put as alice: %d %q", w.Code, w.Body.String())
	}
	mallory := open("mallory")
	ctx := context.Background()

	f.Add([]byte(`{"old_session_id":"VICTIM"}`))
	f.Fuzz(func(t *testing.T, args []byte) {
		args = bytes.ReplaceAll(args, []byte("VICTIM"), []byte(alice))
		var body bytes.Buffer
		body.WriteString(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"resume_session","arguments":`)
		body.Write(args)
		body.WriteString(`}}`)
		w := post(mallory, "mallory", body.String())
		if w.Code >= 500 {
			t.Errorf("status %d (%q)", w.Code, w.Body.String())
		}
		if v, ok, err := store.Get(ctx, mallory, "text"); err != nil || ok {
			t.Fatalf("mallory's session holds text %q (%v, %v) after resume_session(%s): %.300q", v, ok, err, args, w.Body.String())
		}
		if v, ok, err := store.Get(ctx, alice, "text"); err != nil || !ok || string(v) != "secret" {
			t.Fatalf("alice's text = %q, %v, %v after resume_session(%s), want secret", v, ok, err, args)
		}
	})
}
