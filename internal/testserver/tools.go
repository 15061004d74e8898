package testserver

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume/replica"
)

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
	err := registerTools(s, toolOptions{
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
