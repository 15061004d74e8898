package main

import (
	"errors"
	"fmt"
	"strings"
)

// splitWords splits the command line of -stdio into words the way a POSIX
// shell splits a simple command, without expansions: blanks separate words;
// '...' keeps everything literally; "..." keeps everything but a backslash
// before " \ $ or `, which stands for that character; outside quotes a
// backslash keeps the next character literally. Quotes and escapes may join
// within a word (a'b c'd is one word), and a pair of quotes with nothing
// between them is an empty word.
//
// It rejects an unterminated quote, a trailing backslash and a line with no
// word, naming the problem: running a command that was meant otherwise is
// worse than refusing it.
func splitWords(s string) ([]string, error) {
	var (
		words  []string
		word   strings.Builder
		inWord bool // a word has begun, even if still empty ('')
	)
	end := func() {
		if inWord {
			words = append(words, word.String())
			word.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; ch {
		case ' ', '\t', '\n', '\r':
			end()
		case '\\':
			if i+1 == len(s) {
				return nil, errors.New("ends with a backslash that escapes nothing")
			}
			i++
			word.WriteByte(s[i])
			inWord = true
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' quote at byte %d", i)
			}
			word.WriteString(s[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case '"':
			start := i
			closed := false
			for i++; i < len(s); i++ {
				if s[i] == '"' {
					closed = true
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				word.WriteByte(s[i])
			}
			if !closed {
				return nil, fmt.Errorf("unterminated \" quote at byte %d", start)
			}
			inWord = true
		default:
			word.WriteByte(ch)
			inWord = true
		}
	}
	end()
	if len(words) == 0 {
		return nil, errors.New("no command")
	}
	return words, nil
}
