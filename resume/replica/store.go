package replica

import (
	"context"
	"time"
)

// Store holds session-scoped state for the server half: the values that tool
// handlers keep per MCP session, and the atomic copy that resume_session
// performs when a client moves to a new session.
//
// Implementations must be safe for concurrent use by many sessions and
// many processes (the Redis store is shared by every replica). Keys and
// session IDs are opaque strings to the caller; an implementation must never
// interpret them as patterns. An implementation may refuse a session that
// fails [ValidateSessionID] with an error matching [ErrInvalidSessionID]
// (the Redis store does, so that its key layout stays unambiguous).
//
// Keys starting with [ReservedPrefix] ([OwnerKey], [LineageKey]) are the
// server half's own records; they are stored and copied like any other key.
type Store interface {
	// Get returns the value of key in session, and false when it is absent
	// or expired.
	Get(ctx context.Context, session, key string) (value []byte, ok bool, err error)

	// Set stores value under key in session. A ttl of zero or less means the
	// store's default TTL.
	Set(ctx context.Context, session, key string, value []byte, ttl time.Duration) error

	// Update atomically replaces the value of key in session with what fn
	// returns, given the current value (ok is false when absent). If fn
	// returns an error nothing is written and Update returns that error.
	// Update returns the value written. fn may be called more than once
	// (optimistic stores retry on conflict), so it must have no side effects.
	Update(ctx context.Context, session, key string, ttl time.Duration, fn func(old []byte, ok bool) ([]byte, error)) ([]byte, error)

	// Delete removes key from session. Deleting an absent key is not an error.
	Delete(ctx context.Context, session, key string) error

	// Keys lists the keys present in session, in no particular order.
	Keys(ctx context.Context, session string) ([]string, error)

	// Copy copies every key of session from into session to, replacing
	// keys of the same name, and refreshes their TTL. What it copies is a
	// consistent snapshot of from, and to receives all of it or, when Copy
	// fails, none of it (a store whose sessions live apart, as on Redis
	// Cluster, reads the snapshot in one step and writes it in another).
	// Copying again is always safe and repairs a failed Copy. It returns
	// the number of keys copied; copying an absent or empty session copies
	// zero keys and is not an error.
	//
	// resume_session relies on the snapshot: a snapshot that holds a value
	// holds the owner record written before it.
	Copy(ctx context.Context, from, to string, ttl time.Duration) (int, error)

	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
}

// DefaultTTL is the session TTL of the stores of the server half (package
// resume/memstore and resume/redisstore) when they are given none, and of
// adopted sessions' records: 30 minutes, the SESSION_TTL of the reference
// Python deployment, so a client that comes back within half an hour finds
// its state.
const DefaultTTL = 30 * time.Minute
