// Package fault is the fault suite: a fault proxy (internal/faultproxy:
// black hole, reset of every connection, slow close) between a
// resilient.Client and real servers, checking that every call ends within
// the bounds the client promises, and that no write runs twice.
//
// Two deployments, all on loopback ports chosen at run time:
//
//   - three built examples/haserver replicas (sessions adopted on every
//     replica, tools/call deduplicated by idempotency key) on one
//     redis-server, behind examples/ha/nginx.conf, which does not cut
//     streams when a replica fails; the fault proxy sits between the
//     client and nginx;
//   - the TypeScript SDK's server (interop/node/tsserver.js, stateful
//     2025-11-25 sessions, no deduplication) behind the fault proxy.
//
// Each test prints what it measured as FIGURE lines. The timings are not
// asserted beyond the bounds that are the capability itself: a read
// answered within 10s of the fault, or within 3s of the heal; a write
// answered with its deduplicated result or ErrOutcomeUnknown within 10s.
//
// The tests are behind the build tag fault:
//
//	go test -tags fault -count=1 -v ./fault/
//
// A missing redis-server, nginx, node or interop/node/node_modules skips
// them, and fails them under CI=true.
package fault
