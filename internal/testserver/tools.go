package testserver

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/examples/demotools"
	"github.com/mcpkit/resilience/resume/replica"
)

// The tools are those of examples/demotools, shared with examples/haserver;
// these names keep the cluster's API.

// CounterURI is the resource that reads the session's counter as text. It
// can be subscribed to: every change of a counter notifies its subscribers
// on that backend.
const CounterURI = demotools.CounterURI

// MetaSessionKey is the _meta key under which a client of a stateless
// cluster names the state its calls share. A go-sdk client keeps _meta keys
// it is given, so CallToolParams{Meta: mcp.Meta{MetaSessionKey: "alice"}}
// gives every call the state of "alice". Stateful backends ignore it: the
// session ID wins.
const MetaSessionKey = demotools.MetaSessionKey

// StatelessSession is the key of the state shared by the stateless calls
// that name none with [MetaSessionKey].
const StatelessSession = demotools.StatelessSession

// CounterResult is the structured answer of increment_counter, get_counter
// and slow_increment.
type CounterResult = demotools.CounterResult

// NotesCountResult is the structured answer of add_note.
type NotesCountResult = demotools.NotesCountResult

// NotesResult is the structured answer of list_notes.
type NotesResult = demotools.NotesResult

// ServerInfo is the structured answer of get_server_info. SessionID is
// empty on stateless backends.
type ServerInfo = demotools.ServerInfo

// newMCPServer builds backend b's SDK server with every tool.
func (c *Cluster) newMCPServer(b *backend) (*mcp.Server, error) {
	s := mcp.NewServer(&mcp.Implementation{Name: "testserver", Version: "1", Title: b.instance}, &mcp.ServerOptions{
		// Accepting subscriptions lets clients test that they restore them
		// after a reconnect. The SDK advertises logging by default.
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	if c.opts.Dedup {
		// Dedup runs under the backend's life, as it would in a real
		// process: a Kill cancels it together with the tools it guards.
		s.AddReceivingMiddleware(b.dieWith, replica.Dedup(c.store, 0))
	}
	err := demotools.Register(s, demotools.Options{
		Store:        c.store,
		Instance:     b.instance,
		NoResumeTool: c.opts.NoResumeTool,
		Around: func(ctx context.Context, tool string, next func(context.Context) error) error {
			return c.around(b, ctx, tool, next)
		},
		Ran: c.ran,
	})
	return s, err
}

// around runs a tool call with a context that a Kill of the backend cancels
// (the SDK detaches handlers from the HTTP request, so a dying listener
// alone would not stop them), counted by Cluster.Running while it runs.
func (c *Cluster) around(b *backend, ctx context.Context, tool string, next func(context.Context) error) error {
	ctx, cancel := b.bind(ctx)
	defer cancel()
	c.running(tool, 1)
	defer c.running(tool, -1)
	return next(ctx)
}

// dieWith is receiving middleware that cancels the request's context when
// backend b is killed.
func (b *backend) dieWith(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		ctx, cancel := b.bind(ctx)
		defer cancel()
		return next(ctx, method, req)
	}
}

// bind returns a context that ends with ctx or with backend b. Its Err
// reports b's death at once: context.AfterFunc propagates a cancellation
// on another goroutine, and in that gap a tool of a killed backend could
// still write to the store, or its failure could be taken for an answer,
// as no tool of a dead process can.
func (b *backend) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(b.ctx, cancel)
	return dying{Context: ctx, life: b.ctx}, func() { stop(); cancel() }
}

// dying is a context whose Err also reports the end of life.
type dying struct {
	context.Context
	life context.Context
}

func (d dying) Err() error {
	if err := d.life.Err(); err != nil {
		return err
	}
	return d.Context.Err()
}
