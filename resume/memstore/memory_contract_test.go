package memstore_test

import (
	"testing"
	"time"

	"github.com/mcpkit/resilience/resume/internal/storetest"
	"github.com/mcpkit/resilience/resume/memstore"
	"github.com/mcpkit/resilience/resume/replica"
)

// TestMemoryStore runs the Store contract that every implementation shares
// (the Redis store runs the same suite).
func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) replica.Store { return memstore.New(time.Hour) }, nil)
}
