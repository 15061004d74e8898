package redisstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/mcpkit/resilience/resume/replica"
)

// DefaultMaxEventsPerStream bounds a stream's events when
// [EventOptions.MaxEventsPerStream] is zero.
const DefaultMaxEventsPerStream = 1000

// EventOptions configure [NewEventStore]. A nil *EventOptions and zero
// fields mean the documented defaults.
type EventOptions struct {
	// TTL is how long a stream's events live after its last Append (and a
	// session's list of streams after its last Open or Append). Zero or
	// less means replica.DefaultTTL (30 minutes), the session TTL: a
	// client away longer than that has lost its session anyway.
	TTL time.Duration

	// MaxEventsPerStream bounds the events kept per stream: past it, each
	// Append drops the oldest, and a replay that needs a dropped event
	// fails with mcp.ErrEventsPurged (the client then gets an error for
	// the call instead of a partial answer). Zero means
	// DefaultMaxEventsPerStream (1000); negative is invalid. A stream is
	// one POST's response (its progress notifications, server-to-client
	// requests and its result) or the standalone GET stream.
	MaxEventsPerStream int

	// FailoverWait is [Options.FailoverWait] for the event store: on a
	// cluster client, how long an operation keeps trying while it fails
	// without having reached a server. Zero means [DefaultFailoverWait]
	// (5s); negative never waits.
	FailoverWait time.Duration
}

// EventStore is an mcp.EventStore in Redis, shared by every replica of a
// server: with it, a client whose response stream broke resumes it with
// Last-Event-ID on any replica (one running replica.Handler), and gets the
// events that the dead replica had stored, its result included, without
// the request running again.
//
// # Layout and retention
//
// A stream's events are a Redis list,
//
//	mcpkit:{s:<session>}:ev:<stream>
//
// with the number of events dropped from its head at
// mcpkit:{s:<session>}:evdrop:<stream>, and each session's streams in the
// set mcpkit:{s:<session>}:streams: the hash tag of the session's values
// (see the package doc), so a session's events share its slot on a
// cluster. Every key expires [EventOptions.TTL] after the last write to
// it; a stream keeps at most [EventOptions.MaxEventsPerStream] events (the
// oldest go first), each as large as the message it carries. SessionClosed
// (a client's DELETE through replica.Handler) removes them all at once.
// Appends and replays are single Lua scripts, atomic in Redis, that name
// every key they touch; they work on a single Redis, under Sentinel and on
// a cluster.
//
// An EventStore is safe for concurrent use by many goroutines and, through
// Redis, by many processes. It does not own the client.
type EventStore struct {
	rdb       redis.UniversalClient
	cluster   *redis.ClusterClient // rdb, when it is a cluster client
	wait      time.Duration        // FailoverWait
	ttl       time.Duration
	maxEvents int
	append    *redis.Script
	after     *redis.Script
	closed    *redis.Script
}

var _ mcp.EventStore = (*EventStore)(nil)

// NewEventStore returns an EventStore on rdb. It does not contact Redis.
// It returns an error if rdb is nil or an option is out of range.
func NewEventStore(rdb redis.UniversalClient, opts *EventOptions) (*EventStore, error) {
	if rdb == nil {
		return nil, errors.New("redisstore: NewEventStore: nil Redis client")
	}
	var o EventOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxEventsPerStream < 0 {
		return nil, fmt.Errorf("redisstore: NewEventStore: EventOptions.MaxEventsPerStream is %d; want 0 (default %d) or more", o.MaxEventsPerStream, DefaultMaxEventsPerStream)
	}
	s := &EventStore{
		rdb:       rdb,
		ttl:       o.TTL,
		maxEvents: o.MaxEventsPerStream,
		append:    redis.NewScript(appendEventSrc),
		after:     redis.NewScript(afterEventSrc),
		closed:    redis.NewScript(closeSessionSrc),
	}
	s.cluster, _ = rdb.(*redis.ClusterClient)
	switch {
	case o.FailoverWait == 0:
		s.wait = DefaultFailoverWait
	case o.FailoverWait > 0:
		s.wait = o.FailoverWait
	}
	if s.ttl <= 0 {
		s.ttl = replica.DefaultTTL
	}
	if s.maxEvents == 0 {
		s.maxEvents = DefaultMaxEventsPerStream
	}
	return s, nil
}

// checkIDs refuses IDs that could make one stream's keys another's.
func checkIDs(session, stream string) error {
	if err := replica.ValidateSessionID(session); err != nil {
		return fmt.Errorf("redisstore: event store: %w", err)
	}
	if strings.ContainsAny(stream, ":{}*?[] \t\r\n") || len(stream) > 128 {
		return fmt.Errorf("redisstore: event store: invalid stream ID %q", stream)
	}
	return nil
}

