package resilient_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/mcpkit/resilience/examples/demotools"
	"github.com/mcpkit/resilience/resume/memstore"
)

// stdioServerEnv makes the test binary serve the demo tools on stdio
// instead of running tests: the stdio server of the transport tests.
const stdioServerEnv = "RESILIENT_TEST_STDIO_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(stdioServerEnv) != "" {
		if err := serveStdio(); err != nil {
			fmt.Fprintln(os.Stderr, "stdio server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func serveStdio() error {
	s := mcp.NewServer(&mcp.Implementation{Name: "stdio-test", Version: "1"}, nil)
	if err := demotools.Register(s, demotools.Options{Store: memstore.New(0), Instance: fmt.Sprintf("stdio-%d", os.Getpid())}); err != nil {
		return err
	}
	return s.Run(context.Background(), &mcp.StdioTransport{})
}
