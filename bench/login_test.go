package bench

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// BenchmarkLogin measures what one tenant connection costs to open: a TCP
// connect, a new Postgres backend and the SCRAM-SHA-256 handshake, with
// the data plane's connection parameters (SWA_TENANT_DB_PARAMS). Two login
// roles on one database differ only in their verifier's iteration count:
// Postgres' default 4096 (the reference) and provision.SCRAMIterations, the
// count tenant roles get. Logins alternate between them, so both see the
// same machine; with -pgbouncer a third login goes through PgBouncer (as
// the SCRAMIterations role), whose server connection is then pooled.
//
//	go test ./bench -run '^$' -bench Login -benchtime 200x
func BenchmarkLogin(b *testing.B) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(b, migrations.Tenant)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(context.Background())
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	type role struct {
		name       string
		iterations int
		addr       string // host:port, empty: the database server
		total      time.Duration
		n          int
	}
	base := pgtest.RandomName("login")
	roles := []*role{{name: base + "_4096", iterations: 4096}, {name: base + "_low", iterations: provision.SCRAMIterations}}
	if *pgbouncerAddr != "" {
		roles = append(roles, &role{name: roles[1].name, iterations: provision.SCRAMIterations, addr: *pgbouncerAddr})
	}
	const password = "a password of the benchmark, long and random enough"
	db := pgx.Identifier{cfg.Database}.Sanitize()
	for _, r := range roles[:2] {
		v, err := provision.SCRAMVerifier(password, r.iterations)
		if err != nil {
			b.Fatal(err)
		}
		id := pgx.Identifier{r.name}.Sanitize()
		// Cleanups run after the deferred close of admin: their own connection.
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				b.Errorf("drop role %s: %v", r.name, err)
				return
			}
			defer c.Close(context.Background())
			for _, q := range []string{"REVOKE CONNECT ON DATABASE " + db + " FROM " + id, "DROP ROLE IF EXISTS " + id} {
				if _, err := c.Exec(ctx, q); err != nil {
					b.Errorf("drop role %s: %v", r.name, err)
				}
			}
		})
		if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", id, v)); err != nil {
			b.Fatal(err)
		}
		if _, err := admin.Exec(ctx, fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", db, id)); err != nil {
			b.Fatal(err)
		}
	}
	urls := make([]string, len(roles))
	for i, r := range roles {
		host := fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
		if r.addr != "" {
			host = r.addr
		}
		urls[i] = fmt.Sprintf("postgres://%s:%s@%s/%s?application_name=swa-bench-login&%s",
			r.name, "PASSWORD", host, cfg.Database, os.Getenv("SWA_TENANT_DB_PARAMS"))
	}
	login := func(i int) {
		c, err := pgx.ParseConfig(urls[i])
		if err != nil {
			b.Fatal(err)
		}
		c.Password = password
		if roles[i].addr != "" {
			c.DefaultQueryExecMode = pgx.QueryExecModeExec
		}
		start := time.Now()
		conn, err := pgx.ConnectConfig(ctx, c)
		if err != nil {
			b.Fatalf("login as %s via %q: %v", roles[i].name, roles[i].addr, err)
		}
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			b.Fatal(err)
		}
		roles[i].total += time.Since(start)
		roles[i].n++
		_ = conn.Close(ctx)
	}
	for i := range roles { // warm the server's caches
		login(i)
		roles[i].total, roles[i].n = 0, 0
	}
	for b.Loop() {
		for i := range roles {
			login(i)
		}
	}
	per := func(r *role) float64 { return float64(r.total.Microseconds()) / 1000 / float64(r.n) }
	b.ReportMetric(per(roles[0]), "login-4096-ms")
	b.ReportMetric(per(roles[1]), fmt.Sprintf("login-%d-ms", provision.SCRAMIterations))
	b.ReportMetric(per(roles[1])/per(roles[0]), "low/4096")
	if len(roles) > 2 {
		b.ReportMetric(per(roles[2]), "login-pgbouncer-ms")
		b.ReportMetric(per(roles[2])/per(roles[0]), "pgbouncer/4096")
	}
	b.ReportMetric(0, "ns/op")
}
