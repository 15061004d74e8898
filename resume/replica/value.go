package replica

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Values is the state of one session in a [Store]: what a tool handler reads
// and writes, so that handlers never build store keys by hand and
// resume_session finds everything they wrote.
//
// A Values acts for one principal: the request's [Principal] for one made
// by [SessionValues], no principal for one made by [NewValues]. Before each
// write it makes sure the session's owner record ([OwnerKey]) names that
// principal and outlives the value: it records the owner if the session has
// none yet, and refuses with [ErrNotOwner], writing nothing, if the session
// belongs to another principal (for a Values without a principal: to any
// principal). The key [OwnerKey] itself, and every other key starting with
// [ReservedPrefix], cannot be written or deleted through a Values
// ([ErrReservedKey]). Reads are not checked: the session of
// [SessionValues] is the caller's own.
//
// A Values is immutable and safe for concurrent use if its store is; each
// method's atomicity and errors are those of the Store method it calls.
type Values struct {
	store     Store
	session   string
	ttl       time.Duration
	principal string // the owner writes require; "" for none
}

// SessionValues returns the Values of the session that req arrived on, the
// usual way for a handler to reach its state:
//
//	v, err := SessionValues(store, req)
//	if err != nil {
//		return nil, Out{}, err
//	}
//	n, err := UpdateJSON(ctx, v, "counter", func(n int, _ bool) (int, error) { return n + 1, nil })
//
// Writes through the Values act for the request's principal ([Principal];
// none for an unauthenticated request): see [Values].
//
// It returns an error matching [ErrNoSession] when the request has no session
// ID: over stateless transports a handler must key its state some other way
// (for example with [NewValues] and an ID the client sends). It panics if
// store is nil.
func SessionValues(store Store, req mcp.Request) (*Values, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: nil request", ErrNoSession)
	}
	s := req.GetSession()
	if ss, ok := s.(*mcp.ServerSession); s == nil || ok && ss == nil {
		return nil, fmt.Errorf("%w: request has no session", ErrNoSession)
	}
	v, err := NewValues(store, s.ID())
	if err != nil {
		return nil, err
	}
	v.principal = Principal(req)
	return v, nil
}

// NewValues returns the Values of session in store, with the store's default
// TTL, acting for no principal: its writes fail with [ErrNotOwner] on a
// session that an authenticated principal owns, and make a session without
// an owner one that no principal can later claim (see [Values]). It returns
// an error matching [ErrNoSession] when session is empty,
// which would otherwise silently share one bucket between every stateless
// caller. It panics if store is nil.
func NewValues(store Store, session string) (*Values, error) {
	if store == nil {
		panic("NewValues: nil store")
	}
	if session == "" {
		return nil, fmt.Errorf("%w: empty session ID", ErrNoSession)
	}
	if strings.HasPrefix(session, internalSessionPrefix) {
		return nil, fmt.Errorf("%w %s: the prefix %q is reserved for the server's own records", ErrInvalidSessionID, quotePrefix(session), internalSessionPrefix)
	}
	return &Values{store: store, session: session}, nil
}

// Session returns the session ID the values belong to.
func (v *Values) Session() string { return v.session }

// WithTTL returns a copy of v whose writes keep keys for ttl. Zero or less
// means the store's default TTL (the default of a new Values).
func (v *Values) WithTTL(ttl time.Duration) *Values {
	c := *v
	c.ttl = ttl
	return &c
}

// Get returns the value of key, and false when it is absent or expired.
func (v *Values) Get(ctx context.Context, key string) ([]byte, bool, error) {
	return v.store.Get(ctx, v.session, key)
}

// Set stores value under key. It fails with [ErrReservedKey] for a key
// starting with [ReservedPrefix], and with [ErrNotOwner] if another principal owns the session.
func (v *Values) Set(ctx context.Context, key string, value []byte) error {
	if err := v.beforeWrite(ctx, key); err != nil {
		return err
	}
	return v.store.Set(ctx, v.session, key, value, v.ttl)
}

// Update atomically replaces the value of key with what fn returns; see
// [Store.Update]. fn may run more than once and must have no side effects.
// It fails with [ErrReservedKey] for a key starting with [ReservedPrefix], and with [ErrNotOwner] if
// another principal owns the session.
func (v *Values) Update(ctx context.Context, key string, fn func(old []byte, ok bool) ([]byte, error)) ([]byte, error) {
	if err := v.beforeWrite(ctx, key); err != nil {
		return nil, err
	}
	return v.store.Update(ctx, v.session, key, v.ttl, fn)
}

// Delete removes key. Deleting an absent key is not an error. It fails with
// [ErrReservedKey] for a key starting with [ReservedPrefix], and with [ErrNotOwner] if another
// principal owns the session.
func (v *Values) Delete(ctx context.Context, key string) error {
	if err := v.beforeWrite(ctx, key); err != nil {
		return err
	}
	return v.store.Delete(ctx, v.session, key)
}

// beforeWrite refuses the reserved key and makes sure the session's owner
// record names v's principal (or refuses if the session is another's) and
// outlives a value written with v's TTL, before the value is written: so no
// value is ever left without its owner record, and a resume_session that
// copies a value also copies the record that guards it.
func (v *Values) beforeWrite(ctx context.Context, key string) error {
	if strings.HasPrefix(key, ReservedPrefix) {
		return fmt.Errorf("%w: %q starts with %q, which the server half keeps for its own records", ErrReservedKey, key, ReservedPrefix)
	}
	return keepOwner(ctx, v.store, v.session, v.principal, v.ttl)
}

// GetJSON reads key and decodes it as JSON into a T. An absent key gives the
// zero T and false. A value that does not decode gives an error naming key.
func GetJSON[T any](ctx context.Context, v *Values, key string) (T, bool, error) {
	var t T
	b, ok, err := v.Get(ctx, key)
	if err != nil || !ok {
		return t, false, err
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, false, fmt.Errorf("replica: decoding %q of session %s: %w", key, v.session, err)
	}
	return t, true, nil
}

// UpdateJSON atomically replaces the JSON value of key with what fn returns,
// given the decoded current value (the zero T and false when absent), and
// returns the value written. fn may run more than once and must have no side
// effects. A current value that does not decode, or an fn error, leaves the
// key unchanged and is returned.
func UpdateJSON[T any](ctx context.Context, v *Values, key string, fn func(old T, ok bool) (T, error)) (T, error) {
	var written T
	_, err := v.Update(ctx, key, func(old []byte, ok bool) ([]byte, error) {
		var cur T
		if ok {
			if err := json.Unmarshal(old, &cur); err != nil {
				return nil, fmt.Errorf("replica: decoding %q of session %s: %w", key, v.session, err)
			}
		}
		next, err := fn(cur, ok)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("replica: encoding %q of session %s: %w", key, v.session, err)
		}
		written = next
		return b, nil
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return written, nil
}
