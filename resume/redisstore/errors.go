package redisstore

import "errors"

// ErrContention is matched by the error of an Update that gave up because
// other clients changed the key under each of its optimistic transactions
// ([Options.MaxUpdateAttempts] of them). Nothing was written; calling again
// later may succeed.
var ErrContention = errors.New("redisstore: too much contention on the key")

// ErrNotReplicated is matched by the error of a write that fewer replicas
// than [Options.ReplicaAcks] acknowledged within [Options.ReplicaAckTimeout].
// The write was applied on the primary: it is visible, and it is lost only
// if the primary fails before a replica receives it.
var ErrNotReplicated = errors.New("redisstore: write not acknowledged by enough replicas")

// ErrNoReplicas is matched by the error of a write that the primary
// refused because fewer replicas than [Options.ReplicaAcks] were connected
// to it (or because its min-replicas-to-write said so). Nothing was
// written.
var ErrNoReplicas = errors.New("redisstore: too few replicas connected; nothing written")
