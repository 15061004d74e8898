package redisstore_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/mcpkit/resilience/internal/proctest"
	"github.com/mcpkit/resilience/resume/internal/storetest"
	"github.com/mcpkit/resilience/resume/redisstore"
)

func newEventStore(t *testing.T, rdb redis.UniversalClient, opts *redisstore.EventOptions) *redisstore.EventStore {
	t.Helper()
	s, err := redisstore.NewEventStore(rdb, opts)
	if err != nil {
		t.Fatalf("NewEventStore: %v", err)
	}
	return s
}

// TestEventContract runs the event store contract that the go-sdk's
// MemoryEventStore passes (package memstore runs it as the reference),
// against a real redis-server; the two instances of a subtest are two
// replicas on one Redis.
func TestEventContract(t *testing.T) {
	srv := proctest.StartRedis(t, nil)
	rdb, _ := newClient(t, srv)
	var owner *testing.T
	storetest.RunEvents(t, func(t *testing.T) mcp.EventStore {
		if owner != t {
			owner = t
			if err := rdb.FlushDB(t.Context()).Err(); err != nil {
				t.Fatalf("FLUSHDB: %v", err)
			}
		}
		return newEventStore(t, rdb, nil)
	})
}

func TestEventRetention(t *testing.T) {
	srv := proctest.StartRedis(t, nil)
	rdb, _ := newClient(t, srv)
	ctx := t.Context()
	const ttl = time.Minute
	s := newEventStore(t, rdb, &redisstore.EventOptions{TTL: ttl, MaxEventsPerStream: 3})
	if err := s.Open(ctx, "S1", "st"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := s.Append(ctx, "S1", "st", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Events 0 and 1 were dropped: a replay that needs one of them fails
	// whole; one that starts after them gets the rest.
	for _, index := range []int{-1, 0} {
		var gotErr error
		var got []string
		for d, err := range s.After(ctx, "S1", "st", index) {
			if err != nil {
				gotErr = err
				break
			}
			got = append(got, string(d))
		}
		if !errors.Is(gotErr, mcp.ErrEventsPurged) || got != nil {
			t.Errorf("After(%d) = %q, %v; want nothing and an error matching mcp.ErrEventsPurged", index, got, gotErr)
		}
	}
	var got []string
	for d, err := range s.After(ctx, "S1", "st", 1) {
		if err != nil {
			t.Fatalf("After(1): %v", err)
		}
		got = append(got, string(d))
	}
	if diff := cmp.Diff([]string{"2", "3", "4"}, got); diff != "" {
		t.Errorf("After(1) (-want +got):\n%s", diff)
	}
	if n, err := rdb.LLen(ctx, "mcpkit:{s:S1}:ev:st").Result(); err != nil || n != 3 {
		t.Errorf("LLEN of the stream = %d, %v; want 3 (bounded)", n, err)
	}
	// Every key of the session expires.
	for _, key := range []string{"mcpkit:{s:S1}:ev:st", "mcpkit:{s:S1}:evdrop:st", "mcpkit:{s:S1}:streams"} {
		pttl, err := rdb.PTTL(ctx, key).Result()
		if err != nil || pttl <= 0 || pttl > ttl {
			t.Errorf("PTTL(%s) = %v, %v; want in (0, %v]", key, pttl, err, ttl)
		}
	}
}

func TestNewEventStoreErrors(t *testing.T) {
	if _, err := redisstore.NewEventStore(nil, nil); err == nil {
		t.Error("NewEventStore(nil client): no error")
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	if _, err := redisstore.NewEventStore(rdb, &redisstore.EventOptions{MaxEventsPerStream: -1}); err == nil {
		t.Error("NewEventStore(MaxEventsPerStream -1): no error")
	}
	s := newEventStore(t, rdb, nil)
	for _, tc := range []struct{ session, stream string }{{"A:B", "st"}, {"S1", "a:b"}, {"S1", "*"}} {
		if err := s.Open(t.Context(), tc.session, tc.stream); err == nil {
			t.Errorf("Open(%q, %q): no error, want one (no Redis command sent)", tc.session, tc.stream)
		}
	}
}
