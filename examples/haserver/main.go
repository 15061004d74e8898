// Command haserver is a production-style MCP server meant to run as several
// replicas behind a load balancer (HAProxy or nginx), with every session in
// Redis. By default any replica serves any session (replica.Handler adopts
// it from its record in Redis, with the same session ID, and a shared
// Redis event store replays a response that a dead replica had finished):
// when a replica dies, the balancer sends the next request to another one
// and the client notices nothing, so the balancer needs no stickiness. With
// -adopt=false it serves with the go-sdk's stock handler, which knows only
// its own sessions: the balancer must then be sticky, and a client whose
// replica died reconnects and calls resume_session, which copies its old
// session's state from Redis.
//
// It serves the tools of the test cluster (increment_counter, get_counter,
// add_note, list_notes, slow_increment, get_server_info, resume_session)
// over streamable HTTP at /mcp, and GET /health, which pings Redis: 200
// {"status":"ok","instance":...} when it answers, 503
// {"status":"degraded","instance":...,"store":"unreachable"} when it does
// not, so that the balancer takes a replica that lost its store out of
// rotation.
//
//	haserver -addr 127.0.0.1:8001 -instance mcp-1 -redis redis://127.0.0.1:6379/0
//	haserver -redis-cluster 10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000 -replica-acks 1
//	haserver -redis-sentinel mymaster@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379
//
// It finds Redis in one of three ways: one server by URL (-redis), a Redis
// Cluster by the addresses of some of its nodes (-redis-cluster; the client
// learns the others), or a Sentinel-managed primary by its name and the
// addresses of its sentinels (-redis-sentinel). Giving more than one is an
// error. The cluster and Sentinel flags carry no credentials: they suit
// deployments whose default user needs no password.
//
// Every flag has an environment variable as fallback (the flag wins):
//
//	-addr        LISTEN_ADDR    listen address (default 127.0.0.1:8000)
//	-instance    INSTANCE_ID    name in answers and logs (default the host name)
//	-redis       REDIS_URL      Redis URL (default redis://127.0.0.1:6379/0)
//	-redis-cluster REDIS_CLUSTER  host:port,... of Redis Cluster nodes (default none)
//	-redis-sentinel REDIS_SENTINEL  master@host:port,... of sentinels (default none)
//	-replica-acks REPLICA_ACKS  replicas that must acknowledge each session
//	             write, dedup records included (default 0: none)
//	-replica-ack-timeout REPLICA_ACK_TIMEOUT  bound of that wait (default 500ms)
//	-stateless   STATELESS      serve without sessions (default false)
//	-adopt       ADOPT          any replica serves any session (default true)
//	-dedup       DEDUP          run each tools/call with an idempotency key once (default false)
//	-session-ttl SESSION_TTL    life of session state in Redis (default 30m)
//	-shutdown-timeout SHUTDOWN_TIMEOUT  grace for in-flight calls (default 10s)
//	-disable-localhost-protection DISABLE_LOCALHOST_PROTECTION
//	             accept any Host header on a loopback listener (default false)
//
// One flag is a test hook, for fault-injection tests only:
// -test-kill-after-event SUBSTRING makes the process SIGKILL itself right
// after its event store has stored an event containing SUBSTRING, before
// the event reaches the client: a replica that dies after a tool finished
// and before its answer was delivered.
//
// On SIGTERM or SIGINT it stops accepting connections, lets the tool calls
// in flight finish (up to the shutdown timeout), closes the sessions, and
// exits 0. Logs go to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		// -h printed the usage.
	case err != nil:
		fmt.Fprintln(os.Stderr, "haserver:", err)
		stop()
		os.Exit(1)
	}
}

// config is what the flags and environment say.
type config struct {
	addr            string
	instance        string
	redisURL        string
	redisCluster    []string // node addresses; empty when not a cluster
	sentinelMaster  string   // set with sentinelAddrs
	sentinelAddrs   []string
	replicaAcks     int
	replicaTimeout  time.Duration
	stateless       bool
	adopt           bool
	dedup           bool
	killAfterEvent  string
	sessionTTL      time.Duration
	shutdownTimeout time.Duration
	allowAnyHost    bool
}

