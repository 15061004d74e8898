package proctest

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// dead reports whether pid has exited: gone, or a zombie that nobody has
// reaped yet (a grandchild whose parent died is reparented to init).
func dead(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func TestKillTakesTheGroup(t *testing.T) {
	sh := Binary(t, "sh")
	p := Start(t, "sh", sh, "-c", "sleep 60 & echo $!; wait")
	var child int
	err := p.WaitFor(5*time.Second, func(context.Context) error {
		out := strings.TrimSpace(p.Output())
		if out == "" {
			return errors.New("no pid printed yet")
		}
		var err error
		child, err = strconv.Atoi(out)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if dead(child) {
		t.Fatalf("child %d dead before the kill", child)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	default:
		t.Error("Kill returned before the process exited")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !dead(child) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the killed process still runs", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("second Kill = %v, want nil", err)
	}
}

func TestStop(t *testing.T) {
	sh := Binary(t, "sh")
	p := Start(t, "sh", sh, "-c", `trap 'exit 0' TERM; echo trapped; while :; do sleep 0.05; done`)
	waitTrapped(t, p)
	if err := p.Stop(5 * time.Second); err != nil {
		t.Errorf("Stop of a process that exits on SIGTERM = %v, want nil", err)
	}

	stubborn := Start(t, "sh", sh, "-c", `trap '' TERM; echo trapped; while :; do sleep 0.05; done`)
	waitTrapped(t, stubborn)
	if err := stubborn.Stop(300 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "was killed") {
		t.Errorf("Stop of a process that ignores SIGTERM = %v, want an error saying it was killed", err)
	}
}

func TestWaitForSeesExit(t *testing.T) {
	p := Start(t, "sh", Binary(t, "sh"), "-c", "echo bye; exit 3")
	err := p.WaitFor(5*time.Second, func(context.Context) error { return errors.New("not ready") })
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("WaitFor on a process that exits = %v, want an error saying it exited with status 3", err)
	}
	if got := p.Output(); got != "bye\n" {
		t.Errorf("Output = %q, want %q", got, "bye\n")
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	b.Write([]byte("0123456789"))
	b.Write([]byte("ab"))
	if got := b.String(); got != "456789ab" {
		t.Errorf("tail = %q, want %q", got, "456789ab")
	}
}

func TestFreePort(t *testing.T) {
	if p := FreePort(t); p <= 0 || p > 65535 {
		t.Errorf("FreePort = %d", p)
	}
}

func TestStartEnv(t *testing.T) {
	t.Setenv("PROCTEST_INHERITED", "old")
	p := StartEnv(t, "sh", []string{"PROCTEST_INHERITED=new", "PROCTEST_ADDED=yes"}, Binary(t, "sh"), "-c", `echo "$PROCTEST_INHERITED $PROCTEST_ADDED"`)
	<-p.Exited()
	if got := p.Output(); got != "new yes\n" {
		t.Errorf("Output = %q, want %q (env overrides the inherited value and adds)", got, "new yes\n")
	}
}

// waitTrapped waits until the shell p says it installed its trap.
func waitTrapped(t *testing.T, p *Proc) {
	t.Helper()
	err := p.WaitFor(5*time.Second, func(context.Context) error {
		if !strings.Contains(p.Output(), "trapped") {
			return errors.New("no trap yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRedisCluster(t *testing.T) {
	start := time.Now()
	c := StartRedisCluster(t)
	t.Logf("cluster of 6 ready in %v", time.Since(start))
	ctx := t.Context()
	primaries, err := c.Primaries(ctx)
	if err != nil || len(primaries) != 3 {
		t.Fatalf("Primaries = %q, %v; want 3", primaries, err)
	}
	promoted, took, err := c.KillPrimary(primaries[0], nil)
	if err != nil {
		t.Fatalf("KillPrimary(%s): %v", primaries[0], err)
	}
	t.Logf("%s killed, %s promoted in %v", primaries[0], promoted, took)
	after, err := c.Primaries(ctx)
	if err != nil || len(after) != 3 || slices.Contains(after, primaries[0]) || !slices.Contains(after, promoted) {
		t.Errorf("Primaries after the kill = %q, %v; want 3, with %s and without %s", after, err, promoted, primaries[0])
	}
	if err := c.Restart(primaries[0]); err != nil {
		t.Fatalf("Restart(%s): %v", primaries[0], err)
	}
	if replicas, err := c.ReplicasOf(ctx, promoted); err != nil || len(replicas) != 1 || replicas[0].Addr != primaries[0] {
		t.Errorf("replicas of %s after the restart = %v, %v; want %s", promoted, replicas, err, primaries[0])
	}
}

func TestRedisSentinel(t *testing.T) {
	start := time.Now()
	s := StartRedisSentinel(t)
	t.Logf("sentinel deployment ready in %v", time.Since(start))
	ctx := t.Context()
	old, err := s.Primary(ctx)
	if err != nil || old != s.Servers[0].Addr {
		t.Fatalf("Primary = %q, %v; want %s", old, err, s.Servers[0].Addr)
	}
	now, took, err := s.KillPrimary(nil)
	if err != nil || now != s.Servers[1].Addr {
		t.Fatalf("KillPrimary = %q, %v; want the replica %s promoted", now, err, s.Servers[1].Addr)
	}
	t.Logf("failover took %v", took)
}
