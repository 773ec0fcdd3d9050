package archive_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/archive"
	"github.com/startupwebapp/platform/controlplane/importer"
	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// fixtureTenant makes a tenant full of the importer's fixture (a real
// StartupWebApp database: members, orders, carts, events).
func fixtureTenant(t *testing.T, e *provisiontest.Env, slug string) {
	t.Helper()
	ctx := context.Background()
	admin := e.AdminURL
	name := pgtest.RandomName("django_")
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
	if out, err := exec.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", src,
		"-f", filepath.Join("..", "importer", "testdata", "django-startupwebapp.sql")).CombinedOutput(); err != nil {
		t.Fatalf("psql restore: %v\n%s", err, out)
	}
	if _, err := e.Service.Create(ctx, provision.CreateRequest{Slug: slug, DisplayName: "Original", Domains: []string{"shop.original.test"},
		Origins: []string{"https://www.original.test"}, Settings: tenancy.Settings{FrontendOrigin: "https://www.original.test", FromAddress: "Shop <shop@original.test>"}}, "test"); err != nil {
		t.Fatal(err)
	}
	r := &importer.Runner{Provision: e.Service, Secrets: e.Secrets}
	if _, err := r.Run(ctx, importer.Request{Slug: slug, From: src}, "test", ""); err != nil {
		t.Fatal(err)
	}
}

// tableDigests is each table's rows (order ignored) and the id sequences.
func tableDigests(t *testing.T, e *provisiontest.Env, slug string, tables []string) map[string]string {
	t.Helper()
	ctx := context.Background()
	tn, err := e.Registry.Tenant(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, pgtest.WithDatabase(e.AdminURL, tn.DBName))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	out := map[string]string{}
	for _, tb := range tables {
		var sum string
		var n int64
		if err := c.QueryRow(ctx, `SELECT coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), ''), count(*)
			FROM (SELECT to_jsonb(t) x FROM `+pgx.Identifier{tb}.Sanitize()+` t) s`).Scan(&sum, &n); err != nil {
			t.Fatal(err)
		}
		out[tb] = sum
		var seq *string
		if err := c.QueryRow(ctx, `SELECT pg_get_serial_sequence($1, 'id') FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name = $1 AND column_name = 'id'`, tb).Scan(&seq); err == nil && seq != nil {
			var last int64
			var called bool
			if err := c.QueryRow(ctx, "SELECT last_value, is_called FROM "+*seq).Scan(&last, &called); err != nil {
				t.Fatal(err)
			}
			out[tb+" sequence"] = fmtSeq(last, called)
		}
	}
	return out
}

func fmtSeq(last int64, called bool) string {
	if !called {
		return "unused"
	}
	b, _ := json.Marshal(last)
	return string(b)
}

// TestExportRestore exports a tenant, restores it under another slug and
// compares the two table by table.
func TestExportRestore(t *testing.T) {
	e := provisiontest.New(t, provisiontest.Config{Tag: "arc"})
	fixtureTenant(t, e, "original")
	ctx := context.Background()
	svc := &archive.Service{Provision: e.Service, Secrets: e.Secrets}
	// A domain its owner added and DNS has not verified is no part of the
	// archive (a restore would add it verified).
	if _, err := e.Platform.Exec(ctx, `SELECT backoffice_add_domain(id, 'staff:1 o@original.test', 'pending.original.test',
		'tokentokentokentoken42') FROM tenants WHERE slug = 'original'`); err != nil {
		t.Fatal(err)
	}

	var file bytes.Buffer
	h, err := svc.Export(ctx, "original", &file)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(h.Domains, "pending.original.test") || len(h.Domains) == 0 {
		t.Errorf("exported domains %v: want the verified ones only", h.Domains)
	}
	if h.SchemaVersion != e.Service.LatestMigration() || len(h.Tables) < 50 || h.Tables[0] == "customer_order" {
		t.Fatalf("header: %+v", h)
	}
	restored, rh, err := svc.Restore(ctx, bytes.NewReader(file.Bytes()), "copy", "test")
	if err != nil {
		t.Fatal(err)
	}
	if rh.Slug != "original" || restored.Status != "active" {
		t.Fatalf("restored %+v from %+v", restored, rh)
	}
	copyT, err := e.Registry.Tenant(ctx, "copy")
	if err != nil {
		t.Fatal(err)
	}
	orig, err := e.Registry.Tenant(ctx, "original")
	if err != nil {
		t.Fatal(err)
	}
	// The custom domain stays with the original; the rest comes along.
	if copyT.DisplayName != "Original" || !reflect.DeepEqual(copyT.Settings, orig.Settings) || !reflect.DeepEqual(copyT.Origins, orig.Origins) ||
		!reflect.DeepEqual(copyT.Domains, []string{"copy.example.test"}) {
		t.Fatalf("restored tenant %+v, original %+v", copyT, orig)
	}
	a, b := tableDigests(t, e, "original", h.Tables), tableDigests(t, e, "copy", h.Tables)
	if len(a) < 50 {
		t.Fatalf("compared %d tables", len(a))
	}
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s differs: original %s, restored %s", k, v, b[k])
		}
	}
	// The restored tenant is not overwritten by a second restore.
	if _, _, err := svc.Restore(ctx, bytes.NewReader(file.Bytes()), "copy", "test"); err == nil {
		t.Fatal("a second restore over a restored tenant was accepted")
	}
}

// TestRestoreRefusesNewerArchive: an archive from a newer migration than
// the platform's is refused before anything is created.
func TestRestoreRefusesNewerArchive(t *testing.T) {
	e := provisiontest.New(t, provisiontest.Config{Tag: "arc"})
	svc := &archive.Service{Provision: e.Service, Secrets: e.Secrets}
	var file bytes.Buffer
	zw := gzip.NewWriter(&file)
	_ = json.NewEncoder(zw).Encode(archive.Header{Format: archive.Format, Version: archive.Version, SchemaVersion: e.Service.LatestMigration() + 1, Slug: "future"})
	_ = zw.Close()
	_, _, err := svc.Restore(context.Background(), &file, "future", "test")
	if !errors.Is(err, archive.ErrNewer) {
		t.Fatalf("newer archive: %v", err)
	}
	if _, err := e.Registry.Tenant(context.Background(), "future"); err == nil {
		t.Fatal("a tenant was created for a refused archive")
	}
	if _, _, err := svc.Restore(context.Background(), bytes.NewReader([]byte("not an archive")), "junk", "test"); err == nil {
		t.Fatal("junk accepted")
	}
}
