package resilient_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mcpkit/resilience/resilient"
)

// BenchmarkBlackHole: the time from a black hole's start under a call in
// flight to the call's answer, over real loopback HTTP behind the fault
// proxy, with liveness scaled down (Idle 100ms, ProbeTimeout 100ms: the
// documented bound Idle*6/5+ProbeTimeout is 220ms; the defaults make it
// 8s, as the fault suite measures). The route heals as soon as the attempt
// is cut, so the figure is detection plus recovery: for a read, the
// reconnect and the replay; for a write on a server that does not
// deduplicate, the reconnect and ErrOutcomeUnknown. Reported as p50 and
// p99 in milliseconds.
func BenchmarkBlackHole(b *testing.B) {
	for _, op := range []string{"read", "write"} {
		b.Run(op, func(b *testing.B) {
			ws := newWaitServer()
			p := proxied(b, ws)
			cuts := newCutEvents()
			c, err := resilient.Connect(context.Background(), newClient(), resilient.StreamableHTTP("http://"+p.Addr(), nil),
				&resilient.Options{OnEvent: cuts.on, Liveness: resilient.LivenessSettings{Idle: 100 * time.Millisecond, ProbeTimeout: 100 * time.Millisecond}})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			tool := map[string]string{"read": "read_wait", "write": "write_wait"}[op]
			var took []time.Duration
			b.ResetTimer()
			for range b.N {
				for len(ws.started) > 0 {
					<-ws.started // the last iteration's replay
				}
				errc := make(chan error, 1)
				go func() {
					_, err := callWait(context.Background(), c, tool, 3_600_000)
					errc <- err
				}()
				<-ws.started
				start := time.Now()
				p.BlackHole()
				<-cuts.ch
				p.Heal()
				var err error
				if op == "read" {
					err = releaseUntil(ws, errc)
				} else {
					err = <-errc
				}
				took = append(took, time.Since(start))
				switch {
				case op == "read" && err != nil:
					b.Fatalf("read: %v", err)
				case op == "write" && !errors.Is(err, resilient.ErrOutcomeUnknown):
					b.Fatalf("write: got %v, want ErrOutcomeUnknown", err)
				}
			}
			b.StopTimer()
			slices.Sort(took)
			pct := func(q float64) float64 {
				return float64(took[int(q*float64(len(took)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
