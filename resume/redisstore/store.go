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

// DefaultReplicaAckTimeout bounds the wait for replicas after a write when
// [Options.ReplicaAcks] is set and [Options.ReplicaAckTimeout] is zero.
const DefaultReplicaAckTimeout = 500 * time.Millisecond

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

	// Layout chooses the key names. Default [LayoutCluster], which works on
	// a single Redis, under Sentinel and on a cluster; [LayoutPython]
	// shares a single Redis with the Python reference servers and is
	// refused on a cluster client.
	Layout Layout

	// ScanUnindexed makes Keys and Copy also find keys that have no index
	// entry, written by servers that keep none (the Python reference), by
	// SCAN. Only with [LayoutPython] (no other server writes the cluster
	// layout without its index); refused on a cluster client. Default
	// false: only keys written through this package are seen.
	ScanUnindexed bool

	// ReplicaAcks is the number of replicas that must acknowledge each
	// write (Set, Update, Delete, Copy's write) before it succeeds, with
	// WAIT on the write's connection. Zero (the default) waits for none;
	// negative is invalid. A write that fewer replicas acknowledged within
	// ReplicaAckTimeout returns an error matching [ErrNotReplicated]; a
	// write refused, before anything was written, by a primary with fewer
	// replicas connected returns one matching [ErrNoReplicas]. See
	// the package doc for what it protects against and what it does not.
	// It needs a *redis.Client (single Redis or Sentinel) or a
	// *redis.ClusterClient.
	ReplicaAcks int

	// ReplicaAckTimeout bounds each wait for ReplicaAcks. Zero or less
	// means [DefaultReplicaAckTimeout] (500ms); it must stay below the
	// client's read timeout.
	ReplicaAckTimeout time.Duration

	// FailoverWait bounds how long an operation on a cluster client keeps
	// trying, reloading the slot map, while it fails without having reached
	// a server (the primary of its slot is dead and its replica not yet
	// promoted). Commands that may have reached a server are never sent
	// again. Zero means [DefaultFailoverWait] (5s); negative never waits.
	// Other clients do not wait.
	FailoverWait time.Duration
}

// Store is a [replica.Store] in Redis. Create one with [New].
//
// A Store is safe for concurrent use by many goroutines and, through Redis,
// by many processes. It does not own the client: closing the client is the
// caller's job, after the last call.
type Store struct {
	rdb         redis.UniversalClient
	layout      Layout
	ttl         time.Duration
	maxAttempts int
	scan        bool
	acks        int
	ackTimeout  time.Duration
	scripts     scripts
	cluster     *redis.ClusterClient // rdb, when it is a cluster client
	wait        time.Duration        // FailoverWait

	// betweenCopySteps, when set (by tests), runs after Copy's read and
	// before its write; an error from it ends Copy there, as a crash would.
	betweenCopySteps func(ctx context.Context) error
}

var _ replica.Store = (*Store)(nil)

