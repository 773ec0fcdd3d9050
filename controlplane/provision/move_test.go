package provision_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/secrets"
)

// moveEnv is a test platform with two database servers: "default" (the
// test cluster) and "second" (SWA_TEST_PG2_DSN).
type moveEnv struct {
	*env
	second registry.DBServer
}

func newMoveEnv(t *testing.T, mod func(*provision.Options)) *moveEnv {
	t.Helper()
	e := newEnvWith(t, provisiontest.Config{Tag: "mv", MaxConns: 8, Options: func(o *provision.Options) {
		o.MoveDrain = 500 * time.Millisecond
		o.DBServer = "default" // new tenants; the moves choose their server
		if mod != nil {
			mod(o)
		}
	}})
	return &moveEnv{env: e, second: e.SecondServer("second")}
}

// connOn connects to the tenant's database on the server named server, as
// its role with its stored password.
func (e *moveEnv) connOn(t *testing.T, server string, tn registry.Tenant) (*pgx.Conn, error) {
	t.Helper()
	ctx := context.Background()
	sv, err := e.svc.Registry().DBServerByName(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	dsn, err := e.svc.Registry().AdminDSN(ctx, sv)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	b, err := secrets.LoadBundle(ctx, e.store, tn.SecretsRef)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database, cfg.User, cfg.Password = tn.DBName, tn.DBRole, b.DBPassword
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { conn.Close(context.Background()) })
	}
	return conn, err
}

func (e *moveEnv) mustConnOn(t *testing.T, server string, tn registry.Tenant) *pgx.Conn {
	t.Helper()
	conn, err := e.connOn(t, server, tn)
	if err != nil {
		t.Fatalf("connect to %s on %s: %v", tn.DBName, server, err)
	}
	return conn
}

// digests is every table's rows (in their text form, sorted) as an md5,
// and every sequence's position.
func digests(t *testing.T, conn *pgx.Conn) map[string]string {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tb := range tables {
		var d string
		if err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) || ':' || COALESCE(md5(string_agg(x::text, ',' ORDER BY x::text)), '')
			FROM %s x`, ident(tb))).Scan(&d); err != nil {
			t.Fatal(err)
		}
		out[tb] = d
	}
	rows, err = conn.Query(ctx, `SELECT c.relname FROM pg_class c WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace`)
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range seqs {
		var d string
		if err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT last_value || '/' || is_called FROM %s`, ident(s))).Scan(&d); err != nil {
			t.Fatal(err)
		}
		out["seq "+s] = d
	}
	return out
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// writeRows gives the tenant rows of its own: prospects with chat messages.
func writeRows(t *testing.T, conn *pgx.Conn, tag string, n int) {
	t.Helper()
	exec(t, conn, `INSERT INTO prospect (first_name, email) SELECT 'p' || i, $1 || i || '@example.test' FROM generate_series(1, $2) i`, tag, n)
	exec(t, conn, `INSERT INTO chat_message (prospect_id, name, message)
		SELECT id, first_name, 'hello from ' || email FROM prospect WHERE email LIKE $1 || '%'`, tag)
}

// changeRows changes the tenant's rows in every way the catch-up must
// carry: new rows, changed rows (a product: a trigger keeps the catalog
// version), deleted rows (a parent whose child's reference is set null).
func changeRows(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	writeRows(t, conn, "late", 5)
	exec(t, conn, `UPDATE prospect SET last_name = 'changed' WHERE id = (SELECT min(id) FROM prospect)`)
	exec(t, conn, `DELETE FROM prospect WHERE id = (SELECT max(id) FROM prospect WHERE email LIKE 'early%')`)
	exec(t, conn, `UPDATE product SET headline = 'moved' WHERE id = (SELECT min(id) FROM product)`)
}

