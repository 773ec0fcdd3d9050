package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// TestTenantImportDjangoCLI imports the importer's fixture with `swa tenant
// import-django`, from a connection string on stdin, and prints the report;
// a dry run after it reports no changes.
func TestTenantImportDjangoCLI(t *testing.T) {
	t.Parallel()
	h := newTenantCLIHarness(t)
	admin := pgtest.AdminURL(t)
	name := pgtest.RandomName("django_")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	t.Cleanup(func() { pgtest.Drop(t, admin, name) })
	src := pgtest.WithDatabase(admin, name)
	fixture := filepath.Join("..", "..", "controlplane", "importer", "testdata", "django-startupwebapp.sql")
	if out, err := exec.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", src, "-f", fixture).CombinedOutput(); err != nil {
		t.Fatalf("psql restore: %v\n%s", err, out)
	}

	if _, msg, code := h.run(nil, "", "import-django", "--slug", "legacy"); code != 2 || !strings.Contains(msg, "--from") {
		t.Fatalf("without --from: exit %d %s", code, msg)
	}
	out, msg, code := h.run(nil, src+"\n", "import-django", "--from", "-", "--slug", "legacy", "--name", "Legacy")
	if code != 0 {
		t.Fatalf("import: exit %d: %s", code, msg)
	}
	for _, want := range []string{"TABLE", "account", "auth_user", "customer_order", "order_order", "note member:",
		"not imported django_session (14 rows)", "auth_user (staff)", "changes, 0 rows refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	out = h.ok("import-django", "--from", src, "--slug", "legacy", "--dry-run")
	if !strings.Contains(out, "0 changes a real run would make (dry run: nothing written), 0 rows refused") {
		t.Fatalf("dry run after the import:\n%s", out)
	}
	// A missing key file is a usage error.
	if _, msg, code := h.run(nil, "", "import-django", "--from", src, "--slug", "legacy", "--django-secret-key-file", filepath.Join(t.TempDir(), "none")); code != 2 {
		t.Fatalf("missing key file: exit %d %s", code, msg)
	}
	cfg, _ := pgx.ParseConfig(src)
	if strings.Contains(h.logs.String(), cfg.Password) {
		t.Error("the source's password is in the control plane's log")
	}
}

// TestTenantExportRestoreCLI exports a tenant with `swa tenant export` and
// restores it under another slug with `swa tenant restore`, on the
// platform's databases directly.
func TestTenantExportRestoreCLI(t *testing.T) {
	t.Parallel()
	pe := provisiontest.New(t, provisiontest.Config{Tag: "x"})
	ctx := context.Background()
	if _, err := pe.Service.Create(ctx, provision.CreateRequest{Slug: "orig", DisplayName: "Orig", Origins: []string{"https://www.orig.test"}}, "test"); err != nil {
		t.Fatal(err)
	}
	admin, _ := pgx.ParseConfig(pe.AdminURL)
	env := map[string]string{
		"SWA_ENV": "dev", "SWA_PLATFORM_DATABASE_URL": pe.PlatformURL, "SWA_TENANT_DB_ADMIN_URL": pe.AdminURL,
		"SWA_TENANT_DB_HOST": admin.Host + ":" + strconv.Itoa(int(admin.Port)), "SWA_TENANT_DB_PREFIX": pe.Prefix,
		"SWA_MASTER_KEY": pe.MasterKey, "SWA_BASE_DOMAIN": "example.test", "SWA_LOG_LEVEL": "error",
	}
	run := func(args ...string) (string, string, int) {
		cmd := tenantCommand(func(k string) string { return env[k] })
		var out, errOut bytes.Buffer
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		err := cmd.ExecuteContext(ctx)
		if err != nil {
			return out.String(), err.Error(), exitCode(err)
		}
		return out.String(), "", 0
	}
	file := filepath.Join(t.TempDir(), "orig.swa.gz")
	if out, msg, code := run("export", "orig", "--to", file); code != 0 || !strings.Contains(out, "exported orig at migration") {
		t.Fatalf("export: exit %d %s %s", code, msg, out)
	}
	if _, _, code := run("export", "orig", "--to", file); code != 2 {
		t.Fatalf("export over an existing file: exit %d", code)
	}
	if out, msg, code := run("restore", file, "--slug", "copy"); code != 0 || !strings.Contains(out, "restored orig") {
		t.Fatalf("restore: exit %d %s %s", code, msg, out)
	}
	tn, err := pe.Registry.Tenant(ctx, "copy")
	if err != nil || tn.DisplayName != "Orig" || len(tn.Origins) != 1 {
		t.Fatalf("restored tenant %+v %v", tn, err)
	}
}
