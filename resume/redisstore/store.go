// Package redisstore is a [replica.Store] in Redis, for MCP servers that run
// as several replicas behind a load balancer: every replica reads and writes
// the same sessions, so resume_session on any replica finds the state a dead
// one left, and replica.Handler on any replica adopts a session another
// one created. [EventStore] is the go-sdk's mcp.EventStore in the same
// Redis: with it, a response that a dead replica had finished reaches the
// client from another one (see its doc for its layout and retention).
//
// # Layout
//
// A value lives at
//
//	mcp:session:{id}:{key}
//
// as a plain Redis string with its own TTL: the layout of the reference
// Python deployment, so Go and Python servers can share one Redis and read
// each other's values. Beside the values, each session has an index:
//
//	mcp:session-index:{id}
//
// a Redis set of the session's key names, updated in the same atomic step as
// every Set, Update, Delete and Copy, with a TTL as long as the longest one
// written. Keys and Copy read the index, so they never scan the keyspace and
// never build a pattern (the index's name does not match the data layout
// mcp:session:*:*, so tools that scan that layout do not see it). Members
// whose value has expired are skipped, and dropped by Keys.
//
// Session IDs must pass [replica.ValidateSessionID] (A-Z, a-z, 0-9, '_', '-';
// every go-sdk, UUID and hex ID does): with no ':' in the ID, a key name
// cannot make one session's key look like another's. Key names are free.
//
// # Servers that keep no index
//
// The Python reference server writes values without an index. Get reads
// them like any value, but Keys and Copy see only indexed keys unless
// [Options.ScanUnindexed] is set: then they also SCAN for the session's
// keys (with the ID glob-escaped), at the cost of a walk of the whole
// keyspace per call. Off by default because a Go-only deployment never
// needs it, and because a scan's cost grows with every session in Redis.
//
// # Atomicity
//
// Set, Delete, Keys and Copy are single Lua scripts, atomic in Redis. Copy
// uses DUMP and RESTORE, so it copies values of any type (a Python server's
// lists too) and refreshes their TTL. Update is an optimistic transaction
// (WATCH, GET, the caller's function, MULTI/EXEC), retried with a short
// random pause when another client changed the key, at most
// [Options.MaxUpdateAttempts] times; then it fails with [ErrContention].
//
// Scripts touch keys that they compute from their arguments, which Redis
// Cluster forbids: use a single Redis or a Sentinel-managed primary
// (redis.NewFailoverClient), not a cluster.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpkit/resilience/resume/replica"
)

// DefaultMaxUpdateAttempts is the number of optimistic transactions one
// Update tries when [Options.MaxUpdateAttempts] is zero.
const DefaultMaxUpdateAttempts = 64

// maxConflictPause caps the random pause between two tries of an Update, so
// that contending writers spread out instead of colliding again at once.
const maxConflictPause = 10 * time.Millisecond

// scanCount is the COUNT hint of each SCAN step with ScanUnindexed.
const scanCount = 1000

// Options configure a [Store]. A nil *Options and a zero field mean the
// documented defaults.
type Options struct {
	// DefaultTTL is how long a key lives when a method is given a TTL of
	// zero or less. Zero or less means [replica.DefaultTTL] (30 minutes, the
	// reference deployment's SESSION_TTL).
	DefaultTTL time.Duration

	// MaxUpdateAttempts bounds the optimistic transactions of one Update.
	// Zero means [DefaultMaxUpdateAttempts]; negative is invalid.
	MaxUpdateAttempts int

	// ScanUnindexed makes Keys and Copy also find keys that have no index
	// entry, written by servers that keep none (the Python reference), by
	// SCAN. Default false: only keys written through this package are seen.
	ScanUnindexed bool
}

// Store is a [replica.Store] in Redis. Create one with [New].
//
// A Store is safe for concurrent use by many goroutines and, through Redis,
// by many processes. It does not own the client: closing the client is the
// caller's job, after the last call.
type Store struct {
	rdb         redis.UniversalClient
	ttl         time.Duration
	maxAttempts int
	scan        bool
	scripts     scripts
}

var _ replica.Store = (*Store)(nil)

