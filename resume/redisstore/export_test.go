package redisstore

import "context"

// SetBetweenCopySteps makes s run hook between the read and the write of
// each Copy, for the tests that stop a Copy there as a crash would.
func SetBetweenCopySteps(s *Store, hook func(ctx context.Context) error) { s.betweenCopySteps = hook }

// ScriptSources returns the source of every script, for the test that
// checks which keys each declares.
func ScriptSources() map[string]string {
	return map[string]string{
		"put": putSrc, "delete": deleteSrc, "keys": keysSrc, "dump": dumpSrc, "restore": restoreSrc,
		"appendEvent": appendEventSrc, "afterEvent": afterEventSrc, "closeSession": closeSessionSrc,
	}
}