// checkMoved checks a finished move of tn: on the new server, writes
// resumed, data equal to want, the role logging in there, and the old
// database still there but read-only for the role.
func checkMoved(t *testing.T, e *moveEnv, slug string, want map[string]string) registry.Tenant {
	t.Helper()
	ctx := context.Background()
	tn, err := e.svc.Registry().Tenant(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	if tn.DBServer == nil || *tn.DBServer != "second" || tn.WritesPaused || tn.Status != registry.StatusActive {
		t.Fatalf("after the move: server %v, writes paused %v, status %s; want second, false, active", orNil(tn.DBServer), tn.WritesPaused, tn.Status)
	}
	m, err := e.svc.Registry().TenantMove(ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != registry.MoveSwitched || m.From != "default" || m.To != "second" || m.PausedMS == nil || m.DropAfter == nil {
		t.Errorf("move record %+v, want switched default -> second with its pause and drop time", m)
	}
	got := digests(t, e.mustConnOn(t, "second", tn))
	if !maps.Equal(got, want) {
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("table %s: %s on the new server, %s on the old", k, got[k], want[k])
			}
		}
		t.Fatalf("the new database differs from the old one")
	}
	steps, err := e.svc.Registry().Steps(ctx, tn.ID, provision.OpMove)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range steps {
		if s.Status != "done" {
			t.Errorf("step %s is %s", s.Step, s.Status)
		}
		names = append(names, s.Step)
	}
	slices.Sort(names)
	wantSteps := provision.MoveSteps()
	slices.Sort(wantSteps)
	if !slices.Equal(names, wantSteps) {
		t.Errorf("move steps %v, want %v", names, wantSteps)
	}
	old := e.mustConnOn(t, "default", tn)
	if _, err := old.Exec(ctx, `INSERT INTO prospect (email) VALUES ('after@example.test')`); sqlstate(err) != "25006" {
		t.Errorf("a write on the old database after the move: %v, want read-only (25006)", err)
	}
	return tn
}

func orNil(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestMove moves a tenant to the second server while rows change between
// its copy and its pause, and checks the new database equals the old one
// table by table; then the old copy is dropped once its grace is over.
func TestMove(t *testing.T) {
	t.Parallel()
	var (
		src  *pgx.Conn
		once sync.Once
	)
	e := newMoveEnv(t, func(o *provision.Options) {
		o.MoveGrace = -time.Second // due at once
		o.InStep = func(_ context.Context, op, step, point string) error {
			if op == provision.OpMove && point == provision.PointCopied {
				once.Do(func() { changeRows(t, src) }) // the first move's
			}
			return nil
		}
	})
	ctx := context.Background()
	tn, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "mover"}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "stayer"}, "t"); err != nil {
		t.Fatal(err)
	}
	src = e.mustConnOn(t, "default", tn)
	writeRows(t, src, "early", 30)

	// Refused before anything is written.
	var inv *registry.InvalidError
	if _, err := e.svc.Move(ctx, "mover", "nowhere", "t"); !errors.As(err, &inv) || inv.Field != "to_server" {
		t.Errorf("move to an unknown server: %v, want invalid to_server", err)
	}
	if _, err := e.svc.Move(ctx, "mover", "default", "t"); !errors.Is(err, registry.ErrConflict) {
		t.Errorf("move to the server it is on: %v, want a conflict", err)
	}
	if _, err := e.svc.Move(ctx, "nobody", "second", "t"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("move of an unknown tenant: %v, want not found", err)
	}
	if _, err := e.svc.Move(ctx, "mover", "", "t"); !errors.Is(err, registry.ErrConflict) {
		t.Errorf("resume without a move in progress: %v, want a conflict", err)
	}

	if _, err := e.svc.Move(ctx, "mover", "second", "t"); err != nil {
		t.Fatal(err)
	}
	want := digests(t, e.mustConnOn(t, "default", tn)) // the old database, read-only since the pause
	if want["prospect"] == "" || want["prospect"][:2] == "0:" {
		t.Fatalf("no prospects to compare: %v", want["prospect"])
	}
	tn = checkMoved(t, e, "mover", want)
	// Moving again to where it is: the move is done, nothing changes.
	if _, err := e.svc.Move(ctx, "mover", "second", "t"); err != nil {
		t.Errorf("move again to the same server: %v", err)
	}
	// The other tenant did not move.
	if o, _ := e.svc.Registry().Tenant(ctx, "stayer"); orNil(o.DBServer) != "default" || o.WritesPaused {
		t.Errorf("the other tenant: server %s, paused %v", orNil(o.DBServer), o.WritesPaused)
	}

	n, err := e.svc.DropMovedCopies(ctx)
	if err != nil || n != 1 {
		t.Fatalf("drop moved copies: %d, %v; want 1", n, err)
	}
	admin := e.adminConn("")
	if c := e.count(admin, `SELECT count(*) FROM pg_database WHERE datname = $1`, tn.DBName); c != 0 {
		t.Error("the old copy is still on the old server")
	}
	if c := e.count(admin, `SELECT count(*) FROM pg_roles WHERE rolname = $1`, tn.DBRole); c != 0 {
		t.Error("the role is still on the old server")
	}
	if m, _ := e.svc.Registry().TenantMove(ctx, tn.ID); m.Status != registry.MoveFinished {
		t.Errorf("move %s after the drop, want finished", m.Status)
	}
	if _, err := e.connOn(t, "second", tn); err != nil {
		t.Errorf("the tenant's database on the new server after the drop: %v", err)
	}
	// And back: a finished move allows the next one.
	if _, err := e.svc.Move(ctx, "mover", "default", "t"); err != nil {
		t.Fatalf("move back: %v", err)
	}
}

