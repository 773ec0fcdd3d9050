package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/mail/mailpit"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// browser is an HTTP client with cookies that reaches every *.localhost
// host on the dev data plane's port, as a browser on the machine would.
type browser struct {
	t      testing.TB
	c      *http.Client
	port   string
	follow bool
}

func newBrowser(t testing.TB, h *devHarness, follow bool) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(h.urls.Data)
	addr := u.Host
	d := &net.Dialer{Timeout: 5 * time.Second}
	b := &browser{t: t, port: u.Port(), follow: follow}
	b.c = &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}}
	if !follow {
		b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return b
}

// url is a URL on host (www, a tenant slug) of the dev data plane.
func (b *browser) url(host, path string) string {
	return "http://" + host + ".localhost:" + b.port + path
}

func (b *browser) do(method, u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

var (
	csrfRE    = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	refreshRE = regexp.MustCompile(`http-equiv="refresh" content="\d+;url=([^"]+)"`)
	linkRE    = regexp.MustCompile(`http://www\.localhost:\d+/verify\?token=[A-Za-z0-9_-]+`)
)

func (b *browser) csrf() string {
	b.t.Helper()
	_, page := b.do("GET", b.url("www", "/signup"), nil)
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no CSRF token on the sign-up form:\n%s", page)
	}
	return m[1]
}

func signUpForm(csrf, email, password, shop, slug string) url.Values {
	return url.Values{"csrf": {csrf}, "email": {email}, "password": {password}, "shop_name": {shop}, "subdomain": {slug}}
}

