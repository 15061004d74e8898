package testserver

// The backends' tools. They keep their state in a [replica.Store] under the
// request's session ID, so that resume_session can carry it to a new session
// on another backend:
//
//   - increment_counter: adds one to the session's counter (not idempotent);
//   - get_counter: reads the counter (read-only);
//   - add_note {"note"}: appends a note (not idempotent);
//   - list_notes: reads the notes (read-only);
//   - slow_increment {"delay_ms"}: waits, then increments (not idempotent);
//   - get_server_info: the backend's instance name and the session ID;
//   - resume_session {"old_session_id"}: see [replica.AddTool].
//
// The resource [CounterURI] reads the counter and can be subscribed to.
// Without a session ID (stateless serving) the state lives under the string
// in the request's _meta key [MetaSessionKey], or under [StatelessSession]
// when the client sends none. They behave as examples/demotools, which
// examples/haserver serves: the test server keeps a copy of its own so that
// the examples stay self-contained code a user can copy.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume/replica"
)

// CounterURI is the resource that reads the session's counter as text. It
// can be subscribed to: every change of a counter notifies its subscribers
// on that backend.
const CounterURI = "test://counter"

// MetaSessionKey is the _meta key under which a client of a stateless
// cluster names the state its calls share. A go-sdk client keeps _meta keys
// it is given, so CallToolParams{Meta: mcp.Meta{MetaSessionKey: "alice"}}
// gives every call the state of "alice". Stateful backends ignore it: the
// session ID wins.
const MetaSessionKey = "session"

// StatelessSession is the key of the state shared by the stateless calls
// that name none with [MetaSessionKey].
const StatelessSession = "stateless"

// Store keys of the tools' state, under the session's (or the stateless
// key's) values.
const (
	CounterKey = "counter"
	NotesKey   = "notes"
)

// CounterResult is the structured answer of increment_counter, get_counter
// and slow_increment.
type CounterResult struct {
	Counter  int    `json:"counter"`
	Instance string `json:"instance"`
}

// NotesCountResult is the structured answer of add_note.
type NotesCountResult struct {
	NotesCount int    `json:"notes_count"`
	Instance   string `json:"instance"`
}

// NotesResult is the structured answer of list_notes.
type NotesResult struct {
	Notes    []string `json:"notes"`
	Instance string   `json:"instance"`
}

// ServerInfo is the structured answer of get_server_info. SessionID is
// empty on stateless backends.
type ServerInfo struct {
	Instance  string `json:"instance"`
	SessionID string `json:"session_id"`
}

// toolOptions configure [registerTools]. Store is required; the other
// fields may be zero.
type toolOptions struct {
	// Store keeps the tools' state.
	Store replica.Store

	// Instance names the server in every answer.
	Instance string

	// NoResumeTool leaves out resume_session, like a server that cannot
	// resume.
	NoResumeTool bool

	// Around, if set, runs each call of every tool but resume_session. It
	// must call next once, with the context the tool is to run under, and
	// return next's error. Nil runs the tools directly.
	Around func(ctx context.Context, tool string, next func(context.Context) error) error

	// Ran, if set, is called with the request when a tool's body has
	// completed, after its side effect. It may be called from many
	// goroutines.
	Ran func(tool string, req *mcp.CallToolRequest)
}

type noteInput struct {
	Note string `json:"note" jsonschema:"the note to append"`
}

type slowInput struct {
	DelayMS int `json:"delay_ms,omitempty" jsonschema:"milliseconds to wait before incrementing"`
}

// tools are the handlers registered on one server.
type tools struct {
	opts   toolOptions
	server *mcp.Server
}

// registerTools adds the tools and the counter resource to server. It
// returns an error, registering nothing, if server or opts.Store is nil. The
// tools are safe for concurrent use if the store is.
func registerTools(server *mcp.Server, opts toolOptions) error {
	if server == nil || opts.Store == nil {
		return errors.New("testserver: registerTools needs a server and a store")
	}
	t := &tools{opts: opts, server: server}
	addTool(t, &mcp.Tool{
		Name:        "increment_counter",
		Description: "Add one to this session's counter and return it.",
		Annotations: annotations(false, false),
	}, t.incrementCounter)
	addTool(t, &mcp.Tool{
		Name:        "get_counter",
		Description: "Return this session's counter.",
		Annotations: annotations(true, true),
	}, t.getCounter)
	addTool(t, &mcp.Tool{
		Name:        "add_note",
		Description: "Append a note to this session's notes and return how many there are.",
		Annotations: annotations(false, false),
	}, t.addNote)
	addTool(t, &mcp.Tool{
		Name:        "list_notes",
		Description: "Return this session's notes.",
		Annotations: annotations(true, true),
	}, t.listNotes)
	addTool(t, &mcp.Tool{
		Name:        "slow_increment",
		Description: "Wait delay_ms milliseconds, then add one to this session's counter.",
		Annotations: annotations(false, false),
	}, t.slowIncrement)
	addTool(t, &mcp.Tool{
		Name:        "get_server_info",
		Description: "Return the name of the server that answers and the session ID it sees.",
		Annotations: annotations(true, true),
	}, t.getServerInfo)
	server.AddResource(&mcp.Resource{
		URI:      CounterURI,
		Name:     "counter",
		MIMEType: "text/plain",
	}, t.readCounter)
	if !opts.NoResumeTool {
		replica.AddTool(server, opts.Store, &replica.ToolOptions{Instance: opts.Instance})
	}
	return nil
}

