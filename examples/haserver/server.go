package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/mcpkit/resilience/examples/demotools"
	"github.com/mcpkit/resilience/resume/redisstore"
	"github.com/mcpkit/resilience/resume/replica"
)

// healthTimeout bounds one store ping of /health: a balancer's check must
// get an answer before its own timeout, and a slow store is a sick one.
const healthTimeout = time.Second

// serve runs the server on ln until ctx ends, then shuts down gracefully
// (see the package doc). It returns nil after a clean shutdown.
func serve(ctx context.Context, cfg config, ln net.Listener, log *slog.Logger) error {
	rdb, where, err := newRedis(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	defer rdb.Close()
	store, err := redisstore.New(rdb, storeOptions(cfg))
	if err != nil {
		ln.Close()
		return err
	}

	server := mcp.NewServer(&mcp.Implementation{Name: "haserver", Version: "1", Title: cfg.instance}, &mcp.ServerOptions{
		// Accepting subscriptions lets clients show that they restore them
		// after a failover.
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	// One line as each tool call starts and ends: which replica ran what.
	around := func(ctx context.Context, tool string, next func(context.Context) error) error {
		log.Info("tool started", "tool", tool)
		err := next(ctx)
		log.Info("tool finished", "tool", tool, "err", err)
		return err
	}
	if err := demotools.Register(server, demotools.Options{Store: store, Instance: cfg.instance, Around: around}); err != nil {
		ln.Close()
		return err
	}
	if cfg.dedup {
		server.AddReceivingMiddleware(replica.Dedup(store, 0))
	}

	// POSTs in flight are counted so that a shutdown can wait for them: a
	// POST returns once its answer is written, whereas a GET is a
	// long-lived event stream that only closing its session ends.
	var inflight atomic.Int64
	sdk, err := mcpHandler(cfg, server, rdb, log)
	if err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			inflight.Add(1)
			defer inflight.Add(-1)
		}
		sdk.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /health", health(store, cfg.instance, log))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String(), "mcp", "/mcp", "health", "/health", "redis", where, "stateless", cfg.stateless, "adopt", cfg.adopt && !cfg.stateless, "dedup", cfg.dedup)
	if err := store.Ping(ctx); err != nil && ctx.Err() == nil {
		// Not fatal: /health answers 503 until Redis is reachable, and the
		// balancer keeps the replica out of rotation meanwhile.
		log.Warn("store unreachable at start", "err", err)
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "inflight_posts", inflight.Load())
	return shutdown(srv, server, &inflight, served, cfg.shutdownTimeout, log)
}

// newRedis returns the Redis client the flags ask for: a cluster client, a
// Sentinel failover client or a single server's, and a description for the
// log.
func newRedis(cfg config) (redis.UniversalClient, string, error) {
	switch {
	case len(cfg.redisCluster) > 0:
		// One dial per attempt: a dead primary refuses at once, and
		// go-redis's retries of the dial only delay the failure that
		// makes the store reload the slot map and find the promoted one.
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: cfg.redisCluster, DialerRetries: 1}),
			"cluster " + strings.Join(cfg.redisCluster, ","), nil
	case cfg.sentinelMaster != "":
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: cfg.sentinelMaster, SentinelAddrs: cfg.sentinelAddrs}),
			"sentinel " + cfg.sentinelMaster + "@" + strings.Join(cfg.sentinelAddrs, ","), nil
	}
	opt, err := redis.ParseURL(cfg.redisURL)
	if err != nil {
		return nil, "", fmt.Errorf("-redis %q: %w", cfg.redisURL, err)
	}
	return redis.NewClient(opt), opt.Addr, nil
}

// storeOptions are the session store's options from the flags.
func storeOptions(cfg config) *redisstore.Options {
	return &redisstore.Options{DefaultTTL: cfg.sessionTTL, ReplicaAcks: cfg.replicaAcks, ReplicaAckTimeout: cfg.replicaTimeout}
}

// mcpHandler is the handler of /mcp: stateless, the go-sdk's stock
// stateful handler (-adopt=false), or by default replica.Handler, which
// serves every session on every replica, with Redis event store.
func mcpHandler(cfg config, server *mcp.Server, rdb redis.UniversalClient, log *slog.Logger) (http.Handler, error) {
	getServer := func(*http.Request) *mcp.Server { return server }
	if cfg.stateless || !cfg.adopt {
		return mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
			Stateless:                  cfg.stateless,
			Logger:                     log,
			DisableLocalhostProtection: cfg.allowAnyHost,
		}), nil
	}
	store, err := redisstore.New(rdb, storeOptions(cfg))
	if err != nil {
		return nil, err
	}
	events, err := redisstore.NewEventStore(rdb, &redisstore.EventOptions{TTL: cfg.sessionTTL})
	if err != nil {
		return nil, err
	}
	var es mcp.EventStore = events
	if cfg.killAfterEvent != "" {
		es = killAfterEvent{EventStore: events, marker: []byte(cfg.killAfterEvent), log: log}
	}
	return replica.NewHandler(getServer, store, &replica.HandlerOptions{
		EventStore:                 es,
		SessionTTL:                 cfg.sessionTTL,
		Logger:                     log,
		DisableLocalhostProtection: cfg.allowAnyHost,
	}), nil
}

// killAfterEvent is the -test-kill-after-event hook: it stores each event,
// then kills the process if the event contains marker, so that the event
// is in Redis and never reaches the client from this process.
type killAfterEvent struct {
	mcp.EventStore
	marker []byte
	log    *slog.Logger
}

func (k killAfterEvent) Append(ctx context.Context, session, stream string, data []byte) error {
	err := k.EventStore.Append(ctx, session, stream, data)
	if err == nil && bytes.Contains(data, k.marker) {
		k.log.Warn("test hook: killing this process after storing the event", "session", session, "stream", stream)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not delivered synchronously; never return
	}
	return err
}

// shutdown stops accepting connections, waits for the POSTs in flight (tool
// calls among them) to be answered, then closes the MCP sessions, which ends their long-lived SSE streams (an
// http.Server's Shutdown alone would wait for those until its deadline).
// After timeout it closes every connection.
func shutdown(srv *http.Server, server *mcp.Server, inflight *atomic.Int64, served <-chan error, timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- srv.Shutdown(ctx) }()

	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for inflight.Load() > 0 && ctx.Err() == nil {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	// Closing a session waits for its calls; past the deadline those may
	// never end, so the wait is bounded and the process exits regardless.
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for ss := range server.Sessions() {
			ss.Close()
		}
	}()
	select {
	case <-closed:
	case <-ctx.Done():
	}
	err := <-drained
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown timed out; closing connections", "timeout", timeout, "inflight_posts", inflight.Load())
		srv.Close()
		err = nil
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	if err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// healthAnswer is the JSON of /health, the reference deployment's.
type healthAnswer struct {
	Status   string `json:"status"`
	Instance string `json:"instance"`
	Store    string `json:"store,omitempty"`
}

// health answers GET /health: 200 when the store answers a ping within
// healthTimeout, 503 otherwise.
func health(store replica.Store, instance string, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		ans, code := healthAnswer{Status: "ok", Instance: instance}, http.StatusOK
		if err := store.Ping(ctx); err != nil {
			log.Warn("health: store unreachable", "err", err)
			ans, code = healthAnswer{Status: "degraded", Instance: instance, Store: "unreachable"}, http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(ans)
	}
}
