package resume_test

import (
	"testing"
	"time"

	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/internal/storetest"
)

// TestMemoryStore runs the Store contract that every implementation shares
// (the Redis store runs the same suite).
func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) resume.Store { return resume.NewMemoryStore(time.Hour) }, nil)
}
