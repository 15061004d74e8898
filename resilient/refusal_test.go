package resilient_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/resilient"
)

// refusingHandler serves MCP with the SDK's handler, but answers status to
// the next tools/call POSTs while refuse is positive.
type refusingHandler struct {
	mcp    http.Handler
	status int
	refuse atomic.Int32
	posts  atomic.Int32 // tools/call POSTs seen, refused or not
}

func (h *refusingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if bytes.Contains(body, []byte(`"tools/call"`)) {
			h.posts.Add(1)
			if h.refuse.Add(-1) >= 0 {
				http.Error(w, http.StatusText(h.status), h.status)
				return
			}
		}
	}
	h.mcp.ServeHTTP(w, r)
}

// A request refused with a status that sending again cannot change is
// answered as is: one attempt, no reconnect, the SDK's error (which names
// the status). The
// tool is a read, which the rule would replay on any ambiguous failure: the
// refusal must win over the error's text.
func TestRefusalsNeverReconnect(t *testing.T) {
	for _, status := range []int{401, 403, 405, 413, 415, 422} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			srv := echoServer()
			h := &refusingHandler{status: status,
				mcp: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)}
			ts := httptest.NewServer(h)
			t.Cleanup(ts.Close)
			c, err := resilient.Connect(context.Background(), newClient(), resilient.StreamableHTTP(ts.URL, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			h.refuse.Store(1)
			_, err = c.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}})
			if err == nil {
				t.Fatal("call refused with", status, "succeeded")
			}
			if !strings.Contains(err.Error(), http.StatusText(status)) {
				t.Errorf("err = %v, want the status %q in it, as the SDK says it", err, http.StatusText(status))
			}
			s := c.Stats()
			if got := h.posts.Load(); got != 1 || s.Retries != 0 || s.Reconnects != 0 || s.Dials != 1 {
				t.Errorf("tools/call POSTs %d, Stats %+v; want 1 attempt, 0 retries, 0 reconnects, 1 dial", got, s)
			}
		})
	}
}
