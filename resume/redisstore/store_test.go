package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/mcpkit/resilience/internal/proctest"
	"github.com/mcpkit/resilience/resume/internal/storetest"
	"github.com/mcpkit/resilience/resume/redisstore"
	"github.com/mcpkit/resilience/resume/replica"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newClient returns a client of srv that records the name of every command
// it sends (for the tests that prove which commands are never sent), closed
// when t ends.
func newClient(t *testing.T, srv *proctest.Redis) (*redis.Client, *commandLog) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{
		Addr:        srv.Addr,
		DialTimeout: time.Second,
		// A test's failures must show at once, not after retries.
		MaxRetries:    -1,
		DialerRetries: 1,
	})
	t.Cleanup(func() { rdb.Close() })
	log := &commandLog{}
	rdb.AddHook(log)
	return rdb, log
}

func newStore(t *testing.T, rdb redis.UniversalClient, opts *redisstore.Options) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(rdb, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// TestContract runs the Store contract that the memory store runs too,
// against a real redis-server.
func TestContract(t *testing.T) {
	srv := proctest.StartRedis(t, nil)
	rdb, log := newClient(t, srv)
	storetest.Run(t, func(t *testing.T) replica.Store {
		if err := rdb.FlushDB(t.Context()).Err(); err != nil {
			t.Fatalf("FLUSHDB: %v", err)
		}
		return newStore(t, rdb, &redisstore.Options{DefaultTTL: time.Hour})
	}, &storetest.Options{TimeUnit: 200 * time.Millisecond})

	// Nothing in the whole suite walked the keyspace, and every script
	// touched one slot (a cluster would have refused it).
	for _, name := range []string{"keys", "scan"} {
		if n := log.count(name); n != 0 {
			t.Errorf("%s commands sent = %d, want 0", strings.ToUpper(name), n)
		}
	}
	if log.count("evalsha") == 0 {
		t.Error("no EVALSHA recorded: the cross-slot check saw nothing")
	}
	for _, bad := range log.crossSlot() {
		t.Error(bad)
	}
}

// TestContractPythonLayout runs the Store contract on the Python
// reference layout, with and without the SCAN for unindexed keys.
func TestContractPythonLayout(t *testing.T) {
	srv := proctest.StartRedis(t, nil)
	rdb, _ := newClient(t, srv)
	for _, scan := range []bool{false, true} {
		t.Run(fmt.Sprintf("ScanUnindexed=%v", scan), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) replica.Store {
				if err := rdb.FlushDB(t.Context()).Err(); err != nil {
					t.Fatalf("FLUSHDB: %v", err)
				}
				return newStore(t, rdb, &redisstore.Options{DefaultTTL: time.Hour, Layout: redisstore.LayoutPython, ScanUnindexed: scan})
			}, &storetest.Options{TimeUnit: 200 * time.Millisecond})
		})
	}
}

