package proctest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterNodeTimeout is the cluster-node-timeout of a [RedisCluster]: how
// long a primary may be unreachable before its replica takes over.
const ClusterNodeTimeout = time.Second

// clusterReadyTimeout bounds the wait for a new cluster, and for a
// promotion after a primary's death.
const clusterReadyTimeout = 30 * time.Second

// RedisCluster is a Redis Cluster of three primaries and three replicas
// started by [StartRedisCluster], every node a redis-server of its own on
// 127.0.0.1. Its methods must not run concurrently with each other.
type RedisCluster struct {
	// Nodes are the six servers, in the order their addresses were given
	// to redis-cli --cluster create (which makes the first three the
	// primaries at the start).
	Nodes []*Redis
	t     testing.TB
}

// clusterPort returns a loopback port below 55535 that is free, and whose
// cluster bus port (port+10000) is free too: the system's own choice
// (FreePort) is often above that range.
func clusterPort(t testing.TB) int {
	t.Helper()
	for range 200 {
		p := 20000 + rand.IntN(35000)
		a, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return p
	}
	t.Fatal("no free port pair (p, p+10000) found for a cluster node")
	return 0
}

// StartRedisCluster starts six redis-server processes in cluster mode
// (cluster-node-timeout [ClusterNodeTimeout], no persistence, full
// coverage not required, so that the other primaries keep serving while
// one fails over), joins them with redis-cli --cluster create
// --cluster-replicas 1, and returns once every node reports
// cluster_state:ok and every replica is in sync. It skips t when
// redis-server or redis-cli is missing (fails it under CI=true). Every
// node is killed when t ends.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	cli := Binary(t, "redis-cli")
	c := &RedisCluster{t: t}
	args := []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", itoa(int(ClusterNodeTimeout.Milliseconds())),
		"--cluster-require-full-coverage", "no",
		// A replica may always take over, however long it was cut off:
		// the tests kill primaries on purpose.
		"--cluster-replica-validity-factor", "0",
	}
	for range 6 {
		c.Nodes = append(c.Nodes, startRedis(t, &RedisOptions{Args: args}, clusterPort))
	}
	create := []string{"--cluster", "create"}
	create = append(create, c.Addrs()...)
	create = append(create, "--cluster-replicas", "1", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, create...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(create, " "), err, out)
	}
	if err := c.waitHealthy(ctx, nil); err != nil {
		t.Fatalf("Redis Cluster not ready: %v", err)
	}
	return c
}

