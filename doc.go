// Package resilience is the root of a library that keeps Model Context
// Protocol (MCP) clients working when their servers fail.
//
// Go agents talk to MCP servers through the official Go SDK
// (github.com/modelcontextprotocol/go-sdk). When a server sits behind a load
// balancer and a backend dies, restarts, or the balancer routes elsewhere,
// the client's session is lost and the SDK's *mcp.ClientSession is dead for
// good. This module ships the loop every agent otherwise re-writes: catch,
// back off, reconnect, resume the server-side state, and replay the failed
// call only when that cannot run it twice.
//
// # Packages
//
//   - [github.com/mcpkit/resilience/resilient]: the Client, a drop-in for
//     *mcp.ClientSession that reconnects, resumes and replays safely.
//   - [github.com/mcpkit/resilience/retry]: pure decisions: error
//     classification, retry policy, backoff, retry budget, per-call
//     overrides.
//   - [github.com/mcpkit/resilience/resume]: the client-side Resumer that
//     calls resume_session, and the server half for Go servers (the
//     resume_session tool and session stores).
//   - [github.com/mcpkit/resilience/resume/redisstore]: the session store
//     in Redis, for several server replicas behind HAProxy (see
//     examples/ha and the README's "Deploying behind HAProxy with Redis").
//
// Start with the README's two commands: go run ./examples/failover shows a
// backend killed mid-session and the client recovering; go test ./... runs
// the tests.
package resilience
