package redisstore

import (
	"fmt"

	"github.com/mcpkit/resilience/resume/replica"
)

// Layout chooses the Redis key names of a [Store]: [LayoutCluster] (the
// default) or [LayoutPython]. Every key name of the package is built by the
// methods of Layout and by the event-store helpers in this file, and
// nowhere else.
type Layout int

const (
	// LayoutCluster is the default layout, safe on Redis Cluster: every
	// key of one session carries the hash tag {s:<session>}, so a session
	// lives in one hash slot and every script touches one slot.
	//
	//	mcpkit:{s:<session>}:v:<key>   a value (string), its own TTL
	//	mcpkit:{s:<session>}:index     the session's key names (set)
	//
	// The layout works the same on a single Redis and under Sentinel.
	LayoutCluster Layout = iota

	// LayoutPython is the layout of the reference Python deployment, for a
	// single Redis (or Sentinel) shared with Python servers:
	//
	//	mcp:session:<session>:<key>    a value (string), its own TTL
	//	mcp:session-index:<session>    the session's key names (set)
	//
	// Its keys carry no hash tag, so one session's keys fall in different
	// slots: [New] refuses it on a cluster client.
	LayoutPython
)

// String returns the layout's name as the documentation writes it.
func (l Layout) String() string {
	switch l {
	case LayoutCluster:
		return "LayoutCluster"
	case LayoutPython:
		return "LayoutPython"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// valid reports whether l is one of the defined layouts.
func (l Layout) valid() bool { return l == LayoutCluster || l == LayoutPython }

// Key returns the Redis key of key in session in layout l. Operators and
// tests use it to read a value directly.
func (l Layout) Key(session, key string) string { return l.valuePrefix(session) + key }

// IndexKey returns the Redis key of session's index in layout l: a set of
// the session's key names.
func (l Layout) IndexKey(session string) string {
	if l == LayoutPython {
		return "mcp:session-index:" + session
	}
	return sessionTag(session) + ":index"
}

// valuePrefix is what every value key of session starts with.
func (l Layout) valuePrefix(session string) string {
	if l == LayoutPython {
		return "mcp:session:" + session + ":"
	}
	return sessionTag(session) + ":v:"
}

// Key returns the Redis key of key in session in the default layout,
// [LayoutCluster]: mcpkit:{s:<session>}:v:<key>.
func Key(session, key string) string { return LayoutCluster.Key(session, key) }

// IndexKey returns the Redis key of session's index in the default layout,
// [LayoutCluster]: mcpkit:{s:<session>}:index.
func IndexKey(session string) string { return LayoutCluster.IndexKey(session) }

// sessionTag is the start of every cluster-layout key of session. Session
// IDs pass [replica.ValidateSessionID], so they hold no brace and the tag
// is exactly the ID: a key name after it cannot move the key to another
// slot, because Redis hashes only the first {...}. The server half keeps
// an adopted session's record in a store session of its own; its keys get
// the tag of the session they belong to ([replica.HomeSession]) followed
// by their own name, so that a session's values, index, record and events
// share a slot:
//
//	mcpkit:{s:<id>}:mcpkit-session-<id>:v:<key>
//
// No key of a session's own starts that way: its tag is followed by v:,
// index, streams, ev: or evdrop:.
func sessionTag(session string) string {
	home := replica.HomeSession(session)
	if home == session {
		return "mcpkit:{s:" + session + "}"
	}
	return "mcpkit:{s:" + home + "}:" + session
}

// The event store's keys, in the session's slot (see [EventStore]).
func eventsKey(session, stream string) string  { return sessionTag(session) + ":ev:" + stream }
func droppedKey(session, stream string) string { return sessionTag(session) + ":evdrop:" + stream }
func streamsKey(session string) string         { return sessionTag(session) + ":streams" }
