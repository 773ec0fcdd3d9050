package sessions_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
)

const (
	hostA = "a.sessions.test"
	hostB = "b.sessions.test"
)

// counter counts Redis commands, to prove what the middleware does not do.
type counter struct{ n atomic.Int64 }

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

type fixture struct {
	app     *fiber.App
	store   *sessions.Store
	rdb     *redis.Client
	prefix  string
	cmds    *counter
	a, b    *directory.Tenant
	plainOK *fiber.App // same app, no trusted proxy
}

type mount func(r fiber.Router)

func (m mount) Mount(r fiber.Router) { m(r) }

// routes exercise the API the account code will use.
func routes(store *sessions.Store) mount {
	return func(r fiber.Router) {
		r.Get("/none", func(c *fiber.Ctx) error { return c.SendString("ok") })
		r.Get("/get", func(c *fiber.Ctx) error {
			s := sessions.Get(c)
			return c.SendString(strconv.FormatInt(s.UserID, 10) + "|" + s.Value("v") + "|" + s.ID())
		})
		r.Get("/set", func(c *fiber.Ctx) error {
			sessions.Get(c).Set("v", c.Query("v"))
			return c.SendString("ok")
		})
		r.Get("/login", func(c *fiber.Ctx) error {
			s := sessions.Get(c)
			if err := sessions.Regenerate(c); err != nil {
				return err
			}
			uid, _ := strconv.ParseInt(c.Query("uid"), 10, 64)
			s.UserID, s.AuthHash = uid, "h"+c.Query("uid")
			s.SetPersistent(c.Query("remember_me") == "true")
			if err := sessions.Save(c); err != nil {
				return err
			}
			return c.SendString(s.ID())
		})
		r.Get("/logout", func(c *fiber.Ctx) error {
			if err := sessions.Destroy(c); err != nil {
				return err
			}
			return c.SendString("bye")
		})
		// A request that loaded the session while another ended it.
		r.Get("/ended-meanwhile", func(c *fiber.Ctx) error {
			s := sessions.Get(c)
			if err := store.DestroyAllForUser(c.UserContext(), server.Tenant(c).ID, s.UserID); err != nil {
				return err
			}
			s.Set("v", "late")
			return c.SendString("ok")
		})
		// change-my-password: end every session, keep this one under a new id.
		r.Get("/change-password", func(c *fiber.Ctx) error {
			s := sessions.Get(c)
			if err := store.DestroyAllForUser(c.UserContext(), server.Tenant(c).ID, s.UserID); err != nil {
				return err
			}
			if err := sessions.Regenerate(c); err != nil {
				return err
			}
			s.AuthHash = "new"
			return c.SendString("ok")
		})
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	reg := pgtest.NewPool(t, migrations.Platform)
	directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: "sa", Domains: []string{hostA}})
	directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: "sb", Domains: []string{hostB},
		Settings: directory.Settings{CookieDomain: ".sessions.test"}})
	dir := directory.New(directory.Options{DB: reg, BaseDomain: "example.invalid"})
	if err := dir.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	rdb, prefix := pgtest.Redis(t)
	cmds := &counter{}
	rdb.AddHook(cmds)
	store := sessions.New(sessions.Options{Redis: rdb, Prefix: prefix})
	build := func(trusted []string) *fiber.App {
		return server.New(server.Options{Directory: dir, TrustedProxies: trusted,
			Middleware: []fiber.Handler{store.Handler()}, Apps: []server.App{routes(store)}})
	}
	return &fixture{app: build([]string{"0.0.0.0"}), plainOK: build(nil), store: store, rdb: rdb, prefix: prefix,
		cmds: cmds, a: dir.BySlug("sa"), b: dir.BySlug("sb")}
}

type result struct {
	status int
	body   string
	cookie *http.Cookie // the sessionid Set-Cookie, nil if none
	raw    string       // its raw header
}

