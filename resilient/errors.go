package resilient

import "errors"

// ErrClosed is returned by every call made after [Client.Close], and by calls
// interrupted by it.
var ErrClosed = errors.New("resilient: client closed")

// ErrCircuitOpen is matched by the error of a call refused because the
// circuit breaker is open: recent attempts to reach the server failed, and
// the client sends nothing until its own probe (a dial, once per open
// period) reaches the server again. The error also wraps the latest
// failure. [retry.WaitForReady] makes a call wait for the server instead.
var ErrCircuitOpen = errors.New("resilient: circuit breaker open")

// ErrOutcomeUnknown is matched by the error of a call that may or may not
// have run on the server: the request was sent and the connection died
// before the answer. The call was not replayed because running it twice may
// be unsafe (a tools/call without readOnlyHint or idempotentHint, on a
// server that does not deduplicate). The error also wraps the cause. A
// call its context ended after such an attempt matches it too, besides the
// context's error. The client has already moved to a fresh session when
// the old one was lost; the caller decides whether to call again (check
// the server's state first when it matters). A call that provably did not
// run never matches it.
var ErrOutcomeUnknown = errors.New("resilient: outcome unknown (the request was sent and its answer lost; it may have run), not replayed")

// ErrRouteDead is matched by the error of an attempt that liveness cut:
// it went silent for Options.Liveness.Idle and the probe of its session
// got no answer (see [RouteDeadError]). A call returns it only wrapped:
// with [ErrOutcomeUnknown] when the call may have run and cannot be
// replayed, or as the last failure of [retry.ErrExhausted].
var ErrRouteDead = errors.New("resilient: route dead")
