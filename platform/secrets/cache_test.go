package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/logtest"
	"github.com/startupwebapp/platform/platform/secrets"
)

// counted passes every call to a real backend and counts the Gets that reach
// it; with gate set, each Get waits for the gate to close after reading.
type counted struct {
	secrets.Store
	gets atomic.Int64
	gate chan struct{}
}

// Get counts a read once it is done, so a test that saw the count knows
// the value was read before anything it does next; with a gate the read
// then waits there until the test opens it.
func (c *counted) Get(ctx context.Context, name string) ([]byte, error) {
	v, err := c.Store.Get(ctx, name)
	c.gets.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	return v, err
}

func mustGet(t *testing.T, s secrets.Store, name, want string) {
	t.Helper()
	got, err := s.Get(context.Background(), name)
	if err != nil || string(got) != want {
		t.Fatalf("Get(%s) = %q, %v; want %q", name, got, err, want)
	}
}

func mustPut(t *testing.T, s secrets.Store, name, value string) {
	t.Helper()
	if _, err := s.Put(context.Background(), name, []byte(value)); err != nil {
		t.Fatalf("Put(%s): %v", name, err)
	}
}

func TestCacheTTL(t *testing.T) {
	t.Parallel()
	l, _, _ := newLocal(t)
	inner := &counted{Store: l}
	const ttl = 300 * time.Millisecond
	c := secrets.NewCache(inner, ttl, nil)

	mustPut(t, l, "swa/tenants/acme", "v1")
	mustGet(t, c, "swa/tenants/acme", "v1")
	mustPut(t, l, "swa/tenants/acme", "v2") // behind the cache's back
	mustGet(t, c, "swa/tenants/acme", "v1")
	if n := inner.gets.Load(); n != 1 {
		t.Fatalf("backend reads within the TTL = %d, want 1", n)
	}
	time.Sleep(ttl + 50*time.Millisecond)
	mustGet(t, c, "swa/tenants/acme", "v2")
	if n := inner.gets.Load(); n != 2 {
		t.Errorf("backend reads = %d, want 2", n)
	}
}

func TestCacheInvalidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _, _ := newLocal(t)
	c := secrets.NewCache(l, time.Hour, nil)
	tests := []struct {
		name   string
		change func(t *testing.T, name string)
		want   string // "" for ErrNotFound
	}{
		{"put through the cache", func(t *testing.T, name string) { mustPut(t, c, name, "new") }, "new"},
		{"delete through the cache", func(t *testing.T, name string) {
			if err := c.Delete(ctx, name); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"invalidate after an outside put", func(t *testing.T, name string) {
			mustPut(t, l, name, "outside")
			mustGet(t, c, name, "old") // still cached
			c.Invalidate(name)
		}, "outside"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := "swa/tenants/inv" + string(rune('a'+i))
			mustPut(t, l, name, "old")
			mustGet(t, c, name, "old")
			tc.change(t, name)
			got, err := c.Get(ctx, name)
			if tc.want == "" {
				if !errors.Is(err, secrets.ErrNotFound) {
					t.Errorf("Get = %q, %v; want ErrNotFound", got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("Get = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestCacheInflightReadAfterPut: a backend read that began before a Put must
// not put the old value back into the cache when it finishes.
func TestCacheInflightReadAfterPut(t *testing.T) {
	t.Parallel()
	l, _, _ := newLocal(t)
	inner := &counted{Store: l, gate: make(chan struct{})}
	c := secrets.NewCache(inner, time.Hour, nil)
	mustPut(t, l, "swa/tenants/acme", "old")

	done := make(chan []byte)
	go func() {
		v, _ := c.Get(context.Background(), "swa/tenants/acme")
		done <- v
	}()
	waitFor(t, func() bool { return inner.gets.Load() == 1 })
	mustPut(t, c, "swa/tenants/acme", "new")
	close(inner.gate)
	if v := <-done; string(v) != "old" {
		t.Fatalf("in-flight Get = %q, want the value it read", v)
	}
	mustGet(t, c, "swa/tenants/acme", "new")
	mustGet(t, c, "swa/tenants/acme", "new")
	if n := inner.gets.Load(); n != 2 {
		t.Errorf("backend reads = %d, want 2", n)
	}
}

func TestCacheServesStaleWhenDatabaseIsDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, pool, _ := newLocal(t)
	var logs logtest.Buffer
	const ttl = 100 * time.Millisecond
	c := secrets.NewCache(l, ttl, slog.New(slog.NewJSONHandler(&logs, nil)))
	value := "stale-value-d41c"
	mustPut(t, l, "swa/tenants/acme", value)
	mustPut(t, l, "swa/tenants/never-read", value)
	mustGet(t, c, "swa/tenants/acme", value)
	fetched := time.Now()

	pool.Close() // the backend fails for real from here on
	time.Sleep(ttl + 20*time.Millisecond)
	mustGet(t, c, "swa/tenants/acme", value)
	out := logs.String()
	if !strings.Contains(out, "swa/tenants/acme") || !strings.Contains(out, "last good value") {
		t.Errorf("no warning naming the secret; log: %s", out)
	}
	if strings.Contains(out, value) {
		t.Errorf("the log holds the secret value: %s", out)
	}
	if _, err := c.Get(ctx, "swa/tenants/never-read"); err == nil {
		t.Error("Get of a never-read secret succeeded with the backend down")
	}

	// Past the stale limit (10 TTLs) the error comes through.
	time.Sleep(time.Until(fetched.Add(10*ttl + 50*time.Millisecond)))
	got, err := c.Get(ctx, "swa/tenants/acme")
	if err == nil {
		t.Fatalf("Get past the stale limit = %q, want an error", got)
	}
	noValue(t, err, []byte(value))
}

func TestCacheServesStaleWhenAWSIsDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, client, prefix := newKumo(t)
	var logs logtest.Buffer
	const ttl = 50 * time.Millisecond
	c := secrets.NewCache(secrets.NewAWS(client, prefix), ttl, slog.New(slog.NewJSONHandler(&logs, nil)))
	mustPut(t, c, "acme", "aws-stale-27f0")
	mustGet(t, c, "acme", "aws-stale-27f0")

	srv.Close()
	time.Sleep(ttl + 20*time.Millisecond)
	mustGet(t, c, "acme", "aws-stale-27f0")
	if out := logs.String(); !strings.Contains(out, "acme") || strings.Contains(out, "aws-stale-27f0") {
		t.Errorf("want a warning naming the secret and not its value; log: %s", out)
	}
	if _, err := c.Put(ctx, "acme", []byte("new")); err == nil {
		t.Fatal("Put succeeded with the server down")
	}
	// Whether a failed Put landed is unknown: the old value stays a stale
	// fallback, but is no longer served as fresh.
	mustGet(t, c, "acme", "aws-stale-27f0")
	if n := strings.Count(logs.String(), "last good value"); n < 2 {
		t.Errorf("%d stale warnings, want a second one after the failed Put", n)
	}
}

// TestCacheNotFoundIsNotStale: a secret deleted in the backend is gone, not
// unreachable, so its old value is not served.
func TestCacheNotFoundIsNotStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _, _ := newLocal(t)
	const ttl = 50 * time.Millisecond
	c := secrets.NewCache(l, ttl, nil)
	mustPut(t, l, "swa/tenants/acme", "v1")
	mustGet(t, c, "swa/tenants/acme", "v1")
	if err := l.Delete(ctx, "swa/tenants/acme"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl + 20*time.Millisecond)
	if got, err := c.Get(ctx, "swa/tenants/acme"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Get = %q, %v; want ErrNotFound", got, err)
	}
}

// arrivalCtx reports, once, the first time a Get selects on its Done
// channel: the Cache does so only after joining (or starting) the shared
// read, so the test knows each caller is waiting on the read in flight.
type arrivalCtx struct {
	context.Context
	once    sync.Once
	arrived *sync.WaitGroup
}

func (c *arrivalCtx) Done() <-chan struct{} {
	c.once.Do(c.arrived.Done)
	return c.Context.Done()
}

// TestCacheSingleflight: concurrent misses of one name make one backend read.
// The read is held back by a real table lock until every Get has joined it.
func TestCacheSingleflight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, pool, _ := newLocal(t)
	inner := &counted{Store: l}
	c := secrets.NewCache(inner, time.Hour, nil)
	mustPut(t, l, "swa/tenants/acme", "shared")

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE secrets IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	const n = 100
	var wg, arrived sync.WaitGroup
	arrived.Add(n)
	start := make(chan struct{})
	results := make([]string, n)
	for i := range n {
		wg.Go(func() {
			<-start
			v, err := c.Get(&arrivalCtx{Context: ctx, arrived: &arrived}, "swa/tenants/acme")
			if err != nil {
				results[i] = err.Error()
				return
			}
			results[i] = string(v)
		})
	}
	close(start)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Error("not every Get joined the read while it was held back")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := inner.gets.Load(); got != 1 {
		t.Errorf("backend reads = %d, want 1", got)
	}
	for i, r := range results {
		if r != "shared" {
			t.Fatalf("Get %d = %q", i, r)
		}
	}
}

func TestCacheReturnsCopies(t *testing.T) {
	t.Parallel()
	l, _, _ := newLocal(t)
	c := secrets.NewCache(l, time.Hour, nil)
	mustPut(t, l, "swa/tenants/acme", "original")
	v, err := c.Get(context.Background(), "swa/tenants/acme")
	if err != nil {
		t.Fatal(err)
	}
	copy(v, "XXXXXXXX")
	mustGet(t, c, "swa/tenants/acme", "original")
}

// TestCacheConcurrentUse mixes reads, writes and invalidations (run with
// -race); the last Put must win.
func TestCacheConcurrentUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _, _ := newLocal(t)
	c := secrets.NewCache(l, 5*time.Millisecond, nil)
	mustPut(t, c, "swa/tenants/acme", "start")
	var wg sync.WaitGroup
	start := make(chan struct{}) // every goroutine begins at once
	for i := range 8 {
		wg.Go(func() {
			<-start
			for j := range 20 {
				switch (i + j) % 4 {
				case 0:
					_, _ = c.Put(ctx, "swa/tenants/acme", []byte("w"))
				case 1:
					c.Invalidate("swa/tenants/acme")
				default:
					if _, err := c.Get(ctx, "swa/tenants/acme"); err != nil {
						t.Errorf("Get: %v", err)
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()
	mustPut(t, c, "swa/tenants/acme", "final")
	mustGet(t, c, "swa/tenants/acme", "final")
}

func TestCacheCallerCancel(t *testing.T) {
	t.Parallel()
	l, _, _ := newLocal(t)
	inner := &counted{Store: l, gate: make(chan struct{})}
	c := secrets.NewCache(inner, time.Hour, nil)
	mustPut(t, l, "swa/tenants/acme", "v")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := c.Get(ctx, "swa/tenants/acme")
		errc <- err
	}()
	waitFor(t, func() bool { return inner.gets.Load() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Get: err = %v", err)
	}
	close(inner.gate)
	// The shared read finished for the others and filled the cache. (Polled
	// without Get: a Get between the read's end and the fill would
	// rightly read again.)
	waitFor(t, func() bool {
		v, ok := c.Cached("swa/tenants/acme")
		return ok && string(v) == "v"
	})
	mustGet(t, c, "swa/tenants/acme", "v")
	if n := inner.gets.Load(); n != 1 {
		t.Errorf("backend reads = %d, want 1", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func BenchmarkCacheGet(b *testing.B) {
	l, _, _ := newLocal(b)
	c := secrets.NewCache(l, time.Hour, nil)
	ctx := context.Background()
	value := bytes.Repeat([]byte("k"), 512)
	if _, err := c.Put(ctx, "swa/tenants/acme", value); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Get(ctx, "swa/tenants/acme"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Get(ctx, "swa/tenants/acme"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
