package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/tenant/account"
)

// devHarness runs `swa dev` in-process against a fresh platform database,
// with tenant databases and roles under a prefix of its own.
type devHarness struct {
	t      testing.TB
	admin  string // cluster superuser DSN
	prefix string
	env    map[string]string
	urls   devURLs
	token  string
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	logs   bytes.Buffer
	out    bytes.Buffer // what swa dev prints
}

func newDevHarness(t testing.TB) *devHarness {
	t.Helper()
	h := &devHarness{
		t:      t,
		admin:  pgtest.AdminURL(t),
		prefix: pgtest.RandomName("e") + "_",
	}
	h.env = map[string]string{
		"SWA_PLATFORM_DATABASE_URL": pgtest.NewDatabase(t, migrations.Platform),
		"SWA_TENANT_DB_ADMIN_URL":   h.admin,
		"SWA_TENANT_DB_PREFIX":      h.prefix,
		"SWA_REDIS_URL":             pgtest.Require(t, "SWA_REDIS_URL"),
		"SWA_STRIPE_API_BASE":       os.Getenv("SWA_STRIPE_API_BASE"),
		"SWA_TENANT_DB_PARAMS":      os.Getenv("SWA_TENANT_DB_PARAMS"),
		"SWA_SMTP_HOST":             os.Getenv("SWA_SMTP_HOST"),
		"SWA_SMTP_PORT":             os.Getenv("SWA_SMTP_PORT"),
		"SWA_HTTP_ADDR":             "127.0.0.1:0",
		"SWA_ADMIN_ADDR":            "127.0.0.1:0",
		"SWA_CONTROLPLANE_ADDR":     "127.0.0.1:0",
		"SWA_DEV_DIR":               t.TempDir(),
		"SWA_LOG_FORMAT":            "json",
		"SWA_SHUTDOWN_TIMEOUT":      "5s",
	}
	// Registry ids start at 1 in every fresh platform database, so each
	// harness keeps its Redis keys (sessions, rate-limit counters) apart.
	_, redisPrefix := pgtest.Redis(t)
	h.env["SWA_REDIS_PREFIX"] = redisPrefix
	// The data plane reads the registry as the stack's read-only login
	// (a member of swa_dataplane), as it does under make dev.
	if reader := os.Getenv("SWA_PLATFORM_READ_DATABASE_URL"); reader != "" {
		u, _ := url.Parse(h.env["SWA_PLATFORM_DATABASE_URL"])
		h.env["SWA_PLATFORM_READ_DATABASE_URL"] = pgtest.WithDatabase(reader, strings.TrimPrefix(u.Path, "/"))
	}
	t.Cleanup(h.dropTenants)
	return h
}

// start runs swa dev until the demo tenants are up.
func (h *devHarness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	ready := make(chan devURLs, 1)
	e := env{stdout: &lockedWriter{mu: &h.mu, w: &h.out}, stderr: &lockedWriter{mu: &h.mu, w: &h.logs}, getenv: func(k string) string { return h.env[k] }}
	go func() { h.done <- runDev(ctx, e, func(u devURLs) { ready <- u }) }()
	select {
	case h.urls = <-ready:
	case err := <-h.done:
		h.t.Fatalf("swa dev stopped: %v\n%s", err, h.logText())
	case <-time.After(60 * time.Second):
		h.t.Fatalf("swa dev did not come up\n%s", h.logText())
	}
	tok, err := os.ReadFile(filepath.Join(h.env["SWA_DEV_DIR"], "admin.token"))
	if err != nil {
		h.t.Fatal(err)
	}
	h.token = strings.TrimSpace(string(tok))
}

func (h *devHarness) stop() {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Fatalf("swa dev: %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Fatal("swa dev did not stop")
	}
}

func (h *devHarness) logText() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logs.String()
}

