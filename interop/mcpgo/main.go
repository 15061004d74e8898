// Command mcpgo is an MCP server built with github.com/mark3labs/mcp-go, for
// the interop suite (go test -tags interop ./interop/...). It serves
// streamable HTTP at /mcp on 127.0.0.1 with the suite's tools, keeping every
// count in Redis (REDIS_URL) so that a SIGKILLed and restarted server still
// knows what ran:
//
//	increment       the session's counter +1 (not annotated idempotent)
//	slow_increment  {ms}: records a start, sleeps ms, then increments
//	get_counter     the session's counter (readOnlyHint)
//	slow_get        {ms}: sleeps ms, then reads the counter (readOnlyHint)
//	runs            {"starts","runs","reads_started"} on this Redis (readOnlyHint)
//
// It has no resume_session tool: mcp-go has no such convention, and a client
// must treat its absence as "resume skipped".
//
// Usage:
//
//	mcpgo -mode stateful|stateless|default [-port N]
//
// stateful validates session IDs (an unknown ID is refused), stateless issues
// none, default is mcp-go's own default (IDs issued, never checked). It
// prints "READY <port>" once it accepts connections.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/redis/go-redis/v9"
)

func main() {
	mode := flag.String("mode", "stateful", "session handling: stateful, stateless or default")
	port := flag.Int("port", envPort(), "port on 127.0.0.1 (0 picks one; default $PORT)")
	flag.Parse()
	if err := run(*mode, *port); err != nil {
		fmt.Fprintln(os.Stderr, "mcpgo:", err)
		os.Exit(1)
	}
}

func envPort() int {
	n, _ := strconv.Atoi(os.Getenv("PORT"))
	return n
}

func run(mode string, port int) error {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		return fmt.Errorf("REDIS_URL is not set: the tools keep their counts in Redis")
	}
	ropts, err := redis.ParseURL(url)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(ropts)
	defer rdb.Close()

	var opts []server.StreamableHTTPOption
	switch mode {
	case "stateful":
		opts = append(opts, server.WithStateful(true))
	case "stateless":
		opts = append(opts, server.WithStateLess(true))
	case "default":
	default:
		return fmt.Errorf("-mode %q: want stateful, stateless or default", mode)
	}
	s := server.NewMCPServer("mcp-go-"+mode, "1.0.0", server.WithToolCapabilities(false))
	addTools(s, rdb)

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", server.NewStreamableHTTPServer(s, opts...))
	fmt.Printf("READY %d\n", ln.Addr().(*net.TCPAddr).Port)
	return http.Serve(ln, mux)
}

func addTools(s *server.MCPServer, rdb *redis.Client) {
	key := func(ctx context.Context, name string) string {
		id := "stateless"
		if cs := server.ClientSessionFromContext(ctx); cs != nil && cs.SessionID() != "" {
			id = cs.SessionID()
		}
		return "sess:" + id + ":" + name
	}
	increment := func(ctx context.Context) (*mcp.CallToolResult, error) {
		n, err := rdb.Incr(ctx, key(ctx, "counter")).Result()
		if err != nil {
			return nil, err
		}
		if err := rdb.Incr(ctx, "runs").Err(); err != nil {
			return nil, err
		}
		return mcp.NewToolResultText(strconv.FormatInt(n, 10)), nil
	}
	get := func(ctx context.Context) (*mcp.CallToolResult, error) {
		n, err := rdb.Get(ctx, key(ctx, "counter")).Int64()
		if err != nil && err != redis.Nil {
			return nil, err
		}
		return mcp.NewToolResultText(strconv.FormatInt(n, 10)), nil
	}
	sleep := func(ctx context.Context, req mcp.CallToolRequest) error {
		t := time.NewTimer(time.Duration(req.GetInt("ms", 1000)) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	s.AddTool(mcp.NewTool("increment", mcp.WithDescription("Adds one to the session counter and returns it. Not idempotent.")),
		func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) { return increment(ctx) })
	s.AddTool(mcp.NewTool("slow_increment", mcp.WithDescription("Records a start, waits ms milliseconds, then adds one to the session counter."),
		mcp.WithNumber("ms", mcp.Description("milliseconds to wait"))),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if err := rdb.Incr(ctx, "starts").Err(); err != nil {
				return nil, err
			}
			if err := sleep(ctx, req); err != nil {
				return nil, err
			}
			return increment(ctx)
		})
	s.AddTool(mcp.NewTool("get_counter", mcp.WithDescription("Returns the session counter."), mcp.WithReadOnlyHintAnnotation(true)),
		func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) { return get(ctx) })
	s.AddTool(mcp.NewTool("slow_get", mcp.WithDescription("Waits ms milliseconds, then returns the session counter."),
		mcp.WithNumber("ms", mcp.Description("milliseconds to wait")), mcp.WithReadOnlyHintAnnotation(true)),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if err := rdb.Incr(ctx, "reads_started").Err(); err != nil {
				return nil, err
			}
			if err := sleep(ctx, req); err != nil {
				return nil, err
			}
			return get(ctx)
		})
	s.AddTool(mcp.NewTool("runs", mcp.WithDescription("How often the increment tools started and finished on this Redis."), mcp.WithReadOnlyHintAnnotation(true)),
		func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			vals, err := rdb.MGet(ctx, "starts", "runs", "reads_started").Result()
			if err != nil {
				return nil, err
			}
			n := func(v any) int {
				s, _ := v.(string)
				i, _ := strconv.Atoi(s)
				return i
			}
			b, _ := json.Marshal(map[string]int{"starts": n(vals[0]), "runs": n(vals[1]), "reads_started": n(vals[2])})
			return mcp.NewToolResultText(string(b)), nil
		})
}
