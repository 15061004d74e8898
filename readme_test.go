package resilience_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// snippetTemplate makes a README snippet the body of a function, with the
// names the README says are in scope. It is built inside the module
// through an overlay, so the snippet compiles against this very code and
// nothing is written to the source tree.
const snippetTemplate = `package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/mcpkit/resilience/resilient"
	"github.com/mcpkit/resilience/resume"
	"github.com/mcpkit/resilience/resume/redisstore"
	"github.com/mcpkit/resilience/resume/replica"
	"github.com/mcpkit/resilience/retry"
)

var (
	_ = errors.Is
	_ = fmt.Println
	_ = time.Second
	_ = resilient.Connect
	_ = http.Handle
	_ = redis.NewClient
	_ = redisstore.New
	_ = resume.ToolName
	_ = replica.Dedup
	_ = retry.Idempotent
	_ = oauth2.NewClient
)

func snippet(ctx context.Context, server *mcp.Server, store replica.Store) error {
	_, _, _ = ctx, server, store
%s
	return nil
}

func main() { _ = snippet }
`

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

// TestREADMESnippetsCompile extracts every Go block of README.md and builds
// it, so that the README never shows code that does not compile.
func TestREADMESnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds each snippet with the go command")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := goBlock.FindAllStringSubmatch(string(readme), -1)
	if len(blocks) == 0 {
		t.Fatal("README.md has no Go code blocks")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build README snippets: %v", err)
	}
	for i, b := range blocks {
		t.Run(fmt.Sprintf("block%d", i+1), func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "main.go")
			if err := os.WriteFile(src, []byte(fmt.Sprintf(snippetTemplate, b[1])), 0o644); err != nil {
				t.Fatal(err)
			}
			root, err := os.Getwd()
			if err != nil {
				t.Fatal(err)
			}
			virtual := filepath.Join(root, "internal", "readmesnippet", "main.go")
			overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{virtual: src}})
			overlayFile := filepath.Join(dir, "overlay.json")
			if err := os.WriteFile(overlayFile, overlay, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(goCmd, "build", "-overlay", overlayFile, "-o", os.DevNull, "./internal/readmesnippet")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("README Go block %d does not compile:\n%s\n%s", i+1, strings.TrimSpace(b[1]), out)
			}
		})
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
