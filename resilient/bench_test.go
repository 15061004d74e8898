package resilient_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/examples/demotools"
	"github.com/mcpkit/resilience/internal/testserver"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume/memstore"
)

// The benchmarks report the resilient client against the raw SDK session
// measured in the same run (see BENCHMARKS.md for the commands and the
// figures). Timing targets live here, never in pass/fail tests.

// benchServer is a go-sdk server with the demo tools and an in-memory
// store.
func benchServer(b *testing.B) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	if err := demotools.Register(s, demotools.Options{Store: memstore.New(0), Instance: "bench"}); err != nil {
		b.Fatal(err)
	}
	return s
}

// benchPair times raw and wrapped alternately, b.N times each, so that
// drift in the machine's speed hits both alike, and reports each one's
// ns/op and allocs/op and their ratio.
func benchPair(b *testing.B, raw, wrapped func() error) {
	for range 100 { // warm up connections and caches
		if err := raw(); err != nil {
			b.Fatal(err)
		}
		if err := wrapped(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var tRaw, tWrapped time.Duration
	for range b.N {
		t0 := time.Now()
		if err := raw(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := wrapped(); err != nil {
			b.Fatal(err)
		}
		tWrapped += time.Since(t1)
		tRaw += t1.Sub(t0)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(tRaw.Nanoseconds())/n, "raw-ns/op")
	b.ReportMetric(float64(tWrapped.Nanoseconds())/n, "resilient-ns/op")
	b.ReportMetric(float64(tWrapped)/float64(tRaw), "time-ratio")
	// Allocations are counted process-wide (the server runs here too);
	// the server's share is the same for both, so the difference is the
	// client's.
	aRaw := testing.AllocsPerRun(200, func() { _ = raw() })
	aWrapped := testing.AllocsPerRun(200, func() { _ = wrapped() })
	b.ReportMetric(aRaw, "raw-allocs/op")
	b.ReportMetric(aWrapped, "resilient-allocs/op")
	b.ReportMetric(aWrapped-aRaw, "extra-allocs/op")
}

// sessions returns a raw SDK session and a resilient client on the same
// kind of transport, closed at cleanup.
func sessions(b *testing.B, transport string) (*mcp.ClientSession, *resilient.Client) {
	server := benchServer(b)
	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	var rawT mcp.Transport
	var factory resilient.TransportFactory
	var closers []func()
	switch transport {
	case "inmemory":
		connect := func() mcp.Transport {
			ct, st := mcp.NewInMemoryTransports()
			ss, err := server.Connect(ctx, st, nil)
			if err != nil {
				b.Fatal(err)
			}
			closers = append(closers, func() { _ = ss.Close() })
			return ct
		}
		rawT = connect()
		factory = connect
	case "http":
		srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
		closers = append(closers, srv.Close)
		rawT = &mcp.StreamableClientTransport{Endpoint: srv.URL}
		factory = resilient.StreamableHTTP(srv.URL, nil)
	}
	raw, err := client.Connect(ctx, rawT, nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := resilient.Connect(ctx, client, factory, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = c.Close()
		_ = raw.Close()
		for _, f := range slices.Backward(closers) {
			f()
		}
	})
	return raw, c
}

// BenchmarkCallTool: the happy-path cost of the resilient client on a
// tools/call, against the raw session.
func BenchmarkCallTool(b *testing.B) {
	for _, transport := range []string{"inmemory", "http"} {
		b.Run(transport, func(b *testing.B) {
			raw, c := sessions(b, transport)
			ctx := context.Background()
			call := func(s resilient.Session) func() error {
				return func() error {
					_, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"})
					return err
				}
			}
			benchPair(b, call(raw), call(c))
		})
	}
}

// BenchmarkListTools: the same for tools/list, which the client also
// filters (the resume tool) and learns annotations from.
func BenchmarkListTools(b *testing.B) {
	for _, transport := range []string{"inmemory", "http"} {
		b.Run(transport, func(b *testing.B) {
			raw, c := sessions(b, transport)
			ctx := context.Background()
			list := func(s resilient.Session) func() error {
				return func() error {
					_, err := s.ListTools(ctx, nil)
					return err
				}
			}
			benchPair(b, list(raw), list(c))
		})
	}
}

// BenchmarkFailover: from the session-lost error to the replayed call's
// answer, on the in-process cluster: one 404, one connect and initialize,
// one resume_session, the replay. Reported with the plain call's time for
// scale.
func BenchmarkFailover(b *testing.B) {
	cl, c := benchCluster(b, nil)
	ctx := context.Background()
	call := func() time.Duration {
		t0 := time.Now()
		if _, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"}); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	call()
	var plain, failover []time.Duration
	b.ResetTimer()
	for range b.N {
		plain = append(plain, call())
		cl.Expire(c.ID()) // the server forgets the session: the next call gets 404
		failover = append(failover, call())
	}
	b.StopTimer()
	if got := c.Stats().Reconnects; got != int64(b.N) {
		b.Fatalf("%d reconnects for %d failovers", got, b.N)
	}
	p50, p99 := percentile(failover, 50), percentile(failover, 99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "failover-p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "failover-p99-ms")
	b.ReportMetric(float64(percentile(plain, 50).Microseconds())/1000, "plain-call-p50-ms")
	b.ReportMetric(float64(p50)/float64(percentile(plain, 50)), "failover/plain")
}

// benchCluster starts a 3-backend test cluster and a resilient client on
// it, both closed at cleanup.
func benchCluster(b *testing.B, opts *resilient.Options) (*testserver.Cluster, *resilient.Client) {
	cl, err := testserver.Start(&testserver.Options{Backends: 3})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	c, err := resilient.Connect(context.Background(), client, resilient.StreamableHTTP(cl.URL(), nil), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return cl, c
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

// BenchmarkHerd: 1,000 callers on a session that dies. One reconnect
// serves them all; the metric is the time until the last has answered,
// beside the time 1,000 concurrent calls take on a raw SDK session to the
// same cluster when nothing fails.
func BenchmarkHerd(b *testing.B) {
	const callers = 1000
	cl, c := benchCluster(b, nil)
	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	raw, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: cl.URL()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	herd := func(s resilient.Session) time.Duration {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, callers)
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"}); err != nil {
					errs <- err
				}
			}()
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		d := time.Since(t0)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		return d
	}
	var failing, healthy time.Duration
	b.ResetTimer()
	for range b.N {
		healthy += herd(raw)
		before := c.Stats().Reconnects
		cl.Expire(c.ID())
		failing += herd(c)
		if got := c.Stats().Reconnects - before; got != 1 {
			b.Fatalf("%d reconnects for one dead session, want 1", got)
		}
	}
	b.ReportMetric(float64(failing.Milliseconds())/float64(b.N), "all-answered-ms")
	b.ReportMetric(float64(healthy.Milliseconds())/float64(b.N), "raw-healthy-ms")
	b.ReportMetric(float64(failing)/float64(healthy), "ratio")
	b.ReportMetric(1, "reconnects")
}

// BenchmarkOutage: what reaches a cluster whose every backend is down
// (the balancer answers 503), with 1 and 500 callers calling as fast as
// they can for 5 seconds, default Options: requests at the balancer in the
// first second (the first attempts already in flight) and per second
// after it, and the client's dials per second.
func BenchmarkOutage(b *testing.B) {
	for _, callers := range []int{1, 500} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			var firstSecond, after, dials, calls float64
			for range b.N {
				cl, c := benchCluster(b, nil)
				ctx := context.Background()
				for i := range cl.Backends() {
					cl.Kill(i)
				}
				before, dialsBefore := cl.Requests(), c.Stats().Dials
				start := time.Now()
				stop := start.Add(5 * time.Second)
				ctx, cancel := context.WithDeadline(ctx, stop)
				var wg sync.WaitGroup
				var n atomic.Int64
				for range callers {
					wg.Go(func() {
						for time.Now().Before(stop) {
							_, _ = c.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"})
							n.Add(1)
						}
					})
				}
				time.Sleep(time.Until(start.Add(time.Second))) // the measurement's clock, not a synchronisation
				first := cl.Requests() - before
				wg.Wait()
				cancel()
				firstSecond += float64(first)
				after += float64(cl.Requests()-before-first) / 4
				dials += float64(c.Stats().Dials-dialsBefore) / 5
				calls += float64(n.Load()) / 5
			}
			nb := float64(b.N)
			b.ReportMetric(firstSecond/nb, "requests-first-s")
			b.ReportMetric(after/nb, "requests/s-after")
			b.ReportMetric(dials/nb, "dials/s")
			b.ReportMetric(calls/nb, "calls/s")
		})
	}
}

// BenchmarkRestart: the only server is killed and back 2 seconds later
// (default Options). A call issued during the outage waits for it; the
// metric is the time from the server being back to that call's answer.
func BenchmarkRestart(b *testing.B) {
	cl, err := testserver.Start(&testserver.Options{Backends: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	c, err := resilient.Connect(context.Background(), client, resilient.StreamableHTTP(cl.URL(), nil), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	var waits []time.Duration
	for range b.N {
		if _, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "increment_counter"}); err != nil {
			b.Fatal(err)
		}
		cl.Kill(0)
		killed := time.Now()
		answered := make(chan error, 1)
		var at time.Time
		go func() {
			time.Sleep(500 * time.Millisecond) // issued during the outage
			_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "increment_counter"})
			at = time.Now()
			answered <- err
		}()
		time.Sleep(time.Until(killed.Add(2 * time.Second))) // the outage
		if err := cl.Restart(0); err != nil {
			b.Fatal(err)
		}
		back := time.Now()
		if err := <-answered; err != nil {
			b.Fatalf("call issued during the restart: %v", err)
		}
		waits = append(waits, at.Sub(back))
	}
	b.ReportMetric(float64(percentile(waits, 50).Milliseconds()), "back-to-answer-p50-ms")
	b.ReportMetric(float64(percentile(waits, 99).Milliseconds()), "back-to-answer-p99-ms")
}