// addTool registers a tool whose handler runs inside opts.Around.
func addTool[In, Out any](t *tools, tool *mcp.Tool, h mcp.ToolHandlerFor[In, Out]) {
	name := tool.Name
	mcp.AddTool(t.server, tool, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
		if t.opts.Around == nil {
			return h(ctx, req, in)
		}
		var res *mcp.CallToolResult
		var out Out
		err := t.opts.Around(ctx, name, func(ctx context.Context) error {
			var err error
			res, out, err = h(ctx, req, in)
			return err
		})
		return res, out, err
	})
}

func annotations(readOnly, idempotent bool) *mcp.ToolAnnotations {
	no := false
	return &mcp.ToolAnnotations{
		ReadOnlyHint:    readOnly,
		IdempotentHint:  idempotent,
		DestructiveHint: &no,
		OpenWorldHint:   &no,
	}
}

func (t *tools) ran(tool string, req *mcp.CallToolRequest) {
	if t.opts.Ran != nil {
		t.opts.Ran(tool, req)
	}
}

// values returns the state the request works on: its session's (recording
// its principal as the owner), or without a session the one it names in
// _meta.
func (t *tools) values(req mcp.Request, meta mcp.Meta) (*replica.Values, error) {
	if req.GetSession().ID() != "" {
		return replica.SessionValues(t.opts.Store, req)
	}
	key := StatelessSession
	if s, ok := meta[MetaSessionKey].(string); ok && s != "" {
		key = s
	}
	return replica.NewValues(t.opts.Store, key)
}

func (t *tools) incrementCounter(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, CounterResult, error) {
	out, err := t.increment(ctx, req)
	if err != nil {
		return nil, CounterResult{}, err
	}
	t.ran("increment_counter", req)
	return nil, out, nil
}

func (t *tools) slowIncrement(ctx context.Context, req *mcp.CallToolRequest, in slowInput) (*mcp.CallToolResult, CounterResult, error) {
	timer := time.NewTimer(time.Duration(in.DelayMS) * time.Millisecond)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		return nil, CounterResult{}, fmt.Errorf("slow_increment interrupted before incrementing: %w", ctx.Err())
	}
	out, err := t.increment(ctx, req)
	if err != nil {
		return nil, CounterResult{}, err
	}
	t.ran("slow_increment", req)
	return nil, out, nil
}

// increment is the side effect of increment_counter and slow_increment.
func (t *tools) increment(ctx context.Context, req *mcp.CallToolRequest) (CounterResult, error) {
	v, err := t.values(req, req.Params.Meta)
	if err != nil {
		return CounterResult{}, err
	}
	n, err := replica.UpdateJSON(ctx, v, CounterKey, func(n int, _ bool) (int, error) { return n + 1, nil })
	if err != nil {
		return CounterResult{}, err
	}
	// A log line and a resource update give clients something to lose
	// across a reconnect: their log level and their subscriptions. Neither
	// can fail the call.
	//lint:ignore SA1019 logging is deprecated by 2026-07-28 but still served, and clients must restore its level.
	req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: t.opts.Instance, Data: fmt.Sprintf("counter is %d", n)})
	t.server.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: CounterURI})
	return CounterResult{Counter: n, Instance: t.opts.Instance}, nil
}

func (t *tools) getCounter(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, CounterResult, error) {
	v, err := t.values(req, req.Params.Meta)
	if err != nil {
		return nil, CounterResult{}, err
	}
	n, _, err := replica.GetJSON[int](ctx, v, CounterKey)
	if err != nil {
		return nil, CounterResult{}, err
	}
	t.ran("get_counter", req)
	return nil, CounterResult{Counter: n, Instance: t.opts.Instance}, nil
}

func (t *tools) addNote(ctx context.Context, req *mcp.CallToolRequest, in noteInput) (*mcp.CallToolResult, NotesCountResult, error) {
	v, err := t.values(req, req.Params.Meta)
	if err != nil {
		return nil, NotesCountResult{}, err
	}
	notes, err := replica.UpdateJSON(ctx, v, NotesKey, func(notes []string, _ bool) ([]string, error) {
		// A fresh slice each time: fn may run again and must not see its
		// own earlier append.
		return append(notes[:len(notes):len(notes)], in.Note), nil
	})
	if err != nil {
		return nil, NotesCountResult{}, err
	}
	t.ran("add_note", req)
	return nil, NotesCountResult{NotesCount: len(notes), Instance: t.opts.Instance}, nil
}

func (t *tools) listNotes(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, NotesResult, error) {
	v, err := t.values(req, req.Params.Meta)
	if err != nil {
		return nil, NotesResult{}, err
	}
	notes, _, err := replica.GetJSON[[]string](ctx, v, NotesKey)
	if err != nil {
		return nil, NotesResult{}, err
	}
	if notes == nil {
		notes = []string{} // the output schema wants an array, not null
	}
	t.ran("list_notes", req)
	return nil, NotesResult{Notes: notes, Instance: t.opts.Instance}, nil
}

func (t *tools) getServerInfo(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, ServerInfo, error) {
	t.ran("get_server_info", req)
	return nil, ServerInfo{Instance: t.opts.Instance, SessionID: req.Session.ID()}, nil
}

func (t *tools) readCounter(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	v, err := t.values(req, req.Params.Meta)
	if err != nil {
		return nil, err
	}
	n, _, err := replica.GetJSON[int](ctx, v, CounterKey)
	if err != nil {
		return nil, err
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{
		URI:      CounterURI,
		MIMEType: "text/plain",
		Text:     strconv.Itoa(n),
	}}}, nil
}
