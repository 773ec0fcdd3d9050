package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/platform/server"
)

// fakeClock is a settable clock for the throttling windows.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fail makes n attempts for key with wrong tokens.
func fail(t *testing.T, l *failureLimiter, key string, n int) {
	t.Helper()
	for i := range n {
		tk, _, ok := l.reserve(key)
		if !ok {
			t.Fatalf("%s: attempt %d refused, want allowed", key, i+1)
		}
		l.fail(tk)
	}
}

func TestFailureLimiter(t *testing.T) {
	t.Parallel()
	t.Run("eleventh attempt refused until the window ends", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		l := newFailureLimiter(10, time.Minute, 100, clock.Now)
		fail(t, l, "192.0.2.1", 10)
		clock.Advance(20 * time.Second)
		_, wait, ok := l.reserve("192.0.2.1")
		if ok || wait != 40*time.Second {
			t.Fatalf("11th: ok %v, wait %v; want refused, 40s", ok, wait)
		}
		fail(t, l, "192.0.2.2", 1) // another client is unaffected
		clock.Advance(40 * time.Second)
		fail(t, l, "192.0.2.1", 10) // a new window
		if _, _, ok := l.reserve("192.0.2.1"); ok {
			t.Fatal("the new window allows more than 10")
		}
	})
	t.Run("released attempts are not counted", func(t *testing.T) {
		t.Parallel()
		l := newFailureLimiter(10, time.Minute, 100, newFakeClock().Now)
		for range 50 {
			tk, _, ok := l.reserve("192.0.2.3")
			if !ok {
				t.Fatal("a released attempt was counted")
			}
			l.release(tk)
		}
		if n := l.size(); n != 0 {
			t.Fatalf("%d entries after only released attempts, want 0", n)
		}
		fail(t, l, "192.0.2.3", 10)
		if _, _, ok := l.reserve("192.0.2.3"); ok {
			t.Fatal("11th failure allowed")
		}
	})
	t.Run("concurrent checks", func(t *testing.T) {
		t.Parallel()
		l := newFailureLimiter(10, time.Minute, 100, newFakeClock().Now)
		// A client that has not failed may have any number in flight.
		var held []ticket
		for range 50 {
			tk, _, ok := l.reserve("192.0.2.6")
			if !ok {
				t.Fatal("concurrent checks of a client without failures refused")
			}
			held = append(held, tk)
		}
		for _, tk := range held {
			l.release(tk)
		}
		// Once it has failed, failures and checks in flight stay under 10.
		fail(t, l, "192.0.2.6", 1)
		held = held[:0]
		for range 9 {
			tk, _, ok := l.reserve("192.0.2.6")
			if !ok {
				t.Fatal("refused under the limit")
			}
			held = append(held, tk)
		}
		if _, _, ok := l.reserve("192.0.2.6"); ok {
			t.Fatal("a guess beyond the limit was let through while 9 were in flight")
		}
		for _, tk := range held {
			l.fail(tk)
		}
		if _, _, ok := l.reserve("192.0.2.6"); ok {
			t.Fatal("11th allowed")
		}
	})
	t.Run("a slot of an ended window does not touch the new one", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		l := newFailureLimiter(2, time.Minute, 100, clock.Now)
		fail(t, l, "192.0.2.4", 1)
		old, _, _ := l.reserve("192.0.2.4")
		clock.Advance(time.Minute)
		fail(t, l, "192.0.2.4", 1)
		l.fail(old) // counts in the ended window, not this one
		tk, _, ok := l.reserve("192.0.2.4")
		if !ok {
			t.Fatal("a stale failure counted in the new window")
		}
		l.fail(tk)
		if _, _, ok := l.reserve("192.0.2.4"); ok {
			t.Fatal("3rd failure allowed with limit 2")
		}
	})
	t.Run("bounded under rotating addresses", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		l := newFailureLimiter(10, time.Minute, 100, clock.Now)
		for i := range 5000 {
			fail(t, l, fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), 1)
			if n := l.size(); n > 100 {
				t.Fatalf("%d entries after %d clients, cap 100", n, i+1)
			}
		}
		if len(l.clients) != l.order.Len() {
			t.Fatalf("map %d and list %d disagree", len(l.clients), l.order.Len())
		}
		// The oldest were forgotten, the newest kept.
		if _, ok := l.clients["10.0.0.0"]; ok {
			t.Error("the oldest client is still tracked")
		}
		if _, ok := l.clients["10.0.19.135"]; !ok { // client 4999
			t.Error("the newest client was evicted")
		}
		clock.Advance(time.Minute)
		fail(t, l, "192.0.2.5", 1)
		if n := l.size(); n != 1 {
			t.Fatalf("%d entries a window later, want 1", n)
		}
	})
}

