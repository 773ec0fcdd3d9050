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
	for _, q := range []string{
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
