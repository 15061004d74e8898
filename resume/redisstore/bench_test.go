package redisstore_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
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

// scaleSessions is the number of sessions BenchmarkScale spreads over the
// cluster.
const scaleSessions = 10000

// BenchmarkScale writes scaleSessions sessions to a 6-node cluster (3
// primaries) the way a server does (two values, and an event stream with
// one event), and reports how evenly the primaries hold their keys
// (max/min of the keys per primary) and the memory one session costs
// (used_memory of the primaries before and after, divided by the sessions).
// Its timed loop reads one session's value. Run it with -benchtime=1x: the
// figures come from the set-up.
func BenchmarkScale(b *testing.B) {
	c := proctest.StartRedisCluster(b)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer rdb.Close()
	ctx := b.Context()
	store, err := redisstore.New(rdb, nil)
	if err != nil {
		b.Fatal(err)
	}
	events, err := redisstore.NewEventStore(rdb, nil)
	if err != nil {
		b.Fatal(err)
	}
	before := primaryInfo(b, rdb)
	ids := make([]string, scaleSessions)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < scaleSessions; i = int(next.Add(1) - 1) {
				id := strings.ToUpper(strconv.FormatUint(uint64(i)*0x9E3779B97F4A7C15, 36)) // go-sdk IDs look random too
				ids[i] = id
				if err := store.Set(ctx, id, "counter", []byte("1"), 0); err != nil {
					b.Error(err)
					return
				}
				if err := store.Set(ctx, id, "notes", []byte(`["a note"]`), 0); err != nil {
					b.Error(err)
					return
				}
				if err := events.Open(ctx, id, "st"); err != nil {
					b.Error(err)
					return
				}
				if err := events.Append(ctx, id, "st", []byte(`{"jsonrpc":"2.0","id":1,"result":{}}`)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	after := primaryInfo(b, rdb)
	minKeys, maxKeys, mem := int64(1<<62), int64(0), int64(0)
	for addr, a := range after {
		keys := a.keys - before[addr].keys
		minKeys, maxKeys = min(minKeys, keys), max(maxKeys, keys)
		mem += a.memory - before[addr].memory
		b.Logf("primary %s: %d keys", addr, keys)
	}
	if len(after) != 3 {
		b.Fatalf("%d primaries, want 3", len(after))
	}
	i := 0
	for b.Loop() {
		if _, _, err := store.Get(ctx, ids[i%scaleSessions], "counter"); err != nil {
			b.Fatal(err)
		}
		i++
	}
	// After the loop: b.Loop's first call resets the reported metrics.
	b.ReportMetric(float64(maxKeys)/float64(minKeys), "keys-max/min")
	b.ReportMetric(float64(mem)/scaleSessions, "bytes/session")
	b.ReportMetric(float64(maxKeys+minKeys)/2/(scaleSessions/3), "keys/session")
}

type nodeInfo struct{ keys, memory int64 }

// primaryInfo returns DBSIZE and used_memory of every primary.
func primaryInfo(b *testing.B, rdb *redis.ClusterClient) map[string]nodeInfo {
	var mu sync.Mutex
	out := map[string]nodeInfo{}
	err := rdb.ForEachMaster(b.Context(), func(ctx context.Context, n *redis.Client) error {
		keys, err := n.DBSize(ctx).Result()
		if err != nil {
			return err
		}
		info, err := n.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		var mem int64
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
				mem, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		mu.Lock()
		out[n.Options().Addr] = nodeInfo{keys, mem}
		mu.Unlock()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkHandlerPerCall measures parallel CallTool over loopback HTTP
// against one tool that touches no store, through the go-sdk's own
// StreamableHTTPHandler (the 1.00 of the comparison) and through
// replica.Handler (adoption) on memstore, one Redis and a 6-node cluster.
// Each operation makes one call through each of the four, in turn, so that
// the machine's drift hits them alike; it reports each one's mean time per
// call and its ratio to the go-sdk's.
func BenchmarkHandlerPerCall(b *testing.B) {
	one := proctest.StartRedis(b, nil)
	oneClient := redis.NewClient(&redis.Options{Addr: one.Addr})
	defer oneClient.Close()
	c := proctest.StartRedisCluster(b)
	clusterClient := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer clusterClient.Close()
	mustStore := func(rdb redis.UniversalClient) replica.Store {
		s, err := redisstore.New(rdb, nil)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	variants := []struct {
		name  string
		store replica.Store // nil: the go-sdk's handler
	}{
		{"sdk", nil},
		{"memstore", memstore.New(0)},
		{"redis", mustStore(oneClient)},
		{"cluster", mustStore(clusterClient)},
	}
	// One session per parallel goroutine and variant, as many clients
	// would have.
	const clients = 8
	sessions := make([][]*mcp.ClientSession, len(variants))
	for i, v := range variants {
		url, stop := serveEcho(b, v.store)
		defer stop()
		for range clients {
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).
				Connect(b.Context(), &mcp.StreamableClientTransport{Endpoint: url}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer cs.Close()
			sessions[i] = append(sessions[i], cs)
		}
	}
	spent := make([]atomic.Int64, len(variants))
	var calls atomic.Int64
	var n atomic.Int64
	b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := int(n.Add(1)-1) % clients
		for pb.Next() {
			for i := range variants {
				start := time.Now()
				if _, err := sessions[i][g].CallTool(context.Background(), &mcp.CallToolParams{Name: "echo"}); err != nil {
					b.Error(err)
					return
				}
				spent[i].Add(int64(time.Since(start)))
			}
			calls.Add(1)
		}
	})
	b.StopTimer()
	base := float64(spent[0].Load()) / float64(calls.Load())
	for i, v := range variants {
		mean := float64(spent[i].Load()) / float64(calls.Load())
		b.ReportMetric(mean, v.name+"-ns/call")
		if i > 0 {
			b.ReportMetric(mean/base, v.name+"/sdk")
		}
	}
}

// serveEcho serves a server with the echo tool over loopback HTTP, through
// the go-sdk's handler (store nil) or replica.Handler on store.
func serveEcho(b *testing.B, store replica.Store) (url string, stop func()) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, struct{}, error) {
		return nil, struct{}{}, nil
	})
	getServer := func(*http.Request) *mcp.Server { return srv }
	var h http.Handler
	var ah *replica.Handler
	if store == nil {
		h = mcp.NewStreamableHTTPHandler(getServer, nil)
	} else {
		ah = replica.NewHandler(getServer, store, nil)
		h = ah
	}
	ts := httptest.NewServer(h)
	return ts.URL, func() {
		ts.Close()
		if ah != nil {
			ah.Close()
		}
	}
}

// BenchmarkReplicaAcks measures one Set of a dedup-record-sized value (a
// stored tool result, 300 bytes) with and without ReplicaAcks 1, on
// Sentinel (1 primary, 1 replica) and on a 6-node cluster, in one run.
func BenchmarkReplicaAcks(b *testing.B) {
	s := proctest.StartRedisSentinel(b)
	failover := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: proctest.SentinelMaster, SentinelAddrs: s.SentinelAddrs()})
	defer failover.Close()
	c := proctest.StartRedisCluster(b)
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer cluster.Close()
	value := []byte(strings.Repeat("r", 300))
	for _, dep := range []struct {
		name string
		rdb  redis.UniversalClient
	}{{"sentinel", failover}, {"cluster", cluster}} {
		for _, acks := range []int{0, 1} {
			b.Run(dep.name+"/acks="+strconv.Itoa(acks), func(b *testing.B) {
				store, err := redisstore.New(dep.rdb, &redisstore.Options{ReplicaAcks: acks})
				if err != nil {
					b.Fatal(err)
				}
				i := 0
				for b.Loop() {
					if err := store.Set(b.Context(), "B"+strconv.Itoa(i%1000), "idem:k", value, 0); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
