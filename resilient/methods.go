//lint:file-ignore SA1019 Client mirrors every method of *mcp.ClientSession, including the logging API that SEP-2577 deprecates, so that it stays a drop-in.

package resilient

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient/internal/engine"
	"github.com/mcpkit/resilience/resume"
)

// This file holds the methods of *mcp.ClientSession, each a thin shell over
// run (call.go). Each attempt gets its own copy of the params: the SDK
// writes into them (go-sdk v1.8.0 sets a nil CallToolParams.Arguments to an
// empty map and, under protocol 2026-07-28, adds protocolVersion,
// clientInfo and clientCapabilities to _meta), and a replay must not carry
// the old session's additions.

// CallTool calls a tool; see [mcp.ClientSession.CallTool]. A tool's own
// failure (a result with IsError) is a result, never retried. A call whose
// connection died after it was sent is replayed only when that cannot run
// it twice; otherwise the error matches [ErrOutcomeUnknown].
//
// A call to a server that deduplicates (it advertises
// [resume.DedupCapability], as replica.Dedup does) carries an idempotency
// key in _meta [resume.IdempotencyKeyMeta], the same on each of its
// replays: the caller's, when params.Meta already has one, else a fresh
// random one. Such a server returns the first execution's result to a
// replay, so these calls are replayed even when their outcome is unknown.
// Other servers would ignore the key, so none is added. params is not
// changed; a caller's key covers exactly the calls made with it.
func (c *Client) CallTool(ctx context.Context, params *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	if params == nil {
		return nil, errors.New("resilient: CallTool: params is nil")
	}
	key, ok, err := resume.IdempotencyKeyFrom(params.Meta)
	if err != nil {
		return nil, fmt.Errorf("resilient: CallTool: params.Meta: %w", err)
	}
	add := false // the key must be added to a copy of params.Meta
	if !ok && c.dedupNow() {
		key, add = resume.NewIdempotencyKey(), true
	}
	return run(ctx, c, op{method: engine.MethodCallTool, tool: params.Name, key: key},
		func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta) (*mcp.CallToolResult, error) {
			p := params
			// The SDK writes into the params: Arguments when nil, _meta
			// under 2026-07-28. Copy only then, or to add to _meta.
			if add || meta != nil || p.Arguments == nil || c.writesMeta {
				p = cloneParams(params)
				p.Meta = withMeta(p.Meta, meta)
			}
			if add {
				p.Meta = withMeta(p.Meta, mcp.Meta{resume.IdempotencyKeyMeta: key})
			}
			return cs.CallTool(ctx, p)
		})
}

// ListTools lists the server's tools; see [mcp.ClientSession.ListTools].
// The resume tool is left out unless Options.ShowResumeTool is set. The
// client remembers each tool's annotations for its replay decisions.
func (c *Client) ListTools(ctx context.Context, params *mcp.ListToolsParams) (*mcp.ListToolsResult, error) {
	res, err := run(ctx, c, op{method: "tools/list"}, func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta) (*mcp.ListToolsResult, error) {
		return cs.ListTools(ctx, sendable(c, params, meta))
	})
	if err != nil {
		return nil, err
	}
	c.learnTools(res.Tools)
	hidden := slices.IndexFunc(res.Tools, func(t *mcp.Tool) bool { return t != nil && t.Name == c.hiddenTool })
	if c.showResumeTool || hidden < 0 {
		return res, nil
	}
	if !c.writesMeta {
		// Before 2026-07-28 the SDK returns a result of the call's own:
		// filter it in place. Later, it may be the SDK's cached one.
		res.Tools = slices.Delete(res.Tools, hidden, hidden+1)
		return res, nil
	}
	out := *res
	out.Tools = make([]*mcp.Tool, 0, len(res.Tools))
	for _, t := range res.Tools {
		if t != nil && t.Name != c.hiddenTool {
			out.Tools = append(out.Tools, t)
		}
	}
	return &out, nil
}

// Tools iterates over every tool, page by page; see
// [mcp.ClientSession.Tools]. Each page is fetched through ListTools.
func (c *Client) Tools(ctx context.Context, params *mcp.ListToolsParams) iter.Seq2[*mcp.Tool, error] {
	return paginate(ctx, params, c.ListTools, func(r *mcp.ListToolsResult) ([]*mcp.Tool, string) { return r.Tools, r.NextCursor },
		func(p *mcp.ListToolsParams, cursor string) { p.Cursor = cursor })
}

