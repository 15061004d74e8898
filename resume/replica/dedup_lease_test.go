package replica_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/memstore"
	"github.com/mcpkit/resilience/resume/replica"
)

// asClientName is receiving middleware that stands in for bearer-token
// authentication: a tools/call's principal is its client's name.
func asClientName(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if r, ok := req.(*mcp.CallToolRequest); ok {
			if name := r.Session.InitializeParams().ClientInfo.Name; name != anonymous {
				r.Extra = &mcp.RequestExtra{TokenInfo: &auth.TokenInfo{UserID: name, Expiration: time.Now().Add(time.Hour)}}
			}
		}
		return next(ctx, method, req)
	}
}

// faultyStore is one replica's view of the shared store: once cut, every
// call fails, as for a replica that died or lost its store. It counts the
// reads of idempotency records.
type faultyStore struct {
	replica.Store
	cut        atomic.Bool
	recordGets atomic.Int64
	claims     atomic.Int64 // updates of idempotency records
}

var errCut = errors.New("store unreachable from this replica")

func (f *faultyStore) Get(ctx context.Context, session, key string) ([]byte, bool, error) {
	if f.cut.Load() {
		return nil, false, errCut
	}
	if strings.HasPrefix(key, "idem:") {
		f.recordGets.Add(1)
	}
	return f.Store.Get(ctx, session, key)
}

func (f *faultyStore) Set(ctx context.Context, session, key string, value []byte, ttl time.Duration) error {
	if f.cut.Load() {
		return errCut
	}
	return f.Store.Set(ctx, session, key, value, ttl)
}

func (f *faultyStore) Update(ctx context.Context, session, key string, ttl time.Duration, fn func([]byte, bool) ([]byte, error)) ([]byte, error) {
	if f.cut.Load() {
		return nil, errCut
	}
	v, err := f.Store.Update(ctx, session, key, ttl, fn)
	if err == nil && strings.HasPrefix(key, "idem:") {
		f.claims.Add(1)
	}
	return v, err
}

func (f *faultyStore) Delete(ctx context.Context, session, key string) error {
	if f.cut.Load() {
		return errCut
	}
	return f.Store.Delete(ctx, session, key)
}

// dedupReplica is one server replica with Dedup on a shared store and a
// tool "slow" that runs until its release channel is closed or for
// delay_ms, whichever comes first.
type dedupReplica struct {
	*ownerServer
	store   *faultyStore
	runs    atomic.Int32
	release chan struct{}
}

type slowIn struct {
	DelayMS int64 `json:"delay_ms,omitempty"`
}

type slowOut struct {
	Run int32 `json:"run"`
}

func newDedupReplica(shared replica.Store, opts *replica.DedupOptions) *dedupReplica {
	r := &dedupReplica{store: &faultyStore{Store: shared}, release: make(chan struct{})}
	s := mcp.NewServer(&mcp.Implementation{Name: "dedup", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "slow"}, func(ctx context.Context, _ *mcp.CallToolRequest, in slowIn) (*mcp.CallToolResult, slowOut, error) {
		var timeout <-chan time.Time
		if in.DelayMS > 0 {
			timeout = time.After(time.Duration(in.DelayMS) * time.Millisecond)
		}
		select {
		case <-r.release:
		case <-timeout:
		case <-ctx.Done():
			return nil, slowOut{}, ctx.Err()
		}
		return nil, slowOut{Run: r.runs.Add(1)}, nil
	})
	s.AddReceivingMiddleware(replica.DedupWith(r.store, opts))
	s.AddReceivingMiddleware(asClientName)
	r.ownerServer = &ownerServer{store: r.store, server: s}
	return r
}

func keyedSlow(key string, delay time.Duration) *mcp.CallToolParams {
	return &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"delay_ms": delay.Milliseconds()}, Meta: mcp.Meta{resume.IdempotencyKeyMeta: key}}
}

