package main

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/startupwebapp/platform/platform/obs"
)

// startForwardingDataPlane runs a second data plane (swa serve) next to a
// running swa dev, on the same registry, with over applied to its
// environment (SWA_PLATFORM_SITE_URL, ...), and returns its address.
func startForwardingDataPlane(t *testing.T, h *devHarness, over map[string]string) string {
	t.Helper()
	key, err := os.ReadFile(filepath.Join(h.env["SWA_DEV_DIR"], "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	env := maps.Clone(h.env)
	env["SWA_HTTP_ADDR"], env["SWA_ADMIN_ADDR"] = "127.0.0.1:0", "127.0.0.1:0"
	maps.Copy(env, over)
	e := env2(h, func(k string) string {
		if v := env[k]; v != "" {
			return v
		}
		if k == "SWA_MASTER_KEY" {
			return strings.TrimSpace(string(key))
		}
		return devDefaults[k]
	})
	cfg, log, err := e.loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dp, err := newDataPlane(ctx, cfg, log, obs.NewRegistry())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := dp.listen(); err != nil {
		cancel()
		dp.close(context.Background())
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- dp.serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the forwarding data plane did not stop")
		}
	})
	return dp.ln.Addr().String()
}

// env2 is an env writing its logs with the harness's.
func env2(h *devHarness, getenv func(string) string) env {
	w := &lockedWriter{mu: &h.mu, w: &h.logs}
	return env{stdout: w, stderr: w, getenv: getenv}
}

// browserAt is a browser whose every *.localhost host reaches addr.
func browserAt(t *testing.T, addr string) *browser {
	jar, _ := cookiejar.New(nil)
	_, port, _ := net.SplitHostPort(addr)
	d := &net.Dialer{Timeout: 5 * time.Second}
	b := &browser{t: t, port: port}
	b.c = &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}}
	return b
}