// Open implements mcp.EventStore: it records stream as one of session's.
// Opening a stream again keeps its events.
func (s *EventStore) Open(ctx context.Context, session, stream string) error {
	if err := checkIDs(session, stream); err != nil {
		return err
	}
	err := rideOut(ctx, s.cluster, s.wait, func() error {
		pipe := s.rdb.TxPipeline()
		pipe.SAdd(ctx, streamsKey(session), stream)
		pipe.PExpire(ctx, streamsKey(session), s.ttl)
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		reloadOnFailure(s.cluster, err)
		return fmt.Errorf("redisstore: opening stream %q of session %s: %w", stream, session, err)
	}
	return nil
}

// Append implements mcp.EventStore, dropping the stream's oldest events
// past EventOptions.MaxEventsPerStream.
func (s *EventStore) Append(ctx context.Context, session, stream string, data []byte) error {
	if err := checkIDs(session, stream); err != nil {
		return err
	}
	keys := []string{eventsKey(session, stream), droppedKey(session, stream), streamsKey(session)}
	err := rideOut(ctx, s.cluster, s.wait, func() error {
		return s.append.Run(ctx, s.rdb, keys, data, s.ttl.Milliseconds(), s.maxEvents, stream).Err()
	})
	if err != nil {
		reloadOnFailure(s.cluster, err)
		return fmt.Errorf("redisstore: appending to stream %q of session %s: %w", stream, session, err)
	}
	return nil
}

// After implements mcp.EventStore. Its iterator yields one error, and
// nothing else, for a stream never opened (or expired: "unknown stream")
// and for one whose event after index was dropped (matching
// mcp.ErrEventsPurged).
func (s *EventStore) After(ctx context.Context, session, stream string, index int) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		if err := checkIDs(session, stream); err != nil {
			yield(nil, err)
			return
		}
		keys := []string{eventsKey(session, stream), droppedKey(session, stream), streamsKey(session)}
		var res []any
		err := rideOut(ctx, s.cluster, s.wait, func() (err error) {
			res, err = s.after.Run(ctx, s.rdb, keys, index, stream).Slice()
			return err
		})
		if err != nil {
			reloadOnFailure(s.cluster, err)
			yield(nil, fmt.Errorf("redisstore: reading stream %q of session %s after %d: %w", stream, session, index, err))
			return
		}
		if len(res) == 0 {
			yield(nil, errors.New("redisstore: malformed replay answer"))
			return
		}
		switch status, _ := res[0].(int64); status {
		case 0:
			yield(nil, fmt.Errorf("redisstore: unknown stream %q in session %s (never opened, or expired)", stream, session))
			return
		case -1:
			yield(nil, fmt.Errorf("redisstore: stream %q of session %s after %d: %w", stream, session, index, mcp.ErrEventsPurged))
			return
		}
		for _, v := range res[1:] {
			str, ok := v.(string)
			if !ok {
				yield(nil, fmt.Errorf("redisstore: stream %q of session %s: event of type %T", stream, session, v))
				return
			}
			if !yield([]byte(str), nil) {
				return
			}
		}
	}
}

// SessionClosed implements mcp.EventStore: it removes every stream of
// session. Closing an unknown session is not an error. It reads the list of
// streams, then one script deletes them and drops them from the list (a
// stream opened in between outlives the close until its TTL).
func (s *EventStore) SessionClosed(ctx context.Context, session string) error {
	if err := replica.ValidateSessionID(session); err != nil {
		return fmt.Errorf("redisstore: event store: %w", err)
	}
	var streams []string
	err := rideOut(ctx, s.cluster, s.wait, func() (err error) {
		streams, err = s.rdb.SMembers(ctx, streamsKey(session)).Result()
		return err
	})
	if err == nil && len(streams) > 0 {
		keys := make([]string, 0, 1+2*len(streams))
		keys = append(keys, streamsKey(session))
		args := make([]any, 0, len(streams))
		for _, st := range streams {
			keys = append(keys, eventsKey(session, st), droppedKey(session, st))
			args = append(args, st)
		}
		err = rideOut(ctx, s.cluster, s.wait, func() error { return s.closed.Run(ctx, s.rdb, keys, args...).Err() })
	}
	if err != nil {
		reloadOnFailure(s.cluster, err)
		return fmt.Errorf("redisstore: closing the streams of session %s: %w", session, err)
	}
	return nil
}

// appendEventSrc appends one event and trims the stream.
// KEYS: events list, dropped counter, streams set.
// ARGV: data, TTL in ms, max events, stream ID.
const appendEventSrc = `
local ttl = tonumber(ARGV[2])
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
local over = n - tonumber(ARGV[3])
if over > 0 then
  redis.call('LTRIM', KEYS[1], over, -1)
  redis.call('INCRBY', KEYS[2], over)
end
redis.call('PEXPIRE', KEYS[1], ttl)
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ttl)
return 1
`

// afterEventSrc reads the events after an index.
// KEYS: events list, dropped counter, streams set. ARGV: index, stream ID.
// Returns {1, events...}, {0} for an unknown stream, {-1} when the event
// just after index was dropped.
const afterEventSrc = `
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 0 then
  return {0}
end
local first = tonumber(redis.call('GET', KEYS[2]) or '0')
local start = tonumber(ARGV[1]) + 1 - first
if start < 0 then
  return {-1}
end
local out = redis.call('LRANGE', KEYS[1], start, -1)
table.insert(out, 1, 1)
return out
`

// closeSessionSrc deletes the given streams of a session.
// KEYS: streams set, then the events list and dropped counter of each
// stream. ARGV: the stream IDs, in KEYS order.
const closeSessionSrc = `
for i = 2, #KEYS do
  redis.call('DEL', KEYS[i])
end
redis.call('SREM', KEYS[1], unpack(ARGV))
return #ARGV
`
