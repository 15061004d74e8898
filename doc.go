// Package resilience is the root of a library that keeps Model Context
// Protocol (MCP) clients working when their servers fail.
//
// Go agents talk to MCP servers through the official Go SDK
// (github.com/modelcontextprotocol/go-sdk). When a server sits behind a load
// balancer and a backend dies, restarts, or the balancer routes elsewhere,
// the client's session is lost and the SDK's *mcp.ClientSession is dead for
// good; the commonest case is simpler still: the one server a client
// talks to restarts. This module ships the loop every agent otherwise
// re-writes: catch,
// back off, reconnect, resume the server-side state, and replay the failed
// call only when that cannot run it twice.
//
// # Packages
//
//   - [github.com/mcpkit/resilience/resilient]: the Client, a drop-in for
//     *mcp.ClientSession that reconnects, resumes and replays safely.
//   - [github.com/mcpkit/resilience/retry]: what users configure and
//     inspect: the retry policy, the per-call overrides, error
//     classification, and ErrExhausted with its typed reason. The decision
//     engine itself is internal to resilient.
//   - [github.com/mcpkit/resilience/resume]: the wire contract shared by
//     both halves (tool name, results, _meta keys, error codes, capability
//     names) and the client-side Resumer that calls resume_session.
//   - [github.com/mcpkit/resilience/resume/replica]: the server half for
//     go-sdk servers: the resume_session tool, Dedup (exactly-once tool
//     calls), session values and owner checks, and the session-adopting
//     Handler that lets every replica serve every session.
//   - [github.com/mcpkit/resilience/resume/memstore] and
//     [github.com/mcpkit/resilience/resume/redisstore]: session stores, in
//     memory and in Redis (with a Redis EventStore), for several replicas
//     behind HAProxy or nginx (see examples/ha and the README).
//   - github.com/mcpkit/resilience/extra/resilientotel, a module of its
//     own: OpenTelemetry traces and metrics for the client and the server
//     half, so that the core never requires OpenTelemetry.
//
// Start with the README's two commands: go run ./examples/failover shows a
// backend killed mid-session and the client recovering; go test ./... runs
// the tests.
package resilience