// A replay whose first execution's replica died is answered within the
// lease with resume.CodeOutcomeUnknown, not after Wait, and the tool is not
// run again.
func TestDedupReplayAfterReplicaDeath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared := memstore.New(0)
		a := newDedupReplica(shared, nil)
		b := newDedupReplica(shared, nil)
		onA := a.connect(t, "alice", "SA")
		onB := b.connect(t, "alice", "SB")

		first := make(chan error, 1)
		go func() {
			_, err := onA.CallTool(t.Context(), keyedSlow("k1", 0))
			first <- err
		}()
		synctest.Wait() // the first execution runs on A and holds the claim
		// A dies: nothing it does reaches the store any more.
		a.store.cut.Store(true)
		start := time.Now()
		_, err := onB.CallTool(t.Context(), keyedSlow("k1", 0))
		took := time.Since(start)
		var we *jsonrpc.Error
		if !errors.As(err, &we) || we.Code != resume.CodeOutcomeUnknown {
			t.Fatalf("replay on B: err = %v, want JSON-RPC %d (outcome unknown)", err, resume.CodeOutcomeUnknown)
		}
		if took > replica.DefaultDedupLease {
			t.Errorf("replay answered after %v, want within the lease %v", took, replica.DefaultDedupLease)
		}
		t.Logf("replay answered after %v: %v", took, err)
		if got := b.runs.Load(); got != 0 {
			t.Errorf("B ran the tool %d times, want 0", got)
		}
		// Later replays get the same answer, at once.
		start = time.Now()
		if _, err := onB.CallTool(t.Context(), keyedSlow("k1", 0)); !errors.As(err, &we) || we.Code != resume.CodeOutcomeUnknown {
			t.Errorf("second replay: err = %v, want JSON-RPC %d", err, resume.CodeOutcomeUnknown)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("second replay took %v, want no wait", took)
		}
		close(a.release)
		if err := <-first; err != nil {
			t.Errorf("first call on A: %v", err)
		}
		if got := a.runs.Load() + b.runs.Load(); got != 1 {
			t.Errorf("the tool ran %d times, want 1", got)
		}
	})
}

// A first execution that runs several leases long keeps its claim alive:
// a replay waits for it and gets its result. The waiting replay reads the
// store a few times a second, not in a tight loop.
func TestDedupLeaseKeepsLongCallAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared := memstore.New(0)
		a := newDedupReplica(shared, nil)
		b := newDedupReplica(shared, nil)
		onA := a.connect(t, "alice", "SA")
		onB := b.connect(t, "alice", "SB")
		const runFor = 20 * time.Second // five leases, within Wait

		first := make(chan *mcp.CallToolResult, 1)
		go func() {
			res, err := onA.CallTool(t.Context(), keyedSlow("k1", runFor))
			if err != nil {
				t.Errorf("first call: %v", err)
			}
			first <- res
		}()
		synctest.Wait()
		start := time.Now()
		res, err := onB.CallTool(t.Context(), keyedSlow("k1", runFor))
		waited := time.Since(start)
		if err != nil {
			t.Fatalf("replay on B: %v; want the first execution's result", err)
		}
		if res.Meta[resume.ReplayedMeta] != true {
			t.Errorf("replay result _meta = %v, want the replayed marker", res.Meta)
		}
		<-first
		if got := a.runs.Load() + b.runs.Load(); got != 1 {
			t.Errorf("the tool ran %d times, want 1", got)
		}
		reads := b.store.recordGets.Load()
		perSecond := float64(reads) / waited.Seconds()
		fmt.Printf("FIGURE dedup waiting replay: %d store reads in %v, %.1f reads/s\n", reads, waited, perSecond)
		// The backoff reaches 500ms within the first second: about 2 reads a
		// second, plus the quick first ones.
		if perSecond > 5 {
			t.Errorf("a waiting replay read the store %.1f times a second (%d reads in %v), want at most 5", perSecond, reads, waited)
		}
	})
}

