//lint:file-ignore SA1019 Client mirrors every method of *mcp.ClientSession, including the logging API that SEP-2577 deprecates, so that it stays a drop-in.

package resilient

import (
	"context"
	"maps"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"
)

// sessionState is what the server keeps per session and loses with it,
// which the client re-applies after a reconnect. Roots, handlers and
// middleware live on the mcp.Client and carry over by themselves.
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
