package replica

import "testing"

func mustSet(t *testing.T, s Store, session, key, value string) {
	t.Helper()
	if err := s.Set(t.Context(), session, key, []byte(value), 0); err != nil {
		t.Fatalf("Set(%q, %q): %v", session, key, err)
	}
}

func mustGet(t *testing.T, s Store, session, key string) string {
	t.Helper()
	v, ok, err := s.Get(t.Context(), session, key)
	if err != nil || !ok {
		t.Fatalf("Get(%q, %q) = _, %v, %v; want present", session, key, ok, err)
	}
	return string(v)
}

func dump(t *testing.T, s Store, session string) map[string]string {
	t.Helper()
	keys, err := s.Keys(t.Context(), session)
	if err != nil {
		t.Fatalf("Keys(%q): %v", session, err)
	}
	m := make(map[string]string)
	for _, k := range keys {
		m[k] = mustGet(t, s, session, k)
	}
	// The owner record's expiry changes from run to run: show its principal.
	if raw, ok := m[OwnerKey]; ok {
		m[OwnerKey] = decodeOwner([]byte(raw)).Principal
	}
	return m
}
