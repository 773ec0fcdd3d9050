package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

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
		"not imported django_session (14 rows)", "changes, 0 rows refused"} {
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
