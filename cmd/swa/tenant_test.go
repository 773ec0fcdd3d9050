package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/startupwebapp/platform/controlplane/api"
	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
	"github.com/startupwebapp/platform/platform/logtest"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// tenantCLIHarness serves the real admin API, with real provisioning on
// the test cluster, on a loopback port, and runs `swa tenant` against it.
type tenantCLIHarness struct {
	t      *testing.T
	env    map[string]string
	token  string
	logs   *logtest.Buffer
	output strings.Builder // every stdout and stderr, to search for leaked secrets
	pe     *provisiontest.Env
}

func newTenantCLIHarness(t *testing.T) *tenantCLIHarness {
	t.Helper()
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	pe := provisiontest.New(t, provisiontest.Config{Tag: "c", Log: log})
	token := pgtest.RandomName("cli-admin-token-")
	srv, err := api.New(context.Background(), api.Options{Provision: pe.Service, Log: log, BootstrapToken: token})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.App().Listener(ln) //nolint:errcheck
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &tenantCLIHarness{
		t:     t,
		token: token,
		logs:  logs,
		pe:    pe,
		env:   map[string]string{"SWA_CONTROLPLANE_URL": "http://" + ln.Addr().String(), "SWA_ADMIN_TOKEN": token},
	}
}

// run executes `swa tenant args...` in-process with stdin, and returns its
// standard output, the error text and the exit status main would use.
func (h *tenantCLIHarness) run(env map[string]string, stdin string, args ...string) (string, string, int) {
	h.t.Helper()
	return h.runCommand(tenantCommand, env, stdin, args...)
}

// runCommand is run for another command of the API's clients (`swa dbserver`).
func (h *tenantCLIHarness) runCommand(root func(func(string) string) *cobra.Command, env map[string]string, stdin string,
	args ...string) (string, string, int) {
	h.t.Helper()
	if env == nil {
		env = h.env
	}
	cmd := root(func(k string) string { return env[k] })
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(strings.NewReader(stdin))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	code, msg := 0, ""
	if err != nil {
		code, msg = exitCode(err), err.Error()
	}
	h.output.WriteString(out.String() + errOut.String() + msg + "\n")
	return out.String(), msg, code
}

// ok runs a command that must succeed and returns its output.
func (h *tenantCLIHarness) ok(args ...string) string {
	h.t.Helper()
	out, msg, code := h.run(nil, "", args...)
	if code != 0 {
		h.t.Fatalf("swa tenant %s: exit %d: %s", strings.Join(args, " "), code, msg)
	}
	return out
}

