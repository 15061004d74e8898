// Command mcpcall lists the tools of an MCP server or calls one, from a shell
// or a script, through a [resilient.Client]: when the server loses the
// session or the connection drops, mcpcall reconnects, resumes the session's
// state and replays the call when that cannot run it twice.
//
//	mcpcall -url http://127.0.0.1:8080/mcp tools
//	mcpcall -url http://127.0.0.1:8080/mcp call add_note '{"note":"hello"}'
//	mcpcall -stdio 'npx -y @modelcontextprotocol/server-everything' call echo '{"message":"hi"}'
//	mcpcall -sse http://127.0.0.1:3001/sse tools
//	mcpcall -url https://mcp.example.com/mcp -header 'Authorization: Bearer TOKEN' tools
//	mcpcall -url http://127.0.0.1:8080/mcp -session ~/.mcpcall-session call increment_counter
//
// # Commands
//
// "tools" prints the server's tools as a JSON array of
// {"name", "description", "annotations"} (the resume_session tool is
// infrastructure and is left out). "call NAME [ARGS]" calls tool NAME with
// ARGS, a JSON object (default {}), and prints
// {"isError", "structuredContent", "content"}: structuredContent only when the
// tool returned one, content always (an array of MCP content blocks).
//
// Every invocation opens a new session. Without -session, server-side state
// kept per session (the demo servers' counter and notes) starts afresh each
// time; with -session FILE, mcpcall records in FILE the session it ended on,
// and the next run with the same FILE resumes that session's state
// (resilient.Options.ResumeFrom, the server's resume_session tool) before
// its command, so consecutive runs keep the server's state.
//
// # Flags
//
// Flags go before the command. Exactly one of -url (a streamable HTTP
// endpoint), -sse (an endpoint of the 2024-11-05 HTTP+SSE transport) and
// -stdio (a command line, run as a stdio server and restarted on reconnect;
// '...', "..." and backslash quote as in a shell, nothing is expanded) names
// the server. -header 'Name: value' (repeatable) adds a header to every HTTP
// request, such as a bearer token; -protocol-version pins the MCP protocol
// version (some servers, mcp-go's among them, give sessions only under
// 2025-11-25); -session FILE keeps the session's state across runs (above).
// -attempts caps the sends of the call (default 0: no cap, the call is
// bounded by time); -timeout the whole command (default 60s).
// -replay-unsafe replays a call whose outcome is unknown even when the tool
// is not known to be idempotent (retry.Idempotent), so it may run twice; -key
// sets the call's idempotency key (in its _meta), which a server
// running replica.Dedup scopes per authenticated user, else per session: mcpcall
// sends no credentials, so a key repeated in a later run does not stop the
// call from running again. -v tells more on stderr.
//
// # Output
//
// stdout carries only the JSON result. stderr carries one line per thing
// the client did on its own: reconnects, resumes, replays and calls of unknown
// outcome (with -v also every failed attempt, breaker change and the call's
// arguments), the error, if any, on one line, and what a stdio server writes to
// its own stderr. Without -v tool arguments are never printed.
//
// # Exit codes
//
//	0  success
//	1  the tool reported an error (isError: true); the result is on stdout
//	2  usage error: bad flags, command, or ARGS not a JSON object
//	3  outcome unknown: the call was sent, and the connection died, -timeout
//	   ran out or an interrupt came before the answer; it was not replayed,
//	   and may or may not have run
//	4  gave up: the server could not be reached or refused the request,
//	   the attempts or -timeout ran out before the call could have run, or
//	   the circuit breaker is open
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/retry"
)

// The exit codes; see the package documentation.
const (
	exitOK             = 0
	exitToolError      = 1
	exitUsage          = 2
	exitOutcomeUnknown = 3
	exitGaveUp         = 4
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is the whole command: it parses args, talks to the server, writes
// the result to stdout and progress and errors to stderr, and returns the
// exit code. An interrupt (SIGINT, SIGTERM) ends it like a timeout, after
// closing the session.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errw := &lockedWriter{w: stderr}
	cfg, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(errw)
		return exitOK
	}
	if err != nil {
		errw.line("mcpcall: " + err.Error())
		errw.line("Run 'mcpcall -h' for usage.")
		return exitUsage
	}
	r := &runner{cfg: cfg, stdout: stdout, errw: errw, say: &narrator{w: errw, verbose: cfg.verbose}}
	return r.run(ctx)
}

