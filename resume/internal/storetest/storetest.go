// Package storetest is the contract every [replica.Store] must meet, as one
// test suite that each implementation runs against itself: the memory store
// in resume/memstore, the Redis store in resume/redisstore. [RunEvents] is
// the same for an mcp.EventStore, run against the go-sdk's own memory event
// store as the reference and against the Redis one.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpkit/resilience/resume/replica"
)

// Options tune [Run] to a store. A nil *Options means the defaults.
type Options struct {
	// TimeUnit is the unit of the TTLs in the expiry subtests, which wait
	// a few units of real time. Zero means the store keeps time with Go's
	// clock: those subtests then run newStore inside a testing/synctest
	// bubble, with a unit of one second that passes at once. A store that
	// keeps time elsewhere (a server) needs a real unit, long enough for
	// its expiry to be exact: 100ms or more.
	TimeUnit time.Duration
}

// Run runs the contract as subtests of t. newStore returns an empty store
// (nothing another subtest wrote is visible) whose default TTL is at least a
// minute; it may register its own cleanup with t.
//
// A store may refuse a session name that cannot be a session ID (one that
// fails [replica.ValidateSessionID], such as "AB:*") with an error matching
// [replica.ErrInvalidSessionID], or treat it as an opaque name; either way it
// must never read it as a pattern.
func Run(t *testing.T, newStore func(t *testing.T) replica.Store, opts *Options) {
	// One named function per clause of the contract, run in this order.
	for _, c := range []struct {
		name string
		test func(t *testing.T, newStore func(t *testing.T) replica.Store, opts *Options)
	}{
		{"GetAbsent", testGetAbsent},
		{"SetGet", testSetGet},
		{"Overwrite", testOverwrite},
		{"NoAliasing", testNoAliasing},
		{"SessionsAreIsolatedAndNotPatterns", testSessionsAreIsolatedAndNotPatterns},
		{"Delete", testDelete},
		{"Keys", testKeys},
		{"Update", testUpdate},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"Copy", testCopy},
		{"CopyConcurrentWithUpdate", testCopyConcurrentWithUpdate},
		{"CanceledContext", testCanceledContext},
		{"Ping", testPing},
		{"TTL", testTTL},
		{"TTLRefreshedByWrites", testTTLRefreshedByWrites},
		{"CopyTTL", testCopyTTL},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, newStore, opts) })
	}
}

func testGetAbsent(t *testing.T, newStore func(t *testing.T) replica.Store, _ *Options) {
	s := newStore(t)
	v, ok, err := s.Get(t.Context(), "S1", "k")
	if err != nil || ok || v != nil {
		t.Errorf("Get(absent) = %q, %v, %v; want nil, false, nil", v, ok, err)
	}
}

func testSetGet(t *testing.T, newStore func(t *testing.T) replica.Store, _ *Options) {
	ctx := t.Context()
	s := newStore(t)
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{"text", []byte("hello")},
		{"binary", []byte{0, 1, 2, 255}},
		{"empty", []byte{}},
	} {
		if err := s.Set(ctx, "S1", tc.name, tc.value, 0); err != nil {
			t.Fatalf("Set(%s): %v", tc.name, err)
		}
		got, ok, err := s.Get(ctx, "S1", tc.name)
		if err != nil || !ok {
			t.Fatalf("Get(%s) = _, %v, %v; want present", tc.name, ok, err)
		}
		if !bytes.Equal(got, tc.value) {
			t.Errorf("Get(%s) = %q, want %q", tc.name, got, tc.value)
		}
	}
}

func testOverwrite(t *testing.T, newStore func(t *testing.T) replica.Store, _ *Options) {
	ctx := t.Context()
	s := newStore(t)
	mustSet(t, s, "S1", "k", "one")
	mustSet(t, s, "S1", "k", "two")
	if got := mustGet(t, s, "S1", "k"); got != "two" {
		t.Errorf("Get after overwrite = %q, want %q", got, "two")
	}
	keys, err := s.Keys(ctx, "S1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"k"}, keys); diff != "" {
		t.Errorf("Keys (-want +got):\n%s", diff)
	}
}

