//lint:file-ignore SA1019 Client mirrors every method of *mcp.ClientSession, including the logging API that SEP-2577 deprecates, so that it stays a drop-in.

package resilient

import (
	"context"
	"maps"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"

	"github.com/mcpkit/resilience/resilient/internal/engine"
)

// sessionState is what the server keeps per session and loses with it,
// which the client re-applies after a reconnect (research §7). Roots,
// handlers and middleware live on the mcp.Client and carry over by
// themselves.
type sessionState struct {
	logLevel mcp.LoggingLevel    // last level set; "" when never set
	subs     map[string]struct{} // subscribed resource URIs
}

func (c *Client) setLogLevel(level mcp.LoggingLevel) {
	c.mu.Lock()
	c.state.logLevel = level
	c.mu.Unlock()
}

func (c *Client) setSubscribed(uri string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on {
		if c.state.subs == nil {
			c.state.subs = map[string]struct{}{}
		}
		c.state.subs[uri] = struct{}{}
	} else {
		delete(c.state.subs, uri)
	}
}

// restore re-applies the session-scoped state on a new session, before it
// is put in use. A failure is reported and does not fail the reconnect.
func (c *Client) restore(cs *mcp.ClientSession) []Event {
	c.mu.Lock()
	level := c.state.logLevel
	uris := slices.Sorted(maps.Keys(c.state.subs))
	c.mu.Unlock()
	var events []Event
	ctx, cancel := context.WithTimeout(c.ctx, c.connectTimeout)
	defer cancel()
	fail := func(method string, err error) {
		c.log.Warn("could not restore session state", zap.String("method", method), zap.String("session_id", cs.ID()), zap.Error(err))
		events = append(events, Event{Kind: EventRestoreFailed, Method: method, SessionID: cs.ID(), Err: err})
	}
	if level != "" {
		if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: level}); err != nil {
			fail("logging/setLevel", err)
		}
	}
	for _, uri := range uris {
		if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: uri}); err != nil {
			fail("resources/subscribe", err)
		}
	}
	return events
}

// learnTools records the annotations of tools listed by the server: the
// SDK's own cache is unexported, and replay decisions need them.
func (c *Client) learnTools(tools []*mcp.Tool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range tools {
		if t == nil {
			continue
		}
		var h toolHints
		if a := t.Annotations; a != nil {
			h = toolHints{readOnly: a.ReadOnlyHint, idempotent: a.IdempotentHint}
		}
		c.tools[t.Name] = h
	}
}

// hints returns what is known of tool's annotations, and whether any is.
func (c *Client) hints(tool string) (toolHints, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.tools[tool]
	return h, ok
}

// describe returns what is known of the call for a replay decision on
// session cur, for a call that started in the given lineage.
func (c *Client) describe(o op, cur *conn, lineage uint64) engine.Call {
	call := engine.Call{Method: o.method}
	if o.tool == "" {
		return call
	}
	c.mu.Lock()
	h := c.tools[o.tool]
	sameLineage := c.lineage.Load() == lineage
	c.mu.Unlock()
	call.ReadOnly, call.Idempotent = h.readOnly, h.idempotent
	call.Dedup = o.key != "" && cur.dedup && (sameLineage || cur.dedupPerPrincipal)
	return call
}

// refreshTools lists the tools on cur to learn their annotations, at most
// once per session. Errors leave the cache as it was: a tool whose
// annotations are unknown is not replayed.
func (c *Client) refreshTools(ctx context.Context, cur *conn) {
	c.mu.Lock()
	fresh := c.toolsGen == cur.gen
	c.mu.Unlock()
	if fresh {
		return
	}
	var tools []*mcp.Tool
	for t, err := range cur.cs.Tools(ctx, nil) {
		if err != nil {
			c.log.Debug("could not list tools to learn annotations", zap.Error(err))
			return
		}
		tools = append(tools, t)
	}
	c.learnTools(tools)
	c.mu.Lock()
	c.toolsGen = cur.gen
	c.mu.Unlock()
}