// config is what the command line asks for.
type config struct {
	url, stdio   string
	sse          string
	argv         []string // -stdio split into words
	headers      headerList
	protocol     string
	sessionFile  string
	attempts     int
	timeout      time.Duration
	verbose      bool
	replayUnsafe bool
	key          string

	command string          // "tools" or "call"
	tool    string          // for call
	args    json.RawMessage // for call: a JSON object
}

// newFlagSet defines the flags on a fresh set that reports nothing itself:
// run prints the errors, and the usage on -h.
func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("mcpcall", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&cfg.url, "url", "", "`URL` of the server's streamable HTTP endpoint, e.g. http://127.0.0.1:8080/mcp")
	fs.StringVar(&cfg.sse, "sse", "", "`URL` of the server's SSE endpoint (the 2024-11-05 HTTP+SSE transport) instead of -url")
	fs.Var(&cfg.headers, "header", "add header `'Name: value'` to every HTTP request (repeatable), e.g. 'Authorization: Bearer TOKEN'")
	fs.StringVar(&cfg.protocol, "protocol-version", "", "pin the MCP protocol `VERSION`, e.g. 2025-11-25 (default: negotiate the newest)")
	fs.StringVar(&cfg.sessionFile, "session", "", "keep server state across runs: resume the session recorded in `FILE` (if any)\nbefore the command, and record the session this run ended on")
	fs.StringVar(&cfg.stdio, "stdio", "", "run `COMMAND` as a stdio server instead of -url (one string; '...', \"...\" and \\ quote\nas in a shell, nothing is expanded); it is restarted on reconnect")
	fs.IntVar(&cfg.attempts, "attempts", 0, "`N` attempts (sends) per call, the first included; 1 never sends twice; 0: no cap,\nthe call is bounded by -timeout")
	fs.DurationVar(&cfg.timeout, "timeout", 60*time.Second, "deadline for the whole command, connecting included")
	fs.BoolVar(&cfg.verbose, "v", false, "verbose: also every failed attempt, breaker change and full session IDs on stderr,\nand the call's arguments")
	fs.BoolVar(&cfg.replayUnsafe, "replay-unsafe", false, "replay the call even if it is not idempotent: when the connection dies after\nsending it, run it again (it may then run twice) instead of exiting 3")
	fs.StringVar(&cfg.key, "key", "", "idempotency `KEY` of the call instead of a fresh random one (A-Z a-z 0-9 - _ . :);\na deduplicating server (replica.Dedup) keeps keys per authenticated user, else per session,\nso without credentials a repeated key runs again in a later run")
	return fs
}

// parseArgs reads the command line. Its errors are usage errors, or
// flag.ErrHelp.
func parseArgs(args []string) (config, error) {
	var cfg config
	fs := newFlagSet(&cfg)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return cfg, errors.New("no command: want tools or call")
	}
	cfg.command = rest[0]
	switch cfg.command {
	case "tools":
		if len(rest) > 1 {
			return cfg, extraArgs("tools", rest[1:])
		}
		if cfg.replayUnsafe || cfg.key != "" {
			return cfg, fmt.Errorf("-replay-unsafe and -key apply to call only")
		}
	case "call":
		if len(rest) < 2 {
			return cfg, fmt.Errorf("call needs a tool name: call NAME [ARGS]")
		}
		if len(rest) > 3 {
			return cfg, extraArgs("call NAME ARGS", rest[3:])
		}
		cfg.tool = rest[1]
		if cfg.tool == "" {
			return cfg, fmt.Errorf("call needs a tool name: call NAME [ARGS]")
		}
		cfg.args = json.RawMessage("{}")
		if len(rest) == 3 {
			if err := checkObject(rest[2]); err != nil {
				return cfg, fmt.Errorf("ARGS of call %s: %v", cfg.tool, err)
			}
			cfg.args = json.RawMessage(rest[2])
		}
	default:
		return cfg, fmt.Errorf("unknown command %q: want tools or call", cfg.command)
	}

	var named []string
	for _, f := range []struct{ name, value string }{{"-url", cfg.url}, {"-sse", cfg.sse}, {"-stdio", cfg.stdio}} {
		if f.value != "" {
			named = append(named, f.name)
		}
	}
	switch {
	case len(named) > 1:
		return cfg, fmt.Errorf("%s both given: name the server with one of them", strings.Join(named, " and "))
	case len(named) == 0:
		return cfg, fmt.Errorf("no server: give -url URL, -sse URL or -stdio 'COMMAND ARGS'")
	case cfg.url != "" || cfg.sse != "":
		name, raw := "-url", cfg.url
		if cfg.sse != "" {
			name, raw = "-sse", cfg.sse
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, fmt.Errorf("%s %q: want an http:// or https:// URL", name, raw)
		}
	default:
		if len(cfg.headers) > 0 {
			return cfg, fmt.Errorf("-header applies to -url and -sse, not to a -stdio server")
		}
		argv, err := splitWords(cfg.stdio)
		if err != nil {
			return cfg, fmt.Errorf("-stdio %q: %v", cfg.stdio, err)
		}
		cfg.argv = argv
	}
	if cfg.attempts < 0 {
		return cfg, fmt.Errorf("-attempts %d: want 0 (no cap) or more", cfg.attempts)
	}
	if cfg.timeout <= 0 {
		return cfg, fmt.Errorf("-timeout %v: want a positive duration such as 30s", cfg.timeout)
	}
	if cfg.key != "" {
		if err := resume.ValidateIdempotencyKey(cfg.key); err != nil {
			return cfg, fmt.Errorf("-key: %v", err)
		}
	}
	return cfg, nil
}