// New returns a Store on rdb (a *redis.Client, a Sentinel failover client,
// or any redis.UniversalClient other than a cluster client). It does not
// contact Redis: call [Store.Ping] to check the connection. It returns an
// error if rdb is nil or an option is out of range.
func New(rdb redis.UniversalClient, opts *Options) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("redisstore: New: nil Redis client")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxUpdateAttempts < 0 {
		return nil, fmt.Errorf("redisstore: New: Options.MaxUpdateAttempts is %d; want 0 (default %d) or more", o.MaxUpdateAttempts, DefaultMaxUpdateAttempts)
	}
	s := &Store{rdb: rdb, ttl: o.DefaultTTL, maxAttempts: o.MaxUpdateAttempts, scan: o.ScanUnindexed, scripts: newScripts()}
	if s.ttl <= 0 {
		s.ttl = replica.DefaultTTL
	}
	if s.maxAttempts == 0 {
		s.maxAttempts = DefaultMaxUpdateAttempts
	}
	return s, nil
}

// Key returns the Redis key of key in session: mcp:session:{session}:{key}.
// Operators and tests use it to read a value directly.
func Key(session, key string) string { return dataPrefix(session) + key }

// IndexKey returns the Redis key of session's index, a set of its key
// names: mcp:session-index:{session}.
func IndexKey(session string) string { return "mcp:session-index:" + session }

func dataPrefix(session string) string { return "mcp:session:" + session + ":" }

// DefaultTTL returns the TTL of keys written with a TTL of zero or less.
func (s *Store) DefaultTTL() time.Duration { return s.ttl }

// Get implements [replica.Store]. It returns ctx.Err() if ctx is already
// done, an error matching [replica.ErrInvalidSessionID] for a session that
// cannot be a session ID, and otherwise an error naming the key for any
// Redis failure (a value that is not a string, written by another server,
// gives Redis's WRONGTYPE error).
func (s *Store) Get(ctx context.Context, session, key string) ([]byte, bool, error) {
	if err := s.check(ctx, "Get", session); err != nil {
		return nil, false, err
	}
	v, err := s.rdb.Get(ctx, Key(session, key)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, s.fail("Get", session, key, err)
	}
	return v, true, nil
}

// Set implements [replica.Store]: one script writes the value with its TTL
// and adds key to the session's index. Errors are those of [Store.Get].
func (s *Store) Set(ctx context.Context, session, key string, value []byte, ttl time.Duration) error {
	if err := s.check(ctx, "Set", session); err != nil {
		return err
	}
	if err := s.put(ctx, s.rdb, session, key, value, ttl).Err(); err != nil {
		return s.fail("Set", session, key, err)
	}
	return nil
}

// put runs the write script on c: the client itself, or the MULTI of an
// Update, where the script is sent whole because EVALSHA's fallback to
// EVAL cannot run inside a transaction.
func (s *Store) put(ctx context.Context, c redis.Scripter, session, key string, value []byte, ttl time.Duration) *redis.Cmd {
	keys := []string{Key(session, key), IndexKey(session)}
	args := []any{value, s.ttlMillis(ttl), key}
	if _, inTx := c.(redis.Pipeliner); inTx {
		return s.scripts.put.Eval(ctx, c, keys, args...)
	}
	return s.scripts.put.Run(ctx, c, keys, args...)
}