func TestTenantCLI(t *testing.T) {
	t.Parallel()
	h := newTenantCLIHarness(t)

	t.Run("create and wait", func(t *testing.T) {
		out := h.ok("create", "--slug", "acme", "--name", "Acme Inc", "--domain", "shop.acme.test", "--domain", "www.acme.test",
			"--origin", "http://localhost:8080", "--frontend-origin", "http://localhost:8080", "--wait")
		for _, want := range []string{"slug:", "acme", "status:", "active", "Acme Inc", "shop.acme.test", "www.acme.test", "http://localhost:8080"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("create without wait prints the operation", func(t *testing.T) {
		out := h.ok("create", "--slug", "quick")
		if !strings.Contains(out, "operation ") || !strings.Contains(out, "/v1/operations/") {
			t.Fatalf("output %q", out)
		}
		// Let it finish before other steps list tenants.
		deadline := time.Now().Add(time.Minute)
		for !regexp.MustCompile(`status:\s+active\n`).MatchString(h.ok("show", "quick")) {
			if time.Now().After(deadline) {
				t.Fatal("quick never became active")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("fork", func(t *testing.T) {
		out := h.ok("fork", "acme", "acme-copy", "--name", "Copy", "--wait")
		if !strings.Contains(out, "active") || !strings.Contains(out, "fork of:") || !strings.Contains(out, "acme") {
			t.Fatalf("fork output:\n%s", out)
		}
		// acme trusts http://localhost:8080; its fork trusts no origin of acme's.
		var tn struct {
			Origins  []string       `json:"origins"`
			Settings map[string]any `json:"settings"`
		}
		if err := json.Unmarshal([]byte(h.ok("show", "acme-copy", "--json")), &tn); err != nil {
			t.Fatal(err)
		}
		if len(tn.Origins) != 0 || tn.Settings["frontend_origin"] != "http://localhost:8080" {
			t.Fatalf("fork origins %v settings %v, want no origins and acme's settings", tn.Origins, tn.Settings)
		}
	})
	t.Run("owner", func(t *testing.T) {
		out, msg, code := h.run(nil, "Ada-Owner-Pass-1!\n", "owner", "create", "acme", "--email", "ada@acme.test", "--name", "Ada Owner", "--password", "-")
		if code != 0 || !strings.Contains(out, "ada@acme.test is now an owner of acme") || strings.Contains(out, "Ada-Owner-Pass-1!") {
			t.Fatalf("owner from stdin: exit %d %s\n%s", code, msg, out)
		}
		if _, _, code := h.run(nil, "", "owner", "create", "acme", "--email", "ADA@acme.test", "--name", "Ada"); code != exitConflict {
			t.Errorf("same address again: exit %d, want %d", code, exitConflict)
		}
		if _, msg, code := h.run(nil, "weak\n", "owner", "create", "acme", "--email", "bo@acme.test", "--name", "Bo", "--password", "-"); code == 0 || !strings.Contains(msg, "password") {
			t.Errorf("weak password: exit %d %q", code, msg)
		}
		if _, _, code := h.run(nil, "", "owner", "create", "acme", "--email", "bo@acme.test", "--name", "Bo", "--password", "Plain-Text-1!"); code != exitUsage {
			t.Errorf("password on the command line: exit %d, want %d", code, exitUsage)
		}
		out = h.ok("owner", "create", "acme-copy", "--email", "bo@acme.test", "--name", "Bo Owner")
		if !regexp.MustCompile(`(?m)^password: Owner-[0-9a-f]{24}!$`).MatchString(out) {
			t.Errorf("made-up password not shown once:\n%s", out)
		}
	})
	t.Run("list", func(t *testing.T) {
		out := h.ok("list")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "SLUG") || !strings.HasPrefix(lines[1], "acme ") {
			t.Fatalf("list:\n%s", out)
		}
		var ts []struct {
			Slug   string `json:"slug"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal([]byte(h.ok("list", "--json")), &ts); err != nil || len(ts) != 3 {
			t.Fatalf("list --json: %v %v", ts, err)
		}
		if out := h.ok("list", "--status", "suspended"); strings.Count(out, "\n") != 1 {
			t.Fatalf("suspended list:\n%s", out)
		}
	})
	t.Run("show json", func(t *testing.T) {
		var tn struct {
			Slug    string   `json:"slug"`
			Domains []string `json:"domains"`
		}
		if err := json.Unmarshal([]byte(h.ok("show", "acme", "--json")), &tn); err != nil || tn.Slug != "acme" || len(tn.Domains) != 3 {
			t.Fatalf("show --json: %+v %v", tn, err)
		}
	})
	t.Run("suspend and resume", func(t *testing.T) {
		if out := h.ok("suspend", "acme"); !strings.Contains(out, "suspended") {
			t.Fatalf("suspend:\n%s", out)
		}
		if _, _, code := h.run(nil, "", "suspend", "acme"); code != exitConflict {
			t.Fatalf("second suspend exit %d, want %d", code, exitConflict)
		}
		if out := h.ok("resume", "acme"); !strings.Contains(out, "active") {
			t.Fatalf("resume:\n%s", out)
		}
	})
	t.Run("domains", func(t *testing.T) {
		if out := h.ok("domains", "add", "acme", "api.acme.test"); !strings.Contains(out, "api.acme.test") {
			t.Fatalf("add:\n%s", out)
		}
		if _, _, code := h.run(nil, "", "domains", "add", "acme-copy", "api.acme.test"); code != exitConflict {
			t.Fatalf("taken domain exit %d", code)
		}
		h.ok("domains", "remove", "acme", "api.acme.test")
		if out := h.ok("domains", "list", "acme"); strings.Contains(out, "api.acme.test") || !strings.HasPrefix(out, "acme.example.test\n") {
			t.Fatalf("list after remove:\n%s", out)
		}
		if _, _, code := h.run(nil, "", "domains", "remove", "acme", "api.acme.test"); code != exitNotFound {
			t.Fatalf("second remove exit %d", code)
		}
	})
	t.Run("origins", func(t *testing.T) {
		h.ok("origins", "add", "acme", "http://localhost:3000")
		if out := h.ok("origins", "list", "acme"); !strings.Contains(out, "http://localhost:3000") {
			t.Fatalf("origins:\n%s", out)
		}
		h.ok("origins", "remove", "acme", "http://localhost:3000")
		if out := h.ok("origins", "list", "acme"); strings.Contains(out, "3000") {
			t.Fatalf("origins after remove:\n%s", out)
		}
		if _, _, code := h.run(nil, "", "origins", "add", "acme", "not an origin"); code != exitUsage {
			t.Fatalf("bad origin exit %d", code)
		}
	})
	secretKey := "sk_test_" + strings.Repeat("CliS3cret", 3)
	smtpPass := "smtp-cli-" + strings.Repeat("P4ss", 4)
	t.Run("secrets", func(t *testing.T) {
		out, msg, code := h.run(nil, secretKey+"\n", "secrets", "set", "acme", "--stripe-secret-key", "-",
			"--smtp-password", smtpPass, "--smtp-port", "2525")
		if code != 0 {
			t.Fatalf("secrets set exit %d: %s", code, msg)
		}
		for _, want := range []string{"stripe_secret_key  yes", "smtp_password      yes", "smtp_port          yes", "stripe_webhook_secret  no"} {
			if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
				t.Errorf("secrets set output lacks %q:\n%s", want, out)
			}
		}
		var st map[string]any
		if err := json.Unmarshal([]byte(h.ok("secrets", "show", "acme", "--json")), &st); err != nil || st["stripe_secret_key"] != true {
			t.Fatalf("secrets show --json: %v %v", st, err)
		}
		if _, _, code := h.run(nil, "x", "secrets", "set", "acme", "--smtp-password", "-", "--smtp-username", "-"); code != exitUsage {
			t.Errorf("two stdin flags exit %d", code)
		}
		if _, _, code := h.run(nil, "", "secrets", "set", "acme"); code != exitUsage {
			t.Errorf("no secret flags exit %d", code)
		}
		if _, _, code := h.run(nil, "", "secrets", "set", "acme", "--stripe-secret-key", "not-a-key"); code != exitUsage {
			t.Errorf("bad key exit %d", code)
		}
	})
	t.Run("migrate", func(t *testing.T) {
		if out := h.ok("migrate"); !strings.Contains(out, "latest tenant migration") || !strings.Contains(out, "acme") {
			t.Fatalf("migrate status:\n%s", out)
		}
		if out := h.ok("migrate", "acme", "--wait"); !strings.Contains(out, "last migration:") || !strings.Contains(out, "ok") {
			t.Fatalf("migrate acme:\n%s", out)
		}
		if out := h.ok("migrate", "--all", "--wait"); !strings.Contains(out, "succeeded") {
			t.Fatalf("migrate --all:\n%s", out)
		}
		if _, _, code := h.run(nil, "", "migrate", "acme", "--all"); code != exitUsage {
			t.Fatalf("slug and --all exit %d", code)
		}
	})
	t.Run("rotate secrets", func(t *testing.T) {
		if out := h.ok("rotate-secrets", "acme", "--wait"); !strings.Contains(out, "active") {
			t.Fatalf("rotate:\n%s", out)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if _, msg, code := h.run(nil, "", "delete", "acme-copy"); code != exitUsage || !strings.Contains(msg, "--yes") {
			t.Fatalf("delete without --yes: exit %d %q", code, msg)
		}
		if out := h.ok("delete", "acme-copy", "--yes", "--wait"); !strings.Contains(out, "deleted") {
			t.Fatalf("delete:\n%s", out)
		}
	})
	t.Run("errors", func(t *testing.T) {
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte(h.token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		url := h.env["SWA_CONTROLPLANE_URL"]
		cases := []struct {
			name string
			env  map[string]string
			args []string
			code int
		}{
			{"unknown tenant", nil, []string{"show", "nobody"}, exitNotFound},
			{"duplicate slug", nil, []string{"create", "--slug", "acme"}, exitConflict},
			{"bad slug", nil, []string{"create", "--slug", "Not Valid"}, exitUsage},
			{"missing slug", nil, []string{"create"}, exitUsage},
			{"retry active", nil, []string{"retry", "acme"}, exitConflict},
			{"missing argument", nil, []string{"show"}, exitUsage},
			{"extra argument", nil, []string{"show", "a", "b"}, exitUsage},
			{"unknown flag", nil, []string{"list", "--colour"}, exitUsage},
			{"unknown subcommand", nil, []string{"explode"}, exitUsage},
			{"unknown domains subcommand", nil, []string{"domains", "rename", "acme"}, exitUsage},
			{"no token", map[string]string{"SWA_CONTROLPLANE_URL": url}, []string{"list"}, exitUsage},
			{"wrong token", map[string]string{"SWA_CONTROLPLANE_URL": url, "SWA_ADMIN_TOKEN": "wrong-token-value"}, []string{"list"}, exitFailure},
			{"token file", map[string]string{"SWA_CONTROLPLANE_URL": url, "SWA_ADMIN_TOKEN_FILE": tokenFile}, []string{"show", "acme"}, 0},
			{"token and file", map[string]string{"SWA_CONTROLPLANE_URL": url, "SWA_ADMIN_TOKEN": h.token, "SWA_ADMIN_TOKEN_FILE": tokenFile}, []string{"list"}, exitUsage},
			{"bad url", map[string]string{"SWA_CONTROLPLANE_URL": "ftp://x", "SWA_ADMIN_TOKEN": h.token}, []string{"list"}, exitUsage},
			{"server down", map[string]string{"SWA_CONTROLPLANE_URL": "http://127.0.0.1:1", "SWA_ADMIN_TOKEN": h.token}, []string{"list"}, exitFailure},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				_, msg, code := h.run(tc.env, "", tc.args...)
				if code != tc.code {
					t.Fatalf("exit %d (%q), want %d", code, msg, tc.code)
				}
				if code != 0 && msg == "" {
					t.Error("no error message")
				}
			})
		}
	})
	t.Run("no secret in any output or log", func(t *testing.T) {
		all := h.output.String() + h.logs.String()
		for name, v := range map[string]string{"stripe key": secretKey, "smtp password": smtpPass, "admin token": h.token} {
			if strings.Contains(all, v) {
				t.Errorf("%s appears in CLI output or the server log", name)
			}
		}
	})
}
