package memstore

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestMemoryStoreDefaultTTL(t *testing.T) {
	for _, tc := range []struct {
		name       string
		defaultTTL time.Duration
		want       time.Duration
	}{
		{"zero means 30 minutes", 0, 30 * time.Minute},
		{"negative means 30 minutes", -time.Second, 30 * time.Minute},
		{"explicit", time.Minute, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				s := New(tc.defaultTTL)
				mustSet(t, s, "S1", "set", "v")
				if _, err := s.Update(ctx, "S1", "upd", -1, func([]byte, bool) ([]byte, error) { return nil, nil }); err != nil {
					t.Fatal(err)
				}
				mustSet(t, s, "S0", "copied", "v")
				if _, err := s.Copy(ctx, "S0", "S1", 0); err != nil {
					t.Fatal(err)
				}
				time.Sleep(tc.want - time.Millisecond)
				if keys, _ := s.Keys(ctx, "S1"); len(keys) != 3 {
					t.Errorf("Keys just before the default TTL = %q, want 3 keys", keys)
				}
				time.Sleep(time.Millisecond)
				if keys, _ := s.Keys(ctx, "S1"); len(keys) != 0 {
					t.Errorf("Keys at the default TTL = %q, want none", keys)
				}
			})
		})
	}
}

func TestMemoryStoreSweep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := New(time.Minute)
		for i := range 10 {
			mustSet(t, s, fmt.Sprint("dead", i), "k", "v")
		}
		time.Sleep(2 * time.Minute)
		// Never read again, the dead sessions go only by a sweep.
		for i := range sweepEvery {
			if err := s.Set(ctx, "live", fmt.Sprint(i%7), nil, 0); err != nil {
				t.Fatal(err)
			}
		}
		s.mu.Lock()
		n := len(s.sessions)
		s.mu.Unlock()
		if n != 1 {
			t.Errorf("sessions held after a sweep = %d, want 1", n)
		}
	})
}

func mustSet(t *testing.T, s *Store, session, key, value string) {
	t.Helper()
	if err := s.Set(t.Context(), session, key, []byte(value), 0); err != nil {
		t.Fatalf("Set(%q, %q): %v", session, key, err)
	}
}

// dump returns every key of session with its value.
