package replica

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mcpkit/resilience/resume/memstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The memory store cannot import this package (its tests here would make a
// cycle), so it keeps its own copy of the default TTL: they must agree.
func TestMemoryStoreDefaultTTLIsDefaultTTL(t *testing.T) {
	if got := memstore.New(0).DefaultTTL(); got != DefaultTTL {
		t.Errorf("memstore.New(0).DefaultTTL() = %v, want DefaultTTL %v", got, DefaultTTL)
	}
	if got := memstore.New(-time.Second).DefaultTTL(); got != DefaultTTL {
		t.Errorf("memstore.New(-1s).DefaultTTL() = %v, want DefaultTTL %v", got, DefaultTTL)
	}
}
