package tlsserve_test

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/tlsserve"
)

// TestRedisStorage stores, lists, stats and deletes certmagic's key layout
// in the real Redis.
func TestRedisStorage(t *testing.T) {
	t.Parallel()
	rdb, prefix := pgtest.Redis(t)
	s := &tlsserve.RedisStorage{Redis: rdb, Prefix: prefix}
	other := &tlsserve.RedisStorage{Redis: rdb, Prefix: prefix + "other:"}
	ctx := context.Background()

	if _, err := s.Load(ctx, "certificates/ca/a.example/a.example.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Stat(ctx, "certificates"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat of a missing key: %v, want fs.ErrNotExist", err)
	}
	before := time.Now()
	files := map[string]string{
		"certificates/ca/a.example/a.example.crt":  "cert a",
		"certificates/ca/a.example/a.example.key":  "key a",
		"certificates/ca/b.example/b.example.crt":  "cert b",
		"acme/ca/users/ops@example.com/ops.json":   "account",
		"certificates/ca/a.example/a.example.json": "meta a",
	}
	for k, v := range files {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range files {
		got, err := s.Load(ctx, k)
		if err != nil || string(got) != v {
			t.Fatalf("Load(%s) = %q, %v; want %q", k, got, err, v)
		}
	}
	if _, err := other.Load(ctx, "certificates/ca/a.example/a.example.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("another prefix sees the key: %v", err)
	}

	list := func(dir string, rec bool) []string {
		t.Helper()
		got, err := s.List(ctx, dir, rec)
		if err != nil {
			t.Fatalf("List(%s, %v): %v", dir, rec, err)
		}
		slices.Sort(got)
		return got
	}
	for _, c := range []struct {
		dir  string
		rec  bool
		want []string
	}{
		{"certificates/ca", false, []string{"certificates/ca/a.example", "certificates/ca/b.example"}},
		{"certificates/ca/a.example", false, []string{"certificates/ca/a.example/a.example.crt", "certificates/ca/a.example/a.example.json", "certificates/ca/a.example/a.example.key"}},
		{"certificates", true, []string{"certificates/ca/a.example/a.example.crt", "certificates/ca/a.example/a.example.json", "certificates/ca/a.example/a.example.key", "certificates/ca/b.example/b.example.crt"}},
		{"", false, []string{"acme", "certificates"}},
	} {
		if got := list(c.dir, c.rec); !slices.Equal(got, c.want) {
			t.Errorf("List(%q, %v) = %v, want %v", c.dir, c.rec, got, c.want)
		}
	}
	if _, err := s.List(ctx, "certificates/ca/c.example", false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List of a missing directory: %v", err)
	}

	st, err := s.Stat(ctx, "certificates/ca/a.example/a.example.key")
	if err != nil || !st.IsTerminal || st.Size != int64(len("key a")) || st.Modified.Before(before.Add(-time.Second)) || st.Modified.After(time.Now().Add(time.Second)) {
		t.Errorf("Stat of a value = %+v, %v", st, err)
	}
	st, err = s.Stat(ctx, "certificates/ca")
	if err != nil || st.IsTerminal || st.Key != "certificates/ca" {
		t.Errorf("Stat of a directory = %+v, %v", st, err)
	}
	if !s.Exists(ctx, "certificates/ca/b.example") || !s.Exists(ctx, "acme/ca/users/ops@example.com/ops.json") || s.Exists(ctx, "certificates/ca/c.example") {
		t.Error("Exists is wrong for a directory, a value or a missing key")
	}

	// Deleting a directory removes everything under it and nothing else.
	if err := s.Delete(ctx, "certificates/ca/a.example"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates/ca/a.example/a.example.crt") || !s.Exists(ctx, "certificates/ca/b.example/b.example.crt") {
		t.Error("Delete of a directory removed the wrong keys")
	}
	if err := s.Delete(ctx, "certificates/ca/a.example"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Delete of a missing key: %v", err)
	}
	// Overwriting replaces the value.
	if err := s.Store(ctx, "certificates/ca/b.example/b.example.crt", []byte("cert b2")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(ctx, "certificates/ca/b.example/b.example.crt"); string(got) != "cert b2" {
		t.Errorf("overwritten value = %q", got)
	}
}

// TestRedisStorageLock: several storages (as several replicas) contend for
// one lock, all released at once by a barrier; the holders never overlap
// and every one of them gets it in turn. A lock whose holder stops renewing
// (a dead replica) is free once its lease runs out, and a live holder's
// lease is renewed past its TTL.
func TestRedisStorageLock(t *testing.T) {
	t.Parallel()
	rdb, prefix := pgtest.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const n = 6
	var (
		start   = make(chan struct{})
		ready   sync.WaitGroup
		done    sync.WaitGroup
		inside  atomic.Int32
		overlap atomic.Bool
		got     atomic.Int32
	)
	for i := 0; i < n; i++ {
		s := &tlsserve.RedisStorage{Redis: rdb, Prefix: prefix, LockPoll: 10 * time.Millisecond}
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			if err := s.Lock(ctx, "issue_cert_a.example"); err != nil {
				t.Error(err)
				return
			}
			if inside.Add(1) != 1 {
				overlap.Store(true)
			}
			time.Sleep(20 * time.Millisecond)
			inside.Add(-1)
			got.Add(1)
			if err := s.Unlock(ctx, "issue_cert_a.example"); err != nil {
				t.Error(err)
			}
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	if overlap.Load() {
		t.Error("two holders had the lock at once")
	}
	if got.Load() != n {
		t.Errorf("%d of %d contenders got the lock", got.Load(), n)
	}

	// A live holder keeps its lock past the TTL; a second one waits.
	ttl := 300 * time.Millisecond
	a := &tlsserve.RedisStorage{Redis: rdb, Prefix: prefix, LockTTL: ttl, LockPoll: 10 * time.Millisecond}
	b := &tlsserve.RedisStorage{Redis: rdb, Prefix: prefix, LockTTL: ttl, LockPoll: 10 * time.Millisecond}
	if err := a.Lock(ctx, "renewed"); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 3*ttl)
	err := b.Lock(wctx, "renewed")
	wcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock while the first renews its lease: %v, want a deadline", err)
	}
	if err := a.Unlock(ctx, "renewed"); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock(ctx, "renewed"); err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	_ = b.Unlock(ctx, "renewed")

	// A holder that died (its lock key set, nobody renewing) blocks only
	// until the lease ends.
	if err := rdb.Set(ctx, prefix+"certmagic:lock:dead", "someone", ttl).Err(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := b.Lock(ctx, "dead"); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(t0); waited < ttl/2 {
		t.Errorf("took a lock another holder had after %v", waited)
	}
	_ = b.Unlock(ctx, "dead")
	if err := b.Unlock(ctx, "dead"); err == nil {
		t.Error("Unlock of a lock not held succeeded")
	}
}
