package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
)

// TestMigrateWavesCLI runs `swa migrate --all-tenants` with wave flags
// against a test control plane: a canary that cannot be migrated stops the
// rollout with exit status 1 naming it, a failing gate command stops it
// after the canaries, the dry run changes nothing, and a healthy run
// migrates everyone.
func TestMigrateWavesCLI(t *testing.T) {
	t.Parallel()
	pe := provisiontest.New(t, provisiontest.Config{Tag: "mw"})
	ctx := context.Background()
	var slugs []string
	for i := range 6 {
		slug := fmt.Sprintf("mw-%d", i)
		if _, err := pe.Service.Create(ctx, provision.CreateRequest{Slug: slug}, "t"); err != nil {
			t.Fatal(err)
		}
		slugs = append(slugs, slug)
	}
	vars := map[string]string{
		"SWA_PLATFORM_DATABASE_URL": pe.PlatformURL,
		"SWA_TENANT_DB_ADMIN_URL":   pe.AdminURL,
		"SWA_TENANT_DB_PREFIX":      pe.Prefix,
		"SWA_TENANT_DB_PARAMS":      "sslmode=disable",
		"SWA_SECRETS_BACKEND":       "local",
		"SWA_MASTER_KEY":            pe.MasterKey,
		"SWA_BASE_DOMAIN":           "example.test",
		"SWA_LOG_LEVEL":             "error",
	}
	swa := func(args ...string) (string, string, int) {
		t.Helper()
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		err := run(ctx, append([]string{"migrate"}, args...), &out, &errOut, func(k string) string { return vars[k] })
		if err != nil {
			return out.String(), err.Error(), exitCode(err)
		}
		return out.String(), "", 0
	}
	lastAt := func() map[string]string {
		out := map[string]string{}
		for _, s := range slugs {
			tn, err := pe.Registry.Tenant(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			out[s] = fmt.Sprint(tn.LastMigrationAt)
		}
		return out
	}

	if _, msg, code := swa("--canary", "mw-1"); code != 2 {
		t.Errorf("--canary without --all-tenants: exit %d %s", code, msg)
	}
	if _, msg, code := swa("--all-tenants", "--canary", "mw-1", "--canary-percent", "10"); code != 2 {
		t.Errorf("--canary and --canary-percent: exit %d %s", code, msg)
	}
	if _, msg, code := swa("--all-tenants", "--gate-command", "true"); code != 2 {
		t.Errorf("a gate without canaries: exit %d %s", code, msg)
	}

	start := lastAt()
	out, msg, code := swa("--all-tenants", "--dry-run", "--canary", "mw-2", "--batch", "2")
	if code != 0 || !strings.Contains(out, "wave canary (1 tenants)") || !strings.Contains(out, "wave batch 3 (1 tenants)") ||
		!strings.Contains(out, "dry run: 6 tenants, 0 with pending migrations, nothing changed") {
		t.Errorf("dry run: exit %d %s\n%s", code, msg, out)
	}
	if after := lastAt(); fmt.Sprint(after) != fmt.Sprint(start) {
		t.Errorf("the dry run touched tenants: %v -> %v", start, after)
	}

	// mw-2 cannot log in.
	bad, err := pe.Registry.Tenant(ctx, "mw-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pe.Platform.Exec(ctx, "ALTER ROLE \""+bad.DBRole+"\" NOLOGIN"); err != nil {
		t.Fatal(err)
	}
	out, msg, code = swa("--all-tenants", "--canary", "mw-2", "--batch", "2")
	if code != 1 || !strings.Contains(msg, "mw-2") || !strings.Contains(out, "STOPPED at canary: mw-2 failed") ||
		!strings.Contains(out, "not migrated (5)") {
		t.Errorf("failing canary: exit %d %q\n%s", code, msg, out)
	}
	after := lastAt()
	for _, s := range slugs {
		if s != "mw-2" && after[s] != start[s] {
			t.Errorf("%s touched after the canary failed", s)
		}
	}
	if _, err := pe.Platform.Exec(ctx, "ALTER ROLE \""+bad.DBRole+"\" LOGIN"); err != nil {
		t.Fatal(err)
	}

	falseBin, err := exec.LookPath("false")
	if err != nil {
		t.Fatal(err)
	}
	out, msg, code = swa("--all-tenants", "--canary", "mw-2", "--gate-command", falseBin, "--batch", "2")
	if code != 1 || !strings.Contains(msg, "gate") || !strings.Contains(out, "not migrated (5)") {
		t.Errorf("failing gate: exit %d %q\n%s", code, msg, out)
	}
	after = lastAt()
	for _, s := range slugs {
		if s != "mw-2" && after[s] != start[s] {
			t.Errorf("%s touched past a failing gate", s)
		}
	}

	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	out, msg, code = swa("--all-tenants", "--canary-percent", "34", "--gate-command", trueBin, "--batch", "2")
	if code != 0 || strings.Contains(out, "STOPPED") || strings.Count(out, " ok\n") != 6 {
		t.Errorf("healthy run: exit %d %q\n%s", code, msg, out)
	}
	after = lastAt()
	for _, s := range slugs {
		if after[s] == start[s] {
			t.Errorf("%s not migrated by the healthy run", s)
		}
	}
}