func do(t *testing.T, app *fiber.App, host, path, sid string, hdr ...string) result {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://"+host+path, nil)
	if sid != "" {
		req.AddCookie(&http.Cookie{Name: sessions.CookieName, Value: sid})
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, body: string(b)}
	for _, raw := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(raw, sessions.CookieName+"=") {
			r.raw = raw
			r.cookie, _ = http.ParseSetCookie(raw)
		}
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET %s%s: status %d: %s", host, path, r.status, r.body)
	}
	return r
}

func (f *fixture) key(tn *directory.Tenant, id string) string {
	return f.prefix + strconv.FormatInt(tn.ID, 10) + ":sess:" + id
}

func (f *fixture) userKey(tn *directory.Tenant, uid int64) string {
	return f.prefix + strconv.FormatInt(tn.ID, 10) + ":user:" + strconv.FormatInt(uid, 10) + ":sessions"
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()

	r := do(t, f.app, hostA, "/set?v=hello", "")
	if r.cookie == nil {
		t.Fatal("no session cookie after a modification")
	}
	id := r.cookie.Value
	if len(id) != 32 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Fatalf("session id %q: want 32 chars [a-z0-9]", id)
	}
	ttl, err := f.rdb.TTL(ctx, f.key(f.a, id)).Result()
	if err != nil || ttl < 14*24*time.Hour-time.Minute || ttl > 14*24*time.Hour {
		t.Fatalf("server-side TTL = %v, %v; want 14 days", ttl, err)
	}
	r = do(t, f.app, hostA, "/get", id)
	if r.body != "0|hello|"+id {
		t.Fatalf("read back %q", r.body)
	}
	if r.cookie != nil {
		t.Fatalf("unmodified session set a cookie: %s", r.raw)
	}
}

func TestLazyAndSaveOnlyWhenModified(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := do(t, f.app, hostA, "/set?v=x", "").cookie.Value

	tests := []struct {
		name     string
		path     string
		sid      string
		wantCmds int64
	}{
		{"untouched session makes no Redis call", "/none", id, 0},
		{"malformed cookie is never looked up", "/get", "../../etc", 0},
		{"read-only use is one GET, no write", "/get", id, 1},
		{"setting the same value writes nothing", "/set?v=x", id, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.cmds.n.Load()
			r := do(t, f.app, hostA, tc.path, tc.sid)
			if got := f.cmds.n.Load() - before; got != tc.wantCmds {
				t.Errorf("Redis commands = %d, want %d", got, tc.wantCmds)
			}
			if r.cookie != nil {
				t.Errorf("cookie set: %s", r.raw)
			}
		})
	}
}

func TestRegenerateKeepsDataAndDeletesOldKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	old := do(t, f.app, hostA, "/set?v=cart", "").cookie.Value

	r := do(t, f.app, hostA, "/login?uid=7", old)
	if r.cookie == nil || r.cookie.Value == old || r.cookie.Value != r.body {
		t.Fatalf("login cookie %v, body %q: want a new id", r.cookie, r.body)
	}
	id := r.cookie.Value
	if n, _ := f.rdb.Exists(ctx, f.key(f.a, old)).Result(); n != 0 {
		t.Error("old session key still exists")
	}
	if got := do(t, f.app, hostA, "/get", id).body; got != "7|cart|"+id {
		t.Errorf("after login: %q", got)
	}
	if got := do(t, f.app, hostA, "/get", old).body; got != "0||" {
		t.Errorf("old id still works: %q", got)
	}
	if ok, _ := f.rdb.SIsMember(ctx, f.userKey(f.a, 7), id).Result(); !ok {
		t.Error("new id missing from the user's session set")
	}
}

