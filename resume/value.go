package resume

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Values is the state of one session in a [Store]: what a tool handler reads
// and writes, so that handlers never build store keys by hand and
// resume_session finds everything they wrote.
//
// A Values is immutable and safe for concurrent use if its store is; each
// method's atomicity and errors are those of the Store method it calls.
type Values struct {
	store   Store
	session string
	ttl     time.Duration
}

// SessionValues returns the Values of the session that req arrived on, the
// usual way for a handler to reach its state:
//
//	v, err := resume.SessionValues(store, req)
//	if err != nil {
//		return nil, Out{}, err
//	}
//	n, err := resume.UpdateJSON(ctx, v, "counter", func(n int, _ bool) (int, error) { return n + 1, nil })
//
// It returns an error matching [ErrNoSession] when the request has no session
// ID: over stateless transports a handler must key its state some other way
// (for example with [NewValues] and an ID the client sends).
func SessionValues(store Store, req mcp.Request) (*Values, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: nil request", ErrNoSession)
	}
	s := req.GetSession()
	if ss, ok := s.(*mcp.ServerSession); s == nil || ok && ss == nil {
		return nil, fmt.Errorf("%w: request has no session", ErrNoSession)
	}
	return NewValues(store, s.ID())
}

// NewValues returns the Values of session in store, with the store's default
// TTL. It returns an error matching [ErrNoSession] when session is empty,
// which would otherwise silently share one bucket between every stateless
// caller. It panics if store is nil.
func NewValues(store Store, session string) (*Values, error) {
	if store == nil {
		panic("resume.NewValues: nil store")
	}
	if session == "" {
		return nil, fmt.Errorf("%w: empty session ID", ErrNoSession)
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

// Set stores value under key.
func (v *Values) Set(ctx context.Context, key string, value []byte) error {
	return v.store.Set(ctx, v.session, key, value, v.ttl)
}

// Update atomically replaces the value of key with what fn returns; see
// [Store.Update]. fn may run more than once and must have no side effects.
func (v *Values) Update(ctx context.Context, key string, fn func(old []byte, ok bool) ([]byte, error)) ([]byte, error) {
	return v.store.Update(ctx, v.session, key, v.ttl, fn)
}

// Delete removes key. Deleting an absent key is not an error.
func (v *Values) Delete(ctx context.Context, key string) error {
	return v.store.Delete(ctx, v.session, key)
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
		return t, false, fmt.Errorf("resume: decoding %q of session %s: %w", key, v.session, err)
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
				return nil, fmt.Errorf("resume: decoding %q of session %s: %w", key, v.session, err)
			}
		}
		next, err := fn(cur, ok)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("resume: encoding %q of session %s: %w", key, v.session, err)
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
