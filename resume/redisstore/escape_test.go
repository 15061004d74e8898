package redisstore

import "testing"

func TestEscapeGlob(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"mcp:session:ABC:", "mcp:session:ABC:"},
		{`a*b?c[d]e\f`, `a\*b\?c\[d\]e\\f`},
		{"x^y-z", `x\^y\-z`},
		{"é*", `é\*`},
	} {
		if got := escapeGlob(tc.in); got != tc.want {
			t.Errorf("escapeGlob(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