func TestLayout(t *testing.T) {
	srv := proctest.StartRedis(t, nil)
	rdb, _ := newClient(t, srv)
	ctx := t.Context()
	s := newStore(t, rdb, nil)

	if err := s.Set(ctx, "S1", "counter", []byte("3"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "S1", "notes:1", []byte(`["a"]`), time.Minute); err != nil {
		t.Fatal(err)
	}
	raw, err := rdb.Get(ctx, "mcpkit:{s:S1}:v:counter").Result()
	if err != nil || raw != "3" {
		t.Errorf("GET mcpkit:{s:S1}:v:counter = %q, %v; want \"3\" (the cluster layout, a plain string)", raw, err)
	}
	if got := redisstore.Key("S1", "notes:1"); got != "mcpkit:{s:S1}:v:notes:1" {
		t.Errorf("Key = %q", got)
	}
	if got := s.Layout().Key("S1", "notes:1"); got != redisstore.Key("S1", "notes:1") {
		t.Errorf("default Layout().Key = %q, want the package's Key", got)
	}
	ttl := rdb.PTTL(ctx, "mcpkit:{s:S1}:v:counter").Val()
	if ttl <= 29*time.Minute || ttl > 30*time.Minute {
		t.Errorf("PTTL of a value written with the default TTL = %v, want about 30m", ttl)
	}
	if got := s.DefaultTTL(); got != replica.DefaultTTL {
		t.Errorf("DefaultTTL() = %v, want %v", got, replica.DefaultTTL)
	}

	index := redisstore.IndexKey("S1")
	if index != "mcpkit:{s:S1}:index" {
		t.Errorf("IndexKey = %q", index)
	}
	members := rdb.SMembers(ctx, index).Val()
	slices.Sort(members)
	if diff := cmp.Diff([]string{"counter", "notes:1"}, members); diff != "" {
		t.Errorf("index members (-want +got):\n%s", diff)
	}
	// The index lives as long as its longest-lived value.
	if ttl := rdb.PTTL(ctx, index).Val(); ttl <= 29*time.Minute {
		t.Errorf("PTTL of the index = %v, want about 30m", ttl)
	}
	// The record that replica.Handler keeps of an adopted session, in a
	// store session of its own, lives in the session's slot, apart from
	// its values.
	if err := s.Set(ctx, "mcpkit-session-S1", "mcpkit.session", []byte("rec"), 0); err != nil {
		t.Fatal(err)
	}
	if got := redisstore.Key("mcpkit-session-S1", "mcpkit.session"); got != "mcpkit:{s:S1}:mcpkit-session-S1:v:mcpkit.session" {
		t.Errorf("Key of the record = %q", got)
	}
	if keys, err := s.Keys(ctx, "S1"); err != nil || slices.Contains(keys, "mcpkit.session") {
		t.Errorf("Keys(S1) = %q, %v; want the session's own keys only", keys, err)
	}
	// Every key of the session is in one slot.
	for _, k := range rdb.Keys(ctx, "*").Val() {
		if slot, want := keySlot(t, rdb, k), keySlot(t, rdb, index); slot != want {
			t.Errorf("key %s is in slot %d, the index in %d", k, slot, want)
		}
	}

	if err := s.Delete(ctx, "S1", "counter"); err != nil {
		t.Fatal(err)
	}
	if members := rdb.SMembers(ctx, index).Val(); !slices.Equal(members, []string{"notes:1"}) {
		t.Errorf("index after Delete = %q, want [notes:1]", members)
	}
	// A value that expires leaves a stale index entry, which Keys drops.
	if err := s.Set(ctx, "S1", "brief", []byte("x"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Wait on the expiry itself (Redis expires the key), bounded.
	for deadline := time.Now().Add(10 * time.Second); rdb.Exists(ctx, s.Layout().Key("S1", "brief")).Val() != 0; {
		if time.Now().After(deadline) {
			t.Fatal("a value written with a 50ms TTL still exists 10s later")
		}
		time.Sleep(10 * time.Millisecond) // a bounded poll of Redis
	}
	keys, err := s.Keys(ctx, "S1")
	if err != nil || !slices.Equal(keys, []string{"notes:1"}) {
		t.Errorf("Keys after expiry = %q, %v; want [notes:1]", keys, err)
	}
	if rdb.SIsMember(ctx, index, "brief").Val() {
		t.Error("Keys left the expired name in the index")
	}
}

// TestPythonInterop reads and copies what a server that keeps no index (the
// Python reference) writes: plain strings and lists at mcp:session:{id}:{key}.
func TestPythonInterop(t *testing.T) {
	srv := proctest.StartRedis(t, nil)
	rdb, log := newClient(t, srv)
	ctx := t.Context()
	rdb.Set(ctx, "mcp:session:PY1:counter", "5", time.Hour)
	rdb.RPush(ctx, "mcp:session:PY1:notes", "a", "b")
	rdb.Expire(ctx, "mcp:session:PY1:notes", time.Hour)
	// A session whose ID extends PY1's, which an unescaped or careless
	// pattern would catch.
	rdb.Set(ctx, "mcp:session:PY10:counter", "7", time.Hour)

	indexed := newStore(t, rdb, &redisstore.Options{Layout: redisstore.LayoutPython})
	if v, ok, err := indexed.Get(ctx, "PY1", "counter"); err != nil || !ok || string(v) != "5" {
		t.Errorf("Get of a Python value = %q, %v, %v; want 5", v, ok, err)
	}
	if _, _, err := indexed.Get(ctx, "PY1", "notes"); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") || !strings.Contains(err.Error(), `"notes"`) {
		t.Errorf("Get of a Python list = %v, want a WRONGTYPE error naming the key", err)
	}
	if keys, err := indexed.Keys(ctx, "PY1"); err != nil || len(keys) != 0 {
		t.Errorf("Keys without ScanUnindexed = %q, %v; want none (no index)", keys, err)
	}
	if n := log.count("scan"); n != 0 {
		t.Errorf("SCAN sent without ScanUnindexed: %d times", n)
	}

	scanning := newStore(t, rdb, &redisstore.Options{Layout: redisstore.LayoutPython, ScanUnindexed: true})
	keys, err := scanning.Keys(ctx, "PY1")
	slices.Sort(keys)
	if err != nil || !slices.Equal(keys, []string{"counter", "notes"}) {
		t.Errorf("Keys with ScanUnindexed = %q, %v; want [counter notes]", keys, err)
	}
	n, err := scanning.Copy(ctx, "PY1", "GO1", time.Minute)
	if err != nil || n != 2 {
		t.Fatalf("Copy with ScanUnindexed = %d, %v; want 2", n, err)
	}
	if got := rdb.LRange(ctx, "mcp:session:GO1:notes", 0, -1).Val(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("copied list = %q, want [a b]", got)
	}
	if ttl := rdb.PTTL(ctx, "mcp:session:GO1:notes").Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("PTTL of the copied list = %v, want at most 1m", ttl)
	}
	// The copy is indexed: a store that does not scan sees it.
	keys, err = indexed.Keys(ctx, "GO1")
	slices.Sort(keys)
	if err != nil || !slices.Equal(keys, []string{"counter", "notes"}) {
		t.Errorf("Keys of the copy = %q, %v; want [counter notes]", keys, err)
	}
	if v, _, _ := indexed.Get(ctx, "GO1", "counter"); string(v) != "5" {
		t.Errorf("copied counter = %q, want 5 (not PY10's 7)", v)
	}
	for _, args := range log.args("scan") {
		if !slices.Contains(args, `mcp:session:PY1:*`) {
			t.Errorf("SCAN %q: want the exact pattern mcp:session:PY1:*", args)
		}
	}
	if log.count("scan") == 0 {
		t.Error("no SCAN sent with ScanUnindexed")
	}
}

func TestInvalidSession(t *testing.T) {
	srv := proctest.StartRedis(t, nil)
	rdb, log := newClient(t, srv)
	ctx := t.Context()
	s := newStore(t, rdb, &redisstore.Options{Layout: redisstore.LayoutPython, ScanUnindexed: true})
	for _, id := range []string{"", "a:b", "*", "AB?", "[A]", "a b"} {
		calls := map[string]error{
			"Get": func() error { _, _, err := s.Get(ctx, id, "k"); return err }(),
			"Set": s.Set(ctx, id, "k", []byte("v"), 0),
			"Update": func() error {
				_, err := s.Update(ctx, id, "k", 0, func([]byte, bool) ([]byte, error) { return nil, nil })
				return err
			}(),
			"Delete":      s.Delete(ctx, id, "k"),
			"Keys":        func() error { _, err := s.Keys(ctx, id); return err }(),
			"Copy from":   func() error { _, err := s.Copy(ctx, id, "T", 0); return err }(),
			"Copy target": func() error { _, err := s.Copy(ctx, "T", id, 0); return err }(),
		}
		for name, err := range calls {
			if !errors.Is(err, replica.ErrInvalidSessionID) || !strings.Contains(err.Error(), "redisstore: ") {
				t.Errorf("%s(%q) = %v, want a redisstore error matching ErrInvalidSessionID", name, id, err)
			}
		}
	}
	if n := log.total(); n != 0 {
		t.Errorf("commands sent for invalid session IDs = %d, want 0", n)
	}
	if n := rdb.DBSize(ctx).Val(); n != 0 {
		t.Errorf("DBSIZE = %d, want 0", n)
	}
}

func TestUpdateContention(t *testing.T) {
	srv := proctest.StartRedis(t, nil)
	rdb, _ := newClient(t, srv)
	ctx := t.Context()

	// fn changes the key behind the transaction's back for its first
	// `conflicts` calls, as a concurrent writer would.
	run := func(t *testing.T, maxAttempts, conflicts int) (calls int, err error) {
		s := newStore(t, rdb, &redisstore.Options{MaxUpdateAttempts: maxAttempts})
		rdb.Del(ctx, redisstore.Key("S1", "k"))
		_, err = s.Update(ctx, "S1", "k", 0, func(old []byte, ok bool) ([]byte, error) {
			calls++
			if calls <= conflicts {
				rdb.Set(ctx, redisstore.Key("S1", "k"), "other", 0)
			}
			return []byte("mine"), nil
		})
		return calls, err
	}

	t.Run("gives up", func(t *testing.T) {
		calls, err := run(t, 3, 100)
		if !errors.Is(err, redisstore.ErrContention) || !strings.Contains(err.Error(), `"k"`) {
			t.Errorf("Update = %v, want an error matching ErrContention naming the key", err)
		}
		if calls != 3 {
			t.Errorf("fn calls = %d, want 3", calls)
		}
		if v := rdb.Get(ctx, redisstore.Key("S1", "k")).Val(); v != "other" {
			t.Errorf("value = %q, want the other writer's", v)
		}
	})
	t.Run("retries", func(t *testing.T) {
		calls, err := run(t, 3, 2)
		if err != nil || calls != 3 {
			t.Errorf("Update = %v after %d fn calls, want success on the third", err, calls)
		}
		if v := rdb.Get(ctx, redisstore.Key("S1", "k")).Val(); v != "mine" {
			t.Errorf("value = %q, want mine", v)
		}
	})
}

func TestScriptCacheFlushed(t *testing.T) {
	// A restarted Redis (or SCRIPT FLUSH) has forgotten the scripts: the
	// store must load them again, in and out of transactions.
	srv := proctest.StartRedis(t, nil)
	rdb, _ := newClient(t, srv)
	ctx := t.Context()
	s := newStore(t, rdb, nil)
	if err := s.Set(ctx, "S1", "a", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "S1", "b", []byte("2"), 0); err != nil {
		t.Errorf("Set after SCRIPT FLUSH: %v", err)
	}
	rdb.ScriptFlush(ctx)
	if _, err := s.Update(ctx, "S1", "c", 0, func([]byte, bool) ([]byte, error) { return []byte("3"), nil }); err != nil {
		t.Errorf("Update after SCRIPT FLUSH: %v", err)
	}
	rdb.ScriptFlush(ctx)
	if n, err := s.Copy(ctx, "S1", "S2", 0); err != nil || n != 3 {
		t.Errorf("Copy after SCRIPT FLUSH = %d, %v; want 3", n, err)
	}
	if !rdb.SIsMember(ctx, redisstore.IndexKey("S1"), "c").Val() {
		t.Error("Update after SCRIPT FLUSH did not index its key")
	}
}

func TestRedisDown(t *testing.T) {
	srv := proctest.StartRedis(t, nil)
	rdb, _ := newClient(t, srv)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s := newStore(t, rdb, nil)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping with Redis up: %v", err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	checks := map[string]struct {
		err  error
		want string
	}{
		"Ping": {s.Ping(ctx), "redisstore: Ping: "},
		"Get":  {func() error { _, _, err := s.Get(ctx, "S1", "k"); return err }(), `redisstore: Get "k" of session S1: `},
		"Set":  {s.Set(ctx, "S1", "k", nil, 0), `redisstore: Set "k" of session S1: `},
		"Update": {func() error {
			_, err := s.Update(ctx, "S1", "k", 0, func([]byte, bool) ([]byte, error) { return nil, nil })
			return err
		}(), `redisstore: Update "k" of session S1: `},
		"Keys": {func() error { _, err := s.Keys(ctx, "S1"); return err }(), "redisstore: Keys of session S1: "},
		"Copy": {func() error { _, err := s.Copy(ctx, "S1", "S2", 0); return err }(), "redisstore: Copy from session S1 to session S2: "},
	}
	for name, c := range checks {
		if c.err == nil || !strings.HasPrefix(c.err.Error(), c.want) || !strings.Contains(c.err.Error(), "refused") {
			t.Errorf("%s with Redis down = %v, want %q and the connection refusal", name, c.err, c.want)
		}
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping after Redis came back: %v", err)
	}
}

