package replica

import (
	"errors"

	"github.com/mcpkit/resilience/resume"
)

// ErrNoSession is matched by the error of a server-side helper that needs
// the request's MCP session ID and found none: the request came over a
// stateless transport (protocol 2026-07-28, stdio, or a stateless HTTP
// handler), where there is no session to keep state in or resume into.
var ErrNoSession = errors.New("replica: request has no session ID")

// ErrInvalidSessionID is resume.ErrInvalidSessionID, the error of
// [ValidateSessionID], here for the server half's callers.
var ErrInvalidSessionID = resume.ErrInvalidSessionID

// ErrNotOwner is matched by the error of an attempt to copy or write the
// state of a session that another principal owns: resume_session refuses
// to copy such a session or to copy into one, and [Values] refuses to write
// into one (a Values without a principal, into any session a principal
// owns; a Values of a principal, into a session created without one). See
// [OwnerKey].
var ErrNotOwner = errors.New("replica: session belongs to another principal")

// ErrReservedKey is matched by the error of a [Values] write to a key the
// server half reserves for itself: one that starts with [ReservedPrefix],
// such as [OwnerKey].
var ErrReservedKey = errors.New("replica: reserved key")