// A replay that waits on a first execution still running on a live replica
// is answered as soon as it finishes, within one poll (at most 500ms).
func TestDedupReplayWakesForResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared := memstore.New(0)
		a := newDedupReplica(shared, nil)
		b := newDedupReplica(shared, nil)
		onA := a.connect(t, "alice", "SA")
		onB := b.connect(t, "alice", "SB")
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := onA.CallTool(t.Context(), keyedSlow("k1", 0)); err != nil {
				t.Errorf("first call: %v", err)
			}
		}()
		synctest.Wait()
		var finished time.Time
		go func() {
			time.Sleep(7 * time.Second)
			finished = time.Now()
			close(a.release)
		}()
		if _, err := onB.CallTool(t.Context(), keyedSlow("k1", 0)); err != nil {
			t.Fatalf("replay: %v", err)
		}
		if late := time.Since(finished); late > 500*time.Millisecond {
			t.Errorf("replay answered %v after the first execution finished, want at most 500ms", late)
		}
		wg.Wait()
	})
}

// The lease on a real Redis: renewals (optimistic updates) keep a call
// that runs several leases alive, and a replica cut from the store lets its
// claim lapse, which a replay on another replica answers as an unknown
// outcome long before Wait.
func TestDedupLeaseOnRedis(t *testing.T) {
	shared, _ := stores(t)[1].open(t, time.Hour)
	opts := &replica.DedupOptions{Lease: 300 * time.Millisecond, Wait: 20 * time.Second}
	a := newDedupReplica(shared, opts)
	b := newDedupReplica(shared, opts)
	onA := a.connect(t, "alice", "SA")
	onB := b.connect(t, "alice", "SB")
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()

	t.Run("alive", func(t *testing.T) {
		first := make(chan error, 1)
		go func() {
			_, err := onA.CallTool(ctx, keyedSlow("k-alive", 1500*time.Millisecond)) // five leases
			first <- err
		}()
		waitClaimed(t, a.store)
		res, err := onB.CallTool(ctx, keyedSlow("k-alive", 1500*time.Millisecond))
		if err != nil {
			t.Fatalf("replay: %v; want the first execution's result", err)
		}
		if res.Meta[resume.ReplayedMeta] != true {
			t.Errorf("replay _meta = %v, want the replayed marker", res.Meta)
		}
		if err := <-first; err != nil {
			t.Errorf("first call: %v", err)
		}
	})
	t.Run("cut", func(t *testing.T) {
		before := a.runs.Load() + b.runs.Load()
		a.store.claims.Store(0) // the renewals of the call before counted too
		first := make(chan error, 1)
		go func() {
			_, err := onA.CallTool(ctx, keyedSlow("k-cut", 0))
			first <- err
		}()
		waitClaimed(t, a.store)
		a.store.cut.Store(true)
		start := time.Now()
		_, err := onB.CallTool(ctx, keyedSlow("k-cut", 0))
		took := time.Since(start)
		var we *jsonrpc.Error
		if !errors.As(err, &we) || we.Code != resume.CodeOutcomeUnknown {
			t.Fatalf("replay: err = %v, want JSON-RPC %d", err, resume.CodeOutcomeUnknown)
		}
		t.Logf("replay of a cut replica's claim answered after %v (lease 300ms, Wait 20s)", took)
		if took >= opts.Wait {
			t.Errorf("replay answered after %v: it waited for Wait, not for the lease", took)
		}
		close(a.release)
		<-first
		if got := a.runs.Load() + b.runs.Load() - before; got != 1 {
			t.Errorf("the tool ran %d times, want 1", got)
		}
	})
}

// waitClaimed waits until a replica has written an idempotency record
// since its count was last reset: its first execution holds the claim.
// Bounded by a deadline.
func waitClaimed(t *testing.T, f *faultyStore) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.claims.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no claim within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