func TestNew(t *testing.T) {
	if _, err := redisstore.New(nil, nil); err == nil || !strings.Contains(err.Error(), "nil Redis client") {
		t.Errorf("New(nil) = %v, want an error about the nil client", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	if _, err := redisstore.New(rdb, &redisstore.Options{MaxUpdateAttempts: -1}); err == nil || !strings.Contains(err.Error(), "MaxUpdateAttempts") {
		t.Errorf("New(MaxUpdateAttempts: -1) = %v, want an error naming the field", err)
	}
	s, err := redisstore.New(rdb, &redisstore.Options{DefaultTTL: time.Minute})
	if err != nil || s.DefaultTTL() != time.Minute || s.Layout() != redisstore.LayoutCluster {
		t.Errorf("New(DefaultTTL: 1m) = %v, DefaultTTL %v, Layout %v; want 1m and LayoutCluster", err, s.DefaultTTL(), s.Layout())
	}
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cluster.Close()
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	for _, tc := range []struct {
		name string
		rdb  redis.UniversalClient
		opts redisstore.Options
		want string
	}{
		{"unknown layout", rdb, redisstore.Options{Layout: 7}, "Options.Layout is Layout(7)"},
		{"Python layout on a cluster", cluster, redisstore.Options{Layout: redisstore.LayoutPython}, "cluster client needs LayoutCluster"},
		{"scan without the Python layout", rdb, redisstore.Options{ScanUnindexed: true}, "ScanUnindexed needs Options.Layout LayoutPython"},
		{"negative acks", rdb, redisstore.Options{ReplicaAcks: -1}, "ReplicaAcks is -1"},
		{"acks on a ring", ring, redisstore.Options{ReplicaAcks: 1}, "ReplicaAcks needs a *redis.Client or *redis.ClusterClient"},
	} {
		if _, err := redisstore.New(tc.rdb, &tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%s) = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	for _, opts := range []redisstore.Options{{}, {ReplicaAcks: 1}} {
		if _, err := redisstore.New(cluster, &opts); err != nil {
			t.Errorf("New(cluster client, %+v) = %v, want no error", opts, err)
		}
	}
	if _, err := redisstore.New(rdb, &redisstore.Options{Layout: redisstore.LayoutPython, ScanUnindexed: true, ReplicaAcks: 1}); err != nil {
		t.Errorf("New(one Redis, LayoutPython, ScanUnindexed, ReplicaAcks 1) = %v, want no error", err)
	}
}

// commandLog is a go-redis hook that records the commands a client sends.
type commandLog struct {
	mu   sync.Mutex
	cmds [][]string
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.record(cmd)
		return next(ctx, cmd)
	}
}

func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			l.record(cmd)
		}
		return next(ctx, cmds)
	}
}

