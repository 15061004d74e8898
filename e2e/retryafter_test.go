//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpkit/resilience/internal/proctest"
	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/retry"
)

// retryAfterSeconds is what nginx answers in Retry-After with its 503.
const retryAfterSeconds = 3

// nginxRetryAfterConfig puts nginx in front of one backend. While the file
// maintenance exists, nginx answers every request itself with 503 and
// Retry-After, as a balancer in maintenance or with no backend does;
// nginx looks for the file on each request, so the test switches it
// without a reload.
const nginxRetryAfterConfig = `daemon off;
worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
    access_log /dev/stdout;
    client_max_body_size 16k;
    client_body_temp_path client_body;
    proxy_temp_path proxy;
    fastcgi_temp_path fastcgi;
    uwsgi_temp_path uwsgi;
    scgi_temp_path scgi;
    server {
        listen 127.0.0.1:%d;
        location / {
            if (-f %s) {
                add_header Retry-After %d always;
                return 503;
            }
            proxy_pass http://%s;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
`

// TestNginxRetryAfter: nginx answers a tools/call with 503 and
// Retry-After. A call whose deadline comes before the Retry-After ends at
// once, saying why (the deadline, and nginx's refusal), and did not run. A
// call with a longer deadline waits the Retry-After out, is sent once more
// when nginx routes again, and runs once.
func TestNginxRetryAfter(t *testing.T) {
	nginx := proctest.Binary(t, "nginx")
	var runs atomic.Int32
	server := mcp.NewServer(&mcp.Implementation{Name: "backend", Version: "1"}, nil)
	server.AddTool(&mcp.Tool{Name: "increment", InputSchema: map[string]any{"type": "object"}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			n := runs.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprint(n)}}}, nil
		})
	backend := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
	t.Cleanup(backend.Close)

	prefix := t.TempDir()
	// nginx's workers may run as another user (nobody, when the tests run
	// as root): they must be able to look for the file.
	for _, dir := range []string{filepath.Dir(prefix), prefix} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	maintenance := filepath.Join(prefix, "maintenance")
	var base string
	var proc *proctest.Proc
	var lastErr error
	for range 3 { // the free port may be taken before nginx binds it
		front := proctest.FreePort(t)
		file := filepath.Join(prefix, "nginx.conf")
		cfg := fmt.Sprintf(nginxRetryAfterConfig, front, maintenance, retryAfterSeconds, strings.TrimPrefix(backend.URL, "http://"))
		if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		base = fmt.Sprintf("http://127.0.0.1:%d", front)
		proc = proctest.Start(t, "nginx", nginx, "-p", prefix, "-c", file, "-e", "stderr")
		lastErr = proc.WaitFor(readyTimeout, func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		})
		if lastErr == nil {
			break
		}
		proc.Kill()
	}
	if lastErr != nil {
		t.Fatalf("starting nginx: %v\n%s", lastErr, proc.Output())
	}

	refused := make(chan struct{}, 16)
	c, err := resilient.Connect(context.Background(), mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil),
		resilient.StreamableHTTP(base+"/mcp", nil), &resilient.Options{
			OnEvent: func(ev resilient.Event) {
				if ev.Kind == resilient.EventAttemptFailed && ev.Class == retry.Transient {
					refused <- struct{}{}
				}
			}})
	if err != nil {
		t.Fatalf("Connect through nginx: %v\n%s", err, proc.Output())
	}
	t.Cleanup(func() { _ = c.Close() })

	// nginx refuses a body over client_max_body_size with 413 before any
	// backend sees it: an answer, returned after one attempt, with no
	// reconnect and no re-send.
	t.Run("413 from nginx", func(t *testing.T) {
		before := c.Stats()
		_, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: "increment",
			Arguments: map[string]any{"blob": strings.Repeat("x", 64<<10)}})
		if err == nil || !strings.Contains(err.Error(), http.StatusText(http.StatusRequestEntityTooLarge)) {
			t.Fatalf("err = %v, want nginx's 413 (%s)", err, http.StatusText(http.StatusRequestEntityTooLarge))
		}
		if errors.Is(err, resilient.ErrOutcomeUnknown) {
			t.Errorf("err = %v matches ErrOutcomeUnknown; nginx refused the call, it did not run", err)
		}
		after := c.Stats()
		if after.Retries != before.Retries || after.Reconnects != before.Reconnects || after.Dials != before.Dials {
			t.Errorf("Stats %+v after the 413, %+v before: want no re-send, reconnect or dial", after, before)
		}
		if n := runs.Load(); n != 0 {
			t.Errorf("the tool ran %d times, want 0", n)
		}
		// The session is intact: a call that fits goes through (nginx
		// closed the connection after its 413, so this call may be sent
		// again on a new one, never having been sent on the closed one).
		if _, err := c.CallTool(context.Background(), &mcp.CallToolParams{Name: "increment"}); err != nil {
			t.Fatalf("call after the 413: %v", err)
		}
		runs.Store(0)
	})

	if err := os.WriteFile(maintenance, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("deadline before Retry-After", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		retriesBefore := c.Stats().Retries
		start := time.Now()
		_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "increment"})
		if r := c.Stats().Retries - retriesBefore; r != 0 {
			t.Errorf("%d re-sends, want none: nginx's Retry-After outlasts the deadline", r)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "Service Unavailable") {
			t.Errorf("err = %v, want context.DeadlineExceeded carrying nginx's 503", err)
		}
		if errors.Is(err, resilient.ErrOutcomeUnknown) {
			t.Errorf("err = %v matches ErrOutcomeUnknown; nginx refused the call, it did not run", err)
		}
		if ctx.Err() != nil {
			t.Errorf("returned after %v, when its deadline had passed: want at once, the Retry-After being longer", time.Since(start))
		}
		if n := runs.Load(); n != 0 {
			t.Errorf("the tool ran %d times, want 0", n)
		}
		// Its one refusal is reported (events come on the client's own
		// goroutine, maybe after the call returned).
		select {
		case <-refused:
		case <-time.After(10 * time.Second):
			t.Fatal("no attempt_failed event for nginx's 503 within 10s")
		}
	})

	t.Run("deadline after Retry-After", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		retriesBefore := c.Stats().Retries
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			_, err := c.CallTool(ctx, &mcp.CallToolParams{Name: "increment"})
			done <- err
		}()
		select {
		case <-refused:
		case err := <-done:
			t.Fatalf("call ended before nginx refused it: %v", err)
		case <-ctx.Done():
			t.Fatal("nginx's 503 never reached the client")
		}
		// nginx routes to the backend again; the client still waits the
		// Retry-After out before sending again.
		if err := os.Remove(maintenance); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("call after the Retry-After: %v\n%s", err, proc.Output())
		}
		if d := time.Since(start); d < retryAfterSeconds*time.Second {
			t.Errorf("answered %v after the call started, want after nginx's Retry-After of %ds", d, retryAfterSeconds)
		}
		if n, r := runs.Load(), c.Stats().Retries-retriesBefore; n != 1 || r != 1 {
			t.Errorf("the tool ran %d times after %d re-sends, want once after one", n, r)
		}
	})
}
