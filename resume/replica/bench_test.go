package replica

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume/memstore"
	"github.com/mcpkit/resilience/retry"
)

// benchReplica is one replica of the benchmark: a server with the incr
// tool and resume_session, behind a handler that restart replaces, as a
// replica that died and came back (it knows no session).
type benchReplica struct {
	srv     *mcp.Server
	handler atomic.Pointer[http.Handler]
	adopt   bool
	store   Store
}

func (r *benchReplica) restart() {
	var h http.Handler
	if r.adopt {
		h = NewHandler(func(*http.Request) *mcp.Server { return r.srv }, r.store, nil)
	} else {
		h = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return r.srv }, nil)
	}
	old := r.handler.Swap(&h)
	if old == nil {
		return
	}
	if ah, ok := (*old).(*Handler); ok {
		ah.Close()
		return
	}
	for ss := range r.srv.Sessions() { // the stock handler's sessions
		ss.Close()
	}
}

// BenchmarkFailoverBetweenCalls measures one call made right after the
// replica that served the previous one was replaced by a replica that
// knows no session: with adoption (Handler: the new replica adopts the
// session from the store) and with the stock handler (404, then
// resilient.Client reconnects and resumes the state), against a plain call
// on the same replica. Both go through resilient.Client over loopback HTTP.
func BenchmarkFailoverBetweenCalls(b *testing.B) {
	for _, tc := range []struct {
		name     string
		adopt    bool
		failover bool
	}{
		{"plain call", true, false},
		{"adoption", true, true},
		{"reconnect and resume", false, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			store := memstore.New(0)
			var reps [2]*benchReplica
			for i := range reps {
				srv := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
				mcp.AddTool(srv, &mcp.Tool{Name: "incr"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, incrOut, error) {
					v, err := SessionValues(store, req)
					if err != nil {
						return nil, incrOut{}, err
					}
					n, err := UpdateJSON(ctx, v, "counter", func(n int, _ bool) (int, error) { return n + 1, nil })
					return nil, incrOut{Counter: n}, err
				})
				AddTool(srv, store, nil)
				reps[i] = &benchReplica{srv: srv, adopt: tc.adopt, store: store}
				reps[i].restart()
			}
			var target atomic.Int32
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				(*reps[target.Load()].handler.Load()).ServeHTTP(w, r)
			}))
			defer ts.Close()
			defer func() {
				for _, r := range reps {
					r.adopt = !r.adopt // restart closes what the current handler holds
					r.restart()
					r.adopt = !r.adopt
					r.restart()
				}
			}()
			ctx := context.Background()
			rc, err := resilient.Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil),
				resilient.StreamableHTTP(ts.URL, nil), &resilient.Options{
					Retry:   retry.Policy{InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
					Budget:  resilient.BudgetSettings{Tokens: -1}, // every failover retries once, by design
					Breaker: resilient.BreakerSettings{ConsecutiveFailures: 1 << 20},
				})
			if err != nil {
				b.Fatal(err)
			}
			defer rc.Close()
			want := 0
			call := func() {
				res, err := rc.CallTool(ctx, &mcp.CallToolParams{Name: "incr"})
				if err != nil {
					b.Fatal(err)
				}
				var out incrOut
				raw, _ := json.Marshal(res.StructuredContent)
				if err := json.Unmarshal(raw, &out); err != nil {
					b.Fatal(err)
				}
				want++
				if out.Counter != want {
					b.Fatalf("counter = %d, want %d: the state did not follow", out.Counter, want)
				}
			}
			call()
			b.ResetTimer()
			for b.Loop() {
				if tc.failover {
					b.StopTimer()
					next := 1 - target.Load()
					reps[next].restart() // it knows no session
					target.Store(next)
					b.StartTimer()
				}
				call()
			}
			b.StopTimer()
			st := rc.Stats()
			b.ReportMetric(float64(st.Reconnects)/float64(b.N), "reconnects/op")
		})
	}
}

// BenchmarkVersionContext measures how a request gets the context that
// the go-sdk's transport needs (its protocol version): from the cache of
// one stock handler per Handler ("cached"), and by building a stock
// handler and running a probe through it for the request ("probe"), as a
// request whose version cannot be cached does.
func BenchmarkVersionContext(b *testing.B) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	req := httptest.NewRequest(http.MethodPost, "/", http.NoBody)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	var sink responseSink
	b.Run("cached", func(b *testing.B) {
		var v versionContexts
		v.init()
		for b.Loop() {
			if _, ok := v.context(&sink, req, srv); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("probe", func(b *testing.B) {
		for b.Loop() {
			var v versionContexts
			v.init()
			if _, ok := v.context(&sink, req, srv); !ok {
				b.Fatal("refused")
			}
		}
	})
}
