// Package redisstore is a [replica.Store] in Redis, for MCP servers that run
// as several replicas behind a load balancer: every replica reads and writes
// the same sessions, so resume_session on any replica finds the state a dead
// one left, and replica.Handler on any replica adopts a session another
// one created. [EventStore] is the go-sdk's mcp.EventStore in the same
// Redis: with it, a response that a dead replica had finished reaches the
// client from another one (see its doc for its layout and retention).
//
// # Deployments
//
// [New] and [NewEventStore] take a redis.UniversalClient, so one code path
// serves a single Redis (redis.NewClient), a Sentinel-managed primary
// (redis.NewFailoverClient) and a Redis Cluster (redis.NewClusterClient).
// On a cluster every key of one session sits in one hash slot (see
// Layout), so every script runs on one node. Dedup records (package
// replica) are stored under a session name derived from their scope, so
// they are slotted by scope too.
//
// # Layout
//
// The default, [LayoutCluster], puts the hash tag {s:<session>} in every
// key of a session:
//
//	mcpkit:{s:<session>}:v:<key>              value (string), its own TTL
//	mcpkit:{s:<session>}:index                set of the session's key names
//	mcpkit:{s:<session>}:streams              set of the session's event streams
//	mcpkit:{s:<session>}:ev:<stream>          list of a stream's events
//	mcpkit:{s:<session>}:evdrop:<stream>      count of events dropped from its head
//
// The server half's own records are values too: a session's owner and
// lineage are its keys mcpkit.owner and mcpkit.lineage; an adopted
// session's record (replica.Handler) is kept in a store session of its
// own, placed in the session's slot by [replica.HomeSession]:
//
//	mcpkit:{s:<session>}:mcpkit-session-<session>:v:mcpkit.session
//	mcpkit:{s:<session>}:mcpkit-session-<session>:index
//
// and a Dedup scope's records (one per idempotency key) in a store session
// named after the scope's hash, so each scope has a slot of its own:
//
//	mcpkit:{s:mcpkit-dedup-<hash>}:v:idem:<key>
//	mcpkit:{s:mcpkit-dedup-<hash>}:index
//
// [LayoutPython] ([Options.Layout]) is the layout of the reference Python
// deployment, mcp:session:<session>:<key> with the index at
// mcp:session-index:<session>, so that Go and Python servers can share one
// Redis (not a cluster: [New] refuses it on a cluster client) and read each
// other's values. The event store has no Python counterpart and always uses
// the tagged keys.
//
// The index of a session is updated in the same atomic step as every Set,
// Update, Delete and Copy, with a TTL as long as the longest one written.
// Keys and Copy read the index, so they never scan the keyspace and never
// build a pattern. Members whose value has expired are skipped, and
// dropped by Keys.
//
// Session IDs must pass [replica.ValidateSessionID] (A-Z, a-z, 0-9, '_',
// '-'; every go-sdk, UUID and hex ID does): with no ':' or brace in the ID,
// a key name cannot make one session's key look like another's, nor move it
// to another slot. Key names are free.
//
// # Servers that keep no index
//
// The Python reference server writes values without an index. Get reads
// them like any value, but Keys and Copy see only indexed keys unless
// [Options.ScanUnindexed] is set (with LayoutPython only): then they also
// SCAN for the session's keys (with the ID glob-escaped), at the cost of a
// walk of the whole keyspace per call.
//
// # Scripts and atomicity
//
// Every script names each key it touches in KEYS, all of them in one slot,
// and is run with EVALSHA, falling back to EVAL when Redis answers
// NOSCRIPT (a restarted server, SCRIPT FLUSH, or Redis 7.4+ evicting
// scripts). Set, Delete and each step of Keys and Copy are single scripts,
// atomic in Redis. Update is an optimistic transaction (WATCH, GET, the
// caller's function, MULTI/EXEC), retried with a short random pause when
// another client changed the key, at most [Options.MaxUpdateAttempts]
// times; then it fails with [ErrContention].
//
// # Copy across two slots
//
// The two sessions of a Copy live in two slots, possibly on two nodes, so
// no single step can copy atomically. Copy therefore reads, then writes:
//
//  1. It reads the source's index and, in one script on the source's slot,
//     DUMPs every indexed value: a consistent snapshot. Nothing is written.
//  2. In one script on the target's slot it RESTOREs every value with the
//     new TTL (replacing keys of the same name) and indexes them.
//
// A crash (of the process, or of the connection) between the steps or
// during step 1 leaves nothing behind: the source is untouched and the
// target has not been written. A crash during step 2 cannot split it,
// because the script is atomic. So after any crash the target holds either
// nothing of the copy or all of it, and copying again (a client resuming
// again) writes the same values once more: Copy is idempotent, and a retry
// repairs every interruption. What Copy does not give is isolation from
// writers of the source between the steps: a value the old session's
// last request writes after step 1 is not copied, as if it had been
// written just after the copy. The server half copies only from a session
// the client has left.
//
// # Durability across a failover
//
// Redis replicates asynchronously: a write acknowledged by a primary that
// then dies before sending it to a replica is lost when the replica is
// promoted (Sentinel and Cluster alike). With [Options.ReplicaAcks] set,
// every write of a Store (Set, Update, Delete and Copy's write: dedup
// claims and results among them) first checks, in its script, that the
// primary has that many replicas connected, and is refused with an error
// matching [ErrNoReplicas] if not (nothing written: a dedup claim refused
// so leaves the call free to run later); it is then followed by WAIT on
// the same connection, and succeeds only once that many replicas have
// acknowledged it; otherwise it returns an error matching
// [ErrNotReplicated] (the value is on the primary, and may or may not
// survive). This narrows the window,
// it does not close it: WAIT does not make Redis strongly consistent. What
// remains: a failover that promotes a replica other than the ones that
// acknowledged (possible with more than one replica per primary unless
// ReplicaAcks equals their number); a replica that acknowledged and then
// restarted without persistence before its promotion; and, under Sentinel,
// a primary cut off from the sentinels that keeps accepting writes until
// min-replicas-to-write stops it. Writes of the [EventStore] are not
// waited for: a lost event costs a replay, never a double execution. A
// primary with fewer connected replicas than ReplicaAcks (after a failover
// in a cluster of one replica per primary, until the dead node rejoins)
// refuses every write with ErrNoReplicas.
//
// # Waiting out a failover
//
// On a cluster client, an operation that fails without having reached a
// server (a refused connection: the primary of its slot is dead, or the
// client's slot map is stale) is tried again, after asking go-redis to
// reload the slot map, for up to [Options.FailoverWait] (and
// [EventOptions.FailoverWait]; 5s by default), so that a request waits for
// a replica's promotion instead of failing. A command that may have
// reached a server (a connection lost mid-reply) is never sent again: its
// error is returned. After any failed command the store also asks for a
// reload, since go-redis otherwise reloads only every minute or on a MOVED
// answer.
package redisstore