func (l *commandLog) record(cmd redis.Cmder) {
	var args []string
	for _, a := range cmd.Args() {
		switch a := a.(type) {
		case string:
			args = append(args, a)
		case int, int64:
			args = append(args, fmt.Sprint(a))
		}
	}
	l.mu.Lock()
	l.cmds = append(l.cmds, args)
	l.mu.Unlock()
}

// args returns the arguments of every command called name (lower case).
func (l *commandLog) args(name string) [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]string
	for _, c := range l.cmds {
		if len(c) > 0 && strings.ToLower(c[0]) == name {
			out = append(out, c)
		}
	}
	return out
}

func (l *commandLog) count(name string) int { return len(l.args(name)) }

func (l *commandLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.cmds)
}

// keySlot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its
// hash tag (the first non-empty {...}), or of the whole key, modulo 16384.
func keySlot(_ *testing.T, _ redis.UniversalClient, key string) int { return slotOf(key) }

func slotOf(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// crossSlot returns, for each script call that l recorded (EVAL, EVALSHA),
// a description of those whose KEYS are not all in one slot.
func (l *commandLog) crossSlot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var bad []string
	for _, c := range l.cmds {
		if len(c) < 3 || (strings.ToLower(c[0]) != "eval" && strings.ToLower(c[0]) != "evalsha") {
			continue
		}
		n, err := strconv.Atoi(c[2])
		if err != nil || 3+n > len(c) {
			bad = append(bad, fmt.Sprintf("unparsable script call %q", c))
			continue
		}
		if n == 0 {
			bad = append(bad, fmt.Sprintf("script call without keys %q", c))
			continue
		}
		for _, k := range c[4 : 3+n] {
			if slotOf(k) != slotOf(c[3]) {
				bad = append(bad, fmt.Sprintf("keys %q and %q in one script call", c[3], k))
			}
		}
	}
	return bad
}

func TestSlotOf(t *testing.T) {
	// Slots Redis gives these keys (CLUSTER KEYSLOT).
	for key, want := range map[string]int{"foo": 12182, "bar": 5061, "{foo}:x": 12182, "a{}{foo}": slotOf("a{}{foo}"), "mcpkit:{s:S1}:index": slotOf("s:S1")} {
		if got := slotOf(key); got != want {
			t.Errorf("slotOf(%q) = %d, want %d", key, got, want)
		}
	}
	if slotOf("a{}{foo}") == 12182 {
		t.Error("slotOf hashed the second {...} of a key whose first is empty")
	}
}
