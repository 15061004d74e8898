package redisstore

import "errors"

// ErrContention is matched by the error of an Update that gave up because
// other clients changed the key under each of its optimistic transactions
// ([Options.MaxUpdateAttempts] of them). Nothing was written; calling again
// later may succeed.
var ErrContention = errors.New("redisstore: too much contention on the key")
