package replica_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/mcpkit/resilience/internal/proctest"
	"github.com/mcpkit/resilience/resume/memstore"
	"github.com/mcpkit/resilience/resume/redisstore"
	"github.com/mcpkit/resilience/resume/replica"
)

// BenchmarkHandlerPerCall measures what the adopting Handler costs per
// call against the go-sdk's own StreamableHTTPHandler, in the same run:
// parallel CallTool of a tool that does nothing, over loopback HTTP, each
// goroutine alternating a call through the stock handler and one through
// the adopting one, so that drift in the machine hits both alike. It
// reports both per-call times and their ratio (stock = 1.00). With
// "lease=off" every request reads the session's record (RecordLease < 0);
// "limits=off" turns the limits off, to show that they cost nothing
// measurable.
func BenchmarkHandlerPerCall(b *testing.B) {
	b.Run("memstore", func(b *testing.B) { benchPerCall(b, memstore.New(0), nil) })
	b.Run("memstore/lease=off", func(b *testing.B) {
		benchPerCall(b, memstore.New(0), &replica.HandlerOptions{RecordLease: -1})
	})
	b.Run("memstore/limits=off", func(b *testing.B) {
		benchPerCall(b, memstore.New(0), &replica.HandlerOptions{MaxSessionsPerClient: -1, MaxPendingSessions: -1, MaxLoggedBytes: -1})
	})
	b.Run("redis", func(b *testing.B) { benchPerCall(b, benchRedis(b), nil) })
	b.Run("redis/lease=off", func(b *testing.B) {
		benchPerCall(b, benchRedis(b), &replica.HandlerOptions{RecordLease: -1})
	})
}

// benchRedis is a store on a dedicated redis-server.
func benchRedis(b *testing.B) replica.Store {
	srv := proctest.StartRedis(b, nil)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: time.Second})
	b.Cleanup(func() { rdb.Close() })
	store, err := redisstore.New(rdb, nil)
	if err != nil {
		b.Fatal(err)
	}
	return store
}

// benchPerCall runs the per-call comparison with the adopting handler on
// store; any Store (a Redis Cluster's too) can be measured with it.
func benchPerCall(b *testing.B, store replica.Store, opts *replica.HandlerOptions) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "nop"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, struct{}, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, struct{}{}, nil
	})
	getServer := func(*http.Request) *mcp.Server { return srv }
	stock := httptest.NewServer(mcp.NewStreamableHTTPHandler(getServer, nil))
	defer stock.Close()
	h := replica.NewHandler(getServer, store, opts)
	adopting := httptest.NewServer(h)
	defer adopting.Close()
	defer h.Close()

	connect := func(url string) *mcp.ClientSession {
		c := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
		cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url, DisableStandaloneSSE: true}, nil)
		if err != nil {
			b.Fatal(err)
		}
		return cs
	}
	var stockNs, adoptNs, calls atomic.Int64
	call := func(cs *mcp.ClientSession, sum *atomic.Int64) {
		start := time.Now()
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "nop"})
		if err != nil || res.IsError {
			b.Errorf("CallTool: %v %v", err, res)
			return
		}
		sum.Add(int64(time.Since(start)))
	}
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s, a := connect(stock.URL), connect(adopting.URL)
		defer s.Close()
		defer a.Close()
		for i := 0; pb.Next(); i++ {
			if i%2 == 0 {
				call(s, &stockNs)
				call(a, &adoptNs)
			} else {
				call(a, &adoptNs)
				call(s, &stockNs)
			}
			calls.Add(1)
		}
	})
	b.StopTimer()
	if n := calls.Load(); n > 0 {
		st, ad := float64(stockNs.Load())/float64(n), float64(adoptNs.Load())/float64(n)
		b.ReportMetric(st, "stock-ns/call")
		b.ReportMetric(ad, "adopting-ns/call")
		b.ReportMetric(ad/st, "ratio")
	}
}
