package replica_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/memstore"
	"github.com/mcpkit/resilience/resume/replica"
)

type counterOut struct {
	Counter  int    `json:"counter"`
	Instance string `json:"instance"`
}

// newReplica is one replica of a server: the same tools on every replica,
// their state in the shared store, Dedup in front of them.
func newReplica(store replica.Store, instance string) *replica.Handler {
	s := mcp.NewServer(&mcp.Implementation{Name: "counter", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "increment"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, counterOut, error) {
		v, err := replica.SessionValues(store, req)
		if err != nil {
			return nil, counterOut{}, err
		}
		n, err := replica.UpdateJSON(ctx, v, "counter", func(n int, _ bool) (int, error) { return n + 1, nil })
		return nil, counterOut{Counter: n, Instance: instance}, err
	})
	s.AddReceivingMiddleware(replica.Dedup(store, 24*time.Hour))
	replica.AddTool(s, store, &replica.ToolOptions{Instance: instance})
	return replica.NewHandler(func(*http.Request) *mcp.Server { return s }, store, nil)
}

// Two replicas share a store (memstore here; resume/redisstore between
// processes). The balancer sends a session's first requests to replica a,
// and, once a is gone, the next ones to b: b adopts the session with its ID,
// and a replay of a call that ran on a gets a's result from Dedup instead of
// running again.
func ExampleHandler() {
	store := memstore.New(0)
	a, b := newReplica(store, "a"), newReplica(store, "b")
	defer a.Close()
	defer b.Close()
	var route atomic.Pointer[replica.Handler] // the balancer's choice
	route.Store(a)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route.Load().ServeHTTP(w, r)
	}))
	defer srv.Close()

	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: srv.URL}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer cs.Close()
	id := cs.ID()

	increment := func(key string) {
		p := &mcp.CallToolParams{Name: "increment"}
		if key != "" {
			p.Meta = mcp.Meta{resume.IdempotencyKeyMeta: key}
		}
		res, err := cs.CallTool(ctx, p)
		if err != nil {
			log.Fatal(err)
		}
		out := res.StructuredContent.(map[string]any)
		fmt.Printf("counter %v from replica %v, replayed: %v\n", out["counter"], out["instance"], res.Meta[resume.ReplayedMeta] == true)
	}
	increment("call-1")
	route.Store(b) // replica a is gone
	increment("call-1")
	increment("call-2")
	fmt.Println("same session:", cs.ID() == id)
	// Output:
	// counter 1 from replica a, replayed: false
	// counter 1 from replica a, replayed: true
	// counter 2 from replica b, replayed: false
	// same session: true
}
