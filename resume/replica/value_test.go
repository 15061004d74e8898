package replica

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resume/memstore"
)

func TestNewValuesNoSession(t *testing.T) {
	store := memstore.New(0)
	if _, err := NewValues(store, ""); !errors.Is(err, ErrNoSession) {
		t.Errorf("NewValues(empty) = %v, want %v", err, ErrNoSession)
	}
	if _, err := NewValues(store, "mcpkit-dedup-0123"); !errors.Is(err, ErrInvalidSessionID) {
		t.Errorf("NewValues(a deduplication scope) = %v, want %v", err, ErrInvalidSessionID)
	}
	if _, err := SessionValues(store, nil); !errors.Is(err, ErrNoSession) {
		t.Errorf("SessionValues(nil request) = %v, want %v", err, ErrNoSession)
	}
	if _, err := SessionValues(store, &mcp.CallToolRequest{}); !errors.Is(err, ErrNoSession) {
		t.Errorf("SessionValues(request without session) = %v, want %v", err, ErrNoSession)
	}
}

func TestValues(t *testing.T) {
	ctx := t.Context()
	store := memstore.New(0)
	v, err := NewValues(store, "S1")
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Session(); got != "S1" {
		t.Errorf("Session() = %q, want %q", got, "S1")
	}
	if err := v.Set(ctx, "raw", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Update(ctx, "raw", func(old []byte, _ bool) ([]byte, error) { return append(old, 'y'), nil }); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, store, "S1", "raw"); got != "xy" {
		t.Errorf("store value = %q, want %q", got, "xy")
	}

	type notes []string
	if got, ok, err := GetJSON[notes](ctx, v, "notes"); err != nil || ok || got != nil {
		t.Errorf("GetJSON(absent) = %v, %v, %v; want nil, false, nil", got, ok, err)
	}
	for _, n := range []string{"one", "two"} {
		if _, err := UpdateJSON(ctx, v, "notes", func(old notes, _ bool) (notes, error) { return append(old, n), nil }); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := GetJSON[notes](ctx, v, "notes")
	if err != nil || !ok {
		t.Fatalf("GetJSON = _, %v, %v", ok, err)
	}
	if diff := cmp.Diff(notes{"one", "two"}, got); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
	if got := mustGet(t, store, "S1", "notes"); got != `["one","two"]` {
		t.Errorf("stored JSON = %s", got)
	}

	if err := v.Delete(ctx, "raw"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := v.Get(ctx, "raw"); ok {
		t.Error("Get after Delete: present")
	}
}

func TestValuesJSONErrors(t *testing.T) {
	ctx := t.Context()
	store := memstore.New(0)
	v, err := NewValues(store, "S1")
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, store, "S1", "counter", "not json")
	if _, _, err := GetJSON[int](ctx, v, "counter"); err == nil || !strings.Contains(err.Error(), `"counter"`) {
		t.Errorf("GetJSON(bad JSON) = %v, want an error naming the key", err)
	}
	if _, err := UpdateJSON(ctx, v, "counter", func(n int, _ bool) (int, error) { return n + 1, nil }); err == nil {
		t.Error("UpdateJSON(bad JSON) = nil error")
	}
	if got := mustGet(t, store, "S1", "counter"); got != "not json" {
		t.Errorf("value after a failed UpdateJSON = %q, want it unchanged", got)
	}
	errBoom := errors.New("boom")
	if _, err := UpdateJSON(ctx, v, "other", func(int, bool) (int, error) { return 0, errBoom }); !errors.Is(err, errBoom) {
		t.Errorf("UpdateJSON with failing fn = %v, want %v", err, errBoom)
	}
}

func TestValuesWithTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		store := memstore.New(time.Hour)
		v, err := NewValues(store, "S1")
		if err != nil {
			t.Fatal(err)
		}
		short := v.WithTTL(time.Second)
		if err := short.Set(ctx, "short", nil); err != nil {
			t.Fatal(err)
		}
		if err := v.Set(ctx, "default", nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		keys, err := store.Keys(ctx, "S1")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		if diff := cmp.Diff([]string{"default", OwnerKey}, keys); diff != "" {
			t.Errorf("keys after the short TTL (-want +got):\n%s", diff)
		}
	})
}