// headerList is the repeatable -header flag.
type headerList []header

type header struct{ name, value string }

func (h *headerList) String() string {
	var parts []string
	for _, x := range *h {
		parts = append(parts, x.name+": "+x.value)
	}
	return strings.Join(parts, ", ")
}

// Set parses "Name: value". The value may be empty; the name must be a
// valid header name.
func (h *headerList) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") {
		return fmt.Errorf("want 'Name: value', got %q", s)
	}
	value = strings.TrimSpace(value)
	if strings.ContainsAny(value, "\r\n") {
		return fmt.Errorf("header %s: the value has a line break", name)
	}
	*h = append(*h, header{http.CanonicalHeaderKey(name), value})
	return nil
}

// headerTransport adds the -header headers to every request.
type headerTransport struct {
	headers headerList
	next    http.RoundTripper
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for _, h := range t.headers {
		req.Header.Set(h.name, h.value)
	}
	return t.next.RoundTrip(req)
}

// extraArgs explains arguments left after a command; the usual cause is a
// flag written after it, where the flag package stops looking.
func extraArgs(command string, extra []string) error {
	for _, a := range extra {
		if strings.HasPrefix(a, "-") {
			return fmt.Errorf("flag %s after the command: flags go before it", a)
		}
	}
	return fmt.Errorf("too many arguments after %s: %q", command, extra)
}

// checkObject reports why s is not one JSON object.
func checkObject(s string) error {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return fmt.Errorf("not valid JSON: %v", err)
	}
	switch v.(type) {
	case map[string]any:
		return nil
	case []any:
		return errors.New("want a JSON object such as {\"note\":\"hi\"}, got an array")
	case string:
		return errors.New("want a JSON object such as {\"note\":\"hi\"}, got a string")
	case float64:
		return errors.New("want a JSON object such as {\"note\":\"hi\"}, got a number")
	case bool:
		return errors.New("want a JSON object such as {\"note\":\"hi\"}, got a boolean")
	default:
		return errors.New("want a JSON object such as {\"note\":\"hi\"}, got null")
	}
}

// printUsage writes the help of -h.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  mcpcall (-url URL | -sse URL | -stdio COMMAND) [flags] tools
  mcpcall (-url URL | -sse URL | -stdio COMMAND) [flags] call NAME [ARGS]

mcpcall talks to an MCP server through a resilient client: when the server
loses the session or the connection drops, it reconnects, resumes the
session's state, and replays the call when that cannot run it twice.

Commands:
  tools            print the tools as a JSON array of
                   {"name", "description", "annotations"}
  call NAME [ARGS] call tool NAME with ARGS, a JSON object (default {}), and
                   print {"isError", "structuredContent", "content"}
                   (structuredContent only when the tool returned one)

Each run opens a new session; with -session FILE it first resumes the state
of the session the previous run with FILE ended on. stdout carries only the JSON result; stderr
tells reconnects, resumes, replays and errors. Tool arguments appear only
with -v.

Flags (before the command):
`)
	var cfg config
	fs := newFlagSet(&cfg)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, `
Examples:
  mcpcall -url http://127.0.0.1:8080/mcp tools
  mcpcall -url http://127.0.0.1:8080/mcp call add_note '{"note":"hello"}'
  mcpcall -url http://127.0.0.1:8080/mcp -replay-unsafe call increment_counter
  mcpcall -url http://127.0.0.1:8080/mcp -attempts 1 -timeout 5s call get_counter
  mcpcall -stdio 'npx -y @modelcontextprotocol/server-everything' -v tools
  mcpcall -sse http://127.0.0.1:3001/sse call echo '{"message":"hi"}'
  mcpcall -url http://127.0.0.1:8080/mcp -header 'Authorization: Bearer TOKEN' tools
  mcpcall -url http://127.0.0.1:8080/mcp -session state.txt call increment_counter