func TestDestroy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	id := do(t, f.app, hostA, "/login?uid=9&remember_me=true", "").cookie.Value

	r := do(t, f.app, hostA, "/logout", id)
	if r.cookie == nil || r.cookie.Value != "" || !r.cookie.Expires.Before(time.Now()) {
		t.Fatalf("logout cookie %q: want an expired, empty sessionid", r.raw)
	}
	if !r.cookie.HttpOnly || r.cookie.Path != "/" {
		t.Errorf("expired cookie lost its attributes: %q", r.raw)
	}
	if n, _ := f.rdb.Exists(ctx, f.key(f.a, id)).Result(); n != 0 {
		t.Error("session key survives logout")
	}
	if ok, _ := f.rdb.SIsMember(ctx, f.userKey(f.a, 9), id).Result(); ok {
		t.Error("id survives in the user's set")
	}
	if got := do(t, f.app, hostA, "/get", id).body; got != "0||" {
		t.Errorf("after logout: %q", got)
	}
}

func TestDestroyAllForUser(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	s1 := do(t, f.app, hostA, "/login?uid=5", "").cookie.Value
	s2 := do(t, f.app, hostA, "/login?uid=5", "").cookie.Value
	other := do(t, f.app, hostA, "/login?uid=6", "").cookie.Value
	// Same user id on another tenant: a different person.
	onB := do(t, f.app, hostB, "/login?uid=5", "").cookie.Value

	if err := f.store.DestroyAllForUser(ctx, f.a.ID, 5); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, host, id, want string
	}{
		{"first session of user 5", hostA, s1, "0||"},
		{"second session of user 5", hostA, s2, "0||"},
		{"user 6 keeps his", hostA, other, "6||" + other},
		{"user 5 of tenant B keeps his", hostB, onB, "5||" + onB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := do(t, f.app, tc.host, "/get", tc.id).body; got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if n, _ := f.rdb.Exists(ctx, f.userKey(f.a, 5)).Result(); n != 0 {
		t.Error("user set survives")
	}
}

func TestEndedSessionsStayEnded(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()

	id := do(t, f.app, hostA, "/login?uid=11", "").cookie.Value
	r := do(t, f.app, hostA, "/ended-meanwhile", id)
	if r.cookie == nil || r.cookie.Value != "" {
		t.Errorf("cookie %q: want the session cookie expired", r.raw)
	}
	if n, _ := f.rdb.Exists(ctx, f.key(f.a, id)).Result(); n != 0 {
		t.Error("a late save brought the ended session back")
	}

	mine := do(t, f.app, hostA, "/login?uid=12", "").cookie.Value
	other := do(t, f.app, hostA, "/login?uid=12", "").cookie.Value
	r = do(t, f.app, hostA, "/change-password", mine)
	if r.cookie == nil || r.cookie.Value == "" || r.cookie.Value == mine {
		t.Fatalf("cookie %q: want a new session id", r.raw)
	}
	if got := do(t, f.app, hostA, "/get", r.cookie.Value).body; got != "12||"+r.cookie.Value {
		t.Errorf("own session after the change: %q", got)
	}
	for _, old := range []string{mine, other} {
		if got := do(t, f.app, hostA, "/get", old).body; got != "0||" {
			t.Errorf("old session %s still signed in: %q", old, got)
		}
	}
	if ids, _ := f.rdb.SMembers(ctx, f.userKey(f.a, 12)).Result(); len(ids) != 1 || ids[0] != r.cookie.Value {
		t.Errorf("user set %v, want only the new id", ids)
	}
}

func TestCookieAttributes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name       string
		app        *fiber.App
		host, path string
		hdr        []string
		secure     bool
		maxAge     int
		domain     string
	}{
		{"browser-session cookie over HTTP", f.app, hostA, "/login?uid=1", nil, false, 0, ""},
		{"persistent cookie", f.app, hostA, "/login?uid=1&remember_me=true", nil, false, 1209600, ""},
		{"HTTPS from a trusted proxy", f.app, hostA, "/login?uid=1&remember_me=true",
			[]string{"X-Forwarded-Proto", "https"}, true, 1209600, ""},
		{"X-Forwarded-Proto from an untrusted peer", f.plainOK, hostA, "/login?uid=1",
			[]string{"X-Forwarded-Proto", "https"}, false, 0, ""},
		{"tenant cookie domain", f.app, hostB, "/login?uid=1", nil, false, 0, "sessions.test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.app, tc.host, tc.path, "", tc.hdr...)
			c := r.cookie
			if c == nil {
				t.Fatal("no cookie")
			}
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
				t.Errorf("%q: want HttpOnly, SameSite=Lax, Path=/", r.raw)
			}
			if c.Secure != tc.secure {
				t.Errorf("%q: Secure = %v, want %v", r.raw, c.Secure, tc.secure)
			}
			if c.MaxAge != tc.maxAge {
				t.Errorf("%q: Max-Age = %d, want %d", r.raw, c.MaxAge, tc.maxAge)
			}
			if tc.maxAge == 0 && !c.Expires.IsZero() {
				t.Errorf("%q: browser-session cookie has an expiry", r.raw)
			}
			if strings.TrimPrefix(c.Domain, ".") != tc.domain {
				t.Errorf("%q: Domain = %q, want %q", r.raw, c.Domain, tc.domain)
			}
		})
	}
}