// BenchmarkRecovery: every backend down for 8 seconds while 50 callers
// call (the breaker opens), then all back: the metric is the time from the
// backends being healthy to the first call answered.
func BenchmarkRecovery(b *testing.B) {
	var recov []time.Duration
	for range b.N {
		cl, c := benchCluster(b, nil)
		ctx := context.Background()
		for i := range cl.Backends() {
			cl.Kill(i)
		}
		stop := time.Now().Add(8 * time.Second)
		octx, cancel := context.WithDeadline(ctx, stop)
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				for time.Now().Before(stop) {
					_, _ = c.CallTool(octx, &mcp.CallToolParams{Name: "get_counter"})
					time.Sleep(10 * time.Millisecond) // a caller's pace, not a synchronisation
				}
			})
		}
		wg.Wait()
		cancel()
		for i := range cl.Backends() {
			if err := cl.Restart(i); err != nil {
				b.Fatal(err)
			}
		}
		back := time.Now()
		for {
			_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "get_counter"})
			if err == nil {
				break
			}
			if time.Since(back) > time.Minute {
				b.Fatalf("calls still fail a minute after the backends came back: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		recov = append(recov, time.Since(back))
	}
	b.ReportMetric(float64(percentile(recov, 50).Milliseconds()), "recovery-p50-ms")
	b.ReportMetric(float64(percentile(recov, 99).Milliseconds()), "recovery-p99-ms")
}
