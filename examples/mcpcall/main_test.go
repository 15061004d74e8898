package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/mcpkit/resilience/examples/demotools"
	"github.com/mcpkit/resilience/internal/testserver"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/memstore"
)

// stdioServerEnv makes the test binary a stdio server instead of running
// tests: "hang" one that never answers, anything else one that serves the
// demo tools.
const stdioServerEnv = "MCPCALL_TEST_STDIO_SERVER"

func TestMain(m *testing.M) {
	switch os.Getenv(stdioServerEnv) {
	case "":
		goleak.VerifyTestMain(m)
	case "hang":
		// A server that never answers, nor exits when its stdin closes
		// (bounded, in case nobody kills it).
		time.Sleep(30 * time.Second)
	default:
		s := mcp.NewServer(&mcp.Implementation{Name: "stdio-test", Version: "1"}, nil)
		err := demotools.Register(s, demotools.Options{Store: memstore.New(0), Instance: "stdio"})
		if err == nil {
			err = s.Run(context.Background(), &mcp.StdioTransport{})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "stdio server:", err)
			os.Exit(1)
		}
	}
}

// timeout is the -timeout of every run expected to end well before it.
const timeout = "20s"

func startCluster(t *testing.T, opts *testserver.Options) *testserver.Cluster {
	t.Helper()
	if opts == nil {
		opts = &testserver.Options{}
	}
	opts.Logf = t.Logf
	cl, err := testserver.Start(opts)
	if err != nil {
		t.Fatalf("testserver.Start: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// mcpcall runs the command in-process.
func mcpcall(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	t.Logf("mcpcall %q -> %d\nstdout: %s\nstderr: %s", args, code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

// callOutput is the documented shape of call's stdout.
type callOutput struct {
	IsError           bool              `json:"isError"`
	StructuredContent map[string]any    `json:"structuredContent"`
	Content           []json.RawMessage `json:"content"`
}

func decodeCall(t *testing.T, stdout string) callOutput {
	t.Helper()
	var out callOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("stdout is not a call result: %v", err)
	}
	return out
}

func wantCode(t *testing.T, got, want int) {
	t.Helper()
	if got != want {
		t.Fatalf("exit code: got %d, want %d", got, want)
	}
}

func wantContains(t *testing.T, name, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q", name, sub)
		}
	}
}

func TestTools(t *testing.T) {
	cl := startCluster(t, nil)
	code, stdout, stderr := mcpcall(t, "-url", cl.URL(), "-timeout", timeout, "tools")
	wantCode(t, code, exitOK)
	if stderr != "" {
		t.Errorf("stderr: got %q, want nothing", stderr)
	}
	var tools []struct {
		Name        string          `json:"name"`
		Description *string         `json:"description"`
		Annotations *map[string]any `json:"annotations"`
	}
	if err := json.Unmarshal([]byte(stdout), &tools); err != nil {
		t.Fatalf("stdout is not a tool list: %v", err)
	}
	byName := map[string]bool{}
	for _, tool := range tools {
		byName[tool.Name] = true
		if tool.Description == nil || *tool.Description == "" {
			t.Errorf("tool %s: no description", tool.Name)
		}
		if tool.Annotations == nil {
			t.Errorf("tool %s: no annotations", tool.Name)
		} else if tool.Name == "get_counter" && (*tool.Annotations)["readOnlyHint"] != true {
			t.Errorf("get_counter annotations: got %v, want readOnlyHint true", *tool.Annotations)
		}
	}
	for _, name := range []string{"increment_counter", "get_counter", "add_note", "list_notes", "slow_increment", "get_server_info"} {
		if !byName[name] {
			t.Errorf("tool %s missing from the list", name)
		}
	}
	if byName[resume.ToolName] {
		t.Errorf("%s is listed; want it hidden", resume.ToolName)
	}
}

func TestCallWithArgs(t *testing.T) {
	cl := startCluster(t, nil)
	code, stdout, stderr := mcpcall(t, "-url", cl.URL(), "-timeout", timeout, "call", "add_note", `{"note":"secret-note-text"}`)
	wantCode(t, code, exitOK)
	if stderr != "" {
		t.Errorf("stderr: got %q, want nothing (and never the arguments)", stderr)
	}
	out := decodeCall(t, stdout)
	if out.IsError {
		t.Errorf("isError: got true, want false")
	}
	if got := out.StructuredContent["notes_count"]; got != 1.0 {
		t.Errorf("structuredContent.notes_count: got %v, want 1", got)
	}
	if len(out.Content) == 0 {
		t.Errorf("content: got none, want the tool's text")
	}
}

func TestCallDefaultArgs(t *testing.T) {
	cl := startCluster(t, nil)
	code, stdout, _ := mcpcall(t, "-url", cl.URL(), "-timeout", timeout, "call", "get_counter")
	wantCode(t, code, exitOK)
	if got := decodeCall(t, stdout).StructuredContent["counter"]; got != 0.0 {
		t.Errorf("counter: got %v, want 0", got)
	}
}

func TestToolError(t *testing.T) {
	cl := startCluster(t, nil)
	// A note must be a string: the server's input validation fails the
	// tool, which is a result with isError, not a protocol error.
	code, stdout, stderr := mcpcall(t, "-url", cl.URL(), "-timeout", timeout, "call", "add_note", `{"note":5}`)
	wantCode(t, code, exitToolError)
	out := decodeCall(t, stdout)
	if !out.IsError {
		t.Errorf("isError: got false, want true")
	}
	if len(out.Content) == 0 {
		t.Errorf("content: got none, want the error text")
	}
	wantContains(t, "stderr", stderr, "isError")
	if got := cl.ToolRuns("add_note"); got != 0 {
		t.Errorf("add_note ran %d times, want 0", got)
	}
}

func TestUsageErrors(t *testing.T) {
	// Nothing listens here, and nothing must try: usage errors are found
	// before connecting.
	const url = "http://127.0.0.1:9/mcp"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", []string{"-url", url}, "no command"},
		{"unknown command", []string{"-url", url, "invoke"}, `unknown command "invoke"`},
		{"both servers", []string{"-url", url, "-stdio", "server", "tools"}, "-url and -stdio both given"},
		{"no server", []string{"tools"}, "no server"},
		{"bad JSON", []string{"-url", url, "call", "add_note", `{"note":`}, "not valid JSON"},
		{"args an array", []string{"-url", url, "call", "add_note", `["hi"]`}, "want a JSON object"},
		{"args null", []string{"-url", url, "call", "add_note", `null`}, "got null"},
		{"args trailing data", []string{"-url", url, "call", "add_note", `{} {}`}, "not valid JSON"},
		{"call without name", []string{"-url", url, "call"}, "call needs a tool name"},
		{"too many args", []string{"-url", url, "call", "add_note", "{}", "extra"}, "too many arguments"},
		{"flag after command", []string{"-url", url, "call", "get_counter", "{}", "-v"}, "flags go before it"},
		{"unknown flag", []string{"-url", url, "-retries", "3", "tools"}, "-retries"},
		{"bad url", []string{"-url", "127.0.0.1:8080", "tools"}, "want an http:// or https:// URL"},
		{"unbalanced quote", []string{"-stdio", "server 'arg", "tools"}, "unterminated ' quote"},
		{"attempts negative", []string{"-url", url, "-attempts", "-1", "tools"}, "-attempts -1: want 0 (no cap) or more"},
		{"timeout zero", []string{"-url", url, "-timeout", "0s", "tools"}, "-timeout 0s"},
		{"bad key", []string{"-url", url, "-key", "a b", "call", "increment_counter"}, "-key"},
		{"key with tools", []string{"-url", url, "-key", "k1", "tools"}, "apply to call only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := mcpcall(t, tt.args...)
			wantCode(t, code, exitUsage)
			if stdout != "" {
				t.Errorf("stdout: got %q, want nothing", stdout)
			}
			if !strings.HasPrefix(stderr, "mcpcall: ") {
				t.Errorf("stderr: got %q, want a line starting with \"mcpcall: \"", stderr)
			}
			first, _, _ := strings.Cut(stderr, "\n")
			wantContains(t, "first line of stderr", first, tt.want)
			wantContains(t, "stderr", stderr, "mcpcall -h")
		})
	}
}

