package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// The data plane's registry login (a member of swa_dataplane) reads what
// routing needs and can change nothing.
func TestDataplaneRoleIsReadOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t, migrations.Platform)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role := pgtest.RandomName("reader_")
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'reader-pw' IN ROLE swa_dataplane`, role)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(context.Background(), `DROP ROLE IF EXISTS `+role) }) //nolint:errcheck
	if _, err := admin.Exec(ctx, `INSERT INTO db_servers (name, host, admin_secret_ref) VALUES ('s', 'h', 'ref')`); err != nil {
		t.Fatal(err)
	}

	u, _ := url.Parse(dsn)
	u.User = url.UserPassword(role, "reader-pw")
	reader, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(ctx)

	for _, q := range []string{
		`SELECT count(*) FROM tenants`, `SELECT count(*) FROM domains`, `SELECT count(*) FROM tenant_origins`,
		`SELECT count(*) FROM db_servers`, `SELECT count(*) FROM secrets`,
	} {
		if _, err := reader.Exec(ctx, q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	// Its one write: a serving tenant's own settings, only the keys the back
	// office edits, through backoffice_update_settings.
	var tid int64
	if err := admin.QueryRow(ctx, `INSERT INTO tenants (slug, display_name, db_name, db_role, secrets_ref, status, settings)
VALUES ('t1', 'T', 't', 't', 'r', 'active', '{"cookie_domain": ".t.test"}') RETURNING id`).Scan(&tid); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Exec(ctx, `SELECT backoffice_update_settings($1, 'staff:1 a@t.test', 'New name', 'https://t.test', '{"tagline": "hi"}')`, tid); err != nil {
		t.Errorf("backoffice_update_settings: %v", err)
	}
	var settings string
	if err := admin.QueryRow(ctx, `SELECT settings::text FROM tenants WHERE id = $1`, tid).Scan(&settings); err != nil ||
		settings != `{"branding": {"tagline": "hi"}, "cookie_domain": ".t.test", "frontend_origin": "https://t.test"}` {
		t.Errorf("settings after the call: %s %v", settings, err)
	}
	for _, branding := range []string{`{"cookie_domain": ".evil.test"}`, `{"tagline": 1}`, `[]`} {
		_, err := reader.Exec(ctx, `SELECT backoffice_update_settings($1, 'staff:1', 'N', '', $2::jsonb)`, tid, branding)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "22023" {
			t.Errorf("branding %s: err = %v, want 22023", branding, err)
		}
	}
	// And flagging a serving tenant past its plan's monthly orders, once
	// per month, through dataplane_flag_quota.
	if _, err := admin.Exec(ctx, `UPDATE tenants SET plan = 'free' WHERE id = $1`, tid); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		var flagged bool
		if err := reader.QueryRow(ctx, `SELECT dataplane_flag_quota($1, 'orders_per_month', '2026-12-01')`, tid).Scan(&flagged); err != nil || flagged != want {
			t.Errorf("dataplane_flag_quota call %d: %v %v, want %v", i+1, flagged, err, want)
		}
	}
	if _, err := reader.Exec(ctx, `SELECT count(*) FROM quota_flags`); err != nil {
		t.Errorf("read quota_flags: %v", err)
	}
	_, err = reader.Exec(ctx, `SELECT dataplane_flag_quota($1, 'orders_per_month', '2026-12-15')`, tid)
	if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "22023" {
		t.Errorf("mid-month flag: err = %v, want 22023", err)
	}
	for _, q := range []string{
		`INSERT INTO quota_flags (tenant_id, quota, month, plan, quota_limit) VALUES (1, 'orders_per_month', '2026-01-01', 'free', 1)`,
		`DELETE FROM quota_flags`,
		`SELECT count(*) FROM admin_tokens`,
		`SELECT count(*) FROM audit_log`,
		`INSERT INTO tenants (slug, display_name, db_name, db_role, secrets_ref) VALUES ('x1', 'x', 'x', 'x', 'x')`,
		`UPDATE db_servers SET host = 'elsewhere'`,
		`DELETE FROM secrets`,
	} {
		_, err := reader.Exec(ctx, q)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s: err = %v, want permission denied (42501)", q, err)
		}
	}
}

// By default PUBLIC may connect to a new database, so any tenant's database
// login could open the registry, read its schema, LISTEN to tenant changes
// and create temporary tables. After the platform migrations only the owner
// and swa_dataplane members may connect.
func TestRegistryRefusesOtherLogins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, _ := emptyDatabase(t)
	if _, err := migrations.UpDSN(ctx, dsn, migrations.Platform); err != nil {
		t.Fatal(err)
	}
	admin := connect(t, dsn)
	tenantRole, readerRole := pgtest.RandomName("tenant_"), pgtest.RandomName("reader_")
	for _, stmt := range []string{
		fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'tenant-pw'`, tenantRole),
		fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'reader-pw' IN ROLE swa_dataplane`, readerRole),
	} {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), `DROP ROLE IF EXISTS `+tenantRole) //nolint:errcheck
		admin.Exec(context.Background(), `DROP ROLE IF EXISTS `+readerRole) //nolint:errcheck
	})
	as := func(role, pw string) string {
		u, _ := url.Parse(dsn)
		u.User = url.UserPassword(role, pw)
		return u.String()
	}

	conn, err := pgx.Connect(ctx, as(tenantRole, "tenant-pw"))
	if err == nil {
		conn.Close(ctx)
		t.Errorf("a role outside swa_dataplane connected to the registry")
	} else if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Errorf("tenant role connect: err = %v, want permission denied (42501)", err)
	}

	reader, err := pgx.Connect(ctx, as(readerRole, "reader-pw"))
	if err != nil {
		t.Fatalf("swa_dataplane member: %v", err)
	}
	defer reader.Close(ctx)
	if _, err := reader.Exec(ctx, `CREATE TEMPORARY TABLE scratch (x int)`); err == nil {
		t.Errorf("swa_dataplane member created a temporary table in the registry")
	}
}