func testNoAliasing(t *testing.T, newStore func(t *testing.T) replica.Store, _ *Options) {
	ctx := t.Context()
	s := newStore(t)
	in := []byte("abc")
	if err := s.Set(ctx, "S1", "k", in, 0); err != nil {
		t.Fatal(err)
	}
	in[0] = 'X'
	out, _, err := s.Get(ctx, "S1", "k")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "abc" {
		t.Fatalf("Get after changing the slice passed to Set = %q, want %q", out, "abc")
	}
	out[0] = 'Y'
	if got := mustGet(t, s, "S1", "k"); got != "abc" {
		t.Errorf("Get after changing a slice from Get = %q, want %q", got, "abc")
	}
	written, err := s.Update(ctx, "S1", "k", 0, func(old []byte, ok bool) ([]byte, error) {
		old[0] = 'Z' // must not reach the store
		return []byte("def"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	written[0] = 'W'
	if got := mustGet(t, s, "S1", "k"); got != "def" {
		t.Errorf("Get after changing slices of Update = %q, want %q", got, "def")
	}
}

func testSessionsAreIsolatedAndNotPatterns(t *testing.T, newStore func(t *testing.T) replica.Store, _ *Options) {
	ctx := t.Context()
	s := newStore(t)
	mustSet(t, s, "AB", "k", "1")
	mustSet(t, s, "ABC", "k", "2")
	for _, session := range []string{"A*", "AB?", "AB[C]", "*", "AB:*", "{AB}", `AB\`} {
		// Refusing a name that cannot be a session ID is fine; reading
		// it as a pattern is not.
		if keys, err := s.Keys(ctx, session); !refusedOrNil(err) || len(keys) != 0 {
			t.Errorf("Keys(%q) = %q, %v; want none", session, keys, err)
		}
		if n, err := s.Copy(ctx, session, "T", 0); !refusedOrNil(err) || n != 0 {
			t.Errorf("Copy(%q) = %d, %v; want 0", session, n, err)
		}
		if n, err := s.Copy(ctx, "AB", session, 0); err == nil && n != 1 || !refusedOrNil(err) {
			t.Errorf("Copy(AB, %q) = %d, %v; want 1, nil or a refusal", session, n, err)
		}
	}
	if keys, err := s.Keys(ctx, "T"); err != nil || len(keys) != 0 {
		t.Errorf("Keys(T) after copies from patterns = %q, %v; want none", keys, err)
	}
	if got := mustGet(t, s, "ABC", "k"); got != "2" {
		t.Errorf("Get(ABC) = %q, want %q", got, "2")
	}
	if diff := cmp.Diff(map[string]string{"k": "1"}, dump(t, s, "AB")); diff != "" {
		t.Errorf("session AB (-want +got):\n%s", diff)
	}
}

func testDelete(t *testing.T, newStore func(t *testing.T) replica.Store, _ *Options) {
	ctx := t.Context()
	s := newStore(t)
	mustSet(t, s, "S1", "a", "1")
	mustSet(t, s, "S1", "b", "2")
	if err := s.Delete(ctx, "S1", "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "S1", "absent"); err != nil {
		t.Errorf("Delete(absent key) = %v, want nil", err)
	}
	if err := s.Delete(ctx, "S9", "absent"); err != nil {
		t.Errorf("Delete(absent session) = %v, want nil", err)
	}
	if _, ok, _ := s.Get(ctx, "S1", "a"); ok {
		t.Error("Get after Delete: present, want absent")
	}
	keys, err := s.Keys(ctx, "S1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b"}, keys); diff != "" {
		t.Errorf("Keys after Delete (-want +got):\n%s", diff)
	}
}

func testKeys(t *testing.T, newStore func(t *testing.T) replica.Store, _ *Options) {
	ctx := t.Context()
	s := newStore(t)
	keys, err := s.Keys(ctx, "S1")
	if err != nil || len(keys) != 0 {
		t.Errorf("Keys(empty) = %q, %v; want none", keys, err)
	}
	want := []string{"a", "b:c", "d*"}
	for _, k := range want {
		mustSet(t, s, "S1", k, "v")
	}
	mustSet(t, s, "S2", "other", "v")
	keys, err = s.Keys(ctx, "S1")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("Keys (-want +got):\n%s", diff)
	}
}

func testUpdate(t *testing.T, newStore func(t *testing.T) replica.Store, _ *Options) {
	ctx := t.Context()
	s := newStore(t)
	type call struct {
		Old string
		OK  bool
	}
	var calls []call
	appendX := func(old []byte, ok bool) ([]byte, error) {
		calls = append(calls, call{string(old), ok})
		return append(old, 'x'), nil
	}
	for range 2 {
		calls = nil // a store may retry fn; only the last call counts
		if _, err := s.Update(ctx, "S1", "k", 0, appendX); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(call{"x", true}, calls[len(calls)-1]); diff != "" {
		t.Errorf("fn's arguments on the second Update (-want +got):\n%s", diff)
	}
	if got := mustGet(t, s, "S1", "k"); got != "xx" {
		t.Errorf("value after two Updates = %q, want %q", got, "xx")
	}

	errBoom := errors.New("boom")
	_, err := s.Update(ctx, "S1", "k", 0, func([]byte, bool) ([]byte, error) { return []byte("no"), errBoom })
	if !errors.Is(err, errBoom) {
		t.Errorf("Update with failing fn = %v, want %v", err, errBoom)
	}
	if got := mustGet(t, s, "S1", "k"); got != "xx" {
		t.Errorf("value after a failed Update = %q, want %q", got, "xx")
	}
	_, err = s.Update(ctx, "S1", "new", 0, func([]byte, bool) ([]byte, error) { return nil, errBoom })
	if !errors.Is(err, errBoom) {
		t.Errorf("Update(absent) with failing fn = %v, want %v", err, errBoom)
	}
	if _, ok, _ := s.Get(ctx, "S1", "new"); ok {
		t.Error("a failed Update created the key")
	}
}

func testUpdateConcurrent(t *testing.T, newStore func(t *testing.T) replica.Store, _ *Options) {
	ctx := t.Context()
	s := newStore(t)
	const n = 100
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := s.Update(ctx, "S1", "counter", 0, func(old []byte, ok bool) ([]byte, error) {
				var c int
				if ok {
					if _, err := fmt.Sscan(string(old), &c); err != nil {
						return nil, err
					}
				}
				return fmt.Append(nil, c+1), nil
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	if got, want := mustGet(t, s, "S1", "counter"), fmt.Sprint(n); got != want {
		t.Errorf("counter after %d concurrent increments = %s, want %s", n, got, want)
	}
}

func testCopy(t *testing.T, newStore func(t *testing.T) replica.Store, _ *Options) {
	ctx := t.Context()
	s := newStore(t)
	mustSet(t, s, "OLD", "a", "1")
	mustSet(t, s, "OLD", "b", "2")
	mustSet(t, s, "NEW", "b", "stale")
	mustSet(t, s, "NEW", "c", "3")
	n, err := s.Copy(ctx, "OLD", "NEW", 0)
	if err != nil || n != 2 {
		t.Fatalf("Copy = %d, %v; want 2, nil", n, err)
	}
	want := map[string]string{"a": "1", "b": "2", "c": "3"}
	if diff := cmp.Diff(want, dump(t, s, "NEW")); diff != "" {
		t.Errorf("target after Copy (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"a": "1", "b": "2"}, dump(t, s, "OLD")); diff != "" {
		t.Errorf("source after Copy (-want +got):\n%s", diff)
	}
	// The copies are independent values.
	mustSet(t, s, "NEW", "a", "changed")
	if got := mustGet(t, s, "OLD", "a"); got != "1" {
		t.Errorf("source after changing the copy = %q, want %q", got, "1")
	}

	if n, err := s.Copy(ctx, "ABSENT", "NEW2", 0); err != nil || n != 0 {
		t.Errorf("Copy(absent) = %d, %v; want 0, nil", n, err)
	}
	if keys, _ := s.Keys(ctx, "NEW2"); len(keys) != 0 {
		t.Errorf("Copy(absent) created keys %q", keys)
	}
	if n, err := s.Copy(ctx, "OLD", "OLD", 0); err != nil || n != 2 {
		t.Errorf("Copy onto itself = %d, %v; want 2, nil", n, err)
	}
}

func testCopyConcurrentWithUpdate(t *testing.T, newStore func(t *testing.T) replica.Store, _ *Options) {
	// Copy is atomic: every copy sees a counter that some Update wrote
	// completely, and the target ends with what the last copy saw.
	ctx := t.Context()
	s := newStore(t)
	mustSet(t, s, "OLD", "a", "0")
	mustSet(t, s, "OLD", "b", "0")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for _, k := range []string{"a", "b"} {
				if _, err := s.Update(ctx, "OLD", k, 0, func(old []byte, _ bool) ([]byte, error) {
					return append(old, '+'), nil
				}); err != nil {
					t.Errorf("Update: %v", err)
				}
			}
		})
		wg.Go(func() {
			if n, err := s.Copy(ctx, "OLD", "NEW", 0); err != nil || n != 2 {
				t.Errorf("Copy = %d, %v; want 2, nil", n, err)
			}
		})
	}
	wg.Wait()
	if n, err := s.Copy(ctx, "OLD", "NEW", 0); err != nil || n != 2 {
		t.Fatalf("Copy = %d, %v; want 2, nil", n, err)
	}
	if diff := cmp.Diff(dump(t, s, "OLD"), dump(t, s, "NEW")); diff != "" {
		t.Errorf("target differs from source after the last Copy (-source +target):\n%s", diff)
	}
}

func testCanceledContext(t *testing.T, newStore func(t *testing.T) replica.Store, _ *Options) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]error{
		"Get": func() error { _, _, err := s.Get(ctx, "S1", "k"); return err }(),
		"Set": s.Set(ctx, "S1", "k", nil, 0),
		"Update": func() error {
			_, err := s.Update(ctx, "S1", "k", 0, func([]byte, bool) ([]byte, error) { return nil, nil })
			return err
		}(),
		"Delete": s.Delete(ctx, "S1", "k"),
		"Keys":   func() error { _, err := s.Keys(ctx, "S1"); return err }(),
		"Copy":   func() error { _, err := s.Copy(ctx, "S1", "S2", 0); return err }(),
		"Ping":   s.Ping(ctx),
	}
	for name, err := range calls {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want %v", name, err, context.Canceled)
		}
	}
	if _, ok, _ := s.Get(t.Context(), "S1", "k"); ok {
		t.Error("a write with a cancelled context was stored")
	}
}

func testPing(t *testing.T, newStore func(t *testing.T) replica.Store, _ *Options) {
	if err := newStore(t).Ping(t.Context()); err != nil {
		t.Errorf("Ping = %v, want nil", err)
	}
}

func testTTL(t *testing.T, newStore func(t *testing.T) replica.Store, opts *Options) {
	clocked(t, opts, func(t *testing.T, u time.Duration) {
		ctx := t.Context()
		s := newStore(t)
		if err := s.Set(ctx, "S1", "short", []byte("v"), u); err != nil {
			t.Fatal(err)
		}
		if err := s.Set(ctx, "S1", "long", []byte("v"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Get(ctx, "S1", "short"); !ok {
			t.Fatal("Get before expiry: absent, want present")
		}
		time.Sleep(2 * u)
		if _, ok, _ := s.Get(ctx, "S1", "short"); ok {
			t.Error("Get after expiry: present, want absent")
		}
		keys, err := s.Keys(ctx, "S1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"long"}, keys); diff != "" {
			t.Errorf("Keys after expiry (-want +got):\n%s", diff)
		}
		_, err = s.Update(ctx, "S1", "short", u, func(old []byte, ok bool) ([]byte, error) {
			if ok {
				t.Errorf("Update of an expired key got ok=true, old=%q", old)
			}
			return []byte("again"), nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func testTTLRefreshedByWrites(t *testing.T, newStore func(t *testing.T) replica.Store, opts *Options) {
	clocked(t, opts, func(t *testing.T, u time.Duration) {
		ctx := t.Context()
		s := newStore(t)
		if err := s.Set(ctx, "S1", "set", []byte("v"), 2*u); err != nil {
			t.Fatal(err)
		}
		if err := s.Set(ctx, "S1", "upd", []byte("v"), 2*u); err != nil {
			t.Fatal(err)
		}
		time.Sleep(u)
		if err := s.Set(ctx, "S1", "set", []byte("v"), 2*u); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, "S1", "upd", 2*u, func(old []byte, _ bool) ([]byte, error) { return old, nil }); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * u / 2) // 2.5 units after the first writes
		keys, err := s.Keys(ctx, "S1")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		if diff := cmp.Diff([]string{"set", "upd"}, keys); diff != "" {
			t.Errorf("Keys after the first TTL passed (-want +got):\n%s", diff)
		}
	})
}

func testCopyTTL(t *testing.T, newStore func(t *testing.T) replica.Store, opts *Options) {
	clocked(t, opts, func(t *testing.T, u time.Duration) {
		ctx := t.Context()
		s := newStore(t)
		if err := s.Set(ctx, "OLD", "gone", []byte("v"), u); err != nil {
			t.Fatal(err)
		}
		if err := s.Set(ctx, "OLD", "kept", []byte("v"), 3*u); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * u)
		n, err := s.Copy(ctx, "OLD", "NEW", time.Hour)
		if err != nil || n != 1 {
			t.Fatalf("Copy with one expired key = %d, %v; want 1, nil", n, err)
		}
		time.Sleep(2 * u) // the source has expired, the copy has not
		if keys, _ := s.Keys(ctx, "OLD"); len(keys) != 0 {
			t.Errorf("source Keys after its TTL = %q, want none", keys)
		}
		keys, err := s.Keys(ctx, "NEW")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"kept"}, keys); diff != "" {
			t.Errorf("target Keys (-want +got):\n%s", diff)
		}
		if n, err := s.Copy(ctx, "OLD", "NEW3", 0); err != nil || n != 0 {
			t.Errorf("Copy of an expired session = %d, %v; want 0, nil", n, err)
		}
	})
}

// clocked runs fn with the time unit of the expiry subtests: inside a
// synctest bubble for a store on Go's clock, in real time otherwise.
func clocked(t *testing.T, opts *Options, fn func(t *testing.T, u time.Duration)) {
	if opts == nil || opts.TimeUnit <= 0 {
		synctest.Test(t, func(t *testing.T) { fn(t, time.Second) })
		return
	}
	fn(t, opts.TimeUnit)
}

func mustSet(t *testing.T, s replica.Store, session, key, value string) {
	t.Helper()
	if err := s.Set(t.Context(), session, key, []byte(value), 0); err != nil {
		t.Fatalf("Set(%q, %q): %v", session, key, err)
	}
}

func mustGet(t *testing.T, s replica.Store, session, key string) string {
	t.Helper()
	v, ok, err := s.Get(t.Context(), session, key)
	if err != nil || !ok {
		t.Fatalf("Get(%q, %q) = _, %v, %v; want present", session, key, ok, err)
	}
	return string(v)
}

// dump returns every key of session with its value.
func dump(t *testing.T, s replica.Store, session string) map[string]string {
	t.Helper()
	keys, err := s.Keys(t.Context(), session)
	if err != nil {
		t.Fatalf("Keys(%q): %v", session, err)
	}
	m := make(map[string]string)
	for _, k := range keys {
		m[k] = mustGet(t, s, session, k)
	}
	return m
}

// refusedOrNil reports whether err is nil or a store's refusal of a name
// that cannot be a session ID.
func refusedOrNil(err error) bool {
	return err == nil || errors.Is(err, replica.ErrInvalidSessionID)
}
