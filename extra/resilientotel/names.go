package resilientotel

import "go.opentelemetry.io/otel/attribute"

// ScopeName is the instrumentation scope of the tracers and meters this
// package gets from its providers.
const ScopeName = "github.com/mcpkit/resilience/extra/resilientotel"

// Attribute keys of the MCP semantic conventions that the semconv package
// of OpenTelemetry Go does not define: the MCP conventions (status
// Development) moved from open-telemetry/semantic-conventions (PR #2083)
// to open-telemetry/semantic-conventions-genai (model/mcp), and no semconv
// version of the Go SDK carries them, nor the gen_ai.* names since v1.38.0.
// The names are those of the conventions' last in-repo text
// (docs/gen-ai/mcp.md).
const (
	// MethodNameKey is the JSON-RPC method: "tools/call", "tools/list"...
	MethodNameKey = attribute.Key("mcp.method.name")
	// SessionIDKey is the Mcp-Session-Id of the session.
	SessionIDKey = attribute.Key("mcp.session.id")
	// ProtocolVersionKey is the MCP protocol version of the session.
	ProtocolVersionKey = attribute.Key("mcp.protocol.version")
	// ToolNameKey is the tool's name, for tools/call.
	ToolNameKey = attribute.Key("gen_ai.tool.name")
	// OperationNameKey is "execute_tool" for tools/call.
	OperationNameKey = attribute.Key("gen_ai.operation.name")
)

// Attribute keys of this package, for what the conventions do not cover
// (retries, reconnects, resumes, deduplication). All start with "mcpkit.".
const (
	// AttemptKey numbers the attempts of a call (1 is the first); on
	// attempt spans.
	AttemptKey = attribute.Key("mcpkit.attempt")
	// ReplayKey is true on an attempt sent on a session that replaced
	// the one of an earlier attempt of the call.
	ReplayKey = attribute.Key("mcpkit.replay")
	// AttemptsKey and ReplaysKey count the attempts and replays of a
	// call; on call spans.
	AttemptsKey = attribute.Key("mcpkit.attempts")
	ReplaysKey  = attribute.Key("mcpkit.replays")
	// GenerationKey counts sessions of the client (1 for the first); on
	// attempt spans.
	GenerationKey = attribute.Key("mcpkit.session.generation")
	// OldSessionIDKey is the session a reconnect replaced; on reconnect
	// spans, which carry the new one as mcp.session.id.
	OldSessionIDKey = attribute.Key("mcpkit.reconnect.old_session_id")
	// DialsKey counts a reconnect's connection attempts.
	DialsKey = attribute.Key("mcpkit.reconnect.dials")
	// ResumeStatusKey is resume_session's answer ("resumed",
	// "same_session", "not_found"), or "skipped" (no resume tried: no
	// session ID, no resume tool, resume disabled) or "failed".
	ResumeStatusKey = attribute.Key("mcpkit.resume.status")
	// KeysCopiedKey is the number of keys resume_session copied.
	KeysCopiedKey = attribute.Key("mcpkit.resume.keys_copied")
	// ResumeErrorKey says why there was no resume (skipped or failed).
	ResumeErrorKey = attribute.Key("mcpkit.resume.error")
	// BreakerFromKey and BreakerToKey are the states of a circuit
	// breaker change: "closed", "half-open", "open".
	BreakerFromKey = attribute.Key("mcpkit.breaker.from")
	BreakerToKey   = attribute.Key("mcpkit.breaker.to")
	// ReplayedKey is true on a server span whose result replica.Dedup
	// answered from its store (the result's _meta carries
	// resume.ReplayedMeta) instead of running the tool.
	ReplayedKey = attribute.Key("mcpkit.dedup.replayed")
)

// Names of spans and span events of this package.
const (
	// ReconnectSpanName names the span of a session replacement.
	ReconnectSpanName = "mcpkit.reconnect"
	// BreakerSpanName names the span of a circuit breaker change.
	BreakerSpanName = "mcpkit.breaker"
	// ReplayEventName is the event on a call span when an attempt is
	// sent again on a new session.
	ReplayEventName = "mcpkit.replay"
	// OutcomeUnknownEventName is the event on a call span whose call may
	// have run and was not replayed.
	OutcomeUnknownEventName = "mcpkit.outcome_unknown"
)

// Metric names. The operation durations are the MCP conventions'; the
// counters are this package's.
const (
	// ClientDurationMetric is a histogram of call durations in seconds.
	ClientDurationMetric = "mcp.client.operation.duration"
	// ServerDurationMetric is a histogram of request durations in
	// seconds, on the server.
	ServerDurationMetric = "mcp.server.operation.duration"
	// AttemptsMetric counts attempts (sends of a call).
	AttemptsMetric = "mcpkit.client.attempts"
	// ReplaysMetric counts attempts that were replays on a new session.
	ReplaysMetric = "mcpkit.client.replays"
	// ReconnectsMetric counts session replacements, succeeded or failed.
	ReconnectsMetric = "mcpkit.client.reconnects"
	// OutcomeUnknownMetric counts calls that ended with
	// resilient.ErrOutcomeUnknown.
	OutcomeUnknownMetric = "mcpkit.client.outcome_unknown"
	// BreakerTransitionsMetric counts circuit breaker state changes.
	BreakerTransitionsMetric = "mcpkit.client.breaker.transitions"
)

// durationBuckets are the MCP conventions' advice for the duration
// histograms, in seconds.
var durationBuckets = []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}
