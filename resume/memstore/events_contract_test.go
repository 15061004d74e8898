package memstore_test

import (
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume/internal/storetest"
)

// TestReferenceEventStore runs the event store contract against the
// go-sdk's own MemoryEventStore, the reference for what the transport
// expects: the Redis event store runs the same suite.
func TestReferenceEventStore(t *testing.T) {
	var shared *mcp.MemoryEventStore
	var owner *testing.T
	storetest.RunEvents(t, func(t *testing.T) mcp.EventStore {
		if owner != t {
			owner, shared = t, mcp.NewMemoryEventStore(nil)
		}
		return shared
	})
}
