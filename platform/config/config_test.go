package config

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8000" || c.PoolBudget != 50 || !c.RateLimits || c.SecretsBackend != "local" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.PlatformReadDatabaseURL != c.PlatformDatabaseURL || c.TenantDBAdminURL != c.PlatformDatabaseURL {
		t.Fatalf("read and admin URLs should default to the platform URL")
	}
	if c.TenantDBHost != "127.0.0.1:5433" {
		t.Fatalf("TenantDBHost = %q", c.TenantDBHost)
	}
}

func TestLoadValues(t *testing.T) {
	c, err := Load(envOf(map[string]string{
		"SWA_RATE_LIMITS":       "off",
		"SWA_POOL_IDLE_TIMEOUT": "90s",
		"SWA_TRUSTED_PROXIES":   "10.0.0.0/8, 127.0.0.1",
		"SWA_BASE_DOMAIN":       "Example.COM",
	}))
	if err != nil {
		t.Fatal(err)
	}
	tls, err := Load(envOf(map[string]string{
		"SWA_HTTPS_ADDR": ":8443", "SWA_ACME_DIRECTORY": "https://acme.test/dir",
		"SWA_TLS_CERT_FILE": "w.crt", "SWA_TLS_KEY_FILE": "w.key",
	}))
	if err != nil || tls.HTTPSAddr != ":8443" || tls.ACMEDirectory != "https://acme.test/dir" || tls.TLSKeyFile != "w.key" {
		t.Fatalf("TLS values: %+v, %v", tls, err)
	}
	if c.RateLimits || c.PoolIdleTimeout != 90*time.Second || c.BaseDomain != "example.com" ||
		strings.Join(c.TrustedProxies, "|") != "10.0.0.0/8|127.0.0.1" {
		t.Fatalf("values not applied: %+v", c)
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	cases := map[string]string{
		"SWA_ENV":                   "staging",
		"SWA_HTTP_ADDR":             "8000",
		"SWA_POOL_BUDGET":           "0",
		"SWA_POOL_MAX_CONNS":        "many",
		"SWA_SHUTDOWN_TIMEOUT":      "-1s",
		"SWA_PLATFORM_DATABASE_URL": "mysql://x/y",
		"SWA_REDIS_URL":             "localhost:6379",
		"SWA_TRUSTED_PROXIES":       "not-an-ip",
		"SWA_RATE_LIMITS":           "maybe",
		"SWA_SMTP_PORT":             "70000",
		"SWA_BASE_DOMAIN":           "http://x",
		"SWA_HTTPS_ADDR":            ":8443",                 // neither a certificate nor ACME
		"SWA_TLS_CERT_FILE":         "/etc/swa/wildcard.crt", // without its key
		"SWA_ACME_DIRECTORY":        "http://acme.test/dir",
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Load(envOf(map[string]string{name: value}))
			if err == nil {
				t.Fatalf("%s=%q accepted", name, value)
			}
			if !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error should be one line naming %s: %v", name, err)
			}
		})
	}
}

func TestSecretFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(envOf(map[string]string{"SWA_ADMIN_TOKEN_FILE": path}))
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminToken != "s3cret-token" {
		t.Fatalf("AdminToken = %q", c.AdminToken)
	}
	if _, err := Load(envOf(map[string]string{"SWA_ADMIN_TOKEN_FILE": path, "SWA_ADMIN_TOKEN": "x"})); err == nil {
		t.Fatal("both a value and a _FILE were accepted")
	}
	if _, err := Load(envOf(map[string]string{"SWA_ADMIN_TOKEN_FILE": path + ".missing"})); err == nil {
		t.Fatal("a missing _FILE was accepted")
	}
}

