package redisstore

import "context"

// SetBetweenCopySteps makes s run hook between the read and the write of
// each Copy, for the tests that stop a Copy there as a crash would.
func SetBetweenCopySteps(s *Store, hook func(ctx context.Context) error) { s.betweenCopySteps = hook }
