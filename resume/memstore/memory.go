package memstore

import (
	"context"
	"slices"
	"sync"
	"time"
)

// fallbackTTL is the time a key lives in a [Store] created with a default
// TTL of zero: replica.DefaultTTL (a test of package replica checks that they
// agree; this package does not import it, so that its tests can use this one).
const fallbackTTL = 30 * time.Minute

// sweepEvery is how many writes a Store accepts between two sweeps of
// expired entries. Expiry is lazy (no goroutine), so without a sweep a session
// that is never read again would stay in memory for ever.
const sweepEvery = 1024

// Store is a [github.com/mcpkit/resilience/resume/replica.Store] kept in the memory of one process: the embedded
// default for a single server, and the store of the test cluster. It does not
// survive a restart and is not shared between processes; use a networked
// store for several replicas.
//
// Every key has its own expiry time, refreshed by Set, Update and Copy.
// Expired keys are invisible at once and freed lazily: there is no background
// goroutine. Values are copied on the way in and on the way out, so a caller
// may modify a slice it passed or received.
//
// A Store is safe for concurrent use. Every method holds one lock for
// its whole duration, which makes Update and Copy atomic. The zero value is
// not usable; call [New].
type Store struct {
	defaultTTL time.Duration

	mu       sync.Mutex
	sessions map[string]map[string]memoryEntry
	writes   int // since the last sweep
}

type memoryEntry struct {
	value   []byte
	expires time.Time
}

// New returns an empty Store whose keys live defaultTTL when
// a method is given a TTL of zero or less. A defaultTTL of zero or less means
// replica.DefaultTTL (30 minutes).
func New(defaultTTL time.Duration) *Store {
	if defaultTTL <= 0 {
		defaultTTL = fallbackTTL
	}
	return &Store{
		defaultTTL: defaultTTL,
		sessions:   make(map[string]map[string]memoryEntry),
	}
}

// DefaultTTL returns the TTL of keys written with a TTL of zero or less. The
// server half reads it to keep an replica.OwnerKey record alive longer than the
// values it guards. It is safe for concurrent use.
func (s *Store) DefaultTTL() time.Duration { return s.defaultTTL }

// Get implements [github.com/mcpkit/resilience/resume/replica.Store]. It returns ctx.Err() if ctx is already done, and
// never any other error.
func (s *Store) Get(ctx context.Context, session, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.lookup(session, key, time.Now())
	if !ok {
		return nil, false, nil
	}
	return slices.Clone(e.value), true, nil
}

// Set implements [github.com/mcpkit/resilience/resume/replica.Store]. It returns ctx.Err() if ctx is already done, and
// never any other error.
func (s *Store) Set(ctx context.Context, session, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.put(session, key, cloneValue(value), now.Add(s.ttl(ttl)))
	s.wrote(now)
	return nil
}

// Update implements [github.com/mcpkit/resilience/resume/replica.Store]. fn runs exactly once, under the store's lock:
// it must not call the store, or it deadlocks. The slice fn receives is a
// copy. Update returns ctx.Err() if ctx is already done, or fn's error.
func (s *Store) Update(ctx context.Context, session, key string, ttl time.Duration, fn func(old []byte, ok bool) ([]byte, error)) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var old []byte
	e, ok := s.lookup(session, key, now)
	if ok {
		old = slices.Clone(e.value)
	}
	value, err := fn(old, ok)
	if err != nil {
		return nil, err
	}
	value = cloneValue(value)
	s.put(session, key, value, now.Add(s.ttl(ttl)))
	s.wrote(now)
	return slices.Clone(value), nil
}

// Delete implements [github.com/mcpkit/resilience/resume/replica.Store]. It returns ctx.Err() if ctx is already done, and
// never any other error.
func (s *Store) Delete(ctx context.Context, session, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remove(session, key)
	return nil
}

// Keys implements [github.com/mcpkit/resilience/resume/replica.Store]. The keys come sorted, which the interface does not
// promise. It returns ctx.Err() if ctx is already done, and never any other
// error.
func (s *Store) Keys(ctx context.Context, session string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var keys []string
	for k, e := range s.sessions[session] {
		if e.live(now) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Copy implements [github.com/mcpkit/resilience/resume/replica.Store]. Copying a session onto itself refreshes its TTL.
// It returns ctx.Err() if ctx is already done, and never any other error.
func (s *Store) Copy(ctx context.Context, from, to string, ttl time.Duration) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	expires := now.Add(s.ttl(ttl))
	// Collect first: when from == to, writing while ranging over the same
	// map would be legal but would make the count depend on map order.
	type kv struct {
		key   string
		value []byte
	}
	var live []kv
	for k, e := range s.sessions[from] {
		if e.live(now) {
			live = append(live, kv{k, e.value})
		}
	}
	for _, p := range live {
		// Values are never mutated in place, so source and copy may share
		// the bytes.
		s.put(to, p.key, p.value, expires)
	}
	if len(live) > 0 {
		s.wrote(now)
	}
	return len(live), nil
}

// Ping implements [github.com/mcpkit/resilience/resume/replica.Store]. A Store is always reachable: Ping returns
// ctx.Err() if ctx is already done, and nil otherwise.
func (s *Store) Ping(ctx context.Context) error {
	return ctx.Err()
}

func (s *Store) ttl(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return s.defaultTTL
	}
	return ttl
}

// lookup returns the live entry of key in session, deleting it if it has
// expired. The caller holds s.mu.
func (s *Store) lookup(session, key string, now time.Time) (memoryEntry, bool) {
	e, ok := s.sessions[session][key]
	if !ok {
		return memoryEntry{}, false
	}
	if !e.live(now) {
		s.remove(session, key)
		return memoryEntry{}, false
	}
	return e, true
}

// put stores value, which the store now owns. The caller holds s.mu.
func (s *Store) put(session, key string, value []byte, expires time.Time) {
	m := s.sessions[session]
	if m == nil {
		m = make(map[string]memoryEntry)
		s.sessions[session] = m
	}
	m[key] = memoryEntry{value: value, expires: expires}
}

// remove deletes key and, with its last key, the session. The caller holds
// s.mu.
func (s *Store) remove(session, key string) {
	m := s.sessions[session]
	delete(m, key)
	if len(m) == 0 {
		delete(s.sessions, session)
	}
}

// wrote counts a write and sweeps expired entries every sweepEvery writes,
// which bounds memory by the live data plus sweepEvery writes' worth. The
// caller holds s.mu.
func (s *Store) wrote(now time.Time) {
	s.writes++
	if s.writes < sweepEvery {
		return
	}
	s.writes = 0
	for session, m := range s.sessions {
		for k, e := range m {
			if !e.live(now) {
				delete(m, k)
			}
		}
		if len(m) == 0 {
			delete(s.sessions, session)
		}
	}
}

func (e memoryEntry) live(now time.Time) bool {
	return now.Before(e.expires)
}

// cloneValue copies v, keeping an empty value non-nil so that a stored empty
// value reads back as present and empty rather than as nil.
func cloneValue(v []byte) []byte {
	return append(make([]byte, 0, len(v)), v...)
}
