package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/tenancy"
)

func newRegistry(t *testing.T) (*Registry, *pgxpool.Pool, secrets.Store) {
	t.Helper()
	pool := pgtest.NewPool(t, migrations.Platform)
	key := make([]byte, secrets.MasterKeySize)
	_, _ = rand.Read(key)
	store, err := secrets.NewLocal(pool, key)
	if err != nil {
		t.Fatal(err)
	}
	return New(pool, store), pool, store
}

func TestEnsureDBServer(t *testing.T) {
	t.Parallel()
	r, pool, store := newRegistry(t)
	ctx := context.Background()
	const dsn = "postgres://admin:s3cret-admin@db.internal:5432/postgres"
	for range 3 {
		if _, err := r.EnsureDBServer(ctx, "main", dsn, "db.internal", 5432); err != nil {
			t.Fatal(err)
		}
	}
	s, err := r.DBServerByName(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if s.Host != "db.internal" || s.Port != 5432 || s.AdminSecretRef != DBServerSecretName("main") {
		t.Errorf("server %+v", s)
	}
	if vs, _ := store.Versions(ctx, s.AdminSecretRef); len(vs) != 1 {
		t.Errorf("admin secret versions %v, want one for three identical calls", vs)
	}
	got, err := r.AdminDSN(ctx, s)
	if err != nil || got != dsn {
		t.Errorf("AdminDSN: %v", err)
	}
	var row string
	if err := pool.QueryRow(ctx, `SELECT db_servers::text FROM db_servers`).Scan(&row); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(row, "s3cret") {
		t.Error("the admin password is in db_servers")
	}
	// A changed DSN is a new version; the host moves.
	if _, err := r.EnsureDBServer(ctx, "main", dsn+"?sslmode=require", "db2.internal", 6432); err != nil {
		t.Fatal(err)
	}
	if vs, _ := store.Versions(ctx, s.AdminSecretRef); len(vs) != 2 {
		t.Errorf("admin secret versions %v, want two", vs)
	}
	if s, _ = r.DBServerByName(ctx, "main"); s.Host != "db2.internal" || s.Port != 6432 {
		t.Errorf("server %+v", s)
	}
	for name, call := range map[string]func() error{
		"name": func() error { _, err := r.EnsureDBServer(ctx, "Main!", dsn, "h", 1); return err },
		"port": func() error { _, err := r.EnsureDBServer(ctx, "main", dsn, "h", 0); return err },
		"host": func() error { _, err := r.EnsureDBServer(ctx, "main", dsn, "", 5432); return err },
	} {
		var inv *InvalidError
		if err := call(); !errors.As(err, &inv) || inv.Field != name {
			t.Errorf("bad %s: %v", name, err)
		}
	}
	if _, err := r.DBServerByName(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown server: %v", err)
	}
	picked, err := r.PickDBServer(ctx)
	if err != nil || picked.Name != "main" {
		t.Errorf("PickDBServer: %+v %v", picked, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE db_servers SET capacity = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO tenants (slug, display_name, db_server_id, db_name, db_role, secrets_ref)
		VALUES ('full', 'Full', $1, 'x_full', 'x_full', 'swa/tenants/full')`, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PickDBServer(ctx); !errors.Is(err, ErrConflict) {
		t.Errorf("PickDBServer with every server full: %v, want ErrConflict", err)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	r, pool, _ := newRegistry(t)
	ctx := context.Background()
	plain, created, err := r.CreateToken(ctx, " ci ")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(plain, "swa_") || len(plain) < 40 {
		t.Errorf("token %d chars", len(plain))
	}
	if created.ID == 0 || created.Name != "ci" || created.CreatedAt.IsZero() || created.LastUsedAt != nil || created.RevokedAt != nil {
		t.Errorf("created %+v: want its id and name, never used", created)
	}
	// LookupToken authenticates without stamping last_used_at.
	looked, err := r.LookupToken(ctx, plain)
	if err != nil || looked.ID != created.ID || looked.LastUsedAt != nil {
		t.Fatalf("LookupToken: %+v %v, want the token, never used", looked, err)
	}
	info, err := r.VerifyToken(ctx, plain)
	if err != nil || info.ID != created.ID || info.Name != "ci" || info.LastUsedAt == nil {
		t.Fatalf("VerifyToken: %+v %v", info, err)
	}
	var stored int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM admin_tokens WHERE position($1::bytea IN token_hash) > 0`, []byte(plain)).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 0 {
		t.Error("the token itself is stored")
	}
	for _, bad := range []string{"", "swa_nope", plain + "x", strings.ToUpper(plain)} {
		if _, err := r.VerifyToken(ctx, bad); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("VerifyToken(bad): %v, want ErrUnauthorized", err)
		}
		if _, err := r.LookupToken(ctx, bad); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("LookupToken(bad): %v, want ErrUnauthorized", err)
		}
	}
	if err := r.RevokeToken(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.VerifyToken(ctx, plain); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("revoked token: %v", err)
	}
	if _, err := r.LookupToken(ctx, plain); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("LookupToken of a revoked token: %v", err)
	}
	if err := r.RevokeToken(ctx, 9999); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
	const boot = "bootstrap-token-0123456789"
	for range 2 {
		if err := r.EnsureBootstrapToken(ctx, boot); err != nil {
			t.Fatal(err)
		}
	}
	if info, err := r.VerifyToken(ctx, boot); err != nil || info.Name != "bootstrap" {
		t.Errorf("bootstrap: %+v %v", info, err)
	}
	tokens, err := r.Tokens(ctx)
	if err != nil || len(tokens) != 2 {
		t.Errorf("tokens %+v %v, want two", tokens, err)
	}
	var inv *InvalidError
	if err := r.EnsureBootstrapToken(ctx, "short"); !errors.As(err, &inv) {
		t.Errorf("short bootstrap token: %v", err)
	}
	if _, _, err := r.CreateToken(ctx, " "); !errors.As(err, &inv) {
		t.Errorf("unnamed token: %v", err)
	}
}

