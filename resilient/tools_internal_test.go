package resilient

import (
	"context"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// notifications/tools/list_changed makes what the client knew of the
// tools' annotations stale, so that the next decision that needs them
// lists the tools again.
func TestListChangedMakesHintsStale(t *testing.T) {
	server := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
	tool := &mcp.Tool{Name: "read", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}, InputSchema: map[string]any{"type": "object"}}
	server.AddTool(tool, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{}, nil
	})
	changed := make(chan struct{}, 1)
	client := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			select {
			case changed <- struct{}{}:
			default:
			}
		}})
	tc := newToolCache()
	watchListChanged(client, tc)
	ct, st := mcp.NewInMemoryTransports()
	ss, err := server.Connect(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ss.Close() }()
	cs, err := client.Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cs.Close() }()

	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tc.learn(res.Tools, tc.changes.Load())
	if h, known := tc.lookup("read"); !known || !h.readOnly {
		t.Fatalf("lookup after ListTools = %+v, %v; want readOnly, known", h, known)
	}
	// The server changes the tool: it is no longer a read.
	server.AddTool(&mcp.Tool{Name: "read", InputSchema: map[string]any{"type": "object"}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		})
	select {
	case <-changed: // the middleware ran before the handler
	case <-time.After(10 * time.Second):
		t.Fatal("no notifications/tools/list_changed within 10s")
	}
	if _, known := tc.lookup("read"); known {
		t.Error("lookup after list_changed: known, want stale")
	}
	res, err = cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tc.learn(res.Tools, tc.changes.Load())
	if h, known := tc.lookup("read"); !known || h.readOnly {
		t.Errorf("lookup after listing again = %+v, %v; want known, not readOnly", h, known)
	}
}
