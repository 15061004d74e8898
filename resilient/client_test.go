package resilient_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/retry"
)

// inMemory returns a factory whose every transport is connected to a new
// session of server, and a function that returns the server sessions made
// so far; they are closed at cleanup.
func inMemory(t *testing.T, server *mcp.Server) (resilient.TransportFactory, func() []*mcp.ServerSession) {
	var mu sync.Mutex
	var sessions []*mcp.ServerSession
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, ss := range sessions {
			_ = ss.Close()
		}
	})
	factory := func() mcp.Transport {
		ct, st := mcp.NewInMemoryTransports()
		ss, err := server.Connect(context.Background(), st, nil)
		if err != nil {
			t.Errorf("server.Connect: %v", err)
			return nil
		}
		mu.Lock()
		sessions = append(sessions, ss)
		mu.Unlock()
		return ct
	}
	made := func() []*mcp.ServerSession {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(sessions)
	}
	return factory, made
}

type echoIn struct {
	Text string `json:"text"`
}

func echoServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, map[string]string, error) {
			return nil, map[string]string{"text": in.Text}, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: resume.ToolName},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, resume.Result, error) {
			return nil, resume.Result{Status: resume.StatusSameSession}, nil
		})
	return s
}

func newClient() *mcp.Client {
	return mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil)
}

func TestConnectRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	factory, _ := inMemory(t, echoServer())
	tests := []struct {
		name    string
		client  *mcp.Client
		factory resilient.TransportFactory
		opts    *resilient.Options
		want    string
	}{
		{"nil client", nil, factory, nil, "mcp.Client is nil"},
		{"nil factory", newClient(), nil, nil, "TransportFactory is nil"},
		{"negative attempts", newClient(), factory, &resilient.Options{Retry: retry.Policy{MaxAttempts: -2}}, "MaxAttempts"},
		{"multiplier below 1", newClient(), factory, &resilient.Options{Retry: retry.Policy{Multiplier: 0.5}}, "Multiplier"},
		{"negative connect timeout", newClient(), factory, &resilient.Options{ConnectTimeout: -time.Second}, "ConnectTimeout"},
		{"negative breaker timeout", newClient(), factory, &resilient.Options{Breaker: resilient.BreakerSettings{OpenTimeout: -1}}, "Breaker.OpenTimeout"},
		{"negative max open timeout", newClient(), factory, &resilient.Options{Breaker: resilient.BreakerSettings{MaxOpenTimeout: -1}}, "Breaker.MaxOpenTimeout"},
		{"negative budget ratio", newClient(), factory, &resilient.Options{Budget: resilient.BudgetSettings{Ratio: -1}}, "Budget.Ratio"},
		{"factory returns nil", newClient(), func() mcp.Transport { return nil }, nil, "nil transport"},
		{"unreachable server, ConnectOnce", newClient(), resilient.StreamableHTTP("http://127.0.0.1:1/mcp", nil), &resilient.Options{ConnectOnce: true}, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := resilient.Connect(ctx, tt.client, tt.factory, tt.opts)
			if err == nil {
				_ = c.Close()
				t.Fatal("Connect succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Connect error = %q, want it to mention %q", err, tt.want)
			}
		})
	}
	if _, err := resilient.Connect(ctx, newClient(), factory, nil); err != nil {
		t.Errorf("Connect with nil options: %v", err)
	}
}

func TestCallToolDoesNotChangeParams(t *testing.T) {
	c, err := resilient.Connect(context.Background(), newClient(), first(inMemory(t, echoServer())), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	params := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}, Meta: mcp.Meta{"mine": "x"}}
	want := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}, Meta: mcp.Meta{"mine": "x"}}
	res, err := c.CallTool(context.Background(), params)
	if err != nil || res.IsError {
		t.Fatalf("CallTool: %v %+v", err, res)
	}
	if diff := cmp.Diff(want, params); diff != "" {
		t.Errorf("CallTool changed the caller's params (-want +got):\n%s", diff)
	}
	if _, err := c.CallTool(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "params is nil") {
		t.Errorf("CallTool(nil) = %v, want an error saying params is nil", err)
	}
}

func TestResumeToolHidden(t *testing.T) {
	for _, show := range []bool{false, true} {
		c, err := resilient.Connect(context.Background(), newClient(), first(inMemory(t, echoServer())), &resilient.Options{ShowResumeTool: show})
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.ListTools(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, tool := range res.Tools {
			listed = append(listed, tool.Name)
		}
		var iterated []string
		for tool, err := range c.Tools(context.Background(), nil) {
			if err != nil {
				t.Fatal(err)
			}
			iterated = append(iterated, tool.Name)
		}
		want := []string{"echo"}
		if show {
			want = []string{"echo", resume.ToolName}
		}
		if diff := cmp.Diff(want, listed); diff != "" {
			t.Errorf("ShowResumeTool=%v: ListTools (-want +got):\n%s", show, diff)
		}
		if diff := cmp.Diff(want, iterated); diff != "" {
			t.Errorf("ShowResumeTool=%v: Tools (-want +got):\n%s", show, diff)
		}
		_ = c.Close()
	}
}

// The raw SDK session and the Client are interchangeable behind Session.
func TestSessionInterface(t *testing.T) {
	factory, _ := inMemory(t, echoServer())
	raw, err := newClient().Connect(context.Background(), factory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := resilient.Connect(context.Background(), newClient(), factory, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]resilient.Session{"raw": raw, "resilient": wrapped} {
		res, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": name}})
		if err != nil || res.IsError {
			t.Errorf("%s: CallTool: %v", name, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
	}
}

// A peer that dies (as a crashed stdio server does) closes the session; the
// client replaces it and replays a read. Sessions without IDs skip resume.
func TestPeerDiesSessionReplaced(t *testing.T) {
	factory, made := inMemory(t, echoServer())
	events := &eventLog{}
	c, err := resilient.Connect(context.Background(), newClient(), factory, &resilient.Options{Retry: fastPolicy, OnEvent: events.add})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = made()[0].Close()
	_ = c.Session().Wait() // the client side sees the peer go

	res, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "again"}})
	if err != nil || res.IsError {
		t.Fatalf("CallTool after the peer died: %v", err)
	}
	s := c.Stats()
	if s.Reconnects != 1 || s.ResumesSkipped != 1 || s.Generation != 2 {
		t.Errorf("Stats = %+v, want 1 reconnect, resume skipped (no session ID), generation 2", s)
	}
	if n := len(events.waitFor(t, resilient.EventReconnected, 1)); n != 1 {
		t.Errorf("%d reconnected events, want 1", n)
	}
}

func first[A, B any](a A, _ B) A { return a }
