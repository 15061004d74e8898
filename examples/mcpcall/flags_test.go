package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/examples/demotools"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/memstore"
)

// demoServer is a go-sdk server with the demo tools, one per test.
func demoServer(t *testing.T) *mcp.Server {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "flags-test", Version: "1"}, nil)
	if err := demotools.Register(s, demotools.Options{Store: memstore.New(0), Instance: "flags"}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSessionFile: two runs sharing a -session file keep the server state
// of the session: the second run resumes the first run's session before
// its command, so the counter continues.
func TestSessionFile(t *testing.T) {
	cl := startCluster(t, nil)
	file := filepath.Join(t.TempDir(), "session")
	var ids []string
	for want := 1.0; want <= 2; want++ {
		code, stdout, _ := mcpcall(t, "-url", cl.URL(), "-timeout", timeout, "-session", file, "call", "increment_counter")
		if code != exitOK {
			t.Fatalf("run %v: exit %d, want 0", want, code)
		}
		if got := decodeCall(t, stdout).StructuredContent["counter"]; got != want {
			t.Errorf("run %v: counter %v, want %v (the state of the previous run's session)", want, got, want)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("run %v: the session file: %v", want, err)
		}
		id := strings.TrimSpace(string(b))
		if err := resume.ValidateSessionID(id); err != nil {
			t.Fatalf("run %v: session file holds %q: %v", want, b, err)
		}
		ids = append(ids, id)
	}
	if ids[0] == ids[1] {
		t.Errorf("both runs recorded session %s, want the second run's own new session", ids[0])
	}
}

func TestSessionFileUnreadable(t *testing.T) {
	cl := startCluster(t, nil)
	file := filepath.Join(t.TempDir(), "session")
	if err := os.WriteFile(file, []byte("not a session id!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := mcpcall(t, "-url", cl.URL(), "-timeout", timeout, "-session", file, "tools")
	if code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	wantContains(t, "stderr", stderr, "-session: ", "does not hold a session ID")
}

// TestHeader: -header reaches the server on every request (a bearer token).
func TestHeader(t *testing.T) {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return demoServer(t) }, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" || r.Header.Get("X-Tenant") != "blue" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	code, _, _ := mcpcall(t, "-url", srv.URL, "-timeout", timeout, "-header", "Authorization: Bearer s3cret", "-header", "x-tenant:blue", "call", "get_counter")
	if code != exitOK {
		t.Errorf("with the headers: exit %d, want 0", code)
	}
	code, _, stderr := mcpcall(t, "-url", srv.URL, "-timeout", timeout, "-attempts", "1", "call", "get_counter")
	if code != exitGaveUp {
		t.Errorf("without the headers: exit %d, want %d", code, exitGaveUp)
	}
	wantContains(t, "stderr", stderr, "Unauthorized")
}

// TestSSE: -sse talks the 2024-11-05 HTTP+SSE transport.
func TestSSE(t *testing.T) {
	srv := httptest.NewServer(mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return demoServer(t) }, nil))
	defer srv.Close()
	code, stdout, _ := mcpcall(t, "-sse", srv.URL, "-timeout", timeout, "call", "increment_counter")
	if code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	if got := decodeCall(t, stdout).StructuredContent["counter"]; got != 1.0 {
		t.Errorf("counter %v, want 1", got)
	}
}

// TestProtocolVersion: -protocol-version pins the version the session
// negotiates.
func TestProtocolVersion(t *testing.T) {
	cl := startCluster(t, nil)
	for _, v := range []string{"2025-06-18", "2025-11-25"} {
		code, _, stderr := mcpcall(t, "-url", cl.URL(), "-timeout", timeout, "-v", "-protocol-version", v, "tools")
		if code != exitOK {
			t.Errorf("-protocol-version %s: exit %d, want 0", v, code)
		}
		wantContains(t, "stderr", stderr, "protocol "+v)
	}
}

func TestNewFlagsUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"url and sse", []string{"-url", "http://127.0.0.1:1/mcp", "-sse", "http://127.0.0.1:1/sse", "tools"}, "-url and -sse both given"},
		{"sse not a URL", []string{"-sse", "127.0.0.1:1/sse", "tools"}, `-sse "127.0.0.1:1/sse": want an http:// or https:// URL`},
		{"header without colon", []string{"-url", "http://127.0.0.1:1/mcp", "-header", "Authorization Bearer x", "tools"}, "want 'Name: value'"},
		{"header empty name", []string{"-url", "http://127.0.0.1:1/mcp", "-header", ": x", "tools"}, "want 'Name: value'"},
		{"header with stdio", []string{"-stdio", "server", "-header", "A: b", "tools"}, "-header applies to -url and -sse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := mcpcall(t, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			wantContains(t, "stderr", stderr, tc.want)
		})
	}
}