func TestHelp(t *testing.T) {
	for _, flag := range []string{"-h", "-help"} {
		code, stdout, stderr := mcpcall(t, flag)
		wantCode(t, code, exitOK)
		if stdout != "" {
			t.Errorf("stdout: got %q, want nothing", stdout)
		}
		wantContains(t, "usage", stderr, "Usage:", "Examples:", "Exit codes:",
			"\n  0  success", "\n  1  the tool reported an error", "\n  2  usage error",
			"\n  3  outcome unknown", "\n  4  gave up",
			"-url", "-stdio", "-attempts", "-timeout", "-v", "-replay-unsafe", "-key")
	}
}

func TestOutcomeUnknown(t *testing.T) {
	cl := startCluster(t, nil)
	fault := testserver.Fault{Kind: testserver.DropAfterTool, Method: "tools/call", Tool: "increment_counter"}

	t.Run("not replayed", func(t *testing.T) {
		cl.Inject(fault)
		before := cl.ToolRuns("increment_counter")
		code, stdout, stderr := mcpcall(t, "-url", cl.URL(), "-timeout", timeout, "call", "increment_counter")
		wantCode(t, code, exitOutcomeUnknown)
		if stdout != "" {
			t.Errorf("stdout: got %q, want nothing", stdout)
		}
		wantContains(t, "stderr", stderr, "reconnecting…", "may or may not have run",
			"mcpcall: call increment_counter: ", "outcome unknown", "(it may have run: check the server's state before calling again)")
		if got := cl.ToolRuns("increment_counter") - before; got != 1 {
			t.Errorf("increment_counter ran %d times, want 1 (the dropped call, not replayed)", got)
		}
	})

	t.Run("replay-unsafe", func(t *testing.T) {
		cl.Inject(fault)
		before := cl.ToolRuns("increment_counter")
		code, stdout, stderr := mcpcall(t, "-url", cl.URL(), "-timeout", timeout, "-replay-unsafe", "call", "increment_counter")
		wantCode(t, code, exitOK)
		wantContains(t, "stderr", stderr, "reconnecting…", "reconnected (new session ", "resumed session ", "replaying tools/call increment_counter")
		// The dropped call ran, its replay ran again on the resumed state:
		// what -replay-unsafe warns about.
		if got := decodeCall(t, stdout).StructuredContent["counter"]; got != 2.0 {
			t.Errorf("counter: got %v, want 2", got)
		}
		if got := cl.ToolRuns("increment_counter") - before; got != 2 {
			t.Errorf("increment_counter ran %d times, want 2", got)
		}
	})
}