// ListResources lists resources; see [mcp.ClientSession.ListResources].
func (c *Client) ListResources(ctx context.Context, params *mcp.ListResourcesParams) (*mcp.ListResourcesResult, error) {
	return run(ctx, c, op{method: "resources/list"}, func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta) (*mcp.ListResourcesResult, error) {
		return cs.ListResources(ctx, sendable(c, params, meta))
	})
}

// Resources iterates over every resource; see [mcp.ClientSession.Resources].
func (c *Client) Resources(ctx context.Context, params *mcp.ListResourcesParams) iter.Seq2[*mcp.Resource, error] {
	return paginate(ctx, params, c.ListResources, func(r *mcp.ListResourcesResult) ([]*mcp.Resource, string) { return r.Resources, r.NextCursor },
		func(p *mcp.ListResourcesParams, cursor string) { p.Cursor = cursor })
}

// ReadResource reads a resource; see [mcp.ClientSession.ReadResource].
func (c *Client) ReadResource(ctx context.Context, params *mcp.ReadResourceParams) (*mcp.ReadResourceResult, error) {
	return run(ctx, c, op{method: "resources/read"}, func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta) (*mcp.ReadResourceResult, error) {
		return cs.ReadResource(ctx, sendable(c, params, meta))
	})
}

// ListResourceTemplates lists resource templates; see
// [mcp.ClientSession.ListResourceTemplates].
func (c *Client) ListResourceTemplates(ctx context.Context, params *mcp.ListResourceTemplatesParams) (*mcp.ListResourceTemplatesResult, error) {
	return run(ctx, c, op{method: "resources/templates/list"}, func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta) (*mcp.ListResourceTemplatesResult, error) {
		return cs.ListResourceTemplates(ctx, sendable(c, params, meta))
	})
}

// ResourceTemplates iterates over every resource template; see
// [mcp.ClientSession.ResourceTemplates].
func (c *Client) ResourceTemplates(ctx context.Context, params *mcp.ListResourceTemplatesParams) iter.Seq2[*mcp.ResourceTemplate, error] {
	return paginate(ctx, params, c.ListResourceTemplates,
		func(r *mcp.ListResourceTemplatesResult) ([]*mcp.ResourceTemplate, string) {
			return r.ResourceTemplates, r.NextCursor
		},
		func(p *mcp.ListResourceTemplatesParams, cursor string) { p.Cursor = cursor })
}

// ListPrompts lists prompts; see [mcp.ClientSession.ListPrompts].
func (c *Client) ListPrompts(ctx context.Context, params *mcp.ListPromptsParams) (*mcp.ListPromptsResult, error) {
	return run(ctx, c, op{method: "prompts/list"}, func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta) (*mcp.ListPromptsResult, error) {
		return cs.ListPrompts(ctx, sendable(c, params, meta))
	})
}

// Prompts iterates over every prompt; see [mcp.ClientSession.Prompts].
func (c *Client) Prompts(ctx context.Context, params *mcp.ListPromptsParams) iter.Seq2[*mcp.Prompt, error] {
	return paginate(ctx, params, c.ListPrompts, func(r *mcp.ListPromptsResult) ([]*mcp.Prompt, string) { return r.Prompts, r.NextCursor },
		func(p *mcp.ListPromptsParams, cursor string) { p.Cursor = cursor })
}

// GetPrompt gets a prompt; see [mcp.ClientSession.GetPrompt].
func (c *Client) GetPrompt(ctx context.Context, params *mcp.GetPromptParams) (*mcp.GetPromptResult, error) {
	return run(ctx, c, op{method: "prompts/get"}, func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta) (*mcp.GetPromptResult, error) {
		return cs.GetPrompt(ctx, sendable(c, params, meta))
	})
}

// Complete asks for completions; see [mcp.ClientSession.Complete].
func (c *Client) Complete(ctx context.Context, params *mcp.CompleteParams) (*mcp.CompleteResult, error) {
	return run(ctx, c, op{method: "completion/complete"}, func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta) (*mcp.CompleteResult, error) {
		return cs.Complete(ctx, sendable(c, params, meta))
	})
}

// Ping pings the server; see [mcp.ClientSession.Ping].
func (c *Client) Ping(ctx context.Context, params *mcp.PingParams) error {
	return runErr(ctx, c, "ping", func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta) error {
		return cs.Ping(ctx, sendable(c, params, meta))
	})
}

// SetLoggingLevel sets the level of the server's log messages; see
// [mcp.ClientSession.SetLoggingLevel]. The client sets it again on every new
// session.
func (c *Client) SetLoggingLevel(ctx context.Context, params *mcp.SetLoggingLevelParams) error {
	if params == nil {
		return errors.New("resilient: SetLoggingLevel: params is nil")
	}
	err := runErr(ctx, c, "logging/setLevel", func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta) error {
		return cs.SetLoggingLevel(ctx, sendable(c, params, meta))
	})
	if err == nil {
		c.setLogLevel(params.Level)
	}
	return err
}

