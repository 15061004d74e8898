package resilientotel_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/mcpkit/resilience/extra/resilientotel"
	"github.com/mcpkit/resilience/resilient"
)

// The client's metrics count what it did on its own: here the server
// restarts between two calls and forgets the session, so the second call's
// first attempt is refused, the client reconnects and replays it. A real
// program passes a MeterProvider with an exporter's reader (or sets the
// global one) instead of the manual reader.
func Example_metrics() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	// A server that can restart: a new MCP server, which knows none of the
	// old one's sessions.
	var current atomic.Pointer[mcp.Server]
	restart := func() {
		s := mcp.NewServer(&mcp.Implementation{Name: "greeter", Version: "1"}, nil)
		mcp.AddTool(s, &mcp.Tool{Name: "greet", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
			func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello"}}}, nil, nil
			})
		if old := current.Swap(s); old != nil {
			for ss := range old.Sessions() {
				_ = ss.Close()
			}
		}
	}
	restart()
	defer restart() // ends the last server's sessions
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return current.Load() }, nil)
	ts := httptest.NewServer(handler)
	defer ts.Close()

	ctx := context.Background()
	opts := &resilient.Options{}
	if err := resilientotel.Instrument(opts, resilientotel.WithMeterProvider(mp)); err != nil {
		log.Fatal(err)
	}
	c, err := resilient.Connect(ctx, mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil),
		resilient.StreamableHTTP(ts.URL, nil), opts)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for i := range 2 {
		if i == 1 {
			restart()
		}
		if _, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "greet"}); err != nil {
			log.Fatal(err)
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				var n int64
				for _, dp := range data.DataPoints {
					n += dp.Value
				}
				lines = append(lines, fmt.Sprintf("%s = %d", m.Name, n))
			case metricdata.Histogram[float64]:
				var n uint64
				for _, dp := range data.DataPoints {
					n += dp.Count
				}
				lines = append(lines, fmt.Sprintf("%s: %d calls timed", m.Name, n))
			}
		}
	}
	sort.Strings(lines)
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// mcp.client.operation.duration: 2 calls timed
	// mcpkit.client.attempts = 3
	// mcpkit.client.reconnects = 1
	// mcpkit.client.replays = 1
}
