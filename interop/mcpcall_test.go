//go:build interop

package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mcpcall runs the built examples/mcpcall and returns its exit code and
// output.
func mcpcall(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.mcpcall, append([]string{"-timeout", "45s"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("running mcpcall: %v", err)
	}
	t.Logf("mcpcall %q -> %d\nstdout: %s\nstderr: %s", args, code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

// callText returns the first text block of mcpcall's call output.
func callText(t *testing.T, stdout string) string {
	t.Helper()
	var out struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || len(out.Content) == 0 {
		t.Fatalf("call output %q: %v", stdout, err)
	}
	return out.Content[0].Text
}

// TestMcpcallEverything: mcpcall lists and calls server-everything's tools
// over each transport.
func TestMcpcallEverything(t *testing.T) {
	node := nodePath(t)
	abs, err := filepath.Abs(everythingPath())
	if err != nil {
		t.Fatal(err)
	}
	sse := everythingServer(t, "sse")
	streamable := everythingServer(t, "streamableHttp")
	for _, tc := range []struct {
		transport string
		server    []string
	}{
		{"stdio", []string{"-stdio", "'" + node + "' '" + abs + "' stdio"}},
		{"sse", []string{"-sse", sse.url()}},
		{"streamable", []string{"-url", streamable.url()}},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			start := time.Now()
			code, stdout, _ := mcpcall(t, append(tc.server, "tools")...)
			if code != 0 || !strings.Contains(stdout, `"name": "echo"`) {
				t.Errorf("tools: exit %d, want 0 and a list with echo", code)
			}
			code, stdout, _ = mcpcall(t, append(tc.server, "call", "echo", `{"message":"hi"}`)...)
			if code != 0 {
				t.Fatalf("call echo: exit %d, want 0", code)
			}
			if got := callText(t, stdout); got != "Echo: hi" {
				t.Errorf("call echo = %q, want %q", got, "Echo: hi")
			}
			code, _, _ = mcpcall(t, append(tc.server, "call", "get-sum", `{"a":"two"}`)...)
			if code != 1 {
				t.Errorf("call get-sum with bad arguments: exit %d, want 1 (tool error)", code)
			}
			report(t, "server-everything", tc.transport, "mcpcall", start, "")
		})
	}
}

// TestMcpcallSessionFileAcrossRestart: two mcpcall runs share a -session
// file, and the legacy-400 TS server is SIGKILLed and restarted between
// them: the second run resumes the first run's state, so the counter
// continues.
func TestMcpcallSessionFileAcrossRestart(t *testing.T) {
	for _, style := range []string{"legacy", "sse"} {
		t.Run(style, func(t *testing.T) {
			e := newEnv(t)
			s := tsServer(t, e, style)
			start := time.Now()
			file := filepath.Join(t.TempDir(), "session")
			code, stdout, _ := mcpcall(t, "-url", s.url(), "-session", file, "call", "increment")
			if code != 0 || callText(t, stdout) != "1" {
				t.Fatalf("first run: exit %d, output %q; want 0 and 1", code, stdout)
			}
			first, err := os.ReadFile(file)
			if err != nil || len(bytes.TrimSpace(first)) == 0 {
				t.Fatalf("session file after the first run: %q, %v", first, err)
			}
			s.restart()
			code, stdout, stderr := mcpcall(t, "-url", s.url(), "-session", file, "-v", "call", "increment")
			if code != 0 {
				t.Fatalf("second run: exit %d, want 0", code)
			}
			if got := callText(t, stdout); got != "2" {
				t.Errorf("second run: counter %s, want 2 (the first run's session resumed)", got)
			}
			if !strings.Contains(stderr, "resumed") {
				t.Errorf("second run's stderr does not report a resume:\n%s", stderr)
			}
			report(t, "ts-sdk-"+style, "streamable", "mcpcall-session-file-across-restart", start, "")
		})
	}
}

// TestMcpcallMcpGoPinned: mcp-go v1.2.1 gives sessions only when the
// protocol version is pinned; with -protocol-version and -session, the
// session's ID is recorded.
func TestMcpcallMcpGoPinned(t *testing.T) {
	e := newEnv(t)
	s := mcpgoServer(t, e, "stateful")
	start := time.Now()
	file := filepath.Join(t.TempDir(), "session")
	code, stdout, _ := mcpcall(t, "-url", s.url(), "-protocol-version", "2025-11-25", "-session", file, "call", "increment")
	if code != 0 || callText(t, stdout) != "1" {
		t.Fatalf("exit %d, output %q; want 0 and 1", code, stdout)
	}
	if b, err := os.ReadFile(file); err != nil || !strings.HasPrefix(string(b), "mcp-session-") {
		t.Errorf("session file = %q, %v; want mcp-go's session ID", b, err)
	}
	report(t, "mcp-go-stateful", "streamable", "mcpcall-protocol-version", start, "")
}