// Addrs returns the address of every node, the dead ones included.
func (c *RedisCluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// Node returns the node at addr, or nil.
func (c *RedisCluster) Node(addr string) *Redis {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// ClusterNode is one line of CLUSTER NODES.
type ClusterNode struct {
	ID      string
	Addr    string // host:port
	Primary bool
	Of      string // a replica's primary's ID
	Failed  bool   // flagged fail or pfail
	Slots   int    // the number of slots it serves
}

// Topology returns the cluster as the node at addr sees it.
func (c *RedisCluster) Topology(ctx context.Context, addr string) ([]ClusterNode, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	text, err := rdb.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES at %s: %w", addr, err)
	}
	var nodes []ClusterNode
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		n := ClusterNode{ID: f[0], Addr: f[1], Of: f[3]}
		if i := strings.IndexByte(n.Addr, '@'); i >= 0 {
			n.Addr = n.Addr[:i]
		}
		flags := strings.Split(f[2], ",")
		n.Primary = slices.Contains(flags, "master")
		n.Failed = slices.Contains(flags, "fail") || slices.Contains(flags, "fail?")
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated
			}
			lo, hi, found := strings.Cut(r, "-")
			var a, b int
			fmt.Sscan(lo, &a)
			b = a
			if found {
				fmt.Sscan(hi, &b)
			}
			n.Slots += b - a + 1
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// Primaries returns the addresses of the live primaries that serve slots,
// as the first live node sees them.
func (c *RedisCluster) Primaries(ctx context.Context) ([]string, error) {
	nodes, err := c.topology(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nodes {
		if n.Primary && !n.Failed && n.Slots > 0 {
			out = append(out, n.Addr)
		}
	}
	return out, nil
}

// topology asks the live nodes in turn.
func (c *RedisCluster) topology(ctx context.Context) ([]ClusterNode, error) {
	var last error = errors.New("no live node")
	for _, n := range c.Nodes {
		if c.dead(n) {
			continue
		}
		nodes, err := c.Topology(ctx, n.Addr)
		if err == nil {
			return nodes, nil
		}
		last = err
	}
	return nil, last
}

func (c *RedisCluster) dead(n *Redis) bool {
	select {
	case <-n.proc.Exited():
		return true
	default:
		return false
	}
}

// ReplicasOf returns the replicas of the primary at addr.
func (c *RedisCluster) ReplicasOf(ctx context.Context, addr string) ([]*Redis, error) {
	nodes, err := c.Topology(ctx, addr)
	if err != nil {
		return nil, err
	}
	var id string
	for _, x := range nodes {
		if x.Addr == addr && x.Primary {
			id = x.ID
		}
	}
	var out []*Redis
	for _, x := range nodes {
		if id != "" && x.Of == id {
			if r := c.Node(x.Addr); r != nil {
				out = append(out, r)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s is not a primary with a replica", addr)
	}
	return out, nil
}

// KillPrimary kills the primary at addr with SIGKILL, calls afterKill (if
// not nil), and waits until its replica has been promoted and every live
// node reports cluster_state:ok (bounded: 30s). It returns the new
// primary's address and how long the promotion took from the kill.
func (c *RedisCluster) KillPrimary(addr string, afterKill func()) (string, time.Duration, error) {
	n := c.Node(addr)
	if n == nil {
		return "", 0, fmt.Errorf("no cluster node at %s", addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	nodes, err := c.Topology(ctx, addr)
	if err != nil {
		return "", 0, err
	}
	var id string
	var replicas []string
	for _, x := range nodes {
		if x.Addr == addr && x.Primary {
			id = x.ID
		}
	}
	for _, x := range nodes {
		if id != "" && x.Of == id {
			replicas = append(replicas, x.ID)
		}
	}
	if id == "" || len(replicas) == 0 {
		return "", 0, fmt.Errorf("%s is not a primary with a replica", addr)
	}
	start := time.Now()
	if err := n.Kill(); err != nil {
		return "", 0, err
	}
	if afterKill != nil {
		afterKill()
	}
	var promoted string
	err = c.waitHealthy(ctx, func(nodes []ClusterNode) error {
		for _, x := range nodes {
			if slices.Contains(replicas, x.ID) && x.Primary && !x.Failed && x.Slots > 0 {
				promoted = x.Addr
				return nil
			}
		}
		return fmt.Errorf("no replica of %s promoted yet", addr)
	})
	return promoted, time.Since(start), err
}

// waitHealthy polls (every 50ms, until ctx ends) until every live node
// reports cluster_state:ok and sees every live node, every live replica's
// link to its primary is up, and check (if any) accepts the topology.
func (c *RedisCluster) waitHealthy(ctx context.Context, check func([]ClusterNode) error) error {
	var last error
	for {
		last = c.healthy(ctx, check)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *RedisCluster) healthy(ctx context.Context, check func([]ClusterNode) error) error {
	for _, n := range c.Nodes {
		if c.dead(n) {
			continue
		}
		rdb := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1, DialTimeout: time.Second})
		info, err := rdb.ClusterInfo(ctx).Result()
		var repl string
		if err == nil {
			repl, err = rdb.Info(ctx, "replication").Result()
		}
		rdb.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", n.Addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: cluster_state not ok", n.Addr)
		}
		if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return fmt.Errorf("%s: replica not in sync with its primary", n.Addr)
		}
	}
	nodes, err := c.topology(ctx)
	if err != nil {
		return err
	}
	slots := 0
	for _, n := range nodes {
		if n.Primary && !n.Failed {
			slots += n.Slots
		}
	}
	if slots != 16384 {
		return fmt.Errorf("live primaries serve %d of 16384 slots", slots)
	}
	if check != nil {
		return check(nodes)
	}
	return nil
}

// Restart starts the dead node at addr again on its port and directory, so
// that it rejoins the cluster (as a replica of the node promoted in its
// place, having kept its nodes.conf; it has no data of its own and syncs
// from its primary), and waits until the cluster is healthy again with
// every replica in sync (bounded: 30s).
func (c *RedisCluster) Restart(addr string) error {
	n := c.Node(addr)
	if n == nil {
		return fmt.Errorf("no cluster node at %s", addr)
	}
	if err := n.Restart(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	return c.waitHealthy(ctx, func(nodes []ClusterNode) error {
		for _, x := range nodes {
			if x.Addr == addr && (x.Failed || x.Primary) {
				return fmt.Errorf("%s has not rejoined as a replica yet", addr)
			}
		}
		return nil
	})
}