// New returns a Store on rdb: a *redis.Client (one Redis), a Sentinel
// failover client (redis.NewFailoverClient), a *redis.ClusterClient, or
// another redis.UniversalClient. It does not contact Redis: call
// [Store.Ping] to check the connection. It returns an error if rdb is nil,
// an option is out of range, or the options do not suit the client
// (LayoutPython or ScanUnindexed on a cluster client, ReplicaAcks on a
// client that cannot pin a connection).
func New(rdb redis.UniversalClient, opts *Options) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("redisstore: New: nil Redis client")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	clusterClient, cluster := rdb.(*redis.ClusterClient)
	switch {
	case o.MaxUpdateAttempts < 0:
		return nil, fmt.Errorf("redisstore: New: Options.MaxUpdateAttempts is %d; want 0 (default %d) or more", o.MaxUpdateAttempts, DefaultMaxUpdateAttempts)
	case !o.Layout.valid():
		return nil, fmt.Errorf("redisstore: New: Options.Layout is %v; want LayoutCluster (default) or LayoutPython", o.Layout)
	case o.Layout == LayoutPython && cluster:
		return nil, errors.New("redisstore: New: Options.Layout is LayoutPython, whose keys of one session span several hash slots; a cluster client needs LayoutCluster")
	case o.ScanUnindexed && o.Layout != LayoutPython:
		return nil, errors.New("redisstore: New: Options.ScanUnindexed needs Options.Layout LayoutPython (only Python servers write keys without an index)")
	case o.ReplicaAcks < 0:
		return nil, fmt.Errorf("redisstore: New: Options.ReplicaAcks is %d; want 0 (default, no wait) or more", o.ReplicaAcks)
	}
	if o.ReplicaAcks > 0 {
		switch rdb.(type) {
		case *redis.Client, *redis.ClusterClient:
		default:
			return nil, fmt.Errorf("redisstore: New: Options.ReplicaAcks needs a *redis.Client or *redis.ClusterClient, got %T", rdb)
		}
	}
	s := &Store{
		rdb: rdb, layout: o.Layout, ttl: o.DefaultTTL, maxAttempts: o.MaxUpdateAttempts,
		scan: o.ScanUnindexed, acks: o.ReplicaAcks, ackTimeout: o.ReplicaAckTimeout,
		scripts: newScripts(), cluster: clusterClient,
	}
	if s.ttl <= 0 {
		s.ttl = replica.DefaultTTL
	}
	if s.maxAttempts == 0 {
		s.maxAttempts = DefaultMaxUpdateAttempts
	}
	if s.ackTimeout <= 0 {
		s.ackTimeout = DefaultReplicaAckTimeout
	}
	switch {
	case o.FailoverWait == 0:
		s.wait = DefaultFailoverWait
	case o.FailoverWait > 0:
		s.wait = o.FailoverWait
	}
	return s, nil
}

// Layout returns the store's key layout.
func (s *Store) Layout() Layout { return s.layout }

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
	var v []byte
	err := s.ride(ctx, func() (err error) {
		v, err = s.rdb.Get(ctx, s.layout.Key(session, key)).Bytes()
		return err
	})
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, s.fail("Get", session, key, err)
	}
	return v, true, nil
}

// Set implements [replica.Store]: one script writes the value with its TTL
// and adds key to the session's index. Errors are those of [Store.Get], and
// with [Options.ReplicaAcks] one matching [ErrNotReplicated].
func (s *Store) Set(ctx context.Context, session, key string, value []byte, ttl time.Duration) error {
	if err := s.check(ctx, "Set", session); err != nil {
		return err
	}
	err := s.write(ctx, s.layout.Key(session, key), func(c redis.Scripter) error {
		return s.put(ctx, c, session, key, value, ttl).Err()
	})
	if err != nil {
		return s.fail("Set", session, key, err)
	}
	return nil
}

// put runs the write script on c: the client itself, or the MULTI of an
// Update, where the script is sent whole because EVALSHA's fallback to
// EVAL cannot run inside a transaction.
func (s *Store) put(ctx context.Context, c redis.Scripter, session, key string, value []byte, ttl time.Duration) *redis.Cmd {
	keys := []string{s.layout.Key(session, key), s.layout.IndexKey(session)}
	args := []any{value, s.ttlMillis(ttl), key, s.acks}
	if _, inTx := c.(redis.Pipeliner); inTx {
		return s.scripts.put.Eval(ctx, c, keys, args...)
	}
	return s.scripts.put.Run(ctx, c, keys, args...)
}

// write runs do, and with ReplicaAcks waits on the same connection for the
// replicas to acknowledge it. WATCH pins that connection on every client
// type (on a cluster, to the node that owns key's slot, following
// redirections); the key is watched but no transaction is ever executed.
func (s *Store) write(ctx context.Context, key string, do func(c redis.Scripter) error) error {
	if s.acks == 0 {
		return s.ride(ctx, func() error { return do(s.rdb) })
	}
	return s.ride(ctx, func() error {
		return s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			if err := do(tx); err != nil {
				return err
			}
			return s.waitReplicas(ctx, tx)
		}, key)
	})
}

// ride is [rideOut] with the store's client and FailoverWait.
func (s *Store) ride(ctx context.Context, op func() error) error {
	return rideOut(ctx, s.cluster, s.wait, op)
}