func TestSessionLostReplayed(t *testing.T) {
	cl := startCluster(t, nil)
	// A 404 for the call's own request proves it did not run: the client
	// reconnects, resumes and replays it without any flag.
	cl.Inject(testserver.Fault{Kind: testserver.NotFoundPlain, Method: "tools/call", Tool: "add_note"})
	code, stdout, stderr := mcpcall(t, "-url", cl.URL(), "-timeout", timeout, "call", "add_note", `{"note":"secret-note-text"}`)
	wantCode(t, code, exitOK)
	wantContains(t, "stderr", stderr, "lost (session_lost); reconnecting…", "reconnected (new session ",
		"nothing to resume for session ", "replaying tools/call add_note (session_lost)")
	if strings.Contains(stderr, "secret-note-text") {
		t.Errorf("stderr shows the tool's arguments without -v")
	}
	if got := decodeCall(t, stdout).StructuredContent["notes_count"]; got != 1.0 {
		t.Errorf("notes_count: got %v, want 1", got)
	}
}

func TestVerbose(t *testing.T) {
	cl := startCluster(t, nil)
	cl.Inject(testserver.Fault{Kind: testserver.NotFoundPlain, Method: "tools/call", Tool: "add_note"})
	code, _, stderr := mcpcall(t, "-url", cl.URL(), "-timeout", timeout, "-v", "call", "add_note", `{"note":"hi"}`)
	wantCode(t, code, exitOK)
	wantContains(t, "stderr", stderr, "connected to "+cl.URL(), `calling add_note with {"note":"hi"}`,
		"tools/call add_note attempt 1 failed (session_lost)", "done: 1 reconnect, 1 resume, 1 replay, 1 retry")
}