// Subscribe subscribes to a resource's updates; see
// [mcp.ClientSession.Subscribe]. The client subscribes again on every new
// session.
func (c *Client) Subscribe(ctx context.Context, params *mcp.SubscribeParams) error {
	if params == nil {
		return errors.New("resilient: Subscribe: params is nil")
	}
	err := runErr(ctx, c, "resources/subscribe", func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta) error {
		return cs.Subscribe(ctx, sendable(c, params, meta))
	})
	if err == nil {
		c.setSubscribed(params.URI, true)
	}
	return err
}

// Unsubscribe ends a subscription; see [mcp.ClientSession.Unsubscribe].
func (c *Client) Unsubscribe(ctx context.Context, params *mcp.UnsubscribeParams) error {
	if params == nil {
		return errors.New("resilient: Unsubscribe: params is nil")
	}
	// Forget it first: even if the call fails, a new session must not
	// subscribe again.
	c.setSubscribed(params.URI, false)
	return runErr(ctx, c, "resources/unsubscribe", func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta) error {
		return cs.Unsubscribe(ctx, sendable(c, params, meta))
	})
}

// NotifyProgress sends a progress notification on the current session; see
// [mcp.ClientSession.NotifyProgress]. Notifications are sent once, never
// retried: progress about a request is meaningless on another session.
func (c *Client) NotifyProgress(ctx context.Context, params *mcp.ProgressNotificationParams) error {
	cur, err := c.current()
	if err != nil {
		return err
	}
	return cur.cs.NotifyProgress(ctx, sendable(c, params, nil))
}

func runErr(ctx context.Context, c *Client, method string, f func(context.Context, *mcp.ClientSession, mcp.Meta) error) error {
	_, err := run(ctx, c, op{method: method}, func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta) (struct{}, error) {
		return struct{}{}, f(ctx, cs, meta)
	})
	return err
}

// sendable returns params as an attempt may send them: the SDK writes
// _meta into the params of every request under 2026-07-28, so then each
// attempt gets its own copy; under earlier versions it writes nothing but
// CallTool's Arguments (see CallTool), and params is sent as it is.
func sendable[P any, PP interface {
	*P
	mcp.Params
}](c *Client, p PP, meta mcp.Meta) PP {
	if meta != nil {
		// A hook adds to _meta (trace context): on a copy, never on the
		// caller's params.
		if p == nil {
			p = PP(new(P))
		} else {
			p = cloneParams(p)
		}
		p.SetMeta(withMeta(p.GetMeta(), meta))
		return p
	}
	if !c.writesMeta {
		return p
	}
	return cloneParams(p)
}

// withMeta returns m with the keys of add set (m is a copy of the
// caller's, or nil).
func withMeta(m, add mcp.Meta) mcp.Meta {
	if len(add) == 0 {
		return m
	}
	if m == nil {
		m = make(mcp.Meta, len(add))
	}
	maps.Copy(m, add)
	return m
}

// cloneParams returns a copy of p that the SDK may write into: a shallow
// copy of the struct with its own _meta map. Arguments are only read by the
// SDK (it marshals them), so they are shared.
func cloneParams[P any, PP interface {
	*P
	mcp.Params
}](p PP) PP {
	if p == nil {
		return nil
	}
	v := *p
	cp := PP(&v)
	if m := cp.GetMeta(); m != nil {
		cp.SetMeta(maps.Clone(m))
	}
	return cp
}

// paginate walks the pages of a list method, as the SDK's iterators do, but
// through the client's method so that each page is retried.
func paginate[P any, PP interface {
	*P
	mcp.Params
}, R any, T any](ctx context.Context, params PP, list func(context.Context, PP) (R, error), page func(R) ([]T, string), setCursor func(PP, string)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		// The pages are one call for the per-call overrides: claim them
		// once, for every page.
		ov, err := engine.TakeOverrides(ctx)
		if err != nil {
			var zero T
			yield(zero, fmt.Errorf("resilient: %w", err))
			return
		}
		ctx := context.WithValue(ctx, claimedKey{}, ov)
		p := cloneParams(params)
		if p == nil {
			p = PP(new(P))
		}
		for {
			res, err := list(ctx, p)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			items, next := page(res)
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			setCursor(p, next)
		}
	}
}

// claimedKey carries the per-call overrides that an iterator claimed for
// all its pages.
type claimedKey struct{}
