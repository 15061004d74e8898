package resume

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// IdempotencyKeyMeta is the _meta key under which a resilient client puts
// the idempotency key of each tools/call: generated once per logical call
// and identical on its replays. The prefix follows the MCP rule for _meta
// names (reverse DNS, then a slash) so it cannot collide with the
// protocol's own io.modelcontextprotocol/ keys.
const IdempotencyKeyMeta = "io.github.mcpkit/idempotency-key"

// ReplayedMeta is set to true in the _meta of a result that replica.Dedup
// returned from its store instead of running the tool.
const ReplayedMeta = "io.github.mcpkit/replayed"

// DedupCapability is the experimental server capability by which a server
// that deduplicates tools/call (resume/replica's Dedup) tells a client that
// a replay of its calls carrying the same idempotency key will not run
// twice. Its value is an object: "meta" names the _meta key of the
// idempotency key ([IdempotencyKeyMeta]), and "scope" says whose keys are
// kept together: [DedupScopePrincipal] or [DedupScopeSession]. The server
// advertises it, in initialize and server/discover results, only to a
// client whose calls it can deduplicate: a stateless (2026-07-28) server
// advertises it to authenticated clients only. So a client may trust it
// whenever it is present, with or without a session ID.
const DedupCapability = "io.github.mcpkit/dedup"

// The scopes of [DedupCapability].
const (
	// DedupScopePrincipal: keys are kept per authenticated principal
	// (the bearer token's user), across sessions and on stateless servers.
	DedupScopePrincipal = "principal"
	// DedupScopeSession: keys are kept per session lineage, which
	// resume_session carries to the session that resumes it.
	DedupScopeSession = "session"
)

// maxIdempotencyKeyLen bounds a key: enough for a UUID, a ULID or a hex
// SHA-256, small enough to be cheap as a store key.
const maxIdempotencyKeyLen = 128

// ErrInvalidIdempotencyKey is matched by the error of
// [ValidateIdempotencyKey].
var ErrInvalidIdempotencyKey = errors.New("resume: invalid idempotency key")

// ValidateIdempotencyKey reports whether key may be used as an idempotency
// key: 1 to 128 bytes of A-Z, a-z, 0-9, '-', '_', '.' and ':'. Keys come
// from clients and end up in store keys, so nothing else is accepted. The
// error matches [ErrInvalidIdempotencyKey] and names the first bad byte.
func ValidateIdempotencyKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidIdempotencyKey)
	}
	if len(key) > maxIdempotencyKeyLen {
		return fmt.Errorf("%w: %d bytes long, at most %d allowed", ErrInvalidIdempotencyKey, len(key), maxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		b := key[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '-', b == '_', b == '.', b == ':':
		default:
			return fmt.Errorf("%w: byte %#x at %d is not allowed (only A-Z, a-z, 0-9, '-', '_', '.', ':')", ErrInvalidIdempotencyKey, b, i)
		}
	}
	return nil
}

// NewIdempotencyKey returns a fresh random key (128 bits, base32).
func NewIdempotencyKey() string {
	return rand.Text()
}

// IdempotencyKeyFrom returns the idempotency key in a request's _meta, and
// whether there is one. A present key that is not a string or fails
// [ValidateIdempotencyKey] is an error.
func IdempotencyKeyFrom(meta map[string]any) (string, bool, error) {
	v, ok := meta[IdempotencyKeyMeta]
	if !ok {
		return "", false, nil
	}
	key, ok := v.(string)
	if !ok {
		return "", true, fmt.Errorf("%w: _meta %q is a %T, want a string", ErrInvalidIdempotencyKey, IdempotencyKeyMeta, v)
	}
	if err := ValidateIdempotencyKey(key); err != nil {
		return "", true, err
	}
	return key, true, nil
}
