package resume

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// ErrInvalidSessionID is matched by the error of [ValidateSessionID]: the
// string cannot be a session ID, so it is never used as a store key.
var ErrInvalidSessionID = errors.New("resume: invalid session ID")

// maxSessionIDLen bounds an acceptable session ID. The go-sdk's IDs are 26
// characters (crypto/rand.Text); other SDKs use UUIDs (36) or hex digests
// (64). 128 leaves room for those and refuses anything built to be a key
// injection.
const maxSessionIDLen = 128

// ValidateSessionID reports whether id can be a session ID: 1 to 128
// characters from A-Z, a-z, 0-9, '_' and '-'. That covers the go-sdk's IDs
// (crypto/rand.Text: base32, A-Z and 2-7), UUIDs and hex digests, and refuses
// every character that a store could read as a pattern or a separator ('*',
// '?', '[', ']', ':', '{', '}', whitespace, ...).
//
// The error matches [ErrInvalidSessionID] and quotes (a prefix of) id and the
// first character refused. ValidateSessionID is safe for concurrent use.
func ValidateSessionID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidSessionID)
	case len(id) > maxSessionIDLen:
		return fmt.Errorf("%w %s: %d bytes long, at most %d allowed", ErrInvalidSessionID, quotePrefix(id), len(id), maxSessionIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !sessionIDByte(id[i]) {
			r, _ := utf8.DecodeRuneInString(id[i:])
			return fmt.Errorf("%w %s: character %q at byte %d is not allowed (only A-Z, a-z, 0-9, '_' and '-')", ErrInvalidSessionID, quotePrefix(id), r, i)
		}
	}
	return nil
}

func sessionIDByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// quotePrefix quotes id for an error message, cut short so that a hostile
// argument cannot flood the answer or a log.
func quotePrefix(id string) string {
	const maxQuoted = 40
	if len(id) <= maxQuoted {
		return strconv.Quote(id)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return strconv.Quote(id[:cut]) + "..."
}
