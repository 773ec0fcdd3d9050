package signup

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/platform/mail/mailpit"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/tenant/account"
)

func TestCheckSlug(t *testing.T) {
	for slug, ok := range map[string]bool{
		"acme": true, "my-shop-2": true, "ab": true,
		"": false, "a": false, "Acme": false, "-acme": false, "acme-": false, "2acme": false, "ac_me": false,
		strings.Repeat("a", 41): false, "www": false, "api": false, "admin": false, "mail": false, "app": false, "static": false,
	} {
		if got := CheckSlug(slug) == ""; got != ok {
			t.Errorf("CheckSlug(%q) accepts = %t, want %t (%s)", slug, got, ok, CheckSlug(slug))
		}
	}
}

func TestIsSiteHost(t *testing.T) {
	s := &Site{hosts: map[string]bool{"www.example.test": true, "example.test": true}}
	for host, want := range map[string]bool{"www.example.test": true, "WWW.example.test:8000": true, "example.test": true,
		"acme.example.test": false, "www.example.test.evil": false, "": false} {
		if got := s.IsSiteHost(host); got != want {
			t.Errorf("IsSiteHost(%q) = %t, want %t", host, got, want)
		}
	}
}

// harness is a site on a test control plane, with real Postgres, Redis and
// Mailpit, its clock movable.
type harness struct {
	t    *testing.T
	env  *provisiontest.Env
	site *Site
	mp   *mailpit.Client
	mu   sync.Mutex
	now  time.Time
	opts Options
}

func newHarness(t *testing.T, mod func(*Options)) *harness {
	t.Helper()
	return newHarnessOn(t, provisiontest.Config{Tag: "su"}, mod)
}

// newHarnessOn is newHarness on a control plane of cfg.
func newHarnessOn(t *testing.T, cfg provisiontest.Config, mod func(*Options)) *harness {
	t.Helper()
	mp := mailpit.New(pgtest.Service(t, "SWA_MAILPIT_URL"))
	host := pgtest.Require(t, "SWA_SMTP_HOST")
	env := provisiontest.New(t, cfg)
	rdb, prefix := pgtest.Redis(t)
	h := &harness{t: t, env: env, mp: mp, now: time.Now()}
	h.opts = Options{
		Provision: env.Service, DB: env.Platform, Redis: rdb, RedisPrefix: prefix,
		Hosts: []string{"www.example.test"}, SiteURL: "http://www.example.test", BaseDomain: "example.test",
		SMTP:   mail.SMTPSettings{Host: host, Port: smtpPort(t)},
		Hasher: account.NewHasher(account.Argon2Params{Time: 1, Memory: 8 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}),
		Now: func() time.Time {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.now
		},
		RateLimit: ratelimit.Rate{},
	}
	if mod != nil {
		mod(&h.opts)
	}
	h.start()
	return h
}

