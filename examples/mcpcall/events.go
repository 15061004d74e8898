package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/retry"
)

// narrator turns the client's events into lines on stderr. By default it
// tells what changes the picture for a person watching: reconnects, resumes,
// replays, calls of unknown outcome, state that could not be restored. With
// verbose it also tells every failed attempt, skipped resume, breaker move
// and refused retry, with full session IDs and causes.
//
// Events never carry tool arguments or results, so nothing here can print
// them.
type narrator struct {
	w       *lockedWriter
	verbose bool
}

func (n *narrator) say(format string, args ...any) {
	n.w.line("mcpcall: " + fmt.Sprintf(format, args...))
}

// event is the client's Options.OnEvent.
func (n *narrator) event(ev resilient.Event) {
	switch ev.Kind {
	case resilient.EventReconnectStarted:
		what := "connection"
		if ev.OldSessionID != "" {
			what = "session " + n.id(ev.OldSessionID)
		}
		n.say("%s lost (%s%s); reconnecting…", what, retry.Classify(ev.Err), n.cause(ev.Err))
	case resilient.EventReconnected:
		var b strings.Builder
		b.WriteString("reconnected")
		if ev.SessionID != "" {
			fmt.Fprintf(&b, " (new session %s)", n.id(ev.SessionID))
		}
		fmt.Fprintf(&b, " in %v", ev.Duration.Round(time.Millisecond))
		if ev.Attempt > 1 {
			fmt.Fprintf(&b, " after %d attempts", ev.Attempt)
		}
		n.say("%s", b.String())
	case resilient.EventReconnectFailed:
		n.say("reconnect failed after %s in %v: %v", plural(int64(ev.Attempt), "attempt", "attempts"), ev.Duration.Round(time.Millisecond), oneLine(ev.Err))
	case resilient.EventResumed:
		switch ev.Resume.Status {
		case resume.StatusNotFound:
			n.say("nothing to resume for session %s: the server holds no state for it", n.id(ev.OldSessionID))
		default:
			n.say("resumed session %s: %s copied", n.id(ev.OldSessionID), plural(int64(ev.Resume.KeysCopied), "key", "keys"))
		}
	case resilient.EventResumeFailed:
		n.say("could not resume session %s; its state is not on the new session%s", n.id(ev.OldSessionID), n.cause(ev.Err))
	case resilient.EventRestoreFailed:
		n.say("could not restore %s on the new session%s", ev.Method, n.cause(ev.Err))
	case resilient.EventReplayed:
		what := ev.Method
		if ev.Tool != "" {
			what += " " + ev.Tool
		}
		n.say("replaying %s (%s)", what, ev.Class)
	case resilient.EventOutcomeUnknown:
		n.say("%s %s may or may not have run; not replaying it", ev.Method, ev.Tool)
	case resilient.EventAttemptFailed:
		// The first connection's first failure: Connect tries again while
		// the server says "not yet", so say why nothing happens meanwhile.
		if ev.Method == "initialize" && ev.Generation == 0 && ev.Attempt == 1 && ev.Class != retry.Protocol {
			n.say("the server is not answering yet (%s%s); trying again until it does or -timeout ends", ev.Class, n.cause(ev.Err))
		}
	}
	if !n.verbose {
		return
	}
	switch ev.Kind {
	case resilient.EventAttemptFailed:
		what := ev.Method
		if ev.Tool != "" {
			what += " " + ev.Tool
		}
		n.say("%s attempt %d failed (%s): %v", what, ev.Attempt, ev.Class, oneLine(ev.Err))
	case resilient.EventResumeSkipped:
		n.say("no resume: %v", oneLine(ev.Err))
	case resilient.EventBreakerStateChanged:
		n.say("circuit breaker %s -> %s", ev.From, ev.To)
	case resilient.EventBudgetExhausted:
		n.say("retry budget spent; not retrying %s", ev.Method)
	}
}

// id shortens a session ID to its first 8 characters, enough to tell
// sessions apart in a human's reading; verbose shows it whole.
func (n *narrator) id(id string) string {
	if n.verbose || len(id) <= 8 {
		return id
	}
	return id[:8]
}

// cause appends an error in verbose mode only: the default lines stay short.
func (n *narrator) cause(err error) string {
	if !n.verbose || err == nil {
		return ""
	}
	return ": " + oneLine(err)
}

// plural counts things in English: 1 key, 2 keys.
func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// oneLine flattens an error's text: some SDK errors quote a multi-line HTTP
// body, and every message of mcpcall is one line.
func oneLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// lockedWriter serialises writes to stderr: events arrive on the client's
// goroutines, and a stdio server's own stderr is copied on another.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// line writes s and a newline in one write.
func (l *lockedWriter) line(s string) {
	_, _ = l.Write([]byte(s + "\n"))
}
