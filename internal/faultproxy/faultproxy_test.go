package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// echo starts a line echo server and returns its address.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string) (string, error) {
	t.Helper()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	got, err := r.ReadString('\n')
	return got, err
}

// A black hole holds bytes back, in both directions, and the heal
// delivers them; a reset ends the client's connection.
func TestBlackHoleHealReset(t *testing.T) {
	p, err := Start(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if got, err := roundTrip(t, c, r, "one"); err != nil || got != "one\n" {
		t.Fatalf("through the proxy: got %q, %v", got, err)
	}
	p.BlackHole()
	if _, err := c.Write([]byte("two\n")); err != nil {
		t.Fatal(err)
	}
	// Nothing comes back while the hole lasts ("should not happen": a
	// short wait).
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var ne net.Error
	if got, err := r.ReadString('\n'); !errors.As(err, &ne) || !ne.Timeout() || got != "" {
		t.Fatalf("through a black hole: got %q, %v; want nothing", got, err)
	}
	p.Heal()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "two\n" {
		t.Fatalf("after the heal: got %q, %v; want the held line", got, err)
	}
	if p.Forwarded() != int64(len("one\ntwo\n")) {
		t.Errorf("Forwarded() = %d, want %d", p.Forwarded(), len("one\ntwo\n"))
	}
	p.ResetPeers()
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("read after ResetPeers: got no error")
	}
}
