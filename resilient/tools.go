package resilient

import (
	"context"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"

	"github.com/mcpkit/resilience/resilient/internal/engine"
)

// Whether a tools/call that may have run is replayed depends on its tool's
// readOnlyHint and idempotentHint. The SDK's own tools cache is unexported
// (and filled only under 2026-07-28), so the client keeps its own: filled by
// the caller's ListTools and, when a decision needs a tool it does not
// know, by one listing of its own (every page) on the session the call
// failed on or the one that replaced it. That listing happens only on the
// failure path, once per session and per notifications/tools/list_changed,
// so a call that succeeds never pays for it; it is what lets a read be
// replayed on a server that adopts sessions (where a dropped connection
// keeps the session and nothing else would list the tools), on a kept
// session and on a stateless server alike.

type toolHints struct{ readOnly, idempotent bool }

// learned is a tool's hints and the count of list_changed notifications
// when they were listed: once another notification comes, they are stale.
type learned struct {
	toolHints
	changes uint64
}

// toolCache is the client's knowledge of the tools' annotations. It is
// safe for concurrent use.
type toolCache struct {
	mu    sync.Mutex
	hints map[string]learned
	// listed is the epoch of the client's last complete listing.
	listed epoch
	// changes counts notifications/tools/list_changed: each makes what
	// was listed before it stale.
	changes atomic.Uint64
	// fetching serialises the client's own listings, so that callers that
	// fail together list once.
	fetching sync.Mutex
}

// epoch names what a complete listing is valid for: one session, between
// two list_changed notifications.
type epoch struct{ gen, changes uint64 }

func newToolCache() *toolCache { return &toolCache{hints: map[string]learned{}} }

// learn records the annotations of tools the server listed when
// list_changed had come changes times.
func (tc *toolCache) learn(tools []*mcp.Tool, changes uint64) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for _, t := range tools {
		if t == nil {
			continue
		}
		var h toolHints
		if a := t.Annotations; a != nil {
			h = toolHints{readOnly: a.ReadOnlyHint, idempotent: a.IdempotentHint}
		}
		tc.hints[t.Name] = learned{toolHints: h, changes: changes}
	}
}

// lookup returns what is known of tool's annotations, and whether it is
// known and not made stale by a list_changed since it was learned.
func (tc *toolCache) lookup(tool string) (toolHints, bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	h, ok := tc.hints[tool]
	return h.toolHints, ok && h.changes == tc.changes.Load()
}

// watchListChanged makes notifications/tools/list_changed on client's
// sessions mark the cache stale. The middleware holds the cache weakly:
// a client that is gone costs the mcp.Client only a no-op in its chain.
func watchListChanged(client *mcp.Client, tc *toolCache) {
	wp := weak.Make(tc)
	client.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "notifications/tools/list_changed" {
				if tc := wp.Value(); tc != nil {
					tc.changes.Add(1)
				}
			}
			return next(ctx, method, req)
		}
	})
}

// learnTools records the annotations of tools the caller listed.
func (c *Client) learnTools(tools []*mcp.Tool) { c.tools.learn(tools, c.tools.changes.Load()) }

// hints returns what is known of tool's annotations, and whether it is
// current.
func (c *Client) hints(tool string) (toolHints, bool) { return c.tools.lookup(tool) }

// describe returns what is known of the call for a replay decision on
// session cur, for a call that started in the given lineage.
func (c *Client) describe(o op, cur *conn, lineage uint64) engine.Call {
	call := engine.Call{Method: o.method}
	if o.tool == "" {
		return call
	}
	h, _ := c.tools.lookup(o.tool)
	call.ReadOnly, call.Idempotent = h.readOnly, h.idempotent
	c.mu.Lock()
	sameLineage := c.lineage.Load() == lineage
	c.mu.Unlock()
	call.Dedup = o.key != "" && cur.dedup && (sameLineage || cur.dedupPerPrincipal)
	return call
}

// refreshTools lists every tool on cur to learn their annotations, at most
// once per session and list_changed, within ctx and the client's
// ConnectTimeout. An error leaves the cache as it was: a tool whose
// annotations are unknown is not replayed.
func (c *Client) refreshTools(ctx context.Context, cur *conn) {
	tc := c.tools
	tc.fetching.Lock()
	defer tc.fetching.Unlock()
	now := epoch{gen: cur.gen, changes: tc.changes.Load()}
	tc.mu.Lock()
	fresh := tc.listed == now
	tc.mu.Unlock()
	if fresh {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.connectTimeout)
	defer cancel()
	var tools []*mcp.Tool
	for t, err := range cur.cs.Tools(ctx, nil) {
		if err != nil {
			c.log.Debug("could not list tools to learn annotations", zap.Error(err))
			return
		}
		tools = append(tools, t)
	}
	tc.mu.Lock()
	// A complete listing replaces what was known: a tool gone from it has
	// no annotations any more.
	tc.hints, tc.listed = map[string]learned{}, now
	tc.mu.Unlock()
	tc.learn(tools, now.changes)
}
