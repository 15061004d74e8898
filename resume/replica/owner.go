package replica

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// OwnerKey is the key, in each session of a [Store], under which the server
// half records the principal that owns the session: the UserID of the
// request's auth.TokenInfo (see [Principal]), or no principal at all for a
// session created by an unauthenticated request. The record is written
// before the session's first value and is never changed to another
// principal; it lives at least as long as every value written through
// [Values] or copied in by resume_session. See the package doc, "Owners".
//
// Its value is a small JSON object, {"principal":"alice","until":UNIX_MS}:
// until is the earliest time the record may expire, which lets a writer
// extend the record without ever shortening it. A record that holds a bare
// principal (not JSON) is read as that principal with an unknown expiry.
//
// Tool handlers must not write this key: it starts with [ReservedPrefix],
// which [Values] refuses with [ErrReservedKey]. It is stored like any other
// key (in the default Redis layout, mcpkit:{s:<id>}:v:mcpkit.owner).
const OwnerKey = ReservedPrefix + "owner"

// ReservedPrefix starts every key that the server half keeps in a session
// for itself ([OwnerKey], [LineageKey]). [Values] refuses to write or
// delete such a key ([ErrReservedKey]), so a tool handler cannot forge an
// owner or a lineage; handlers' own keys must not start with it.
const ReservedPrefix = "mcpkit."

// internalSessionPrefix starts the store sessions in which the server half
// keeps records that belong to no client session: deduplication scopes
// ("mcpkit-dedup-...") and adopted sessions' records ("mcpkit-session-...").
// The go-sdk's session IDs (base32, upper case) never start with it, and
// resume_session and [NewValues] refuse such IDs, so a client can neither
// copy nor write these records.
const internalSessionPrefix = "mcpkit-"

// checkClientSessionID is [ValidateSessionID] for a session ID that came
// from a client: it also refuses the IDs of the server half's own records.
func checkClientSessionID(id string) error {
	if err := ValidateSessionID(id); err != nil {
		return err
	}
	if strings.HasPrefix(id, internalSessionPrefix) {
		return fmt.Errorf("%w %s: the prefix %q is reserved for the server's own records", ErrInvalidSessionID, quotePrefix(id), internalSessionPrefix)
	}
	return nil
}

// ownerGrace is how much longer than the values it guards an owner record
// lives, at least: it covers the time between the owner check and the
// value's write, and clock skew between replicas (the record's until field
// is compared with each writer's wall clock).
const ownerGrace = time.Minute

// maxOwnerAttempts bounds the read-then-update rounds of keepOwner when
// other writers keep changing the record (each change only extends it, so
// a few rounds always suffice in practice).
const maxOwnerAttempts = 16

// errOwnerChanged aborts an owner update whose record changed since it was
// read; keepOwner reads it again.
var errOwnerChanged = errors.New("owner record changed")

// ownerRecord is the value stored under [OwnerKey].
type ownerRecord struct {
	Principal string `json:"principal"`
	// Until is when the record may expire at the earliest, in Unix
	// milliseconds; zero when unknown.
	Until int64 `json:"until"`
}

func decodeOwner(b []byte) ownerRecord {
	var r ownerRecord
	if len(b) > 0 && b[0] == '{' && json.Unmarshal(b, &r) == nil {
		return r
	}
	// A bare principal, as the record was first written: expiry unknown.
	return ownerRecord{Principal: string(b)}
}

// fixOwner makes principal ("" for an unauthenticated request) the owner of
// session when the session is created, before anything is written into
// it, so that no later writer can claim it. It is the one function that
// fixes an owner: [Values] and resume_session reach it through keepOwner
// before their writes, and the adopting handler, which knows a session
// from its initialize, is meant to call it there with the session's
// principal, before the session's first tool call. It fails with an error
// matching [ErrNotOwner], writing nothing, if the session already has
// another owner, and with the store's error if the store fails.
func fixOwner(ctx context.Context, store Store, session, principal string) error {
	return keepOwner(ctx, store, session, principal, 0)
}

