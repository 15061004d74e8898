package replica_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/memstore"
	"github.com/mcpkit/resilience/resume/replica"
)

type rememberIn struct {
	Text string `json:"text"`
}

type recallOut struct {
	Text string `json:"text"`
}

// newServer is a go-sdk server whose tools keep session state in store:
// remember saves a text, recall reads it back.
func newServer(store replica.Store) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "remember"}, func(ctx context.Context, req *mcp.CallToolRequest, in rememberIn) (*mcp.CallToolResult, recallOut, error) {
		v, err := replica.SessionValues(store, req)
		if err != nil {
			return nil, recallOut{}, err
		}
		return nil, recallOut(in), v.Set(ctx, "text", []byte(in.Text))
	})
	mcp.AddTool(s, &mcp.Tool{Name: "recall"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, recallOut, error) {
		v, err := replica.SessionValues(store, req)
		if err != nil {
			return nil, recallOut{}, err
		}
		b, _, err := v.Get(ctx, "text")
		return nil, recallOut{Text: string(b)}, err
	})
	// The server half of resume: a client that lost its session calls
	// resume_session on its new one to copy the old one's state.
	replica.AddTool(s, store, nil)
	return s
}

func connect(ctx context.Context, url string) *mcp.ClientSession {
	client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, nil)
	if err != nil {
		log.Fatal(err)
	}
	return cs
}

// A server registers resume_session with AddTool. A client whose session
// was lost resumes the old session's state on its new session; the
// resilient client does this by itself, here it is by hand.
func ExampleAddTool() {
	store := memstore.New(0)
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return newServer(store) }, nil))
	defer srv.Close()
	ctx := context.Background()

	old := connect(ctx, srv.URL)
	if _, err := old.CallTool(ctx, &mcp.CallToolParams{Name: "remember", Arguments: map[string]any{"text": "buy milk"}}); err != nil {
		log.Fatal(err)
	}
	oldID := old.ID()
	old.Close() // the session is lost

	cs := connect(ctx, srv.URL)
	defer cs.Close()
	res, err := resume.Tool{}.Resume(ctx, cs, oldID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("status %s, %d key(s) copied\n", res.Status, res.KeysCopied)
	got, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "recall"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("recalled:", got.StructuredContent.(map[string]any)["text"])
	// Output:
	// status resumed, 1 key(s) copied
	// recalled: buy milk
}

// Dedup runs a tools/call that carries an idempotency key at most once:
// a replay with the same key gets the stored result.
func ExampleDedup() {
	store := memstore.New(0)
	runs := 0
	s := mcp.NewServer(&mcp.Implementation{Name: "once", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "charge"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, map[string]int, error) {
		runs++
		return nil, map[string]int{"charged": runs}, nil
	})
	s.AddReceivingMiddleware(replica.Dedup(store, 24*time.Hour))
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	defer srv.Close()
	ctx := context.Background()
	cs := connect(ctx, srv.URL)
	defer cs.Close()

	_, advertised := cs.InitializeResult().Capabilities.Experimental[resume.DedupCapability]
	fmt.Println("advertised:", advertised)
	for range 2 { // the same call, sent twice with the same key
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "charge", Meta: mcp.Meta{resume.IdempotencyKeyMeta: "order-42"}})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("result:", res.StructuredContent, "replayed:", res.Meta[resume.ReplayedMeta] == true)
	}
	fmt.Println("runs:", runs)
	// Output:
	// advertised: true
	// result: map[charged:1] replayed: false
	// result: map[charged:1] replayed: true
	// runs: 1
}
