// Package e2e tests the whole high-availability deployment with real
// parts: redis-server, haproxy and nginx from PATH, three built
// examples/haserver processes behind one of the balancer configurations of
// examples/ha (sticky HAProxy for haserver -adopt=false; HAProxy or nginx
// without stickiness for the default, which adopts sessions), and a
// resilient.Client, all on loopback ports chosen at run time. The tests kill processes with SIGKILL
// and check what the client sees and what Redis holds.
//
// They are behind the build tag e2e:
//
//	go test -tags e2e -count=1 -v ./e2e/...
//
// TestRedisClusterFailover runs the same deployment on a 6-node Redis
// Cluster (redis-cli creates it) and kills one of its primaries.
//
// A missing redis-server, haproxy or nginx skips them, and fails them under
// CI=true.
package e2e