// keepOwner makes principal the owner of session if it has none, refuses
// with [ErrNotOwner] if it has another, and makes sure the record lives
// ownerGrace longer than a value written now with ttl. The record's TTL
// only ever grows: a write with a short TTL never shortens what a write
// with a long one needed. Most calls only read: an extension adds a further
// ownerGrace of headroom, so a session written at a steady rate rewrites its
// record about once a minute.
func keepOwner(ctx context.Context, store Store, session, principal string, ttl time.Duration) error {
	needed := ownerTTL(store, ttl)
	for range maxOwnerAttempts {
		raw, ok, err := store.Get(ctx, session, OwnerKey)
		if err != nil {
			return fmt.Errorf("reading the owner of session %s: %w", session, err)
		}
		now := time.Now()
		var cur ownerRecord
		if ok {
			cur = decodeOwner(raw)
			if cur.Principal != principal {
				return notOwner(session, principal)
			}
			if cur.Until >= now.Add(needed).UnixMilli() {
				return nil
			}
		}
		until := max(cur.Until, now.Add(needed+ownerGrace).UnixMilli())
		next, err := json.Marshal(ownerRecord{Principal: principal, Until: until})
		if err != nil {
			return err
		}
		recordTTL := time.UnixMilli(until).Sub(now)
		_, err = store.Update(ctx, session, OwnerKey, recordTTL, func(old []byte, exists bool) ([]byte, error) {
			if exists != ok || !bytes.Equal(old, raw) {
				return nil, errOwnerChanged
			}
			return next, nil
		})
		switch {
		case errors.Is(err, errOwnerChanged):
			continue
		case err != nil:
			return fmt.Errorf("recording the owner of session %s: %w", session, err)
		}
		return nil
	}
	return fmt.Errorf("recording the owner of session %s: the record changed under each of %d tries", session, maxOwnerAttempts)
}

// checkOwner returns nil if principal may copy session: the session has no
// owner record (it was written by a server that keeps none), it belongs to
// no principal (an unauthenticated session, protected by possession of its
// ID), or principal owns it. The error never names the owner.
func checkOwner(ctx context.Context, store Store, session, principal string) error {
	raw, ok, err := store.Get(ctx, session, OwnerKey)
	if err != nil {
		return fmt.Errorf("reading the owner of session %s: %w", session, err)
	}
	if !ok {
		return nil
	}
	return mayCopy(session, decodeOwner(raw).Principal, principal)
}

// mayCopy is the rule of who may copy a session owned by owner ("" for a
// session created without a principal).
func mayCopy(session, owner, principal string) error {
	if owner == "" || owner == principal {
		return nil
	}
	return notOwner(session, principal)
}

// notOwner is the refusal of principal on session; it never names the
// owner.
func notOwner(session, principal string) error {
	if principal == "" {
		return fmt.Errorf("%w: session %s has an owner and this request carries no principal", ErrNotOwner, session)
	}
	return fmt.Errorf("%w: session %s is not owned by the caller", ErrNotOwner, session)
}

// ownerTTL is how long, at least, an owner record must live to guard a
// value written now with ttl: the longer of ttl and the store's default
// (as the store reports it with a DefaultTTL method, as memstore.Store and the
// Redis store do; [DefaultTTL] for a store that does not), plus ownerGrace.
func ownerTTL(store Store, ttl time.Duration) time.Duration {
	base := DefaultTTL
	if d, ok := store.(interface{ DefaultTTL() time.Duration }); ok {
		base = d.DefaultTTL()
	}
	return max(ttl, base) + ownerGrace
}

// Principal returns the authenticated principal of req: the UserID of the
// auth.TokenInfo that the SDK's bearer-token middleware put on the request
// (req.GetExtra().TokenInfo). It returns "" when req is nil, carries no
// TokenInfo, or a TokenInfo without a UserID: such a request cannot be told
// apart from another principal's, so it owns only sessions created without a
// principal. Principal is safe for concurrent use.
func Principal(req mcp.Request) string {
	if req == nil {
		return ""
	}
	extra := req.GetExtra()
	if extra == nil || extra.TokenInfo == nil {
		return ""
	}
	return extra.TokenInfo.UserID
}