// TestSignUpJourney: a visitor signs up on the platform site, confirms the
// mail from Mailpit, waits for the shop, and lands signed in in its back
// office; the shop's storefront answers; the link and the handoff work
// once; bad, reserved and taken subdomains, a duplicate address, a missing
// CSRF token and too many attempts are refused.
func TestSignUpJourney(t *testing.T) {
	mp := mailpit.New(pgtest.Service(t, "SWA_MAILPIT_URL"))
	h := newDevHarness(t)
	h.start()
	if !strings.Contains(h.out.String(), "platform site  http://www.localhost:") {
		t.Errorf("swa dev does not print the platform site:\n%s", h.out.String())
	}
	b := newBrowser(t, h, false)
	attempts := 0 // POST /signup from this client, for the rate limit

	resp, page := b.do("GET", b.url("www", "/"), nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "Start your shop") {
		t.Fatalf("landing page: %d\n%s", resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("landing page CSP = %q", csp)
	}
	if _, page := b.do("GET", b.url("www", "/pricing"), nil); !strings.Contains(page, "Free") || !strings.Contains(page, "Business") {
		t.Errorf("pricing page lacks the plans:\n%s", page)
	}

	suffix := strings.ToLower(pgtest.RandomName("x"))
	email := "founder-" + suffix + "@example.test"
	slug := "shop-" + strings.ReplaceAll(suffix, "_", "")
	const password = "Founder-Pass-42!"
	tok := b.csrf()

	for _, c := range []struct {
		name, slug, password string
		status               int
		want                 string
	}{
		{"bad slug", "Bad_Slug", password, 400, "lowercase letters"},
		{"reserved", "admin", password, 400, "reserved"},
		{"taken", "healthtech", password, 409, "is taken"},
		{"weak password", slug, "short", 400, "password"},
	} {
		attempts++
		resp, page := b.do("POST", b.url("www", "/signup"), signUpForm(tok, email, c.password, "My Shop", c.slug))
		if resp.StatusCode != c.status || !strings.Contains(page, c.want) {
			t.Errorf("%s: %d, want %d with %q\n%s", c.name, resp.StatusCode, c.status, c.want, page)
		}
	}
	// (A refused CSRF token is not counted: it never reaches the limit.)
	if resp, _ := b.do("POST", b.url("www", "/signup"), signUpForm("", email, password, "My Shop", slug)); resp.StatusCode != 403 {
		t.Errorf("sign-up without the CSRF token: %d, want 403", resp.StatusCode)
	}

	attempts++
	resp, _ = b.do("POST", b.url("www", "/signup"), signUpForm(tok, email, password, "Founder's Shop", slug))
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/signup/sent" {
		t.Fatalf("sign-up: %d to %q, want 303 to /signup/sent", resp.StatusCode, resp.Header.Get("Location"))
	}
	msgs := mp.Wait(t, `to:"`+email+`" subject:"Confirm your email"`, 1, 30*time.Second)
	link := linkRE.FindString(msgs[0].Text)
	if link == "" {
		t.Fatalf("no verification link in the mail:\n%s", msgs[0].Text)
	}
	resp, page = b.do("GET", link, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "Confirm and create my shop") {
		t.Fatalf("verification landing: %d\n%s", resp.StatusCode, page)
	}
	token := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page)[1]
	clicked := time.Now()
	resp, _ = b.do("POST", b.url("www", "/verify"), url.Values{"csrf": {tok}, "token": {token}})
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/welcome" {
		t.Fatalf("verify: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// The waiting page refreshes itself until the shop is there, then moves
	// on to the back office through a handoff link.
	var handoff string
	for deadline := time.Now().Add(60 * time.Second); handoff == ""; {
		resp, page = b.do("GET", b.url("www", "/welcome"), nil)
		m := refreshRE.FindStringSubmatch(page)
		if resp.StatusCode != 200 || m == nil {
			t.Fatalf("welcome page: %d without a refresh\n%s", resp.StatusCode, page)
		}
		if strings.Contains(m[1], "/admin/handoff") {
			handoff = strings.ReplaceAll(m[1], "&amp;", "&")
			break
		}
		if !strings.Contains(page, "being created") {
			t.Fatalf("welcome page while waiting:\n%s", page)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shop was not ready within a minute\n%s", h.logText())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.HasPrefix(handoff, b.url(slug, "/admin/handoff?token=")) {
		t.Fatalf("handoff link %q is not on the shop's host", handoff)
	}
	fb := newBrowser(t, h, true)
	fb.c.Jar = b.c.Jar
	resp, page = fb.do("GET", handoff, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `content="0;url=/admin/"`) {
		t.Fatalf("handoff: %d at %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	if resp, page = fb.do("GET", b.url(slug, "/admin/"), nil); resp.StatusCode != 200 || resp.Request.URL.Path != "/admin/" {
		t.Fatalf("back office after the handoff: %d at %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	resp, page = fb.do("GET", b.url(slug, "/admin/api/v1/me"), nil)
	if resp.StatusCode != 200 || !strings.Contains(page, email) || !strings.Contains(page, `"owner"`) {
		t.Fatalf("the founder's back-office session: %d %s", resp.StatusCode, page)
	}
	resp, page = fb.do("GET", b.url(slug, "/"), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("the new shop's storefront: %d\n%s", resp.StatusCode, page)
	}
	t.Logf("verification click to the shop's back office: %s", time.Since(clicked).Round(time.Millisecond))

	code, body := h.api("GET", "/v1/tenants/"+slug, nil)
	var tn struct {
		ForkOf *string `json:"fork_of"`
	}
	_ = json.Unmarshal([]byte(body), &tn)
	if code != 200 || !strings.Contains(body, `"status":"active"`) || !strings.Contains(body, `"plan":"free"`) ||
		tn.ForkOf == nil || *tn.ForkOf != "startupwebapp" {
		t.Errorf("the new tenant: %d %s", code, body)
	}

	// The handoff works once; the verification link changes nothing more.
	other := newBrowser(t, h, false)
	if resp, _ := other.do("GET", handoff, nil); resp.StatusCode != 303 || resp.Header.Get("Location") != "/admin/sign-in" {
		t.Errorf("second use of the handoff: %d to %q, want 303 to /admin/sign-in", resp.StatusCode, resp.Header.Get("Location"))
	}
	otok := other.csrf()
	resp, _ = other.do("POST", b.url("www", "/verify"), url.Values{"csrf": {otok}, "token": {token}})
	if resp.StatusCode != 303 {
		t.Errorf("second verification: %d, want 303", resp.StatusCode)
	}
	if _, page := other.do("GET", b.url("www", "/welcome"), nil); !strings.Contains(page, "Your email is confirmed") {
		t.Errorf("welcome after a second verification:\n%s", page)
	}
	if _, page := b.do("GET", b.url("www", "/welcome"), nil); strings.Contains(page, "/admin/handoff") {
		t.Errorf("the welcome page handed off twice:\n%s", page)
	}
	_, list := h.api("GET", "/v1/tenants", nil)
	if n := strings.Count(list, `"slug":"`+slug+`"`); n != 1 {
		t.Errorf("%d tenants %s after two verifications, want 1", n, slug)
	}

	// The same address again: the same neutral answer, and a mail saying
	// it has a shop already.
	attempts++
	resp, _ = b.do("POST", b.url("www", "/signup"), signUpForm(tok, email, password, "Second Shop", slug+"-two"))
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/signup/sent" {
		t.Errorf("second sign-up with the address: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	mp.Wait(t, `to:"`+email+`" subject:"You already have a shop"`, 1, 30*time.Second)
	// Its subdomain is now taken for others.
	attempts++
	if resp, page := b.do("POST", b.url("www", "/signup"), signUpForm(tok, "x"+email, password, "Copy", slug)); resp.StatusCode != 409 {
		t.Errorf("sign-up for a live shop's subdomain: %d\n%s", resp.StatusCode, page)
	}

	// 50 more attempts from this address: at most 10 an hour get through.
	limited, passed := 0, 0
	for i := range 50 {
		resp, _ := b.do("POST", b.url("www", "/signup"), signUpForm(tok, fmt.Sprintf("r%d%s", i, email), "x", "Shop", "admin"))
		switch resp.StatusCode {
		case 429:
			limited++
		case 400:
			passed++
		default:
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	// The limit counts in fixed hourly windows: a window that turns during
	// the test lets through at most another 10.
	if limited < 30 || passed+attempts > 20 {
		t.Errorf("of 50 attempts after %d, %d were limited and %d passed; want at most 10 an hour in all", attempts, limited, passed)
	}
}
