package resume

import "errors"

// ErrResumeFailed is matched by the error of a resume that was attempted and
// did not complete: the resume_session call failed, or its answer could not
// be understood. The session the client is on works; its old state was not
// copied.
var ErrResumeFailed = errors.New("resume: resume_session failed")

// ErrUnsupported is matched by the error of a resume that could not be
// attempted: the server has no resume_session tool, or resuming is disabled
// ([None]). It is reported as "resume skipped", not as a failure.
var ErrUnsupported = errors.New("resume: not supported by this server")

// ErrRejected is matched, together with [ErrResumeFailed], by the error of a
// resume the server answered but refused: the tool returned an error, or an
// answer that is not {"status","keys_copied"}. Trying again on another
// session would get the same answer. Other ErrResumeFailed errors are
// failures to get an answer at all (the new session died too).
var ErrRejected = errors.New("resume: server refused")
