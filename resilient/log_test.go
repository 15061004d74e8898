package resilient_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mcpkit/resilience/internal/testserver"
	"github.com/mcpkit/resilience/resilient"
)

// The logs tell an operator what happened (a reconnect and a resume at
// Info, an unknown outcome at Warn) without leaking what a call carried:
// no arguments, no idempotency key above Debug.
func TestLogs(t *testing.T) {
	cl := startCluster(t, nil)
	core, logs := observer.New(zapcore.DebugLevel)
	c, _ := connect(t, cl, &resilient.Options{Logger: zap.New(core)})
	mustCounter(t, c, "increment_counter")

	cl.Inject(testserver.Fault{Kind: testserver.DropAfterTool, Method: "tools/call", Tool: "add_note"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const key, secret = "key-that-must-not-leak", "note-that-must-not-leak"
	_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"note": secret}, Meta: keyMeta(key)})
	if !errors.Is(err, resilient.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
	}

	for _, want := range []struct {
		level zapcore.Level
		msg   string
	}{
		{zapcore.DebugLevel, "attempt failed"},
		{zapcore.InfoLevel, "reconnecting"},
		{zapcore.InfoLevel, "reconnected"},
		{zapcore.InfoLevel, "session resumed"},
		{zapcore.WarnLevel, "outcome unknown, not replayed"},
	} {
		entries := logs.FilterMessage(want.msg).All()
		if len(entries) == 0 {
			t.Errorf("no %q log line", want.msg)
			continue
		}
		if got := entries[0].Level; got != want.level {
			t.Errorf("%q logged at %v, want %v", want.msg, got, want.level)
		}
	}
	if e := logs.FilterMessage("attempt failed").All(); len(e) > 0 {
		fields := e[0].ContextMap()
		for _, f := range []string{"session_id", "generation", "attempt", "class"} {
			if _, ok := fields[f]; !ok {
				t.Errorf("attempt line has no %q field: %v", f, fields)
			}
		}
	}
	if e := logs.FilterMessage("session resumed").All(); len(e) > 0 {
		if kc, ok := e[0].ContextMap()["keys_copied"]; !ok || fmt.Sprint(kc) == "0" {
			t.Errorf("resume line keys_copied = %v, want the keys copied", kc)
		}
	}
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		if strings.Contains(line, secret) {
			t.Errorf("a %v line leaks the tool's arguments: %s", e.Level, line)
		}
		if e.Level > zapcore.DebugLevel && strings.Contains(line, key) {
			t.Errorf("a %v line leaks the idempotency key: %s", e.Level, line)
		}
	}
}
