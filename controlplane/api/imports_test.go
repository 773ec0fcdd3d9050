package api

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/importer"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// restoreDjango restores the importer's fixture (a pg_dump of the original
// Django app's database) into a new database with psql.
func restoreDjango(t *testing.T) string {
	t.Helper()
	admin := pgtest.AdminURL(t)
	name := pgtest.RandomName("django_")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pgtest.Drop(t, admin, name) })
	dsn := pgtest.WithDatabase(admin, name)
	out, err := exec.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn,
		"-f", filepath.Join("..", "importer", "testdata", "django-startupwebapp.sql")).CombinedOutput()
	if err != nil {
		t.Fatalf("psql restore: %v\n%s", err, out)
	}
	return dsn
}

// TestImportDjangoOperation runs an import through the API: the tenant is
// created, the report is the operation's, and the source's connection
// string (a secret) is in no record, log or answer, and is forgotten once
// the import is done.
func TestImportDjangoOperation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	src := restoreDjango(t)
	ctx := context.Background()
	password, _ := pgx.ParseConfig(src)
	body, _ := json.Marshal(map[string]any{"from": src, "display_name": "Legacy"})

	h.must(http.StatusBadRequest, "POST", "/v1/tenants/legacy/import-django", `{}`)
	h.must(http.StatusBadRequest, "POST", "/v1/tenants/legacy/import-django", `{"from":"postgres://x:y@[bad"}`)
	h.must(http.StatusConflict, "POST", "/v1/tenants/legacy/import-django", `{"from":"postgres://localhost/x","dry_run":true}`)

	r := h.must(http.StatusAccepted, "POST", "/v1/tenants/legacy/import-django", string(body))
	op := h.wait(r)
	if op.Status != registry.OperationSucceeded || op.Kind != kindImport {
		t.Fatalf("import: %s %v", op.Status, deref(op.Error))
	}
	var got operationReportBody
	h.must(http.StatusOK, "GET", "/v1/operations/"+op.ID.String()+"/report", "").decode(t, &got)
	if got.Report == nil || len(got.Report.Tables) < 45 || got.Report.Changes == 0 || got.Report.Refused != 0 {
		t.Fatalf("report: %+v", got.Report)
	}
	var tn registry.Tenant
	h.must(http.StatusOK, "GET", "/v1/tenants/legacy", "").decode(t, &tn)
	if tn.Status != registry.StatusActive || tn.DisplayName != "Legacy" {
		t.Fatalf("tenant: %+v", tn)
	}
	if _, err := h.store.Get(ctx, importSecretName("legacy")); err == nil {
		t.Fatal("the source connection is still stored after the import")
	}
	var ops string
	if err := h.pool.QueryRow(ctx, `SELECT string_agg(row_to_json(o)::text, ' ') FROM operations o`).Scan(&ops); err != nil {
		t.Fatal(err)
	}
	var audit string
	if err := h.pool.QueryRow(ctx, `SELECT string_agg(row_to_json(a)::text, ' ') FROM audit_log a`).Scan(&audit); err != nil {
		t.Fatal(err)
	}
	for where, text := range map[string]string{"operations": ops, "audit": audit, "logs": h.logs.String(), "answers": h.allResponses()} {
		if strings.Contains(text, password.Password) {
			t.Errorf("the source's password is in the %s", where)
		}
	}
	if !strings.Contains(h.logs.String(), "import: table done") {
		t.Error("no progress line per table in the log")
	}
	// Again: nothing changes.
	op = h.wait(h.must(http.StatusAccepted, "POST", "/v1/tenants/legacy/import-django", string(body)))
	h.must(http.StatusOK, "GET", "/v1/operations/"+op.ID.String()+"/report", "").decode(t, &got)
	if op.Status != registry.OperationSucceeded || got.Report == nil || got.Report.Changes != 0 {
		t.Fatalf("second import: %s %v, report %+v", op.Status, deref(op.Error), got.Report)
	}
}

// TestImportResumesAfterRestart: an import accepted by a control plane that
// stopped is run by the next one from its stored request; one whose request
// is gone fails with a clear message.
func TestImportResumesAfterRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	src := restoreDjango(t)
	ctx := context.Background()
	reg := h.prov.Registry()
	kept := h.create("kept", "")
	lost := h.create("lost", "")
	raw, _ := json.Marshal(importer.Request{Slug: "kept", From: src})
	if _, err := h.store.Put(ctx, importSecretName("kept"), raw); err != nil {
		t.Fatal(err)
	}
	keptID, err := reg.QueueOperation(ctx, kindImport, kept.ID, "ops")
	if err != nil {
		t.Fatal(err)
	}
	lostID, err := reg.QueueOperation(ctx, kindImport, lost.ID, "ops")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(ctx, Options{Provision: h.prov})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx) //nolint:errcheck
	deadline := time.Now().Add(90 * time.Second)
	for {
		a, err1 := reg.GetOperation(ctx, keptID)
		b, err2 := reg.GetOperation(ctx, lostID)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if a.FinishedAt != nil && b.FinishedAt != nil {
			if a.Status != registry.OperationSucceeded {
				t.Fatalf("resumed import: %s %s", a.Status, deref(a.Error))
			}
			if b.Status != registry.OperationFailed || !strings.Contains(deref(b.Error), "no longer stored") {
				t.Fatalf("import without its request: %s %s", b.Status, deref(b.Error))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the resumed imports did not finish")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rep, err := importer.LastReport(ctx, reg, "kept", keptID.String())
	if err != nil || rep == nil || rep.Changes == 0 {
		t.Fatalf("the resumed import's report: %+v %v", rep, err)
	}
}
