// Package directorytest writes registry rows (database servers, tenants,
// domains, origins) straight into a platform test database, for the tests of
// the data-plane packages that read them.
package directorytest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// Tenant describes one registry row to insert; zero fields get defaults
// derived from Slug.
type Tenant struct {
	Slug     string
	Status   tenancy.Status // default active
	Domains  []string
	Origins  []string
	Server   int64 // db_servers.id; 0 leaves it NULL
	DBName   string
	DBRole   string
	Settings directory.Settings
}

// AddServer inserts a db_servers row and returns its id.
func AddServer(t testing.TB, db *pgxpool.Pool, name, host string, port int) int64 {
	t.Helper()
	var id int64
	err := db.QueryRow(context.Background(),
		`INSERT INTO db_servers (name, host, port, admin_secret_ref) VALUES ($1, $2, $3, $4) RETURNING id`,
		name, host, port, "swa/servers/"+name).Scan(&id)
	if err != nil {
		t.Fatalf("directorytest: add server %s: %v", name, err)
	}
	return id
}

// AddTenant inserts a tenant with its domains and origins and returns its id.
func AddTenant(t testing.TB, db *pgxpool.Pool, tn Tenant) int64 {
	t.Helper()
	ctx := context.Background()
	if tn.Status == "" {
		tn.Status = tenancy.Active
	}
	if tn.DBName == "" {
		tn.DBName = "t_" + tn.Slug
	}
	if tn.DBRole == "" {
		tn.DBRole = "t_" + tn.Slug
	}
	settings, err := json.Marshal(tn.Settings)
	if err != nil {
		t.Fatalf("directorytest: %v", err)
	}
	var server *int64
	if tn.Server != 0 {
		server = &tn.Server
	}
	var id int64
	err = db.QueryRow(ctx, `
INSERT INTO tenants (slug, display_name, status, db_server_id, db_name, db_role, settings, secrets_ref)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		tn.Slug, "Tenant "+tn.Slug, tn.Status, server, tn.DBName, tn.DBRole, settings,
		"swa/tenants/"+tn.Slug).Scan(&id)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.ConstraintName == "tenants_status_check" {
		t.Fatalf("directorytest: add tenant %s: the registry refuses status %q: %v; "+
			"migrations/platform's CHECK does not list it yet (see TestRegistryChecksMatchTenancy in migrations/)", tn.Slug, tn.Status, err)
	}
	if err != nil {
		t.Fatalf("directorytest: add tenant %s: %v", tn.Slug, err)
	}
	for i, h := range tn.Domains {
		if _, err := db.Exec(ctx, `INSERT INTO domains (hostname, tenant_id, is_default) VALUES ($1, $2, $3)`,
			h, id, i == 0); err != nil {
			t.Fatalf("directorytest: add domain %s: %v", h, err)
		}
	}
	for _, o := range tn.Origins {
		if _, err := db.Exec(ctx, `INSERT INTO tenant_origins (tenant_id, origin) VALUES ($1, $2)`, id, o); err != nil {
			t.Fatalf("directorytest: add origin %s: %v", o, err)
		}
	}
	return id
}

// SetStatus changes a tenant's status (and so its updated_at generation).
func SetStatus(t testing.TB, db *pgxpool.Pool, id int64, status tenancy.Status) {
	t.Helper()
	if _, err := db.Exec(context.Background(),
		`UPDATE tenants SET status = $2, updated_at = clock_timestamp() WHERE id = $1`, id, status); err != nil {
		t.Fatalf("directorytest: set status: %v", err)
	}
}

// SetPlan puts the tenant on the registry's plan named plan.
func SetPlan(t testing.TB, db *pgxpool.Pool, id int64, plan string) {
	t.Helper()
	if _, err := db.Exec(context.Background(),
		`UPDATE tenants SET plan = $2, updated_at = clock_timestamp() WHERE id = $1`, id, plan); err != nil {
		t.Fatalf("directorytest: set plan: %v", err)
	}
}
