// Package proctest runs real server processes for tests: redis-server,
// haproxy and built binaries, on loopback ports chosen at run time, each in
// its own process group so that a kill takes its children too, and every one
// torn down when the test ends.
//
// A test that needs a program from PATH calls [Binary]: when the program is
// missing the test is skipped, except under CI=true, where a missing program
// fails it (CI installs them, so absence there is a broken setup, not a
// choice).
package proctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary returns the path of program name found in PATH. If there is none it
// skips t, or fails it when the environment has CI=true.
func Binary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (%v); CI=true requires it (.ci/run installs it with apt-get)", name, err)
	}
	t.Skipf("%s is not installed (%v); install it to run this test (it is required under CI=true)", name, err)
	return ""
}

// FreePort returns a loopback TCP port that was free a moment ago: the
// system chose it for a listener that is closed again at once. Another
// process may take it before the caller does, so callers that start a
// server on it retry with a new port when the server cannot bind.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("choosing a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// maxOutput bounds the output kept of one process: enough for the lines
// that explain a failure, not a flood.
const maxOutput = 64 << 10

// Proc is a process started by [Start]. Its methods are safe for concurrent
// use.
type Proc struct {
	Name string // for messages
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // Wait's result, set before done is closed
}

// Start starts path with args in a new process group, its stdout and stderr
// kept in memory (the last 64 KiB). The process is killed (SIGKILL to its
// group) and reaped when t ends, and its output is logged if t failed.
func Start(t testing.TB, name, path string, args ...string) *Proc {
	t.Helper()
	return StartEnv(t, name, nil, path, args...)
}

// StartEnv is [Start] with env ("KEY=value") added to the test's own
// environment; a key given in env overrides the inherited one.
func StartEnv(t testing.TB, name string, env []string, path string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, out: &tailBuffer{max: maxOutput}, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	p.cmd.Env = append(os.Environ(), env...)
	// A group of its own: a kill reaches whatever the process started, and
	// a signal sent to the test's group (Ctrl-C) does not race our kills.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("output of %s (pid %d):\n%s", name, p.Pid(), p.Output())
		}
	})
	return p
}

// Pid returns the process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Output returns what the process printed so far (its last 64 KiB).
func (p *Proc) Output() string { return p.out.String() }

// Exited is closed once the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.done }

// Kill sends SIGKILL to the process group and waits until the process is
// reaped (bounded: a process that SIGKILL cannot end is a broken machine,
// reported as an error). Killing an exited process does nothing.
func (p *Proc) Kill() error {
	return p.signal(syscall.SIGKILL, 10*time.Second)
}

// Pause stops the process group with SIGSTOP, as a machine that hangs
// would: it holds its connections open and answers nothing until [Proc.Resume].
func (p *Proc) Pause() error { return p.send(syscall.SIGSTOP) }

// Resume continues a process stopped by [Proc.Pause] with SIGCONT.
func (p *Proc) Resume() error { return p.send(syscall.SIGCONT) }

func (p *Proc) send(sig syscall.Signal) error {
	if err := syscall.Kill(-p.Pid(), sig); err != nil {
		return fmt.Errorf("signal %v to %s: %w", sig, p.Name, err)
	}
	return nil
}

// Stop sends SIGTERM to the process group, waits up to grace for the process
// to exit, and kills it if it has not. It returns the process's exit error,
// or an error if it had to be killed.
func (p *Proc) Stop(grace time.Duration) error {
	if err := p.signal(syscall.SIGTERM, grace); err == nil {
		return p.err
	}
	if err := p.Kill(); err != nil {
		return err
	}
	return fmt.Errorf("%s did not exit within %v of SIGTERM and was killed", p.Name, grace)
}

func (p *Proc) signal(sig syscall.Signal, wait time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	// The negative pid addresses the group. ESRCH means it is gone already.
	if err := syscall.Kill(-p.Pid(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to %s: %w", sig, p.Name, err)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
		return fmt.Errorf("%s still running %v after %v", p.Name, wait, sig)
	}
}

// WaitFor calls ready every 20ms until it returns nil, timeout passes, or p
// exits. Each call gets a context bounded by one second.
func (p *Proc) WaitFor(timeout time.Duration, ready func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		last = ready(ctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v) before it was ready: %v", p.Name, p.err, last)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %v", p.Name, timeout, last)
		}
		// Readiness of another process (a port, a file) has no event to
		// wait on: poll it, and notice its exit at once meanwhile.
		select {
		case <-p.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if extra := b.buf.Len() - b.max; extra > 0 {
		b.buf.Next(extra)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// itoa is strconv.Itoa, short for argument lists.
func itoa(n int) string { return strconv.Itoa(n) }