func TestAuditAndOperations(t *testing.T) {
	t.Parallel()
	r, pool, _ := newRegistry(t)
	ctx := context.Background()
	if _, err := r.EnsureDBServer(ctx, "main", "postgres://a@h/p", "h", 5432); err != nil {
		t.Fatal(err)
	}
	s, _ := r.DBServerByName(ctx, "main")
	var tn Tenant
	err := Transact(ctx, pool, func(tx pgx.Tx) error {
		var err error
		tn, err = r.With(tx).InsertTenant(ctx, NewTenant{Slug: "audited", DisplayName: "A", DBServerID: s.ID,
			DBName: "x_audited", DBRole: "x_audited", SecretsRef: "swa/tenants/audited", DefaultDomain: "audited.test"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := r.Audit(ctx, "alice", "thing.do", tn.ID, nil, map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := Audit(ctx, pool, "bob", "platform.do", 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	page, err := r.ListAudit(ctx, AuditFilter{TenantSlug: "audited", Limit: 3})
	if err != nil || len(page) != 3 {
		t.Fatalf("page 1: %d %v", len(page), err)
	}
	if string(page[0].After) != `{"n": 4}` || page[0].TenantSlug == nil || *page[0].TenantSlug != "audited" {
		t.Errorf("newest entry %+v", page[0])
	}
	rest, err := r.ListAudit(ctx, AuditFilter{TenantSlug: "audited", BeforeID: page[2].ID})
	if err != nil || len(rest) != 2 {
		t.Fatalf("page 2: %d %v", len(rest), err)
	}
	all, _ := r.ListAudit(ctx, AuditFilter{})
	if len(all) != 6 || all[0].Actor != "bob" || all[0].TenantID != nil {
		t.Errorf("all %+v", all)
	}
	var inv *InvalidError
	if _, err := r.ListAudit(ctx, AuditFilter{Limit: -1}); !errors.As(err, &inv) {
		t.Errorf("negative limit: %v", err)
	}

	id, err := r.QueueOperation(ctx, "create", tn.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	op, err := r.GetOperation(ctx, id)
	if err != nil || op.Status != OperationQueued || op.TenantSlug == nil || *op.TenantSlug != "audited" || op.Actor != "alice" {
		t.Fatalf("operation %+v %v", op, err)
	}
	if err := r.OperationStarted(ctx, id); err != nil {
		t.Fatal(err)
	}
	if op, _ := r.GetOperation(ctx, id); op.Status != OperationRunning {
		t.Fatalf("started operation %+v", op)
	}
	if err := r.FinishOperation(ctx, id, errors.New("database: boom")); err != nil {
		t.Fatal(err)
	}
	op, _ = r.GetOperation(ctx, id)
	if op.Status != OperationFailed || op.Error == nil || *op.Error != "database: boom" || op.FinishedAt == nil {
		t.Errorf("finished operation %+v", op)
	}
	if err := r.OperationStarted(ctx, id); !errors.Is(err, ErrConflict) {
		t.Errorf("starting a finished operation: %v, want ErrConflict", err)
	}
	id2, _ := r.QueueOperation(ctx, "migrate-all", 0, "bob")
	if err := r.FinishOperation(ctx, id2, nil); err != nil {
		t.Fatal(err)
	}
	if op, _ := r.GetOperation(ctx, id2); op.Status != OperationSucceeded || op.TenantID != nil {
		t.Errorf("operation %+v", op)
	}
	if _, err := r.GetOperation(ctx, [16]byte{1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown operation: %v", err)
	}

	// The operations a process left queued or running are pending, oldest
	// first; the finished ones are not.
	var pending []uuid.UUID
	for i := range 3 {
		id, err := r.QueueOperation(ctx, "delete", tn.ID, "carol")
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := r.OperationStarted(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		pending = append(pending, id)
	}
	got, err := r.PendingOperations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for _, op := range got {
		ids = append(ids, op.ID)
		if op.Kind != "delete" || op.Actor != "carol" || op.TenantSlug == nil || *op.TenantSlug != "audited" {
			t.Errorf("pending operation %+v", op)
		}
	}
	if !slices.Equal(ids, pending) {
		t.Errorf("pending %v, want %v", ids, pending)
	}
}

func TestTenantQueries(t *testing.T) {
	t.Parallel()
	r, pool, _ := newRegistry(t)
	ctx := context.Background()
	if _, err := r.EnsureDBServer(ctx, "main", "postgres://a@h/p", "h", 5432); err != nil {
		t.Fatal(err)
	}
	s, _ := r.DBServerByName(ctx, "main")
	insert := func(slug string, domains ...string) (Tenant, error) {
		var tn Tenant
		err := Transact(ctx, pool, func(tx pgx.Tx) error {
			var err error
			tn, err = r.With(tx).InsertTenant(ctx, NewTenant{Slug: slug, DisplayName: slug, DBServerID: s.ID,
				DBName: "x_" + slug, DBRole: "x_" + slug, SecretsRef: "swa/tenants/" + slug,
				DefaultDomain: slug + ".test", Domains: domains, Origins: []string{"http://localhost:8080"}})
			return err
		})
		return tn, err
	}
	a, err := insert("alpha", "www.alpha.test")
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != StatusProvisioning || a.Plan != "standard" || len(a.Domains) != 2 || a.Domains[0] != "alpha.test" || *a.DBServer != "main" {
		t.Errorf("tenant %+v", a)
	}
	if _, err := insert("alpha"); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate slug: %v", err)
	}
	if _, err := insert("beta", "www.alpha.test"); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate domain: %v", err)
	}
	if _, err := r.Tenant(ctx, "beta"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a failed insert left a row: %v", err)
	}
	if _, err := r.SetStatus(ctx, a.ID, []tenancy.Status{StatusActive}, StatusSuspended); !errors.Is(err, ErrConflict) {
		t.Errorf("suspend a provisioning tenant: %v", err)
	}
	if got, err := r.SetStatus(ctx, a.ID, []tenancy.Status{StatusProvisioning}, StatusActive); err != nil || got.Status != StatusActive || !got.UpdatedAt.After(a.UpdatedAt) {
		t.Errorf("activate: %+v %v", got, err)
	}
	list, err := r.Tenants(ctx, TenantFilter{})
	if err != nil || len(list) != 1 {
		t.Errorf("tenants %v %v", list, err)
	}
	if list, _ := r.Tenants(ctx, TenantFilter{Statuses: []tenancy.Status{StatusSuspended}}); len(list) != 0 {
		t.Errorf("suspended tenants %v", list)
	}
	if err := r.RecordMigration(ctx, a.ID, 7, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.RecordMigration(ctx, a.ID, 0, errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	got, _ := r.Tenant(ctx, "alpha")
	if got.SchemaVersion != 7 || *got.LastMigrationStatus != "failed" || *got.LastMigrationError != "boom" || got.LastMigrationAt == nil {
		t.Errorf("migration record %+v", got)
	}
}

func TestTenantPages(t *testing.T) {
	t.Parallel()
	r, pool, _ := newRegistry(t)
	ctx := context.Background()
	if _, err := r.EnsureDBServer(ctx, "main", "postgres://a@h/p", "h", 5432); err != nil {
		t.Fatal(err)
	}
	s, _ := r.DBServerByName(ctx, "main")
	slugs := []string{"ant", "bee", "cat", "dog", "eel"}
	for _, slug := range slugs {
		err := Transact(ctx, pool, func(tx pgx.Tx) error {
			_, err := r.With(tx).InsertTenant(ctx, NewTenant{Slug: slug, DBServerID: s.ID, DBName: "x_" + slug, DBRole: "x_" + slug,
				SecretsRef: "swa/tenants/" + slug, DefaultDomain: slug + ".test"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE tenants SET status = CASE slug WHEN 'bee' THEN 'deleted' WHEN 'dog' THEN 'suspended' ELSE 'active' END`); err != nil {
		t.Fatal(err)
	}
	names := func(ts []Tenant) []string {
		out := []string{}
		for _, tn := range ts {
			out = append(out, tn.Slug)
		}
		return out
	}
	cases := []struct {
		name string
		f    TenantFilter
		want []string
	}{
		{"all but deleted", TenantFilter{}, []string{"ant", "cat", "dog", "eel"}},
		{"first page", TenantFilter{Limit: 2}, []string{"ant", "cat"}},
		{"second page", TenantFilter{After: "cat", Limit: 2}, []string{"dog", "eel"}},
		{"after the last", TenantFilter{After: "eel", Limit: 2}, []string{}},
		{"after a slug not listed", TenantFilter{After: "b"}, []string{"cat", "dog", "eel"}},
		{"deleted ones when asked", TenantFilter{Statuses: []tenancy.Status{StatusDeleted, StatusSuspended}}, []string{"bee", "dog"}},
		{"status and page", TenantFilter{Statuses: []tenancy.Status{StatusActive}, After: "ant", Limit: 1}, []string{"cat"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := r.Tenants(ctx, c.f)
			if err != nil {
				t.Fatal(err)
			}
			if g := names(got); !slices.Equal(g, c.want) {
				t.Errorf("tenants %v, want %v", g, c.want)
			}
		})
	}
	var inv *InvalidError
	if _, err := r.Tenants(ctx, TenantFilter{Limit: -1}); !errors.As(err, &inv) || inv.Field != "limit" {
		t.Errorf("negative limit: %v", err)
	}
}