Exit codes:
  0  success
  1  the tool reported an error (isError: true); the result is on stdout
  2  usage error: bad flags, command, or ARGS not a JSON object
  3  outcome unknown: the call was sent, and the connection died, -timeout
     ran out or an interrupt came before the answer; it was not replayed,
     and may or may not have run (check the server's state before calling
     again; see -replay-unsafe)
  4  gave up: the server could not be reached or refused the request, the
     attempts or -timeout ran out before the call could have run, or the
     circuit breaker is open
`)
}

// runner carries out one parsed command line.
type runner struct {
	cfg    config
	stdout io.Writer
	errw   *lockedWriter
	say    *narrator
}

func (r *runner) run(parent context.Context) int {
	ctx, cancel := context.WithTimeout(parent, r.cfg.timeout)
	defer cancel()

	// A client of our own, so that closing its idle connections at the end
	// leaves no goroutine behind (http.DefaultClient's would linger).
	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()
	hc := &http.Client{Transport: base}
	if len(r.cfg.headers) > 0 {
		hc.Transport = &headerTransport{headers: r.cfg.headers, next: base}
	}
	var server string
	var newTransport resilient.TransportFactory
	switch {
	case r.cfg.stdio != "":
		server = r.cfg.stdio
		// Many stdio servers (server-everything among them) do not exit
		// when their stdin closes: do not wait the SDK's 5s for each.
		newTransport = resilient.CommandTransport(func() *exec.Cmd { return r.newCmd(ctx) }, stdioTerminate)
	case r.cfg.sse != "":
		server = r.cfg.sse
		newTransport = resilient.SSE(r.cfg.sse, hc)
	default:
		server = r.cfg.url
		newTransport = resilient.StreamableHTTP(r.cfg.url, hc)
	}
	opts := &resilient.Options{
		Retry:   retry.Policy{MaxAttempts: r.cfg.attempts},
		OnEvent: r.say.event,
	}
	if r.cfg.protocol != "" {
		opts.SessionOptions = &mcp.ClientSessionOptions{ProtocolVersion: r.cfg.protocol}
	}
	if r.cfg.sessionFile != "" {
		id, err := readSessionFile(r.cfg.sessionFile)
		if err != nil {
			r.errw.line("mcpcall: -session: " + oneLine(err))
			return exitUsage
		}
		opts.ResumeFrom = id
		if r.cfg.verbose && id != "" {
			r.say.say("resuming session %s recorded in %s", id, r.cfg.sessionFile)
		}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpcall", Version: "1"}, nil)
	c, err := resilient.Connect(ctx, client, newTransport, opts)
	if err != nil {
		return r.fail(parent, ctx, "connecting to "+server, err)
	}
	if r.cfg.verbose {
		ir := c.InitializeResult()
		id := c.ID()
		if id == "" {
			id = "(none)"
		}
		r.say.say("connected to %s: session %s, server %s %s, protocol %s",
			server, id, ir.ServerInfo.Name, ir.ServerInfo.Version, ir.ProtocolVersion)
	}

	var code int
	switch r.cfg.command {
	case "tools":
		code = r.tools(parent, ctx, c)
	case "call":
		code = r.call(parent, ctx, c)
	}

	if r.cfg.sessionFile != "" {
		r.recordSession(c.ID())
	}

	// Close waits for the client's goroutines (and a stdio server's exit),
	// so nothing writes to stderr once run has returned.
	closeErr := c.Close()
	if r.cfg.verbose {
		s := c.Stats()
		r.say.say("done: %s, %s, %s, %s", plural(s.Reconnects, "reconnect", "reconnects"),
			plural(s.Resumes, "resume", "resumes"), plural(s.Replays, "replay", "replays"), plural(s.Retries, "retry", "retries"))
		if closeErr != nil {
			r.say.say("closing the session: %v", oneLine(closeErr))
		}
	}
	return code
}

// stdioTerminate is how long closing a stdio server's session waits, after
// closing its stdin, before the SDK sends it SIGTERM.
const stdioTerminate = 500 * time.Millisecond

// readSessionFile returns the session ID recorded in path: "" when the file
// does not exist yet (a first run).
func readSessionFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(b))
	if err := resume.ValidateSessionID(id); id != "" && err != nil {
		return "", fmt.Errorf("%s does not hold a session ID: %v", path, err)
	}
	return id, nil
}

// recordSession writes the session this run ended on to the -session file,
// for the next run to resume. A server without sessions (stateless, stdio,
// SSE) leaves nothing to record: the file is left as it is.
func (r *runner) recordSession(id string) {
	if id == "" {
		r.say.say("no session ID to record in %s: the server keeps no sessions", r.cfg.sessionFile)
		return
	}
	if err := os.WriteFile(r.cfg.sessionFile, []byte(id+"\n"), 0o600); err != nil {
		r.errw.line("mcpcall: -session: recording the session: " + oneLine(err))
	}
}

// newCmd makes the stdio server's process; a reconnect makes another.
// ctx kills it at the -timeout or an interrupt: closing a session waits
// seconds for a server that does not exit when its stdin closes.
func (r *runner) newCmd(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.cfg.argv[0], r.cfg.argv[1:]...)
	// The server's own complaints are worth seeing; they share stderr with
	// the progress lines.
	cmd.Stderr = r.errw
	// Do not let a grandchild that keeps stderr open hold Close forever.
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// tools prints the tool list.
func (r *runner) tools(parent, ctx context.Context, c *resilient.Client) int {
	type tool struct {
		Name        string               `json:"name"`
		Description string               `json:"description"`
		Annotations *mcp.ToolAnnotations `json:"annotations"`
	}
	list := []tool{}
	for t, err := range c.Tools(ctx, nil) {
		if err != nil {
			return r.fail(parent, ctx, "tools/list", err)
		}
		list = append(list, tool{Name: t.Name, Description: t.Description, Annotations: t.Annotations})
	}
	return r.print(list, exitOK)
}

// call calls the tool and prints its result.
func (r *runner) call(parent, ctx context.Context, c *resilient.Client) int {
	if r.cfg.replayUnsafe {
		ctx = retry.Idempotent(ctx)
	}
	if r.cfg.verbose {
		r.say.say("calling %s with %s", r.cfg.tool, compact(r.cfg.args))
	}
	params := &mcp.CallToolParams{Name: r.cfg.tool, Arguments: r.cfg.args}
	if r.cfg.key != "" {
		params.Meta = mcp.Meta{resume.IdempotencyKeyMeta: r.cfg.key}
	}
	res, err := c.CallTool(ctx, params)
	if err != nil {
		return r.fail(parent, ctx, "call "+r.cfg.tool, err)
	}
	out := struct {
		IsError           bool          `json:"isError"`
		StructuredContent any           `json:"structuredContent,omitempty"`
		Content           []mcp.Content `json:"content"`
	}{res.IsError, res.StructuredContent, res.Content}
	if out.Content == nil {
		out.Content = []mcp.Content{}
	}
	code := exitOK
	if res.IsError {
		code = exitToolError
		r.say.say("tool %s reported an error (isError: true)", r.cfg.tool)
	}
	return r.print(out, code)
}

// print writes v as indented JSON on stdout and returns code, or
// exitGaveUp if stdout cannot take it.
func (r *runner) print(v any, code int) int {
	enc := json.NewEncoder(r.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		r.errw.line("mcpcall: writing the result: " + oneLine(err))
		return exitGaveUp
	}
	return code
}

// fail prints err on one line, naming what failed, and returns its exit
// code. parent is run's context (cancelled by an interrupt), ctx the one
// bounded by -timeout.
func (r *runner) fail(parent, ctx context.Context, what string, err error) int {
	code, msg := exitGaveUp, oneLine(err)
	unknown := errors.Is(err, resilient.ErrOutcomeUnknown)
	if unknown {
		code = exitOutcomeUnknown
	}
	switch {
	case parent.Err() != nil:
		msg = "interrupted"
	case ctx.Err() != nil:
		// The deadline is the cause even when the error is another: a
		// stdio server killed at the deadline shows as a closed connection.
		t := fmt.Sprintf("timed out after %v (-timeout)", r.cfg.timeout)
		if !errors.Is(err, context.DeadlineExceeded) {
			t += ": " + msg
		}
		msg = t
	}
	if unknown {
		// The library says so only when the call may have run and is not
		// harmless to repeat: a call cut short before it was sent, or a
		// read, is not reported as unknown.
		msg += " (it may have run: check the server's state before calling again)"
	}
	r.errw.line("mcpcall: " + what + ": " + msg)
	return code
}

// compact returns a JSON text on one line, for -v.
func compact(raw json.RawMessage) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(raw); err != nil {
		return string(raw)
	}
	return strings.TrimSpace(b.String())
}
