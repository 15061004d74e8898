package resume

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateSessionID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZ", true},
		{"234567", true},
		{"0c1d2e3f-aaaa-bbbb-cccc-0123456789ab", true},
		{"snake_case-and-dash", true},
		{strings.Repeat("A", maxSessionIDLen), true},
		{strings.Repeat("A", maxSessionIDLen+1), false},
		{"", false},
		{"*", false},
		{"A?", false},
		{"A[B]", false},
		{"{A}", false},
		{"a:b", false},
		{"a b", false},
		{"a\tb", false},
		{"a\x00b", false},
		{"a/b", false},
		{"a.b", false},
		{"ÅB", false},
	} {
		err := ValidateSessionID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateSessionID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidSessionID) {
			t.Errorf("ValidateSessionID(%q) = %v, want an error matching ErrInvalidSessionID", tc.id, err)
		}
	}
}

func FuzzValidateSessionID(f *testing.F) {
	for _, s := range []string{"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "a:b", "*", "", "é", strings.Repeat("z", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := ValidateSessionID(id)
		valid := id != "" && len(id) <= maxSessionIDLen && strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == ""
		if (err == nil) != valid {
			t.Errorf("ValidateSessionID(%q) = %v, want ok=%v", id, err, valid)
		}
		// 40 bytes of id at most, each quoted as \xNN at worst, plus the
		// sentence around them.
		if err != nil && len(err.Error()) > 320 {
			t.Errorf("error for %q is %d bytes long", id, len(err.Error()))
		}
	})
}