func TestSessionOfOneTenantUnknownOnAnother(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	id := do(t, f.app, hostA, "/login?uid=3", "").cookie.Value

	if got := do(t, f.app, hostB, "/get", id).body; got != "0||" {
		t.Fatalf("tenant B sees tenant A's session: %q", got)
	}
	// Saving on B must not adopt the presented id (fixation) nor touch A's record.
	r := do(t, f.app, hostB, "/set?v=b", id)
	if r.cookie == nil || r.cookie.Value == id {
		t.Fatalf("tenant B adopted the foreign id: %v", r.cookie)
	}
	if got := do(t, f.app, hostA, "/get", id).body; got != "3||"+id {
		t.Errorf("tenant A's session changed: %q", got)
	}
	if n, _ := f.rdb.Exists(ctx, f.key(f.b, id)).Result(); n != 0 {
		t.Error("tenant B stored a record under A's id")
	}
}

func TestRedisDownIsAnonymous(t *testing.T) {
	t.Parallel()
	reg := pgtest.NewPool(t, migrations.Platform)
	directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: "sa", Domains: []string{hostA}})
	dir := directory.New(directory.Options{DB: reg, BaseDomain: "example.invalid"})
	if err := dir.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	store := sessions.New(sessions.Options{Redis: rdb, Prefix: "x:", Timeout: 50 * time.Millisecond})
	app := server.New(server.Options{Directory: dir, Middleware: []fiber.Handler{store.Handler()},
		Apps: []server.App{routes(store)}})
	if got := do(t, app, hostA, "/get", strings.Repeat("a", 32)).body; got != "0||" {
		t.Errorf("got %q, want an anonymous session", got)
	}
}

func TestAuthHash(t *testing.T) {
	t.Parallel()
	key, other := []byte("tenant key one"), []byte("tenant key two")
	s := &sessions.Session{AuthHash: sessions.AuthHash(key, "pbkdf2_sha256$1$salt$old")}
	tests := []struct {
		name string
		key  []byte
		hash string
		want bool
	}{
		{"same password hash", key, "pbkdf2_sha256$1$salt$old", true},
		{"password changed", key, "pbkdf2_sha256$1$salt$new", false},
		{"another tenant's key", other, "pbkdf2_sha256$1$salt$old", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.AuthMatches(tc.key, tc.hash); got != tc.want {
				t.Errorf("AuthMatches = %v, want %v", got, tc.want)
			}
		})
	}
	if (&sessions.Session{}).AuthMatches(key, "") {
		t.Error("an anonymous session matches")
	}
	if strings.Contains(s.AuthHash, "old") {
		t.Error("the auth hash carries the password hash")
	}
}
