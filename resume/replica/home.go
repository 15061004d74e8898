package replica

import "strings"

// recordSessionPrefix starts the store session that holds an adopted
// session's record (see recordSession).
const recordSessionPrefix = internalSessionPrefix + "session-"

// HomeSession returns the client session that the store session name
// belongs to: for the store session in which the server half keeps the
// record of an adopted session (a name of its own, so that resume_session
// never copies it), that session's ID; for every other name, name itself.
// A store that places all of one session's keys together (the cluster
// layout of resume/redisstore, which gives them one hash slot) groups
// them by HomeSession. It is a pure function, safe for concurrent use.
func HomeSession(name string) string {
	if id, ok := strings.CutPrefix(name, recordSessionPrefix); ok && checkClientSessionID(id) == nil {
		return id
	}
	return name
}