// TestDataPlaneForwardsPlatformSite: a data plane with SWA_PLATFORM_SITE_URL
// answers the platform host with the control plane's real site (pages,
// CSRF cookie and token, the signed billing webhook, whose signature only
// holds over the exact bytes sent), never with the control plane's admin
// API; other hosts keep the data plane's own tenant routing; with the
// control plane stopped, or silent, it answers 503 with Retry-After.
func TestDataPlaneForwardsPlatformSite(t *testing.T) {
	h := newDevHarness(t)
	const whsec = "whsec_forwarded_site_test"
	h.env["SWA_PLATFORM_STRIPE_WEBHOOK_SECRET"] = whsec
	// Both planes trust loopback: the control plane its forwarding data
	// plane, the data plane the "load balancer" the test's client stands for.
	h.env["SWA_TRUSTED_PROXIES"] = "127.0.0.1"
	h.start()
	addr := startForwardingDataPlane(t, h, map[string]string{"SWA_PLATFORM_SITE_URL": h.urls.Control})
	b := browserAt(t, addr)

	resp, page := b.do("GET", b.url("www", "/"), nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "Start your shop") {
		t.Fatalf("landing page through the data plane: %d\n%s", resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("the site's CSP did not come through: %q", csp)
	}

	// The form's token pairs with its cookie: a refused pair answers 403,
	// an accepted one reaches the form's own checks (a reserved subdomain).
	tok := b.csrf()
	resp, page = b.do("POST", b.url("www", "/signup"), signUpForm(tok, "someone@example.test", "Founder-Pass-42!", "Shop", "admin"))
	if resp.StatusCode != 400 || !strings.Contains(page, "reserved") {
		t.Errorf("sign-up form with its CSRF cookie and token: %d, want 400 reserved\n%s", resp.StatusCode, page)
	}
	bare := browserAt(t, addr) // no cookie
	if resp, _ := bare.do("POST", b.url("www", "/signup"), signUpForm(tok, "someone@example.test", "Founder-Pass-42!", "Shop", "admin")); resp.StatusCode != 403 {
		t.Errorf("sign-up form without its CSRF cookie: %d, want 403", resp.StatusCode)
	}

	// The sign-up is recorded with the client's address as the data plane
	// reads it from its trusted proxy's X-Forwarded-For (the hop left of it
	// is whatever the client wrote, ignored), not the data plane's.
	email := "fwd-" + strings.ToLower(strings.ReplaceAll(h.prefix, "_", "")) + "@example.test"
	req, _ := http.NewRequest("POST", b.url("www", "/signup"),
		strings.NewReader(signUpForm(tok, email, "Founder-Pass-42!", "Forwarded", "fwd"+strings.ToLower(strings.ReplaceAll(h.prefix, "_", ""))).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", "198.51.100.1, 203.0.113.9")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/signup/sent" {
		t.Fatalf("sign-up through the data plane: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	code, list := h.api("GET", "/v1/signups", nil)
	var signups struct {
		Signups []struct {
			Email      string `json:"email"`
			ClientAddr string `json:"client_addr"`
		} `json:"signups"`
	}
	if err := json.Unmarshal([]byte(list), &signups); code != 200 || err != nil {
		t.Fatalf("GET /v1/signups: %d %v\n%s", code, err, list)
	}
	found := false
	for _, su := range signups.Signups {
		if su.Email == email {
			found = true
			if su.ClientAddr != "203.0.113.9" {
				t.Errorf("sign-up recorded from %q, want 203.0.113.9", su.ClientAddr)
			}
		}
	}
	if !found {
		t.Errorf("sign-up of %s not listed:\n%s", email, list)
	}

	// The billing webhook: Stripe signs the raw body, CR LF and non-ASCII
	// bytes included; a changed byte fails the signature.
	body := []byte("{\"id\": \"evt_fwd_" + strings.ToLower(h.prefix) + "\",\r\n \"object\": \"event\", \"type\": \"customer.created\",\r\n" +
		" \"created\": " + itoa(time.Now().Unix()) + ", \"data\": {\"object\": {\"name\": \"Caf\u00e9 \u00fcber\"}}}\r\n")
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: whsec, Timestamp: time.Now()}).Header
	post := func(payload []byte) (int, string) {
		req, _ := http.NewRequest("POST", b.url("www", "/billing/webhook"), strings.NewReader(string(payload)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Stripe-Signature", sig)
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if code, answer := post(body); code != 200 || !strings.Contains(answer, `"received":true`) {
		t.Errorf("signed webhook through the data plane: %d %s", code, answer)
	}
	changed := []byte(strings.Replace(string(body), "\r\n", "\n", 1))
	if code, answer := post(changed); code != 400 || !strings.Contains(answer, "invalid signature") {
		t.Errorf("webhook with a changed byte: %d %s, want 400 invalid signature", code, answer)
	}

	// The admin API answers on the control plane's own address, never on
	// the platform host through the data plane, not even with its token.
	if code, body := h.api("GET", "/v1/tenants", nil); code != 200 || !strings.Contains(body, "healthtech") {
		t.Fatalf("admin API on the control plane: %d %s", code, body)
	}
	for _, host := range []string{"www.localhost", "WWW.LOCALHOST:" + b.port} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/tenants", nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+h.token)
		code, body := do(t, req)
		if code != 404 || strings.Contains(body, "healthtech") || !strings.Contains(body, "Page not found") {
			t.Errorf("/v1/tenants on %s through the data plane: %d\n%s", host, code, body)
		}
	}

	// Other hosts: the data plane's own routing, as on swa dev's.
	for _, host := range []string{"healthtech.localhost", "unknown.localhost", "localhost"} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/clientevent/", nil)
		req.Host = host
		got, gotBody := do(t, req)
		want, wantBody := h.get(host, "/clientevent/")
		if got != want || (got == 404) != strings.Contains(gotBody, "no site is served") || (want == 404) != strings.Contains(wantBody, "no site is served") {
			t.Errorf("%s through the forwarding data plane: %d %s; swa dev's: %d %s", host, got, gotBody, want, wantBody)
		}
	}

	// A control plane that does not answer: 503 at the request deadline.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	slow := browserAt(t, startForwardingDataPlane(t, h, map[string]string{
		"SWA_PLATFORM_SITE_URL": "http://" + silent.Addr().String(), "SWA_REQUEST_TIMEOUT": "1s",
	}))
	start := time.Now()
	resp, page = slow.do("GET", slow.url("www", "/"), nil)
	if d := time.Since(start); d < time.Second || d > 5*time.Second {
		t.Errorf("silent control plane answered after %v, want at the 1s deadline", d)
	}
	checkSiteUnavailable(t, resp, page)

	// The control plane stopped.
	h.stop()
	h.cancel = nil // stopped: the cleanup does not wait for it again
	start = time.Now()
	resp, page = b.do("GET", b.url("www", "/pricing"), nil)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stopped control plane answered after %v", d)
	}
	checkSiteUnavailable(t, resp, page)
}

func checkSiteUnavailable(t *testing.T, resp *http.Response, page string) {
	t.Helper()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(page, "Temporarily unavailable") {
		t.Errorf("platform site without its control plane: %d, Retry-After %q\n%s", resp.StatusCode, resp.Header.Get("Retry-After"), page)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