func TestUsageNotes(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	n := newUsageNotes(time.Minute, 3, clock.Now)
	a, b := [32]byte{1}, [32]byte{2}
	if !n.claim(a) || n.claim(a) {
		t.Fatal("want the first claim only")
	}
	n.unclaim(a) // the write failed
	if !n.claim(a) {
		t.Fatal("a failed write was not retried")
	}
	clock.Advance(59 * time.Second)
	if n.claim(a) {
		t.Fatal("claimed again within the interval")
	}
	clock.Advance(time.Second)
	if !n.claim(a) {
		t.Fatal("not claimed after the interval")
	}
	for i := range 100 {
		n.claim([32]byte{3, byte(i)})
		if len(n.written) > 3 {
			t.Fatalf("%d notes, cap 3", len(n.written))
		}
	}
	if !n.claim(b) {
		t.Fatal("a token unnoted for want of room must still write")
	}
}

// addrServer is a Server without a database whose /addr route answers the
// client address and throttling key it computes.
func addrServer(t *testing.T, trusted []string) *fiber.App {
	t.Helper()
	p, err := server.ParseProxies(trusted)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{log: slog.New(slog.DiscardHandler), opts: Options{BodyLimit: 1 << 20, TrustedProxies: trusted}, trusted: p}
	s.mount()
	s.app.Get("/addr", func(c *fiber.Ctx) error {
		a := s.clientAddr(c)
		return c.SendString(a.String() + " " + throttleKey(a))
	})
	return s.app
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	// Fiber's test connection comes from 0.0.0.0.
	cases := []struct {
		name    string
		trusted []string
		xff     string
		want    string
	}{
		{"peer without proxies", nil, "203.0.113.9", "0.0.0.0 0.0.0.0"},
		{"untrusted peer's header ignored", []string{"10.0.0.0/8"}, "203.0.113.9", "0.0.0.0 0.0.0.0"},
		{"trusted proxy", []string{"0.0.0.0"}, "203.0.113.9", "203.0.113.9 203.0.113.9"},
		{"client-written hops ignored", []string{"0.0.0.0", "10.0.0.0/8"}, "198.51.100.1, 203.0.113.9, 10.1.2.3", "203.0.113.9 203.0.113.9"},
		{"garbled hop stops the walk", []string{"0.0.0.0", "10.0.0.0/8"}, "203.0.113.9, junk, 10.1.2.3", "10.1.2.3 10.1.2.3"},
		{"no header", []string{"0.0.0.0"}, "", "0.0.0.0 0.0.0.0"},
		{"IPv6 counted by /64", []string{"0.0.0.0"}, "2001:db8:1:2:aaaa::7", "2001:db8:1:2:aaaa::7 2001:db8:1:2::/64"},
		{"IPv4-mapped", []string{"0.0.0.0"}, "::ffff:203.0.113.9", "203.0.113.9 203.0.113.9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("GET", "/addr", nil)
			if tc.xff != "" {
				req.Header.Set("X-Forwarded-For", tc.xff)
			}
			res, err := addrServer(t, tc.trusted).Test(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(body); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("malformed proxy", func(t *testing.T) {
		t.Parallel()
		for _, bad := range []string{"10.0.0.0/33", "proxy.example.com", "10.0.0"} {
			if _, err := server.ParseProxies([]string{bad}); err == nil {
				t.Errorf("%q accepted", bad)
			}
		}
	})
}

// sendFrom sends GET /v1/tenants as the client xff (through the trusted
// proxy 0.0.0.0) with token.
func (h *harness) sendFrom(xff, token string) response {
	h.t.Helper()
	req := httptest.NewRequest("GET", "/v1/tenants", nil)
	req.Header.Set("X-Forwarded-For", xff)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := h.srv.App().Test(req, 30_000)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: body}
}

func TestFailedAuthThrottled(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	h := newHarnessAPI(t, nil, func(o *Options) {
		o.TrustedProxies = []string{"0.0.0.0"}
		o.Now = clock.Now
	})
	const a, b, c = "203.0.113.1", "203.0.113.2", "203.0.113.3"
	const wrong = "swa_wrong-guess-of-a-token"
	expect := func(t *testing.T, r response, status int) {
		t.Helper()
		if r.Status != status {
			t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
		}
	}
	limited := func(t *testing.T, r response, retryAfter string) {
		t.Helper()
		expect(t, r, http.StatusTooManyRequests)
		if got := r.Header.Get("Retry-After"); got != retryAfter {
			t.Errorf("Retry-After %q, want %q", got, retryAfter)
		}
		if e := r.errorOf(t); e.Code != "rate_limited" || e.Message == "" {
			t.Errorf("error %+v, want code rate_limited", e)
		}
	}

	for range 10 {
		expect(t, h.sendFrom(a, wrong), http.StatusUnauthorized)
	}
	t.Run("11th attempt refused even with a valid token", func(t *testing.T) {
		limited(t, h.on(t).sendFrom(a, h.token), "60")
	})
	t.Run("and without a token", func(t *testing.T) {
		limited(t, h.on(t).sendFrom(a, ""), "60")
	})
	t.Run("a client-written hop does not change the address", func(t *testing.T) {
		limited(t, h.on(t).sendFrom("198.51.100.200, "+a, h.token), "60")
	})
	t.Run("another address is unaffected", func(t *testing.T) {
		expect(t, h.on(t).sendFrom(b, h.token), http.StatusOK)
		expect(t, h.on(t).sendFrom(b, wrong), http.StatusUnauthorized)
	})
	t.Run("Retry-After counts down", func(t *testing.T) {
		clock.Advance(45 * time.Second)
		limited(t, h.on(t).sendFrom(a, h.token), "15")
	})
	t.Run("the window resets", func(t *testing.T) {
		clock.Advance(15 * time.Second)
		expect(t, h.on(t).sendFrom(a, h.token), http.StatusOK)
	})
	t.Run("a good token is never counted", func(t *testing.T) {
		h := h.on(t)
		for range 30 {
			expect(t, h.sendFrom(c, h.token), http.StatusOK)
		}
		for range 10 {
			expect(t, h.sendFrom(c, wrong), http.StatusUnauthorized)
		}
		limited(t, h.sendFrom(c, h.token), "60")
	})
	t.Run("a missing or non-bearer header is not a guess", func(t *testing.T) {
		h := h.on(t)
		for range 20 {
			expect(t, h.sendFrom("203.0.113.4", ""), http.StatusUnauthorized)
		}
		expect(t, h.sendFrom("203.0.113.4", h.token), http.StatusOK)
	})
	t.Run("the request log names the client", func(t *testing.T) {
		if !strings.Contains(h.logs.String(), `"client":"`+a+`"`) {
			t.Error("no request line with the client address")
		}
	})
}

// TestFailedAuthThrottledByPeer runs without trusted proxies: the TCP peer
// is the client, whatever X-Forwarded-For says.
func TestFailedAuthThrottledByPeer(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	base := h.listen()
	get := func(t *testing.T, local, xff, token string) int {
		t.Helper()
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		cl := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 30 * time.Second}
		defer cl.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(context.Background(), "GET", base+"/v1/tenants", nil)
		req.Header.Set("X-Forwarded-For", xff)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for i := range 10 {
		if got := get(t, "127.0.0.1", fmt.Sprintf("198.51.100.%d", i), "swa_wrong"); got != http.StatusUnauthorized {
			t.Fatalf("attempt %d: status %d, want 401", i+1, got)
		}
	}
	if got := get(t, "127.0.0.1", "198.51.100.99", h.token); got != http.StatusTooManyRequests {
		t.Fatalf("11th from the same peer with a fresh X-Forwarded-For: status %d, want 429", got)
	}
	if got := get(t, "127.0.0.2", "", h.token); got != http.StatusOK {
		t.Fatalf("another peer: status %d, want 200", got)
	}
}

func TestLastUsedAtWrittenOncePerMinute(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	h := newHarnessAPI(t, nil, func(o *Options) { o.Now = clock.Now })
	ctx := context.Background()
	// Count the writes of last_used_at in this test's own platform database.
	for _, q := range []string{
		`CREATE TABLE token_writes (id bigint)`,
		`CREATE FUNCTION note_token_write() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN INSERT INTO token_writes VALUES (NEW.id); RETURN NEW; END $$`,
		`CREATE TRIGGER note_token_write AFTER UPDATE OF last_used_at ON admin_tokens
		 FOR EACH ROW EXECUTE FUNCTION note_token_write()`,
	} {
		if _, err := h.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	writes := func(t *testing.T) int {
		t.Helper()
		var n int
		if err := h.pool.QueryRow(ctx, `SELECT count(*) FROM token_writes`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// A concurrent burst, then more calls within the minute.
	var wg sync.WaitGroup
	statuses := make(chan int, 20)
	for range 20 {
		wg.Go(func() {
			req := httptest.NewRequest("GET", "/v1/tenants", nil)
			req.Header.Set("Authorization", "Bearer "+h.token)
			res, err := h.srv.App().Test(req, 30_000)
			if err != nil {
				statuses <- 0
				return
			}
			res.Body.Close()
			statuses <- res.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("burst request: status %d", s)
		}
	}
	for range 10 {
		h.must(http.StatusOK, "GET", "/v1/tenants", "")
	}
	if n := writes(t); n != 1 {
		t.Fatalf("%d writes of last_used_at for a burst, want 1", n)
	}
	clock.Advance(59 * time.Second)
	h.must(http.StatusOK, "GET", "/v1/tenants", "")
	if n := writes(t); n != 1 {
		t.Fatalf("%d writes within the minute, want 1", n)
	}
	clock.Advance(time.Second)
	h.must(http.StatusOK, "GET", "/v1/tenants", "")
	if n := writes(t); n != 2 {
		t.Fatalf("%d writes a minute later, want 2", n)
	}
	var last *time.Time
	if err := h.pool.QueryRow(ctx, `SELECT last_used_at FROM admin_tokens WHERE name = 'bootstrap'`).Scan(&last); err != nil || last == nil {
		t.Fatalf("last_used_at %v (%v), want set", last, err)
	}
	// A revoked token is refused at once, noted or not.
	var created tokenCreated
	h.must(http.StatusCreated, "POST", "/v1/tokens", `{"name":"short-lived"}`).decode(t, &created)
	if r := h.doAs(created.Token, "GET", "/v1/tenants", ""); r.Status != http.StatusOK {
		t.Fatalf("new token: %d", r.Status)
	}
	h.must(http.StatusNoContent, "DELETE", fmt.Sprintf("/v1/tokens/%d", created.ID), "")
	if r := h.doAs(created.Token, "GET", "/v1/tenants", ""); r.Status != http.StatusUnauthorized {
		t.Fatalf("revoked token within its noted minute: status %d, want 401", r.Status)
	}
}
