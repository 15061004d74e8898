package resilient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/memstore"
	"github.com/mcpkit/resilience/resume/replica"
	"github.com/mcpkit/resilience/retry"
)

// A payment runs once, even though its first answer is lost and the client
// sends it again. The server deduplicates (replica.Dedup) and says so; the
// caller picks the idempotency key (here an order number) by putting it in
// the call's _meta, so that a later call of its own with the same key, after
// a crash of the caller for instance, is answered from the first run too.
func ExampleClient_CallTool_exactlyOnce() {
	store := memstore.New(0)
	var runs atomic.Int32
	server := mcp.NewServer(&mcp.Implementation{Name: "payments", Version: "1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "pay"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, map[string]int32, error) {
		n := runs.Add(1)
		return nil, map[string]int32{"payment": n}, nil
	})
	server.AddReceivingMiddleware(replica.Dedup(store, 24*time.Hour))
	replica.AddTool(server, store, nil) // resume_session carries the keys to a new session
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	var lost atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if bytes.Contains(body, []byte(`"name":"pay"`)) && lost.CompareAndSwap(false, true) {
			// The first payment runs, and its answer is lost with the
			// connection.
			mcpHandler.ServeHTTP(httptest.NewRecorder(), r)
			panic(http.ErrAbortHandler)
		}
		mcpHandler.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer func() {
		for ss := range server.Sessions() {
			_ = ss.Close()
		}
	}()

	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "shop", Version: "1"}, nil)
	c, err := resilient.Connect(ctx, client, resilient.StreamableHTTP(srv.URL, nil), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	pay := &mcp.CallToolParams{Name: "pay", Meta: mcp.Meta{resume.IdempotencyKeyMeta: "order-42"}}
	for range 2 {
		res, err := c.CallTool(ctx, pay)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("result:", res.StructuredContent, "replayed:", res.Meta[resume.ReplayedMeta] == true)
	}
	fmt.Println("runs:", runs.Load(), "replays sent by the client:", c.Stats().Replays)
	// Output:
	// result: map[payment:1] replayed: true
	// result: map[payment:1] replayed: true
	// runs: 1 replays sent by the client: 1
}

// A call made while the server is down fails at once with ErrCircuitOpen
// once the breaker has opened. With retry.WaitForReady it waits instead,
// within its context, and is sent when the client's probe finds the server
// back.
func ExampleClient_CallTool_waitForReady() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	addr := ln.Addr().String()
	server := newGreeter()
	defer func() {
		for ss := range server.Sessions() {
			_ = ss.Close()
		}
	}()
	serve := func(ln net.Listener) *httptest.Server {
		srv := &httptest.Server{
			Listener: ln,
			Config:   &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)},
		}
		srv.Start()
		return srv
	}
	srv := serve(ln)

	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "my-agent", Version: "1"}, nil)
	c, err := resilient.Connect(ctx, client, resilient.StreamableHTTP("http://"+addr, nil), &resilient.Options{
		Breaker: resilient.BreakerSettings{ConsecutiveFailures: 2, OpenTimeout: 100 * time.Millisecond},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	greet := &mcp.CallToolParams{Name: "greet", Arguments: map[string]any{"name": "Ada"}}

	// The server goes down. Calls fail until the breaker opens.
	srv.CloseClientConnections()
	srv.Close()
	var failFast error
	for range 10 {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		_, failFast = c.CallTool(ctx, greet)
		cancel()
		if errors.Is(failFast, resilient.ErrCircuitOpen) {
			break
		}
	}
	fmt.Println("without WaitForReady:", errors.Is(failFast, resilient.ErrCircuitOpen))

	// The server comes back on the same address while the call waits.
	back := make(chan *httptest.Server, 1)
	go func() {
		time.Sleep(200 * time.Millisecond) // the length of the outage
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Fatal(err)
		}
		back <- serve(ln)
	}()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := c.CallTool(retry.WaitForReady(ctx), greet)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("with WaitForReady:", textOf(res))
	c.Close()
	(<-back).Close()
	// Output:
	// without WaitForReady: true
	// with WaitForReady: hello, Ada
}
