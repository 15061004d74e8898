package proctest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// RedisOptions configure [StartRedis]. A nil *RedisOptions means defaults.
type RedisOptions struct {
	// Persist makes every write durable (append-only file, fsync on each
	// write) in a temporary directory, so that data survives a
	// [Redis.Restart], even after SIGKILL. Default false: nothing is ever
	// written to disk.
	Persist bool

	// Args are extra redis-server arguments ("--name", "value", ...).
	Args []string
}

// Redis is a redis-server started by [StartRedis]. Kill and Restart must
// not run concurrently with each other; the other methods may.
type Redis struct {
	// Addr is host:port, on 127.0.0.1.
	Addr string
	t    testing.TB
	path string
	args []string
	proc *Proc
}

// readyTimeout bounds the wait for a started server to answer.
const readyTimeout = 10 * time.Second

// StartRedis starts redis-server from PATH on a free loopback port and
// returns once it answers PING. It skips t when redis-server is missing (and
// fails it under CI=true, see [Binary]). The server is killed when t ends.
func StartRedis(t testing.TB, opts *RedisOptions) *Redis {
	t.Helper()
	return startRedis(t, opts, FreePort)
}

// startRedis is StartRedis with the port chosen by port.
func startRedis(t testing.TB, opts *RedisOptions, port func(testing.TB) int) *Redis {
	t.Helper()
	path := Binary(t, "redis-server")
	dir := t.TempDir()
	var lastErr error
	// A port chosen free can be taken before redis binds it: try a few.
	for range 5 {
		port := port(t)
		r := &Redis{Addr: fmt.Sprintf("127.0.0.1:%d", port), t: t, path: path}
		r.args = []string{
			"--port", itoa(port), "--bind", "127.0.0.1",
			"--dir", dir, "--daemonize", "no", "--logfile", "",
			"--save", "", "--appendonly", "no",
		}
		if opts != nil && opts.Persist {
			r.args = append(r.args, "--appendonly", "yes", "--appendfsync", "always")
		}
		if opts != nil {
			r.args = append(r.args, opts.Args...)
		}
		r.proc = Start(t, "redis-server "+r.Addr, path, r.args...)
		if lastErr = r.waitReady(); lastErr == nil {
			return r
		}
		r.proc.Kill()
	}
	t.Fatalf("starting redis-server: %v", lastErr)
	return nil
}

// URL returns the server's redis:// URL (database 0).
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

// Proc returns the running process.
func (r *Redis) Proc() *Proc { return r.proc }

// Kill kills the server with SIGKILL and waits until it is gone.
func (r *Redis) Kill() error { return r.proc.Kill() }

// Restart starts the server again on the same port and directory (after
// killing it if it still runs) and waits until it answers PING. With
// [RedisOptions.Persist] it comes back with its data.
func (r *Redis) Restart() error {
	if err := r.proc.Kill(); err != nil {
		return err
	}
	r.proc = Start(r.t, "redis-server "+r.Addr, r.path, r.args...)
	return r.waitReady()
}

func (r *Redis) waitReady() error {
	return r.proc.WaitFor(readyTimeout, func(ctx context.Context) error {
		return Ping(ctx, r.Addr)
	})
}

// Ping sends PING to the Redis server at addr in the inline protocol and
// checks the answer, without a client library.
func Ping(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// "-LOADING ..." while it reads its append-only file is not ready yet.
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}