// dropTenants removes the databases and roles created under the prefix.
func (h *devHarness) dropTenants() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.admin)
	if err != nil {
		h.t.Errorf("cleanup: %v", err)
		return
	}
	defer conn.Close(ctx)
	like := strings.ReplaceAll(h.prefix, "_", `\_`) + "%"
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1`, like)
	if err != nil {
		h.t.Errorf("cleanup: %v", err)
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		conn.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %q IS_TEMPLATE false`, n)) //nolint:errcheck
		if _, err := conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %q WITH (FORCE)`, n)); err != nil {
			h.t.Errorf("cleanup %s: %v", n, err)
		}
	}
	rows, err = conn.Query(ctx, `SELECT rolname FROM pg_roles WHERE rolname LIKE $1`, like)
	if err != nil {
		h.t.Errorf("cleanup: %v", err)
		return
	}
	roles, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, r := range roles {
		if _, err := conn.Exec(ctx, fmt.Sprintf(`DROP ROLE IF EXISTS %q`, r)); err != nil {
			h.t.Errorf("cleanup %s: %v", r, err)
		}
	}
}

// get sends a GET to the data plane with the given Host header.
func (h *devHarness) get(host, path string) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.urls.Data+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Host = host
	return do(h.t, req)
}

// api calls the control plane with the admin token.
func (h *devHarness) api(method, path string, body any) (int, string) {
	h.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.urls.Control+path, r)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json")
	return do(h.t, req)
}

func do(t testing.TB, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// headersOnly sends a POST's headers announcing n bytes of form body to
// base (the localhost tenant) and reads the answer without sending the body.
func headersOnly(t testing.TB, base, path string, n int) (int, string) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", path, n)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("POST %s with %d bytes announced: %v", path, n, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestDevRunsThePlatformWithDemoTenants(t *testing.T) {
	h := newDevHarness(t)
	h.start()

	if code, body := do(t, mustRequest(t, h.urls.Admin+"/healthz")); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	if code, body := do(t, mustRequest(t, h.urls.Admin+"/readyz")); code != 200 {
		t.Fatalf("/readyz = %d %s", code, body)
	}

	// Every demo tenant answers on its hosts; localhost is startupwebapp.
	for _, host := range []string{"localhost", "startupwebapp.localhost", "healthtech.localhost", "fintech.localhost:8000"} {
		code, body := h.get(host, "/clientevent/")
		if code != 200 || !strings.Contains(body, "clientevent API") {
			t.Fatalf("%s /clientevent/ = %d %q", host, code, body)
		}
	}
	if code, _ := h.get("unknown.localhost", "/clientevent/"); code != 404 {
		t.Fatalf("unknown host = %d, want 404", code)
	}

	// Each demo tenant's storefront home is there, each in its own look.
	themes := map[string]string{}
	for host, name := range map[string]string{"localhost": "StartupWebApp", "healthtech.localhost": "HealthTech Supply", "fintech.localhost": "FinTech Store"} {
		code, body := h.get(host, "/")
		theme := regexp.MustCompile(`/_/theme-[0-9a-f]+\.css`).FindString(body)
		if code != 200 || !strings.Contains(body, "<title>"+name+"</title>") || theme == "" {
			t.Fatalf("%s / = %d, want the storefront of %s:\n%.400s", host, code, name, body)
		}
		if other, seen := themes[theme]; seen {
			t.Fatalf("%s and %s share the theme %s", host, other, theme)
		}
		themes[theme] = host
	}

	// A member API call takes 64 KiB of body at most; the back office's CSV
	// upload several MiB (refused here for want of a staff session, not for
	// its size).
	post := func(path string, n int) (int, string) {
		req, err := http.NewRequest(http.MethodPost, h.urls.Data+path, strings.NewReader("username="+strings.Repeat("x", n)))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "localhost"
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return do(t, req)
	}
	// The refusal comes on the Content-Length alone, before any of the
	// body: the headers are sent, then the answer read (a client that kept
	// writing the body after it would meet the closed connection).
	if code, body := headersOnly(t, h.urls.Data, "/user/login", 100<<10); code != http.StatusRequestEntityTooLarge ||
		!strings.Contains(body, `"payload-too-large"`) || !strings.Contains(body, "64 KiB") {
		t.Fatalf("100 KiB login = %d %s, want 413 payload-too-large naming 64 KiB", code, body)
	}
	// The one-click unsubscribe is posted by mail clients with no CSRF
	// token: serve.go exempts that path alone, so a forged token reaches
	// the endpoint (and is refused there), while the confirm step it
	// mirrors is refused by the CSRF check first.
	if code, body := post(account.OneClickPath+"?token=forged", 0); code != http.StatusOK || !strings.Contains(body, `"email_unsubscribe_one_click":"error"`) || strings.Contains(body, "csrf") {
		t.Fatalf("one-click unsubscribe without a CSRF token = %d %s, want the endpoint's own refusal of the token", code, body)
	}
	if code, body := post("/user/email-unsubscribe-confirm?token=forged", 0); code != http.StatusForbidden || !strings.Contains(body, "csrf") {
		t.Fatalf("unsubscribe confirm without a CSRF token = %d %s, want 403 from the CSRF check", code, body)
	}
	if code, body := post("/admin/api/v1/imports", 2<<20); code == http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB CSV upload = %d %s, want it read", code, body)
	}

	// A beacon on healthtech lands in healthtech's database only.
	code, body := h.get("healthtech.localhost", "/clientevent/pageview?client_event_id=null&anonymous_id=dev-test&url=http%3A%2F%2Fhealthtech.localhost%3A8080%2F&pageWidth=800")
	if code != 200 || body != `"thank you"` {
		t.Fatalf("pageview = %d %s", code, body)
	}
	waitRows(t, h.tenantDSN("healthtech"), `SELECT count(*) FROM pageview WHERE anonymous_id = 'dev-test'`, 1)
	waitRows(t, h.tenantDSN("fintech"), `SELECT count(*) FROM pageview WHERE anonymous_id = 'dev-test'`, 0)

	// The control plane lists the three tenants, active, the forks marked.
	code, body = h.api(http.MethodGet, "/v1/tenants", nil)
	if code != 200 {
		t.Fatalf("GET /v1/tenants = %d %s", code, body)
	}
	var list struct {
		Tenants []struct {
			Slug, Status string
			ForkOf       *string `json:"fork_of"`
		}
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tn := range list.Tenants {
		fork := ""
		if tn.ForkOf != nil {
			fork = *tn.ForkOf
		}
		got[tn.Slug] = tn.Status + "/" + fork
	}
	want := map[string]string{"startupwebapp": "active/", "healthtech": "active/startupwebapp", "fintech": "active/startupwebapp"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tenants = %v, want %v", got, want)
	}

	// The banner names each demo tenant's back office with its owner's
	// login, and the login works there.
	h.mu.Lock()
	banner := h.out.String()
	h.mu.Unlock()
	for _, d := range demoTenants {
		m := regexp.MustCompile(d.slug + `\s+http://(` + d.slug + `\.localhost):\d+/admin/\s+(\S+@\S+)\s+(\S+)`).FindStringSubmatch(banner)
		if m == nil {
			t.Fatalf("the banner has no back-office login for %s:\n%s", d.slug, banner)
		}
		req, err := http.NewRequest(http.MethodPost, h.urls.Data+"/admin/api/v1/session",
			strings.NewReader(`{"email":"`+m[2]+`","password":"`+m[3]+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = m[1]
		req.Header.Set("Content-Type", "application/json")
		if code, body := do(t, req); code != 200 || !strings.Contains(body, `"totp_required":false`) {
			t.Fatalf("back-office sign-in on %s = %d %s", d.slug, code, body)
		}
		if strings.Contains(h.logText(), m[3]) {
			t.Fatal("the dev owner's password appears in the log")
		}
	}

	// .dev/swa.env lets a second terminal reach the control plane.
	envFile, err := os.ReadFile(filepath.Join(h.env["SWA_DEV_DIR"], "swa.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SWA_CONTROLPLANE_URL='" + h.urls.Control + "'", "SWA_ADMIN_TOKEN='" + h.token + "'", "SWA_STRIPE_WEBHOOK_SECRET='whsec_"} {
		if !strings.Contains(string(envFile), want) {
			t.Fatalf("swa.env lacks %q", want)
		}
	}
	// Secrets never reach the log.
	if strings.Contains(h.logText(), h.token) {
		t.Fatal("the admin token appears in the log")
	}

	// A second start reuses everything: same tenants, same ids, same token.
	h.stop()
	h.start()
	code, body2 := h.api(http.MethodGet, "/v1/tenants", nil)
	if code != 200 || !sameTenantIDs(t, body, body2) {
		t.Fatalf("second start changed the tenants:\n%s\n%s", body, body2)
	}
	if code, _ := h.get("localhost", "/clientevent/"); code != 200 {
		t.Fatalf("after restart localhost = %d", code)
	}
}

func sameTenantIDs(t *testing.T, a, b string) bool {
	ids := func(s string) string {
		var v struct{ Tenants []struct{ ID int64 } }
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(v.Tenants)
	}
	return ids(a) == ids(b)
}

func mustRequest(t testing.TB, url string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// tenantDSN is the superuser DSN of a tenant's database.
func (h *devHarness) tenantDSN(slug string) string {
	return pgtest.WithDatabase(h.admin, h.prefix+slug)
}

// waitRows polls query until it returns want: analytics rows are batched.
// For want == 0 it waits out a few flush intervals first, then checks once.
func waitRows(t *testing.T, dsn, query string, want int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if want == 0 {
		time.Sleep(500 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if want == 0 || time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", query, n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