func (h *harness) start() {
	h.t.Helper()
	site, err := New(context.Background(), h.opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.site = site
	h.t.Cleanup(func() { site.Close(context.Background()) })
}

func smtpPort(t *testing.T) int {
	var p int
	for _, c := range pgtest.Require(t, "SWA_SMTP_PORT") {
		p = p*10 + int(c-'0')
	}
	return p
}

func (h *harness) post(path string, form url.Values) (int, string, string) {
	h.t.Helper()
	form.Set("csrf", strings.Repeat("c", 43))
	req := httptest.NewRequest(http.MethodPost, "http://www.example.test"+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: csrfCookie, Value: strings.Repeat("c", 43)})
	resp, err := h.site.App().Test(req, 30_000)
	if err != nil {
		h.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

func (h *harness) get(path string) (int, string) {
	h.t.Helper()
	resp, err := h.site.App().Test(httptest.NewRequest(http.MethodGet, "http://www.example.test"+path, nil), 30_000)
	if err != nil {
		h.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func signUp(email, slug string) url.Values {
	return url.Values{"email": {email}, "password": {"Founder-Pass-42!"}, "shop_name": {"Test Shop"}, "subdomain": {slug}}
}

var tokenRE = regexp.MustCompile(`/verify\?token=([A-Za-z0-9_-]+)`)

// TestPendingCapAndExpiry: an address has at most MaxPending unverified
// sign-ups; a link works for 24 hours only; an unknown one is refused.
func TestPendingCapAndExpiry(t *testing.T) {
	h := newHarness(t, nil)
	email := "cap-" + strings.ToLower(pgtest.RandomName("x")) + "@example.test"
	for i := range DefaultMaxPending {
		if code, loc, page := h.post("/signup", signUp(email, "cap-"+string(rune('a'+i))+"-shop")); code != 303 || loc != "/signup/sent" {
			t.Fatalf("sign-up %d: %d %q\n%s", i, code, loc, page)
		}
	}
	if code, _, page := h.post("/signup", signUp(email, "cap-z-shop")); code != 429 || !strings.Contains(page, "already sent") {
		t.Errorf("sign-up over the cap: %d\n%s", code, page)
	}
	msgs := h.mp.Wait(t, `to:"`+email+`"`, DefaultMaxPending, 30*time.Second)
	tok := tokenRE.FindStringSubmatch(msgs[0].Text)[1]
	if code, page := h.get("/verify?token=" + tok); code != 200 || !strings.Contains(page, "Confirm and create my shop") {
		t.Errorf("fresh link: %d\n%s", code, page)
	}
	if code, _ := h.get("/verify?token=nonsense"); code != 400 {
		t.Errorf("unknown link: %d, want 400", code)
	}
	h.mu.Lock()
	h.now = h.now.Add(TokenTTL + time.Minute)
	h.mu.Unlock()
	if code, _ := h.get("/verify?token=" + tok); code != 410 {
		t.Errorf("link after 24 h: %d, want 410", code)
	}
	if code, _, _ := h.post("/verify", url.Values{"token": {tok}}); code != 410 {
		t.Errorf("confirming after 24 h: %d, want 410", code)
	}
	// Expired ones no longer count against the cap.
	if code, _, _ := h.post("/signup", signUp(email, "cap-z-shop")); code != 303 {
		t.Errorf("sign-up once the old ones expired: %d, want 303", code)
	}
}

// TestVerifiedSignUpResumesAfterRestart: a sign-up verified by a process
// that stopped before making the shop is finished by the next one, and
// finishing it again (two workers at once, then a third time) makes one
// tenant and one owner.
func TestVerifiedSignUpResumesAfterRestart(t *testing.T) {
	h := newHarness(t, nil)
	hash, err := h.opts.Hasher.Hash("Founder-Pass-42!")
	if err != nil {
		t.Fatal(err)
	}
	id := verifiedSignUp(t, h, "resume@example.test", "resumed", hash)
	h.start() // a new process: it resumes the sign-up
	status := ""
	for deadline := time.Now().Add(60 * time.Second); status != statusActive; time.Sleep(100 * time.Millisecond) {
		if err := h.env.Platform.QueryRow(context.Background(), `SELECT status FROM signups WHERE id = $1`, id).Scan(&status); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) || status == statusFailed {
			t.Fatalf("sign-up is %s after a restart", status)
		}
	}
	// Once more, by two at once, as after a second restart racing a retry.
	if _, err := h.env.Platform.Exec(context.Background(), `UPDATE signups SET status = 'verified' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	start := make(chan struct{})
	for i := range errs {
		wg.Go(func() { <-start; errs[i] = h.site.finish(context.Background(), id) })
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("finish %d: %v", i, err)
		}
	}
	ts, err := h.env.Registry.Tenants(context.Background(), registry.TenantFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Slug != "resumed" || ts[0].Status != registry.StatusActive || ts[0].Plan != "free" {
		t.Fatalf("tenants = %+v, want resumed, active, free", ts)
	}
	if ts[0].ForkOf != nil {
		t.Errorf("with no starter tenant the shop is empty, got a fork of %s", *ts[0].ForkOf)
	}
	var owners int
	err = h.env.Service.InTenant(context.Background(), "resumed", func(ctx context.Context, tx pgxTx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM staff WHERE role = 'owner' AND email = 'resume@example.test' AND password_hash = $1`, hash).Scan(&owners)
	})
	if err != nil || owners != 1 {
		t.Errorf("owners with the sign-up's hash: %d (%v), want 1", owners, err)
	}
}

// TestTenantOfAnotherIsNotTaken: a verified sign-up whose subdomain an
// admin took meanwhile fails rather than adopting the admin's tenant.
func TestTenantOfAnotherIsNotTaken(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.env.Service.Create(context.Background(), provisiontestRequest("taken-by-admin"), "admin"); err != nil {
		t.Fatal(err)
	}
	_, sum := newToken()
	var id int64
	err := h.env.Platform.QueryRow(context.Background(), `INSERT INTO signups (email, password_hash, shop_name, slug, status, token_hash, expires_at, verified_at)
VALUES ('late@example.test', 'x', 'Late', 'taken-by-admin', 'verified', $1, now() + interval '1 day', now()) RETURNING id`, sum).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.site.finish(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	var status string
	if err := h.env.Platform.QueryRow(context.Background(), `SELECT status FROM signups WHERE id = $1`, id).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != statusFailed {
		t.Errorf("sign-up for an admin's tenant is %s, want failed", status)
	}
}
