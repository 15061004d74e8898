package testserver

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/mcpkit/resilience/resume"
	"github.com/modelcontextprotocol/go-sdk/mcp"
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

// Store keys of the tools' state.
const (
	counterKey = "counter"
	notesKey   = "notes"
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

type noteInput struct {
	Note string `json:"note" jsonschema:"the note to append"`
}

type slowInput struct {
	DelayMS int `json:"delay_ms,omitempty" jsonschema:"milliseconds to wait before incrementing"`
}

// tools are the handlers of one backend.
type tools struct {
	c *Cluster
	b *backend
}

// newMCPServer builds backend b's SDK server with every tool.
func (c *Cluster) newMCPServer(b *backend) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "testserver", Version: "1", Title: b.instance}, &mcp.ServerOptions{
		// Accepting subscriptions lets clients test that they restore them
		// after a reconnect. The SDK advertises logging by default.
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	t := &tools{c: c, b: b}
	addTool(t, s, &mcp.Tool{
		Name:        "increment_counter",
		Description: "Add one to this session's counter and return it.",
		Annotations: annotations(false, false),
	}, t.incrementCounter)
	addTool(t, s, &mcp.Tool{
		Name:        "get_counter",
		Description: "Return this session's counter.",
		Annotations: annotations(true, true),
	}, t.getCounter)
	addTool(t, s, &mcp.Tool{
		Name:        "add_note",
		Description: "Append a note to this session's notes and return how many there are.",
		Annotations: annotations(false, false),
	}, t.addNote)
	addTool(t, s, &mcp.Tool{
		Name:        "list_notes",
		Description: "Return this session's notes.",
		Annotations: annotations(true, true),
	}, t.listNotes)
	addTool(t, s, &mcp.Tool{
		Name:        "slow_increment",
		Description: "Wait delay_ms milliseconds, then add one to this session's counter.",
		Annotations: annotations(false, false),
	}, t.slowIncrement)
	addTool(t, s, &mcp.Tool{
		Name:        "get_server_info",
		Description: "Return the name of the backend that answers and the session ID it sees.",
		Annotations: annotations(true, true),
	}, t.getServerInfo)
	s.AddResource(&mcp.Resource{
		URI:      CounterURI,
		Name:     "counter",
		MIMEType: "text/plain",
	}, t.readCounter)
	if !c.opts.NoResumeTool {
		resume.AddTool(s, c.store, &resume.ToolOptions{Instance: b.instance})
	}
	return s
}

// addTool registers a tool whose handler runs with a context that a Kill of
// the backend cancels (the SDK detaches handlers from the HTTP request, so a
// dying listener alone would not stop them), and is counted by
// Cluster.Running while it runs.
func addTool[In, Out any](t *tools, s *mcp.Server, tool *mcp.Tool, h mcp.ToolHandlerFor[In, Out]) {
	name := tool.Name
	mcp.AddTool(s, tool, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(t.b.ctx, cancel)
		defer stop()
		t.c.running(name, 1)
		defer t.c.running(name, -1)
		return h(ctx, req, in)
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

// values returns the state the request works on: its session's, or on a
// stateless backend the one it names in _meta.
func (t *tools) values(ss *mcp.ServerSession, meta mcp.Meta) (*resume.Values, error) {
	key := ss.ID()
	if key == "" {
		key = StatelessSession
		if s, ok := meta[MetaSessionKey].(string); ok && s != "" {
			key = s
		}
	}
	return resume.NewValues(t.c.store, key)
}

func (t *tools) incrementCounter(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, CounterResult, error) {
	out, err := t.increment(ctx, req)
	if err != nil {
		return nil, CounterResult{}, err
	}
	t.c.ran("increment_counter")
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
	t.c.ran("slow_increment")
	return nil, out, nil
}

// increment is the side effect of increment_counter and slow_increment.
func (t *tools) increment(ctx context.Context, req *mcp.CallToolRequest) (CounterResult, error) {
	v, err := t.values(req.Session, req.Params.Meta)
	if err != nil {
		return CounterResult{}, err
	}
	n, err := resume.UpdateJSON(ctx, v, counterKey, func(n int, _ bool) (int, error) { return n + 1, nil })
	if err != nil {
		return CounterResult{}, err
	}
	// A log line and a resource update give clients something to lose
	// across a reconnect: their log level and their subscriptions. Neither
	// can fail the call.
	//lint:ignore SA1019 logging is deprecated by 2026-07-28 but still served, and clients must restore its level.
	req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: t.b.instance, Data: fmt.Sprintf("counter is %d", n)})
	t.b.server.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: CounterURI})
	return CounterResult{Counter: n, Instance: t.b.instance}, nil
}

func (t *tools) getCounter(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, CounterResult, error) {
	v, err := t.values(req.Session, req.Params.Meta)
	if err != nil {
		return nil, CounterResult{}, err
	}
	n, _, err := resume.GetJSON[int](ctx, v, counterKey)
	if err != nil {
		return nil, CounterResult{}, err
	}
	t.c.ran("get_counter")
	return nil, CounterResult{Counter: n, Instance: t.b.instance}, nil
}

func (t *tools) addNote(ctx context.Context, req *mcp.CallToolRequest, in noteInput) (*mcp.CallToolResult, NotesCountResult, error) {
	v, err := t.values(req.Session, req.Params.Meta)
	if err != nil {
		return nil, NotesCountResult{}, err
	}
	notes, err := resume.UpdateJSON(ctx, v, notesKey, func(notes []string, _ bool) ([]string, error) {
		// A fresh slice each time: fn may run again and must not see its
		// own earlier append.
		return append(notes[:len(notes):len(notes)], in.Note), nil
	})
	if err != nil {
		return nil, NotesCountResult{}, err
	}
	t.c.ran("add_note")
	return nil, NotesCountResult{NotesCount: len(notes), Instance: t.b.instance}, nil
}

func (t *tools) listNotes(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, NotesResult, error) {
	v, err := t.values(req.Session, req.Params.Meta)
	if err != nil {
		return nil, NotesResult{}, err
	}
	notes, _, err := resume.GetJSON[[]string](ctx, v, notesKey)
	if err != nil {
		return nil, NotesResult{}, err
	}
	if notes == nil {
		notes = []string{} // the output schema wants an array, not null
	}
	t.c.ran("list_notes")
	return nil, NotesResult{Notes: notes, Instance: t.b.instance}, nil
}

func (t *tools) getServerInfo(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, ServerInfo, error) {
	t.c.ran("get_server_info")
	return nil, ServerInfo{Instance: t.b.instance, SessionID: req.Session.ID()}, nil
}

func (t *tools) readCounter(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	v, err := t.values(req.Session, req.Params.Meta)
	if err != nil {
		return nil, err
	}
	n, _, err := resume.GetJSON[int](ctx, v, counterKey)
	if err != nil {
		return nil, err
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{
		URI:      CounterURI,
		MIMEType: "text/plain",
		Text:     strconv.Itoa(n),
	}}}, nil
}