func TestIdempotencyKey(t *testing.T) {
	cl := startCluster(t, nil)
	code, _, _ := mcpcall(t, "-url", cl.URL(), "-timeout", timeout, "-key", "mcpcall-test.key:1", "call", "increment_counter")
	wantCode(t, code, exitOK)
	if got := cl.KeyRuns("mcpcall-test.key:1"); got != 1 {
		t.Errorf("runs under the key: got %d, want 1", got)
	}
}

func TestGaveUp(t *testing.T) {
	t.Run("nothing listens", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		url := "http://" + ln.Addr().String() + "/mcp"
		ln.Close()
		code, stdout, stderr := mcpcall(t, "-url", url, "-attempts", "1", "-timeout", "2s", "tools")
		wantCode(t, code, exitGaveUp)
		if stdout != "" {
			t.Errorf("stdout: got %q, want nothing", stdout)
		}
		wantContains(t, "stderr", stderr, "mcpcall: connecting to "+url+": ")
		if n := strings.Count(stderr, "\n"); n != 1 {
			t.Errorf("stderr has %d lines, want 1", n)
		}
	})

	t.Run("retries exhausted", func(t *testing.T) {
		cl := startCluster(t, nil)
		cl.Inject(testserver.Fault{Kind: testserver.Unavailable, Method: "tools/call", Count: 2})
		code, _, stderr := mcpcall(t, "-url", cl.URL(), "-attempts", "2", "-timeout", timeout, "call", "get_counter")
		wantCode(t, code, exitGaveUp)
		wantContains(t, "stderr", stderr, "mcpcall: call get_counter: ", "gave up after 2 attempt")
	})

	t.Run("timeout", func(t *testing.T) {
		cl := startCluster(t, nil)
		cl.Inject(testserver.Fault{Kind: testserver.Latency, Method: "tools/call", Delay: time.Second})
		code, _, stderr := mcpcall(t, "-url", cl.URL(), "-timeout", "200ms", "call", "increment_counter")
		wantCode(t, code, exitOutcomeUnknown)
		wantContains(t, "stderr", stderr, "timed out after 200ms (-timeout)", "it may have run")
	})

	t.Run("unknown tool", func(t *testing.T) {
		cl := startCluster(t, nil)
		code, _, stderr := mcpcall(t, "-url", cl.URL(), "-timeout", timeout, "call", "no_such_tool")
		wantCode(t, code, exitGaveUp)
		wantContains(t, "stderr", stderr, "mcpcall: call no_such_tool: ")
	})
}

func TestStdio(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("no path to the test binary: %v", err)
	}
	t.Setenv(stdioServerEnv, "1")
	code, stdout, _ := mcpcall(t, "-stdio", shellQuote(exe)+" -test.run='^$'", "-timeout", timeout, "call", "get_counter")
	wantCode(t, code, exitOK)
	out := decodeCall(t, stdout)
	if got := out.StructuredContent["instance"]; got != "stdio" {
		t.Errorf("instance: got %v, want stdio", got)
	}
	if got := out.StructuredContent["counter"]; got != 0.0 {
		t.Errorf("counter: got %v, want 0", got)
	}
}

func TestStdioServerHangs(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("no path to the test binary: %v", err)
	}
	t.Setenv(stdioServerEnv, "hang")
	start := time.Now()
	code, _, stderr := mcpcall(t, "-stdio", shellQuote(exe), "-timeout", "300ms", "tools")
	wantCode(t, code, exitGaveUp)
	wantContains(t, "stderr", stderr, "timed out after 300ms (-timeout)")
	// The SDK gives a stdio server 5s to exit after its stdin closes;
	// mcpcall kills it at the timeout instead.
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("mcpcall took %v with -timeout 300ms; want the server killed at the timeout", d)
	}
}

// shellQuote quotes s as one word for splitWords (and a POSIX shell).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
