//lint:file-ignore SA1019 a session's log level (logging/setLevel, deprecated by SEP-2577 but still served to clients before 2026-07-28) is part of what an adopted session keeps.

package replica

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume"
)

// injectTimeout bounds one request that a replica sends a local copy of a
// session to apply a change of its record.
const injectTimeout = 10 * time.Second

// instrument adds the record-keeping middleware to srv, once.
func (h *Handler) instrument(srv *mcp.Server) {
	h.mu.Lock()
	seen := h.servers[srv]
	h.servers[srv] = true
	h.mu.Unlock()
	if !seen {
		srv.AddReceivingMiddleware(h.middleware)
	}
}

// middleware records, in the session's record, every change of what a
// replica needs to rebuild the session, before the client sees the answer:
// a client that goes on through another replica finds it there.
func (h *Handler) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		switch method {
		case "initialize", "notifications/initialized", "logging/setLevel", "resources/subscribe", "resources/unsubscribe":
		default:
			return next(ctx, method, req)
		}
		ss, _ := req.GetSession().(*mcp.ServerSession)
		if ss == nil || ss.ID() == "" {
			return next(ctx, method, req)
		}
		h.mu.Lock()
		ls := h.sessions[ss.ID()]
		h.mu.Unlock()
		if ls == nil || ls.ss != nil && ls.ss != ss {
			return next(ctx, method, req) // a session of another handler
		}
		res, err := next(ctx, method, req)
		if err != nil {
			return res, err
		}
		if ir, ok := res.(*mcp.InitializeResult); ok {
			advertiseCapability(&ir.Capabilities, resume.AdoptCapability, map[string]any{"eventStore": h.events != nil})
		}
		if err := h.record(ctx, ls, method, req, res); err != nil {
			return nil, fmt.Errorf("%s succeeded on this replica, but other replicas could not be told: %w", method, err)
		}
		return res, nil
	}
}

// record writes the change that a successful method made to the session.
func (h *Handler) record(ctx context.Context, ls *localSession, method string, req mcp.Request, res mcp.Result) error {
	ls.mu.Lock()
	known := ls.known
	ls.mu.Unlock()
	var change func(*sessionRecord) bool
	switch p := req.GetParams().(type) {
	case *mcp.InitializeParams:
		ir, ok := res.(*mcp.InitializeResult)
		if !ok {
			return nil
		}
		principal := Principal(req)
		change = func(r *sessionRecord) bool {
			r.Principal = principal
			r.State = &mcp.ServerSessionState{InitializeParams: p, NegotiatedProtocolVersion: ir.ProtocolVersion}
			return true
		}
	case *mcp.InitializedParams:
		if known.State != nil && known.State.InitializedParams != nil {
			return nil
		}
		if p == nil {
			p = &mcp.InitializedParams{}
		}
		change = func(r *sessionRecord) bool {
			if r.State == nil || r.State.InitializedParams != nil {
				return false
			}
			r.State.InitializedParams = p
			return true
		}
	case *mcp.SetLoggingLevelParams:
		if known.State != nil && known.State.LogLevel == p.Level {
			return nil
		}
		change = func(r *sessionRecord) bool {
			if r.State == nil || r.State.LogLevel == p.Level {
				return false
			}
			r.State.LogLevel = p.Level
			return true
		}
	case *mcp.SubscribeParams:
		if contains(known.Subscriptions, p.URI) {
			return nil
		}
		change = func(r *sessionRecord) bool {
			if contains(r.Subscriptions, p.URI) {
				return false
			}
			r.Subscriptions = append(r.Subscriptions, p.URI)
			return true
		}
	case *mcp.UnsubscribeParams:
		if !contains(known.Subscriptions, p.URI) {
			return nil
		}
		change = func(r *sessionRecord) bool {
			i := slices.Index(r.Subscriptions, p.URI)
			if i < 0 {
				return false
			}
			r.Subscriptions = slices.Delete(r.Subscriptions, i, i+1)
			return true
		}
	default:
		return nil
	}
	rec, err := h.update(context.WithoutCancel(ctx), ls.id, change)
	if err != nil {
		return err
	}
	ls.mu.Lock()
	ls.known = rec
	ls.mu.Unlock()
	return nil
}

// inject sends a request (or a notification) to a local copy of a
// session through its transport, as a client would, and waits for the
// answer: the one way to change an existing go-sdk session's state with
// the SDK's exported API.
func inject(ls *localSession, version, method string, params any) error {
	msg := map[string]any{"jsonrpc": "2.0", "method": method, "params": params}
	notification := strings.HasPrefix(method, "notifications/")
	if !notification {
		msg["id"] = "mcpkit-replica-" + rand.Text()
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), injectTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", ls.id)
	req.Header.Set("Mcp-Method", method)
	if version != "" {
		req.Header.Set("Mcp-Protocol-Version", version)
	}
	var sink responseSink
	ls.transport.ServeHTTP(&sink, req)
	if sink.status >= 300 {
		return fmt.Errorf("HTTP %d: %s", sink.status, strings.TrimSpace(sink.body.String()))
	}
	if notification {
		return nil
	}
	return responseError(sink.body.Bytes())
}

// responseError finds a JSON-RPC error in a response body, plain JSON or
// an event stream.
func responseError(body []byte) error {
	var found bool
	for _, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimPrefix(bytes.TrimSpace(line), []byte("data:"))
		var resp struct {
			ID    any `json:"id"`
			Error *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(bytes.TrimSpace(line), &resp) != nil || resp.ID == nil {
			continue
		}
		if resp.Error != nil {
			return fmt.Errorf("JSON-RPC error %d: %s", resp.Error.Code, resp.Error.Message)
		}
		found = true
	}
	if !found {
		return errors.New("no response")
	}
	return nil
}

// responseSink is the http.ResponseWriter of an injected request.
type responseSink struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (s *responseSink) Header() http.Header {
	if s.header == nil {
		s.header = http.Header{}
	}
	return s.header
}

func (s *responseSink) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
}

func (s *responseSink) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.body.Write(b)
}

func (s *responseSink) Flush() {}
