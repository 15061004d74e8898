package main

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"server", []string{"server"}},
		{"  go  run\t./cmd/server  ", []string{"go", "run", "./cmd/server"}},
		{`npx -y '@scope/server everything'`, []string{"npx", "-y", "@scope/server everything"}},
		{`a "b c" d`, []string{"a", "b c", "d"}},
		{`a'b c'd`, []string{"ab cd"}},
		{`'' x ""`, []string{"", "x", ""}},
		{`'it\'`, []string{`it\`}},
		{`"say \"hi\" \\ \$HOME \n"`, []string{`say "hi" \ $HOME \n`}},
		{`a\ b \'c\"`, []string{"a b", `'c"`}},
		{`'don'\''t'`, []string{"don't"}},
		{"$HOME *.go ~", []string{"$HOME", "*.go", "~"}},
		{"héllo 'wörld'", []string{"héllo", "wörld"}},
	}
	for _, tt := range tests {
		got, err := splitWords(tt.in)
		if err != nil {
			t.Errorf("splitWords(%q): %v", tt.in, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("splitWords(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSplitWordsErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "no command"},
		{" \t ", "no command"},
		{"server 'arg", "unterminated ' quote at byte 7"},
		{`server "arg`, `unterminated " quote at byte 7`},
		{`server "arg\"`, `unterminated " quote`},
		{`server \`, "backslash"},
	}
	for _, tt := range tests {
		got, err := splitWords(tt.in)
		if err == nil {
			t.Errorf("splitWords(%q): got %q, want an error", tt.in, got)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("splitWords(%q): got error %q, want it to contain %q", tt.in, err, tt.want)
		}
	}
}

// FuzzSplitWords checks that splitWords never panics, and that the words
// it returns, quoted again, split back to themselves.
func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{`a 'b c' "d \" e" f\ g`, `'`, `"\`, `''`, "a\tb\nc", `'don'\''t'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := splitWords(s)
		if err != nil {
			return
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = shellQuote(w)
		}
		again, err := splitWords(strings.Join(quoted, " "))
		if err != nil {
			t.Fatalf("splitWords(%q) = %q, and its requoting fails: %v", s, words, err)
		}
		if !slices.Equal(again, words) {
			t.Fatalf("splitWords(%q) = %q, requoted splits to %q", s, words, again)
		}
	})
}
