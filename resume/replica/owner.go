package replica

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// OwnerKey is the key, in each session of a [Store], under which the server
// half records the principal that owns the session: the UserID of the
// request's auth.TokenInfo (see [Principal]). [Values] writes it with every
// write made for an authenticated principal, and resume_session writes it
// on the session it resumes into; resume_session refuses to copy a session
// whose owner is not the caller. Sessions written without a principal have
// no owner, and anyone who knows their ID can copy them.
//
// Tool handlers must not write this key: it starts with [ReservedPrefix],
// which [Values] refuses with [ErrReservedKey]. It is stored like any other
// key (in the default Redis layout, mcpkit:{s:<id>}:v:mcpkit.owner), so a server that
// shares the store and knows nothing of owners copies it along.
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
// lives: a session whose owner expired while its values lived on would be
// copyable by anyone.
const ownerGrace = time.Minute

// Principal returns the authenticated principal of req: the UserID of the
// auth.TokenInfo that the SDK's bearer-token middleware put on the request
// (req.GetExtra().TokenInfo). It returns "" when req is nil, carries no
// TokenInfo, or a TokenInfo without a UserID: such a request cannot be told
// apart from another principal's, so it owns nothing and can copy only
// sessions that have no owner. Principal is safe for concurrent use.
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

// recordOwner makes principal the owner of session, refreshing the record's
// TTL so that it outlives the values written with ttl. It fails with
// ErrNotOwner, writing nothing, if another principal owns the session.
func recordOwner(ctx context.Context, store Store, session, principal string, ttl time.Duration) error {
	_, err := store.Update(ctx, session, OwnerKey, ownerTTL(store, ttl), func(old []byte, ok bool) ([]byte, error) {
		if ok && string(old) != principal {
			return nil, fmt.Errorf("%w: session %s", ErrNotOwner, session)
		}
		return []byte(principal), nil
	})
	return err
}

// checkOwner returns nil if principal may read or copy session: the session
// has no owner, or principal owns it. owned says whether it has an owner.
// The error never names the owner.
func checkOwner(ctx context.Context, store Store, session, principal string) (owned bool, err error) {
	owner, ok, err := store.Get(ctx, session, OwnerKey)
	if err != nil {
		return false, fmt.Errorf("reading the owner of session %s: %w", session, err)
	}
	switch {
	case !ok:
		return false, nil
	case principal == "":
		return true, fmt.Errorf("%w: session %s has an authenticated owner and this request carries no principal", ErrNotOwner, session)
	case string(owner) != principal:
		return true, fmt.Errorf("%w: session %s is not owned by the caller", ErrNotOwner, session)
	}
	return true, nil
}

// ownerTTL is the TTL of an owner record that guards values written with
// ttl: the longer of ttl and the store's default (when the store reports it
// with a DefaultTTL method, as MemoryStore and the Redis store do), plus
// ownerGrace. A store that reports no default and a ttl of zero give the
// store's default: the record then expires about when the values it guards.
func ownerTTL(store Store, ttl time.Duration) time.Duration {
	base := max(ttl, 0)
	if d, ok := store.(interface{ DefaultTTL() time.Duration }); ok {
		base = max(base, d.DefaultTTL())
	}
	if base == 0 {
		return 0
	}
	return base + ownerGrace
}
