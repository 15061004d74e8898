package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// RunEvents runs the event store contract as subtests of t: what the
// go-sdk's streamable transport relies on when it replays a stream after
// Last-Event-ID. newStore returns an empty event store; two calls within one
// subtest must return stores that share their data (two replicas on one
// Redis), or the same store.
func RunEvents(t *testing.T, newStore func(t *testing.T) mcp.EventStore) {
	const sess = "SESSION1"
	t.Run("AppendAfter", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		mustOpen(t, s, sess, "st")
		want := appendN(t, s, sess, "st", 5)
		for _, tc := range []struct {
			index int
			want  []string
		}{
			{-1, want},
			{0, want[1:]},
			{3, want[4:]},
			{4, nil},
			{10, nil},
		} {
			if diff := cmp.Diff(tc.want, collect(t, s.After(ctx, sess, "st", tc.index))); diff != "" {
				t.Errorf("After(%d) (-want +got):\n%s", tc.index, diff)
			}
		}
	})

	t.Run("OpenedEmpty", func(t *testing.T) {
		s := newStore(t)
		mustOpen(t, s, sess, "")
		if got := collect(t, s.After(t.Context(), sess, "", -1)); len(got) != 0 {
			t.Errorf("After(-1) on an empty stream = %q, want nothing", got)
		}
	})

	t.Run("OpenAgainKeepsEvents", func(t *testing.T) {
		s := newStore(t)
		mustOpen(t, s, sess, "st")
		want := appendN(t, s, sess, "st", 2)
		mustOpen(t, s, sess, "st")
		if diff := cmp.Diff(want, collect(t, s.After(t.Context(), sess, "st", -1))); diff != "" {
			t.Errorf("After(-1) after a second Open (-want +got):\n%s", diff)
		}
	})

	t.Run("UnknownStream", func(t *testing.T) {
		s := newStore(t)
		mustOpen(t, s, sess, "st")
		if err := firstErr(s.After(t.Context(), sess, "other", -1)); err == nil {
			t.Error("After on a stream never opened: no error, want one")
		}
		if err := firstErr(s.After(t.Context(), "NOSUCHSESSION", "st", -1)); err == nil {
			t.Error("After on a session never opened: no error, want one")
		}
	})

	t.Run("SharedBetweenInstances", func(t *testing.T) {
		a, b := newStore(t), newStore(t)
		mustOpen(t, a, sess, "st")
		want := appendN(t, a, sess, "st", 3)
		// b (another replica) opens the stream again, as a transport does
		// when it adopts the session, and replays what a wrote.
		mustOpen(t, b, sess, "st")
		if diff := cmp.Diff(want[1:], collect(t, b.After(t.Context(), sess, "st", 0))); diff != "" {
			t.Errorf("After(0) on the other instance (-want +got):\n%s", diff)
		}
	})

	t.Run("SessionsAndStreamsApart", func(t *testing.T) {
		s := newStore(t)
		mustOpen(t, s, "SESSIONA", "st")
		mustOpen(t, s, "SESSIONB", "st")
		mustOpen(t, s, "SESSIONA", "st2")
		wantA := appendN(t, s, "SESSIONA", "st", 2)
		wantB := appendN(t, s, "SESSIONB", "st", 1)
		wantA2 := appendN(t, s, "SESSIONA", "st2", 3)
		for _, tc := range []struct {
			sess, stream string
			want         []string
		}{{"SESSIONA", "st", wantA}, {"SESSIONB", "st", wantB}, {"SESSIONA", "st2", wantA2}} {
			if diff := cmp.Diff(tc.want, collect(t, s.After(t.Context(), tc.sess, tc.stream, -1))); diff != "" {
				t.Errorf("After(-1) of %s/%s (-want +got):\n%s", tc.sess, tc.stream, diff)
			}
		}
	})

	t.Run("SessionClosed", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		mustOpen(t, s, sess, "st")
		mustOpen(t, s, "OTHERSESSION", "st")
		appendN(t, s, sess, "st", 2)
		keep := appendN(t, s, "OTHERSESSION", "st", 1)
		if err := s.SessionClosed(ctx, sess); err != nil {
			t.Fatalf("SessionClosed: %v", err)
		}
		if err := firstErr(s.After(ctx, sess, "st", -1)); err == nil {
			t.Error("After on a closed session: no error, want one")
		}
		if diff := cmp.Diff(keep, collect(t, s.After(ctx, "OTHERSESSION", "st", -1))); diff != "" {
			t.Errorf("another session after SessionClosed (-want +got):\n%s", diff)
		}
		if err := s.SessionClosed(ctx, "NEVERSEEN"); err != nil {
			t.Errorf("SessionClosed of an unknown session: %v, want nil", err)
		}
	})

	t.Run("ConcurrentStreams", func(t *testing.T) {
		s := newStore(t)
		const streams, events = 8, 20
		var wg sync.WaitGroup
		for i := range streams {
			stream := fmt.Sprint("st", i)
			mustOpen(t, s, sess, stream)
			wg.Go(func() {
				for j := range events {
					if err := s.Append(context.Background(), sess, stream, []byte(fmt.Sprint(j))); err != nil {
						t.Errorf("Append: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		for i := range streams {
			got := collect(t, s.After(t.Context(), sess, fmt.Sprint("st", i), -1))
			if len(got) != events || got[0] != "0" || got[events-1] != fmt.Sprint(events-1) {
				t.Errorf("stream st%d = %q, want 0..%d in order", i, got, events-1)
			}
		}
	})
}

func mustOpen(t *testing.T, s mcp.EventStore, session, stream string) {
	t.Helper()
	if err := s.Open(t.Context(), session, stream); err != nil {
		t.Fatalf("Open(%q, %q): %v", session, stream, err)
	}
}

// appendN appends n events with distinct data and returns their data.
func appendN(t *testing.T, s mcp.EventStore, session, stream string, n int) []string {
	t.Helper()
	var out []string
	for i := range n {
		d := fmt.Sprintf(`{"session":%q,"stream":%q,"n":%d}`, session, stream, i)
		if err := s.Append(t.Context(), session, stream, []byte(d)); err != nil {
			t.Fatalf("Append(%q, %q): %v", session, stream, err)
		}
		out = append(out, d)
	}
	return out
}

func collect(t *testing.T, seq func(func([]byte, error) bool)) []string {
	t.Helper()
	var out []string
	for d, err := range seq {
		if err != nil {
			t.Fatalf("After: %v", err)
		}
		out = append(out, string(d))
	}
	return out
}

func firstErr(seq func(func([]byte, error) bool)) error {
	for _, err := range seq {
		if err != nil {
			return err
		}
	}
	return nil
}