// parseConfig reads args, falling back to the environment (through getenv)
// for each flag not given, and to the defaults. Usage and errors go to out.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "haserver"
	}
	fs := flag.NewFlagSet("haserver", flag.ContinueOnError)
	fs.SetOutput(out)
	var c config
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8000", "listen `address` (env LISTEN_ADDR)")
	fs.StringVar(&c.instance, "instance", host, "instance `name` in answers and logs (env INSTANCE_ID)")
	fs.StringVar(&c.redisURL, "redis", "redis://127.0.0.1:6379/0", "Redis `URL` (env REDIS_URL)")
	var cluster, sentinel string
	fs.StringVar(&cluster, "redis-cluster", "", "Redis Cluster node `addresses`, host:port,host:port... (env REDIS_CLUSTER); replaces -redis")
	fs.StringVar(&sentinel, "redis-sentinel", "", "Sentinel-managed primary as `master@host:port,host:port...`, the sentinels' addresses (env REDIS_SENTINEL); replaces -redis")
	fs.IntVar(&c.replicaAcks, "replica-acks", 0, "replicas that must acknowledge each session write, dedup records included, before it succeeds (env REPLICA_ACKS)")
	fs.DurationVar(&c.replicaTimeout, "replica-ack-timeout", 500*time.Millisecond, "bound of the wait for -replica-acks (env REPLICA_ACK_TIMEOUT)")
	fs.BoolVar(&c.stateless, "stateless", false, "serve stateless streamable HTTP, without sessions (env STATELESS)")
	fs.BoolVar(&c.adopt, "adopt", true, "serve every session on every replica, adopting it from Redis (env ADOPT); false needs a sticky balancer")
	fs.BoolVar(&c.dedup, "dedup", false, "run each tools/call carrying an idempotency key at most once, and answer its replays from Redis (env DEDUP)")
	fs.StringVar(&c.killAfterEvent, "test-kill-after-event", "", "test hook: SIGKILL this process right after storing a stream event containing `SUBSTRING`")
	fs.DurationVar(&c.sessionTTL, "session-ttl", 30*time.Minute, "how long session state lives in Redis after its last write (env SESSION_TTL)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "grace for in-flight calls on SIGTERM (env SHUTDOWN_TIMEOUT)")
	fs.BoolVar(&c.allowAnyHost, "disable-localhost-protection", false, "accept requests with any Host header on a loopback listener, as behind a balancer on the same host reached by another name (env DISABLE_LOCALHOST_PROTECTION)")
	env := map[string]string{
		"addr":                         "LISTEN_ADDR",
		"instance":                     "INSTANCE_ID",
		"redis":                        "REDIS_URL",
		"redis-cluster":                "REDIS_CLUSTER",
		"redis-sentinel":               "REDIS_SENTINEL",
		"replica-acks":                 "REPLICA_ACKS",
		"replica-ack-timeout":          "REPLICA_ACK_TIMEOUT",
		"stateless":                    "STATELESS",
		"adopt":                        "ADOPT",
		"dedup":                        "DEDUP",
		"session-ttl":                  "SESSION_TTL",
		"shutdown-timeout":             "SHUTDOWN_TIMEOUT",
		"disable-localhost-protection": "DISABLE_LOCALHOST_PROTECTION",
	}
	// Environment first, as if given before the command line, so that
	// flags override it and both go through the same parsers.
	for name, key := range env {
		if v := getenv(key); v != "" {
			if err := fs.Set(name, v); err != nil {
				return config{}, fmt.Errorf("environment %s=%q: %w", key, v, err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if n := btoi(set["redis"]) + btoi(cluster != "") + btoi(sentinel != ""); n > 1 {
		return config{}, errors.New("give one of -redis, -redis-cluster and -redis-sentinel")
	}
	if cluster != "" {
		if c.redisCluster, err = addrList(cluster); err != nil {
			return config{}, fmt.Errorf("-redis-cluster: %w", err)
		}
	}
	if sentinel != "" {
		master, addrs, ok := strings.Cut(sentinel, "@")
		if !ok || master == "" {
			return config{}, fmt.Errorf("-redis-sentinel %q: want master@host:port[,host:port]", sentinel)
		}
		c.sentinelMaster = master
		if c.sentinelAddrs, err = addrList(addrs); err != nil {
			return config{}, fmt.Errorf("-redis-sentinel: %w", err)
		}
	}
	switch {
	case c.replicaAcks < 0:
		return config{}, fmt.Errorf("-replica-acks is %d; want 0 or more", c.replicaAcks)
	case c.replicaTimeout <= 0:
		return config{}, fmt.Errorf("-replica-ack-timeout is %v; want more than 0", c.replicaTimeout)
	case c.sessionTTL <= 0:
		return config{}, fmt.Errorf("-session-ttl is %v; want more than 0", c.sessionTTL)
	case c.shutdownTimeout <= 0:
		return config{}, fmt.Errorf("-shutdown-timeout is %v; want more than 0", c.shutdownTimeout)
	case c.instance == "":
		return config{}, errors.New("-instance is empty")
	}
	return c, nil
}

// addrList splits a comma-separated list of host:port addresses.
func addrList(s string) ([]string, error) {
	var out []string
	for a := range strings.SplitSeq(s, ",") {
		a = strings.TrimSpace(a)
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return nil, fmt.Errorf("%q is not host:port", a)
		}
		out = append(out, a)
	}
	return out, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// run parses the configuration, listens, and serves until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("instance", cfg.instance)
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, ln, log)
}
