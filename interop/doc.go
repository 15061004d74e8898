// Package interop proves the resilient client against MCP servers that
// nobody here wrote: servers of the TypeScript SDK 1.32.2 in its documented
// styles (interop/node), @modelcontextprotocol/server-everything over stdio,
// SSE and streamable HTTP, and an mcp-go v1.2.1 server (interop/mcpgo). Each
// runs as its own process on a loopback port chosen at run time, and is
// killed with SIGKILL and restarted on purpose; the tools keep their counts
// in a redis-server the test starts, so that "it ran once" is checked on
// the server side.
//
// The tests are behind the build tag interop:
//
//	(cd interop/node && npm ci)
//	go test -tags interop -count=1 -v ./interop/...
//
// Each scenario that passes prints one line,
// "INTEROP <server> <transport> <scenario>: ok <duration>", which backs the
// README's "Tested against" table. A missing node, node_modules or
// redis-server skips the tests, and fails them under CI=true.
package interop