// moveCrashPoints lists every point of the move workflow where a crash is
// tested: after each step and at each point inside one.
var moveCrashPoints = withAfterSteps(provision.OpMove, provision.MoveSteps(), []crash{
	{provision.OpMove, provision.StepPlan, provision.PointInTx},
	{provision.OpMove, provision.StepDatabase, provision.PointRole},
	{provision.OpMove, provision.StepDatabase, provision.PointTemplate},
	{provision.OpMove, provision.StepDatabase, provision.PointCreated},
	{provision.OpMove, provision.StepDatabase, provision.PointOwned},
	{provision.OpMove, provision.StepCopy, provision.PointCopied},
	{provision.OpMove, provision.StepPause, provision.PointFenced},
	{provision.OpMove, provision.StepPause, provision.PointPaused},
	{provision.OpMove, provision.StepPause, provision.PointDrained},
	{provision.OpMove, provision.StepCatchUp, provision.PointCaughtUp},
	{provision.OpMove, provision.StepSwitch, provision.PointInTx},
})

// TestMoveCrashAndResume stops a move at each of its crash points in turn
// (rows change after its copy, as in TestMove), resumes it as the control
// plane does after a restart (Move with no server: the move in progress;
// the plan's own crash with the server again) and checks it converges to
// the same end as an uninterrupted move. The points seen while running
// are exactly those listed.
func TestMoveCrashAndResume(t *testing.T) {
	t.Parallel()
	e := newMoveEnv(t, nil)
	ctx := context.Background()
	var (
		mu   sync.Mutex
		seen = map[crash]bool{}
	)
	for i, c := range moveCrashPoints {
		t.Run(c.String(), func(t *testing.T) {
			slug := fmt.Sprintf("crash-%d", i)
			tn, err := e.svc.Create(ctx, provision.CreateRequest{Slug: slug}, "t")
			if err != nil {
				t.Fatal(err)
			}
			src := e.mustConnOn(t, "default", tn)
			if c.point == provision.PointTemplate {
				dropTemplate(t, e)
			}
			writeRows(t, src, "early", 10)
			hook := func(ctx context.Context, op, step, point string) error {
				if op != provision.OpMove {
					return nil
				}
				mu.Lock()
				seen[crash{op, step, point}] = true
				mu.Unlock()
				if point == provision.PointCopied {
					changeRows(t, src)
				}
				return nil
			}
			crashing := e.with(func(o *provision.Options) {
				o.MoveDrain = 500 * time.Millisecond
				c.hook(o)
				inner := o.InStep
				o.InStep = func(ctx context.Context, op, step, point string) error {
					if err := hook(ctx, op, step, point); err != nil {
						return err
					}
					if inner != nil {
						return inner(ctx, op, step, point)
					}
					return nil
				}
				if c.point == "" {
					after := o.AfterStep
					o.AfterStep = func(op, step string) error {
						mu.Lock()
						seen[crash{op, step, ""}] = true
						mu.Unlock()
						return after(op, step)
					}
				}
			})
			if _, err := crashing.Move(ctx, slug, "second", "t"); !errors.Is(err, errCrash) {
				t.Fatalf("move: %v, want the simulated crash", err)
			}
			// A restarted control plane resumes the move it finds recorded.
			resumeTo := ""
			if c.step == provision.StepPlan && c.point != "" {
				resumeTo = "second" // nothing was recorded: the operator moves it again
			}
			if _, err := e.svc.Move(ctx, slug, resumeTo, "t"); err != nil {
				t.Fatalf("resume: %v", err)
			}
			checkMoved(t, e, slug, digests(t, e.mustConnOn(t, "default", tn)))
			wantAudit := map[string]int{"tenant.move": 1, "tenant.move.switch": 1}
			entries, err := e.svc.Registry().ListAudit(ctx, registry.AuditFilter{TenantSlug: slug, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, a := range entries {
				got[a.Action]++
			}
			for k, n := range wantAudit {
				if got[k] != n {
					t.Errorf("%d %s audit entries, want %d", got[k], k, n)
				}
			}
			if got["tenant.move.pause"] < 1 || got["tenant.move.failed"] != 0 {
				t.Errorf("audit %v: want at least one pause, no failure", got)
			}
		})
	}
	for _, c := range moveCrashPoints {
		if !seen[c] {
			t.Errorf("moveCrashPoints tests %s, where no move stops", c)
		}
	}
	for c := range seen {
		if !slices.Contains(moveCrashPoints, c) {
			t.Errorf("moves stop at %s, which moveCrashPoints does not test", c)
		}
	}
}

// TestMoveFailureResumesWrites makes the catch-up fail for real (the new
// server's admin secret is gone after the pause) and checks the tenant's
// writes are resumed on its old server, the move is recorded failed, and
// that moving again once the cause is fixed completes.
func TestMoveFailureResumesWrites(t *testing.T) {
	t.Parallel()
	var (
		e    *moveEnv
		dsn  []byte
		once sync.Once
	)
	e = newMoveEnv(t, func(o *provision.Options) {
		o.InStep = func(ctx context.Context, op, step, point string) error {
			if op == provision.OpMove && point == provision.PointDrained {
				once.Do(func() {
					var err error
					if dsn, err = e.store.Get(ctx, registry.DBServerSecretName("second")); err != nil {
						t.Error(err)
					}
					if err := e.store.Delete(ctx, registry.DBServerSecretName("second")); err != nil {
						t.Error(err)
					}
				})
			}
			return nil
		}
	})
	ctx := context.Background()
	tn, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "flaky"}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Move(ctx, "flaky", "second", "t"); err == nil {
		t.Fatal("a move whose catch-up cannot reach the new server succeeded")
	}
	tn, err = e.svc.Registry().Tenant(ctx, "flaky")
	if err != nil {
		t.Fatal(err)
	}
	if tn.WritesPaused || orNil(tn.DBServer) != "default" {
		t.Fatalf("after the failure: paused %v on %s, want writes resumed on default", tn.WritesPaused, orNil(tn.DBServer))
	}
	m, err := e.svc.Registry().TenantMove(ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != registry.MoveFailed || m.Error == nil {
		t.Errorf("move %s (%v), want failed with its error", m.Status, m.Error)
	}
	// A new session on the old database writes again.
	writeRows(t, e.mustConnOn(t, "default", tn), "after", 3)

	if _, err := e.store.Put(ctx, registry.DBServerSecretName("second"), dsn); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Move(ctx, "flaky", "second", "t"); err != nil {
		t.Fatalf("move once the cause is fixed: %v", err)
	}
	checkMoved(t, e, "flaky", digests(t, e.mustConnOn(t, "default", tn)))
}

// dropTemplate drops the template database on the second server, so the
// next move there builds it again.
func dropTemplate(t *testing.T, e *moveEnv) {
	t.Helper()
	ctx := context.Background()
	dsn, err := e.svc.Registry().AdminDSN(ctx, e.second)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := ident(e.svc.TemplateName())
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+name+" WITH IS_TEMPLATE false"); err != nil && sqlstate(err) != "3D000" {
		t.Fatal(err)
	}
	exec(t, conn, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
}

// TestMoveResumedAfterRotation rotates the tenant's secrets between a
// crashed move and its resume (the rotation sets the password on the old
// server only): the resumed move gives the new server's role the new
// password, and the tenant logs in there with it.
func TestMoveResumedAfterRotation(t *testing.T) {
	t.Parallel()
	e := newMoveEnv(t, nil)
	ctx := context.Background()
	tn, err := e.svc.Create(ctx, provision.CreateRequest{Slug: "rotated"}, "t")
	if err != nil {
		t.Fatal(err)
	}
	crashing := e.with(crash{provision.OpMove, provision.StepPause, provision.PointDrained}.hook)
	if _, err := crashing.Move(ctx, "rotated", "second", "t"); !errors.Is(err, errCrash) {
		t.Fatalf("move: %v, want the simulated crash", err)
	}
	before, err := secrets.LoadBundle(ctx, e.store, tn.SecretsRef)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RotateSecrets(ctx, "rotated", "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Move(ctx, "rotated", "", "t"); err != nil {
		t.Fatalf("resume: %v", err)
	}
	after, err := secrets.LoadBundle(ctx, e.store, tn.SecretsRef)
	if err != nil {
		t.Fatal(err)
	}
	if after.DBPassword == before.DBPassword {
		t.Fatal("the rotation did not change the password")
	}
	checkMoved(t, e, "rotated", digests(t, e.mustConnOn(t, "default", tn))) // connOn logs in with the stored (new) password
}