func TestDumpMasksSecrets(t *testing.T) {
	c, err := Load(envOf(map[string]string{
		"SWA_PLATFORM_DATABASE_URL": "postgres://swa:hunter2@db:5432/swa_platform",
		"SWA_ADMIN_TOKEN":           "tok-abcdef",
		"SWA_MASTER_KEY":            "bWFzdGVy",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.WriteDump(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, secret := range []string{"hunter2", "tok-abcdef", "bWFzdGVy"} {
		if strings.Contains(out, secret) {
			t.Fatalf("dump shows a secret %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "SWA_PLATFORM_DATABASE_URL=postgres://swa:%2A%2A%2A@db:5432/swa_platform") &&
		!strings.Contains(out, "SWA_PLATFORM_DATABASE_URL=postgres://swa:***@db:5432/swa_platform") {
		t.Fatalf("URL should keep its host and lose its password:\n%s", out)
	}
}

var update = flag.Bool("update", false, "rewrite the README's configuration table")

// The README's configuration table is generated from the options; this keeps
// it in step with the code.
func TestReadmeReference(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const start, end = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"
	s := string(raw)
	i, j := strings.Index(s, start), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("README.md lacks the config-reference markers")
	}
	var want bytes.Buffer
	if err := WriteReference(&want); err != nil {
		t.Fatal(err)
	}
	if *update {
		s = s[:i+len(start)] + want.String() + s[j:]
		if err := os.WriteFile(filepath.Join("..", "..", "README.md"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := s[i+len(start) : j]; got != want.String() {
		t.Fatalf("README.md configuration table is stale; regenerate it with `go test ./platform/config -run TestReadmeReference -update`.\nwant:\n%s", want.String())
	}
}

// libpq and pgx also take credentials as query parameters of the URL; a
// masked URL shows none of them.
func TestMaskHidesQueryCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, secret, keep string
	}{
		{"password param", "postgres://swa@db:5432/swa_platform?sslmode=require&password=hunter2", "hunter2", "sslmode=require"},
		{"user info and param", "postgres://swa:pw1@db/swa_platform?password=hunter3", "hunter3", "db/swa_platform"},
		{"ssl key password", "postgres://swa@db/p?sslpassword=hunter4&sslmode=verify-full", "hunter4", "sslmode=verify-full"},
		{"redis password in query", "redis://db:6379/0?password=hunter5", "hunter5", "db:6379"},
		{"upper-case name", "postgres://swa@db/p?PASSWORD=hunter6", "hunter6", "db/p"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Mask(tc.in)
			if strings.Contains(got, tc.secret) {
				t.Errorf("Mask(%q) = %q shows the secret", tc.in, got)
			}
			if !strings.Contains(got, tc.keep) {
				t.Errorf("Mask(%q) = %q lost %q", tc.in, got, tc.keep)
			}
		})
	}
}

func TestPlatformSiteURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                             "",
		"http://swa-controlplane:8080": "http://swa-controlplane:8080",
		"https://cp.internal/":         "https://cp.internal",
		"http://10.0.3.4:8001":         "http://10.0.3.4:8001",
	} {
		c, err := Load(envOf(map[string]string{"SWA_PLATFORM_SITE_URL": in}))
		if err != nil || c.PlatformSiteURL != want {
			t.Errorf("SWA_PLATFORM_SITE_URL=%q: got %q, %v; want %q", in, c.PlatformSiteURL, err, want)
		}
	}
	for _, bad := range []string{
		"swa-controlplane:8080", "ftp://cp:21", "http://", "http://cp:8080/site", "http://cp:8080/?a=1",
		"http://user:pw@cp:8080", "http://cp:8080/#top", "://",
	} {
		_, err := Load(envOf(map[string]string{"SWA_PLATFORM_SITE_URL": bad}))
		if err == nil {
			t.Errorf("SWA_PLATFORM_SITE_URL=%q accepted", bad)
		} else if !strings.Contains(err.Error(), "SWA_PLATFORM_SITE_URL") || strings.Contains(err.Error(), "pw") {
			t.Errorf("SWA_PLATFORM_SITE_URL=%q: error should name the variable and hide credentials: %v", bad, err)
		}
	}
}