// waitReplicas sends WAIT on tx's connection and reports a shortfall.
func (s *Store) waitReplicas(ctx context.Context, tx *redis.Tx) error {
	n, err := tx.Wait(ctx, s.acks, s.ackTimeout).Result()
	if err != nil {
		return fmt.Errorf("waiting for %d replicas: %w", s.acks, err)
	}
	if int(n) < s.acks {
		return fmt.Errorf("%w: %d of %d replicas acknowledged the write within %v", ErrNotReplicated, n, s.acks, s.ackTimeout)
	}
	return nil
}

// Update implements [replica.Store] with an optimistic transaction: it
// watches the key, reads it, calls fn, and writes in MULTI/EXEC, trying
// again when another client changed the key meanwhile. fn receives a fresh
// copy and may run several times. Update returns fn's error unwrapped, an
// error matching [ErrContention] after [Options.MaxUpdateAttempts] tries,
// ctx.Err() if ctx ends between tries, and otherwise the errors of
// [Store.Set].
func (s *Store) Update(ctx context.Context, session, key string, ttl time.Duration, fn func(old []byte, ok bool) ([]byte, error)) ([]byte, error) {
	if err := s.check(ctx, "Update", session); err != nil {
		return nil, err
	}
	dataKey := s.layout.Key(session, key)
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
		if err != nil || s.acks == 0 {
			return err
		}
		return s.waitReplicas(ctx, tx)
	}
	for attempt := 1; ; attempt++ {
		fnErr = nil
		err := s.ride(ctx, func() error {
			err := s.rdb.Watch(ctx, txn, dataKey)
			if fnErr != nil {
				// fn's own error, whatever it says, is never tried again.
				return errFnFailed
			}
			return err
		})
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

// noReplicas wraps Redis's NOREPLICAS refusal (the write scripts' own, or
// min-replicas-to-write's) so that it matches [ErrNoReplicas].
func noReplicas(err error) error {
	if err != nil && strings.HasPrefix(err.Error(), "NOREPLICAS") {
		return fmt.Errorf("%w: %w", ErrNoReplicas, err)
	}
	return err
}

// errFnFailed stands for an Update's fn error inside ride.
var errFnFailed = errors.New("redisstore: Update's function failed")

// Delete implements [replica.Store]: one script removes the value and its
// index entry. Errors are those of [Store.Set].
func (s *Store) Delete(ctx context.Context, session, key string) error {
	if err := s.check(ctx, "Delete", session); err != nil {
		return err
	}
	dataKey := s.layout.Key(session, key)
	err := s.write(ctx, dataKey, func(c redis.Scripter) error {
		return s.scripts.del.Run(ctx, c, []string{dataKey, s.layout.IndexKey(session)}, key, s.acks).Err()
	})
	if err != nil {
		return s.fail("Delete", session, key, err)
	}
	return nil
}

// Keys implements [replica.Store]: it reads the session's index, then one
// script keeps the names whose value exists and drops the others from the
// index. With [Options.ScanUnindexed] the names found by SCAN are checked
// too. Errors are those of [Store.Get].
func (s *Store) Keys(ctx context.Context, session string) ([]string, error) {
	if err := s.check(ctx, "Keys", session); err != nil {
		return nil, err
	}
	names, err := s.names(ctx, session)
	if err != nil {
		return nil, s.fail("Keys", session, "", err)
	}
	if len(names) == 0 {
		return []string{}, nil
	}
	keys := make([]string, 0, 1+len(names))
	keys = append(keys, s.layout.IndexKey(session))
	args := make([]any, 0, len(names))
	for _, n := range names {
		keys = append(keys, s.layout.Key(session, n))
		args = append(args, n)
	}
	var live []string
	err = s.ride(ctx, func() (err error) {
		live, err = s.scripts.keys.Run(ctx, s.rdb, keys, args...).StringSlice()
		return err
	})
	if err != nil {
		return nil, s.fail("Keys", session, "", err)
	}
	return live, nil
}

// names returns the members of session's index and, with ScanUnindexed,
// the names SCAN finds, each once.
func (s *Store) names(ctx context.Context, session string) ([]string, error) {
	var names []string
	err := s.ride(ctx, func() (err error) {
		names, err = s.rdb.SMembers(ctx, s.layout.IndexKey(session)).Result()
		return err
	})
	if err != nil {
		return nil, err
	}
	extra, err := s.unindexed(ctx, session)
	if err != nil || len(extra) == 0 {
		return names, err
	}
	seen := make(map[string]bool, len(names)+len(extra))
	for _, n := range names {
		seen[n] = true
	}
	for _, n := range extra {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return names, nil
}

// Copy implements [replica.Store] in two steps, because the two sessions
// live in two hash slots: one script DUMPs every value named in the index
// of from (with [Options.ScanUnindexed], also those found by a SCAN), a
// consistent snapshot; then one script RESTOREs them into to with the new
// TTL (replacing keys of the same name) and indexes them. Each step is
// atomic, the first writes nothing, so an interruption anywhere leaves the
// target with all of the copy or none of it, and copying again repairs it
// (see the package doc). Values that expired before the snapshot are
// skipped. It returns the number copied. Errors are those of [Store.Set],
// for either session.
func (s *Store) Copy(ctx context.Context, from, to string, ttl time.Duration) (int, error) {
	if err := s.check(ctx, "Copy", from); err != nil {
		return 0, err
	}
	if err := s.check(ctx, "Copy", to); err != nil {
		return 0, err
	}
	n, err := s.copy(ctx, from, to, ttl)
	if err != nil {
		reloadOnFailure(s.cluster, err)
		err = noReplicas(err)
		return 0, fmt.Errorf("redisstore: Copy from session %s to session %s: %w", from, to, err)
	}
	return n, nil
}

func (s *Store) copy(ctx context.Context, from, to string, ttl time.Duration) (int, error) {
	names, err := s.names(ctx, from)
	if err != nil || len(names) == 0 {
		return 0, err
	}
	// Step 1, on from's slot: the snapshot.
	src := make([]string, len(names))
	for i, n := range names {
		src[i] = s.layout.Key(from, n)
	}
	var dumps []any
	err = s.ride(ctx, func() (err error) {
		dumps, err = s.scripts.dump.Run(ctx, s.rdb, src).Slice()
		return err
	})
	if err != nil {
		return 0, err
	}
	if len(dumps) != len(names) {
		return 0, fmt.Errorf("malformed snapshot: %d values for %d names", len(dumps), len(names))
	}
	dstIndex := s.layout.IndexKey(to)
	keys := []string{dstIndex}
	args := []any{s.ttlMillis(ttl), s.acks}
	for i, d := range dumps {
		payload, ok := d.(string)
		if !ok {
			continue // expired or deleted before the snapshot
		}
		keys = append(keys, s.layout.Key(to, names[i]))
		args = append(args, names[i], payload)
	}
	if len(keys) == 1 {
		return 0, nil
	}
	if s.betweenCopySteps != nil {
		if err := s.betweenCopySteps(ctx); err != nil {
			return 0, err
		}
	}
	// Step 2, on to's slot: every value, or (the script being atomic) none.
	var n int
	err = s.write(ctx, dstIndex, func(c redis.Scripter) error {
		var err error
		n, err = s.scripts.restore.Run(ctx, c, keys, args...).Int()
		return err
	})
	return n, err
}

// Ping implements [replica.Store] with Redis's PING (on a cluster client,
// every node). It returns ctx.Err() if ctx is already done, and an error
// wrapping the client's otherwise.
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
	prefix := s.layout.valuePrefix(session)
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

// fail wraps a Redis failure with the operation and what it was about. On
// a cluster client it also asks for a fresh slot map: go-redis reloads it
// on MOVED answers but not when a dead primary refuses connections, and
// otherwise keeps sending that primary's slots to it until its periodic
// reload (ClusterOptions.ClusterStateReloadInterval, 60s by default).
func (s *Store) fail(op, session, key string, err error) error {
	reloadOnFailure(s.cluster, err)
	err = noReplicas(err)
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

// reloadOnFailure asks a cluster client (if c is one) to reload its slot
// map after err, unless err is one that no topology change explains. The
// reload runs in the background and go-redis rate-limits it.
func reloadOnFailure(c *redis.ClusterClient, err error) {
	if c == nil || err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, ErrContention) || errors.Is(err, ErrNotReplicated) {
		return
	}
	c.ReloadState(context.Background())
}
