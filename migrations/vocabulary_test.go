package migrations_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// The registry's CHECK constraints allow exactly the values of package
// tenancy: a status added there (or here) without the other fails here,
// with what to write next.
func TestRegistryChecksMatchTenancy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDatabase(t, migrations.Platform))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	for _, tc := range []struct {
		table, column string
		want          []string
	}{
		{"tenants", "status", names(tenancy.Statuses())},
		{"tenants", "last_migration_status", names(tenancy.MigrationStatuses())},
		{"operations", "status", names(tenancy.OperationStatuses())},
		{"domains", "status", names(tenancy.DomainStatuses())},
	} {
		name, def := checkOf(t, conn, tc.table, tc.column)
		got := checkValues(def)
		if !sameSet(got, tc.want) {
			t.Errorf("migrations/platform: %s.%s CHECK %s allows %q, but platform/tenancy lists %q; "+
				"add a migration under migrations/platform that drops %s and adds it again with the tenancy list "+
				"(ALTER TABLE %s DROP CONSTRAINT %s, ADD CONSTRAINT %s CHECK (%s IN (...)))",
				tc.table, tc.column, name, got, tc.want, name, tc.table, name, name, tc.column)
		}
	}

	if _, def := checkOf(t, conn, "tenants", "slug"); !strings.Contains(def, "'"+tenancy.SlugPattern+"'") {
		t.Errorf("migrations/platform: tenants.slug CHECK is %s, want the pattern %s of platform/tenancy", def, tenancy.SlugPattern)
	}
	var planDefault string
	if err := conn.QueryRow(ctx, `SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d
		JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
		WHERE d.adrelid = 'tenants'::regclass AND a.attname = 'plan'`).Scan(&planDefault); err != nil {
		t.Fatal(err)
	}
	if want := "'" + tenancy.DefaultPlan + "'::text"; planDefault != want {
		t.Errorf("migrations/platform: tenants.plan DEFAULT is %s, want %s (tenancy.DefaultPlan)", planDefault, want)
	}
}

// checkOf returns the name and definition of the one CHECK constraint on
// table.column.
func checkOf(t *testing.T, conn *pgx.Conn, table, column string) (name, def string) {
	t.Helper()
	rows, err := conn.Query(context.Background(), `
SELECT c.conname, pg_get_constraintdef(c.oid)
  FROM pg_constraint c
  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
 WHERE c.conrelid = $1::regclass AND c.contype = 'c' AND a.attname = $2`, table, column)
	if err != nil {
		t.Fatal(err)
	}
	type check struct{ Name, Def string }
	checks, err := pgx.CollectRows(rows, pgx.RowToStructByPos[check])
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 1 {
		t.Fatalf("migrations/platform: %s.%s has %d CHECK constraints (%v), want one", table, column, len(checks), checks)
	}
	return checks[0].Name, checks[0].Def
}

var quoted = regexp.MustCompile(`'((?:[^']|'')*)'::text`)

// checkValues returns the string literals of a CHECK (col IN (...))
// definition, as Postgres prints it: ((col = ANY (ARRAY['a'::text, ...]))).
func checkValues(def string) []string {
	var out []string
	for _, m := range quoted.FindAllStringSubmatch(def, -1) {
		out = append(out, strings.ReplaceAll(m[1], "''", "'"))
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func names[S ~string](in []S) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	return out
}