// Update implements [replica.Store] with an optimistic transaction: it
// watches the key, reads it, calls fn, and writes in MULTI/EXEC, trying
// again when another client changed the key meanwhile. fn receives a fresh
// copy and may run several times. Update returns fn's error unwrapped, an
// error matching [ErrContention] after [Options.MaxUpdateAttempts] tries,
// ctx.Err() if ctx ends between tries, and otherwise the errors of
// [Store.Get].
func (s *Store) Update(ctx context.Context, session, key string, ttl time.Duration, fn func(old []byte, ok bool) ([]byte, error)) ([]byte, error) {
	if err := s.check(ctx, "Update", session); err != nil {
		return nil, err
	}
	dataKey := Key(session, key)
	var written []byte
	var fnErr error
	txn := func(tx *redis.Tx) error {
		old, err := tx.Get(ctx, dataKey).Bytes()
		ok := true
		switch {
		case errors.Is(err, redis.Nil):
			old, ok = nil, false
		case err != nil:
			return err
		}
		value, err := fn(old, ok)
		if err != nil {
			fnErr = err
			return err
		}
		written = append(make([]byte, 0, len(value)), value...)
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			s.put(ctx, p, session, key, written, ttl)
			return nil
		})
		return err
	}
	for attempt := 1; ; attempt++ {
		fnErr = nil
		err := s.rdb.Watch(ctx, txn, dataKey)
		switch {
		case err == nil:
			return append([]byte(nil), written...), nil
		case fnErr != nil:
			return nil, fnErr
		case !errors.Is(err, redis.TxFailedErr):
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, s.fail("Update", session, key, err)
		case attempt >= s.maxAttempts:
			return nil, fmt.Errorf("%w: Update of %q in session %s: the key changed under each of %d tries", ErrContention, key, session, attempt)
		}
		// Full jitter: writers that collided pick different moments.
		pause := rand.N(min(time.Duration(attempt)*time.Millisecond, maxConflictPause)) + 1
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// Delete implements [replica.Store]: one script removes the value and its
// index entry. Errors are those of [Store.Get].
func (s *Store) Delete(ctx context.Context, session, key string) error {
	if err := s.check(ctx, "Delete", session); err != nil {
		return err
	}
	if err := s.scripts.del.Run(ctx, s.rdb, []string{Key(session, key), IndexKey(session)}, key).Err(); err != nil {
		return s.fail("Delete", session, key, err)
	}
	return nil
}

// Keys implements [replica.Store]: one script reads the session's index,
// keeps the names whose value exists, and drops the others from the index.
// With [Options.ScanUnindexed] the names found by SCAN are added. Errors are
// those of [Store.Get].
func (s *Store) Keys(ctx context.Context, session string) ([]string, error) {
	if err := s.check(ctx, "Keys", session); err != nil {
		return nil, err
	}
	extra, err := s.unindexed(ctx, session)
	if err != nil {
		return nil, s.fail("Keys", session, "", err)
	}
	keys, err := s.scripts.keys.Run(ctx, s.rdb, []string{IndexKey(session)}, dataPrefix(session)).StringSlice()
	if err != nil {
		return nil, s.fail("Keys", session, "", err)
	}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		seen[k] = true
	}
	for _, k := range extra {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// Copy implements [replica.Store]: one script copies every live key in the
// index of from (with [Options.ScanUnindexed], also those found by a SCAN
// just before) to to, with DUMP and RESTORE ... REPLACE and the new TTL, and
// adds them to the index of to. Keys that expired or vanished between the
// scan and the script are skipped. It returns the number copied. Errors
// are those of [Store.Get], for either session.
func (s *Store) Copy(ctx context.Context, from, to string, ttl time.Duration) (int, error) {
	if err := s.check(ctx, "Copy", from); err != nil {
		return 0, err
	}
	if err := s.check(ctx, "Copy", to); err != nil {
		return 0, err
	}
	extra, err := s.unindexed(ctx, from)
	if err != nil {
		return 0, s.fail("Copy", from, "", err)
	}
	args := make([]any, 0, 3+len(extra))
	args = append(args, dataPrefix(from), dataPrefix(to), s.ttlMillis(ttl))
	for _, k := range extra {
		args = append(args, k)
	}
	n, err := s.scripts.copy.Run(ctx, s.rdb, []string{IndexKey(from), IndexKey(to)}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("redisstore: Copy from session %s to session %s: %w", from, to, err)
	}
	return n, nil
}

// Ping implements [replica.Store] with Redis's PING. It returns ctx.Err() if
// ctx is already done, and an error wrapping the client's otherwise.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: Ping: %w", err)
	}
	return nil
}

// unindexed returns the names of session's keys that SCAN finds, when
// ScanUnindexed is set, and nothing otherwise.
func (s *Store) unindexed(ctx context.Context, session string) ([]string, error) {
	if !s.scan {
		return nil, nil
	}
	prefix := dataPrefix(session)
	// The ID is validated, but the pattern is escaped all the same: no
	// input ever reaches a pattern unescaped.
	match := escapeGlob(prefix) + "*"
	var names []string
	iter := s.rdb.Scan(ctx, 0, match, scanCount).Iterator()
	for iter.Next(ctx) {
		names = append(names, strings.TrimPrefix(iter.Val(), prefix))
	}
	return names, iter.Err()
}

// escapeGlob escapes every character that Redis's glob-style patterns give
// a meaning to, so that s matches only itself.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// check refuses a done context (unwrapped, as every store does) and a
// session that cannot be a session ID, before anything reaches Redis.
func (s *Store) check(ctx context.Context, op, session string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := replica.ValidateSessionID(session); err != nil {
		return fmt.Errorf("redisstore: %s: %w", op, err)
	}
	return nil
}

// fail wraps a Redis failure with the operation and what it was about.
func (s *Store) fail(op, session, key string, err error) error {
	if key == "" {
		return fmt.Errorf("redisstore: %s of session %s: %w", op, session, err)
	}
	return fmt.Errorf("redisstore: %s %q of session %s: %w", op, key, session, err)
}

// ttlMillis is the TTL in milliseconds for PX and PEXPIRE: the default for
// zero or less, and at least one millisecond.
func (s *Store) ttlMillis(ttl time.Duration) int64 {
	if ttl <= 0 {
		ttl = s.ttl
	}
	return max(ttl.Milliseconds(), 1)
}
