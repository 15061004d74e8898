package replica

import "testing"

func TestHomeSession(t *testing.T) {
	for name, want := range map[string]string{
		"ABC":                           "ABC",
		recordSession("ABC"):            "ABC",
		namespace("lineage", "ABC"):     namespace("lineage", "ABC"),
		"mcpkit-session-":               "mcpkit-session-",
		"mcpkit-session-mcpkit-dedup-1": "mcpkit-session-mcpkit-dedup-1",
	} {
		if got := HomeSession(name); got != want {
			t.Errorf("HomeSession(%q) = %q, want %q", name, got, want)
		}
	}
}
