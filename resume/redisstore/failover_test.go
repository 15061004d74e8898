package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestNeverSent(t *testing.T) {
	_, dialErr := net.Dial("tcp", "127.0.0.1:1") // nothing listens on port 1
	if dialErr == nil {
		t.Fatal("dialing 127.0.0.1:1 succeeded; the test needs a refused connection")
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"refused dial", dialErr, true},
		{"refused dial, wrapped", fmt.Errorf("redisstore: Get: %w", dialErr), true},
		{"refused, as text from the pool", errors.New("redis: connection pool: failed to dial after 1 attempts: dial tcp 127.0.0.1:7000: connect: connection refused"), true},
		{"cluster down", errors.New("CLUSTERDOWN The cluster is down"), true},
		{"slot migrating", errors.New("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{"connection lost mid-reply", io.EOF, false},
		{"reset", errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"), false},
		{"timeout", context.DeadlineExceeded, false},
		{"canceled, with a refusal inside", fmt.Errorf("%w: %w", context.Canceled, dialErr), false},
		{"no replicas", errors.New("NOREPLICAS 0 of 1 replicas connected; nothing written"), false},
		{"redis nil", redis.Nil, false},
	} {
		if got := neverSent(tc.err); got != tc.want {
			t.Errorf("neverSent(%s: %v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestNoReplicas(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{errors.New("NOREPLICAS 0 of 1 replicas connected; nothing written"), true},
		{errors.New("NOREPLICAS Not enough good replicas to write."), true},
		{errors.New("ERR something else"), false},
		{nil, false},
	} {
		if got := errors.Is(noReplicas(tc.err), ErrNoReplicas); got != tc.want {
			t.Errorf("noReplicas(%v) matches ErrNoReplicas = %v, want %v", tc.err, got, tc.want)
		}
	}
}
