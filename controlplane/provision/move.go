package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/secrets"
)

// The move workflow's name, its own steps and points (it also runs
// StepDatabase and StepCopy, and StepDrop once the grace period is over).
const (
	OpMove = "move"

	StepPlan    = "plan"     // move: the servers from and to recorded
	StepPause   = "pause"    // move: old database read-only, writes paused, older sessions ended
	StepCatchUp = "catch-up" // move: what changed since the copy applied to the new database
	StepSwitch  = "switch"   // move: the tenant on the new server, writes resumed

	PointFenced   = "fenced"    // move: the old database refuses the tenant's writes
	PointPaused   = "paused"    // move: writes paused in the registry
	PointDrained  = "drained"   // move: every session from before the fence ended
	PointCaughtUp = "caught-up" // move: the new database holds every committed change
)

// MoveSteps lists the steps of a move up to the switch; the old copy is
// dropped later, by DropMovedCopies, in step StepDrop.
func MoveSteps() []string {
	return []string{StepPlan, StepDatabase, StepCopy, StepPause, StepCatchUp, StepSwitch}
}

// Defaults of the move options.
const (
	DefaultMoveGrace = 24 * time.Hour
	DefaultMoveDrain = 3 * time.Second
)

// Move moves the tenant slug's database to the database server named to
// and switches the data plane to it. Its rows are copied while the tenant
// keeps working; then its writes are paused (the old database becomes
// read-only for the tenant's role, the data plane answers requests that
// would write with 503 and Retry-After, reads go on), what changed since
// the copy is applied, and the tenant is switched to the new server with
// its writes resumed, usually within a second or two. The old copy stays
// until the grace period (Options.MoveGrace) is over (DropMovedCopies).
//
// Each step is recorded, so a move that crashed resumes where it stopped:
// call Move again, with the same server or with to empty ("the move in
// progress"). A step that fails resumes the tenant's writes on its old
// server and records the move failed; calling Move again starts over.
func (s *Service) Move(ctx context.Context, slug, to, actor string) (registry.Tenant, error) {
	conn, unlock, err := s.lock(ctx, slug)
	if err != nil {
		return registry.Tenant{}, err
	}
	defer unlock()
	reg := s.reg.With(conn)
	t, err := reg.Tenant(ctx, slug)
	if err != nil {
		return registry.Tenant{}, err
	}
	m, done, err := s.planMove(ctx, reg, t, to, actor)
	if err != nil || done {
		return t, err
	}
	if t, err = reg.TenantByID(ctx, t.ID); err != nil {
		return t, err
	}
	w := &workflow{s: s, reg: reg, op: OpMove, t: t, actor: actor}
	w.onFail = func(err error) { s.abortMove(reg, t, m, err) }
	defer w.close()
	mv := &mover{w: w, m: m}
	of := func(fn func(context.Context) error) func(*workflow, context.Context) error {
		return func(_ *workflow, ctx context.Context) error { return fn(ctx) }
	}
	err = w.run(ctx, []step{
		{StepPlan, func(*workflow, context.Context) error { return nil }}, // recorded by planMove
		{StepDatabase, of(mv.database)},
		{StepCopy, of(mv.copy)},
		{StepPause, of(mv.pause)},
		{StepCatchUp, of(mv.catchUp)},
		{StepSwitch, of(mv.switchOver)},
	})
	if err != nil {
		return registry.Tenant{}, err
	}
	return reg.TenantByID(ctx, t.ID)
}

// PlanMove checks a move of the tenant slug to the server named to and
// records it, for Move(ctx, slug, "", actor) to run (a control plane
// queues it as an operation). The move in progress to the same server is
// returned as it is.
func (s *Service) PlanMove(ctx context.Context, slug, to, actor string) (registry.Move, error) {
	if to == "" {
		return registry.Move{}, &registry.InvalidError{Field: "to_server", Message: "required"}
	}
	conn, unlock, err := s.lock(ctx, slug)
	if err != nil {
		return registry.Move{}, err
	}
	defer unlock()
	reg := s.reg.With(conn)
	t, err := reg.Tenant(ctx, slug)
	if err != nil {
		return registry.Move{}, err
	}
	m, _, err := s.planMove(ctx, reg, t, to, actor)
	return m, err
}

// planMove checks a move of t to the server named to and records it with
// the plan step, or finds the move in progress to resume (to empty, or the
// same server). done: the tenant is on that server already, moved.
func (s *Service) planMove(ctx context.Context, reg *registry.Registry, t registry.Tenant, to, actor string) (registry.Move, bool, error) {
	cur, err := reg.TenantMove(ctx, t.ID)
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return cur, false, err
	}
	have := err == nil
	if to == "" {
		switch {
		case have && cur.Status == registry.MoveMoving:
			return cur, false, nil
		case have && cur.Status == registry.MoveSwitched:
			return cur, true, nil
		}
		return cur, false, fmt.Errorf("tenant %s has no move in progress: %w", t.Slug, registry.ErrConflict)
	}
	target, err := reg.DBServerByName(ctx, to)
	if errors.Is(err, registry.ErrNotFound) {
		return cur, false, &registry.InvalidError{Field: "to_server", Message: "no database server " + to}
	}
	if err != nil {
		return cur, false, err
	}
	if have && cur.Status == registry.MoveMoving {
		if cur.ToServerID != target.ID {
			return cur, false, fmt.Errorf("tenant %s is moving to %s: %w", t.Slug, cur.To, registry.ErrConflict)
		}
		return cur, false, nil
	}
	if t.DBServerID != nil && *t.DBServerID == target.ID {
		if have && cur.Status == registry.MoveSwitched && cur.ToServerID == target.ID {
			return cur, true, nil
		}
		return cur, false, fmt.Errorf("tenant %s is on %s already: %w", t.Slug, to, registry.ErrConflict)
	}
	if have && cur.Status == registry.MoveSwitched {
		return cur, false, fmt.Errorf("tenant %s: the copy its last move left on %s is dropped after %s; move it again after that: %w",
			t.Slug, cur.From, cur.DropAfter.UTC().Format(time.RFC3339), registry.ErrConflict)
	}
	if t.Status != registry.StatusActive && t.Status != registry.StatusSuspended {
		return cur, false, fmt.Errorf("tenant %s is %s and cannot be moved: %w", t.Slug, t.Status, registry.ErrConflict)
	}
	if t.SchemaVersion != s.latest {
		return cur, false, fmt.Errorf("tenant %s is at migration %d, not %d: migrate it before moving it: %w",
			t.Slug, t.SchemaVersion, s.latest, registry.ErrConflict)
	}
	if target.Tenants >= target.Capacity {
		return cur, false, fmt.Errorf("database server %s is full (%d tenants): %w", to, target.Tenants, registry.ErrConflict)
	}
	if err := s.distinctServers(ctx, t.DBServerID, &target.ID); err != nil {
		return cur, false, err
	}
	if err := reg.ClearSteps(ctx, t.ID, OpMove); err != nil {
		return cur, false, err
	}
	err = registry.Transact(ctx, reg.DB(), func(tx pgx.Tx) error {
		rg := reg.With(tx)
		if err := rg.StartMove(ctx, t.ID, *t.DBServerID, target.ID); err != nil {
			return err
		}
		if err := rg.StepDone(ctx, t.ID, OpMove, StepPlan); err != nil {
			return err
		}
		from := ""
		if t.DBServer != nil {
			from = *t.DBServer
		}
		if err := rg.Audit(ctx, actor, "tenant.move", t.ID, map[string]string{"db_server": from},
			map[string]string{"db_server": to}); err != nil {
			return err
		}
		return s.inStep(ctx, OpMove, StepPlan, PointInTx)
	})
	if err != nil {
		return cur, false, fmt.Errorf("move %s: %s: %w", t.Slug, StepPlan, err)
	}
	if s.opts.AfterStep != nil {
		if err := s.opts.AfterStep(OpMove, StepPlan); err != nil {
			return cur, false, err
		}
	}
	cur, err = reg.TenantMove(ctx, t.ID)
	return cur, false, err
}

// distinctServers refuses a move between two registered servers that are
// one Postgres cluster: the old copy's drop would drop the tenant's only
// database.
func (s *Service) distinctServers(ctx context.Context, a, b *int64) error {
	id := func(serverID *int64) (string, string, error) {
		sv, err := s.connect(ctx, serverID)
		if err != nil {
			return "", "", err
		}
		defer sv.close()
		where := fmt.Sprintf("%s:%d", sv.cfg.Host, sv.cfg.Port)
		var sysid string
		// pg_control_system is not every admin's to call; the address stands in.
		if err := sv.conn.QueryRow(ctx, `SELECT system_identifier::text FROM pg_control_system()`).Scan(&sysid); err != nil {
			sysid = ""
		}
		return sysid, where, nil
	}
	sa, wa, err := id(a)
	if err != nil {
		return err
	}
	sb, wb, err := id(b)
	if err != nil {
		return err
	}
	if (sa != "" && sa == sb) || wa == wb {
		return fmt.Errorf("the two database servers are one Postgres cluster: %w", registry.ErrConflict)
	}
	return nil
}

// mover holds what the steps of one move share.
type mover struct {
	w *workflow
	m registry.Move
}

// target opens an admin connection to the new server (each step opens its
// own: a resumed move may start at any of them).
func (mv *mover) target(ctx context.Context) (*server, error) {
	return mv.w.s.connect(ctx, &mv.m.ToServerID)
}

// database is the move's StepDatabase: the tenant's role (with its stored
// password) and its database cloned from the template on the new server,
// as a create makes them.
func (mv *mover) database(ctx context.Context) error {
	w := mv.w
	tgt, err := mv.target(ctx)
	if err != nil {
		return err
	}
	defer tgt.close()
	b, err := secrets.LoadBundle(ctx, w.s.opts.Secrets, w.t.SecretsRef)
	if err != nil {
		return err
	}
	if err := ensureRole(ctx, tgt.conn, w.t.DBRole, b.DBPassword); err != nil {
		return err
	}
	if err := w.at(ctx, StepDatabase, PointRole); err != nil {
		return err
	}
	if err := w.s.ensureDatabase(ctx, tgt, w.t.DBName, w.t.DBRole, w.at); err != nil {
		return err
	}
	return w.at(ctx, StepDatabase, PointOwned)
}

// syncRole gives the tenant's role on the new server the password of its
// secret bundle.
func (mv *mover) syncRole(ctx context.Context) error {
	tgt, err := mv.target(ctx)
	if err != nil {
		return err
	}
	defer tgt.close()
	b, err := secrets.LoadBundle(ctx, mv.w.s.opts.Secrets, mv.w.t.SecretsRef)
	if err != nil {
		return err
	}
	return ensureRole(ctx, tgt.conn, mv.w.t.DBRole, b.DBPassword)
}

// pair is a connection to the tenant's old database (as the server's admin,
// whom the pause does not make read-only) and one to its new database as
// the tenant's role, both with the same text forms of values.
type pair struct {
	from, to *pgx.Conn
}

func (p *pair) close() {
	if p.from != nil {
		p.from.Close(context.Background())
	}
	if p.to != nil {
		p.to.Close(context.Background())
	}
}

// textForms makes two sessions print every value alike, so rows compare by
// their text.
const textForms = `SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';
	SET extra_float_digits = 1; SET bytea_output = 'hex'`

func (mv *mover) connectPair(ctx context.Context) (*pair, error) {
	w := mv.w
	src, err := w.server(ctx)
	if err != nil {
		return nil, err
	}
	tgt, err := mv.target(ctx)
	if err != nil {
		return nil, err
	}
	defer tgt.close()
	b, err := secrets.LoadBundle(ctx, w.s.opts.Secrets, w.t.SecretsRef)
	if err != nil {
		return nil, err
	}
	p := &pair{}
	if p.from, err = pgx.ConnectConfig(ctx, src.as(w.t.DBName, "", "")); err != nil {
		return nil, fmt.Errorf("database %s on %s: connect: %w", w.t.DBName, src.info.Name, err)
	}
	if p.to, err = pgx.ConnectConfig(ctx, tgt.as(w.t.DBName, w.t.DBRole, b.DBPassword)); err != nil {
		p.close()
		return nil, fmt.Errorf("database %s on %s: connect as tenant: %w", w.t.DBName, tgt.info.Name, err)
	}
	for _, c := range []*pgx.Conn{p.from, p.to} {
		if _, err := c.Exec(ctx, textForms); err != nil {
			p.close()
			return nil, fmt.Errorf("database %s: session settings: %w", w.t.DBName, err)
		}
	}
	return p, nil
}

// copy is the move's StepCopy: every table's rows, read in one snapshot of
// the old database while the tenant keeps working, streamed with COPY into
// the new database in one transaction that first empties it (so a rerun
// starts clean).
func (mv *mover) copy(ctx context.Context) error {
	p, err := mv.connectPair(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	snap, err := p.from.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	defer snap.Rollback(context.Background()) //nolint:errcheck // read-only
	// The ledger too: it says when each migration ran.
	tables, err := OrderedTables(ctx, snap, "")
	if err != nil {
		return fmt.Errorf("copy: tables: %w", err)
	}
	err = pgx.BeginFunc(ctx, p.to, func(tx pgx.Tx) error {
		defer snap.Rollback(context.Background()) //nolint:errcheck // read-only; ends before the rounds below
		quoted := make([]string, len(tables))
		for i, t := range tables {
			quoted[i] = ident(t)
		}
		if len(quoted) > 0 {
			if _, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(quoted, ", ")); err != nil {
				return fmt.Errorf("copy: empty the new database: %w", err)
			}
		}
		for _, table := range tables {
			cols, err := columns(ctx, snap, table)
			if err != nil {
				return fmt.Errorf("copy: %s: %w", table, err)
			}
			if err := streamTable(ctx, snap.Conn(), tx.Conn(), table, cols, ""); err != nil {
				return fmt.Errorf("copy: %s: %w", table, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// What changed during the bulk copy, still while the tenant works, a
	// few rounds until little changes during one, so that the catch-up
	// under the pause has only the last moments' changes.
	for round := 1; round <= syncRounds; round++ {
		began := time.Now()
		n, err := syncRows(ctx, p)
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		mv.w.s.log.Info("move: rows changed during the copy applied", "tenant", mv.w.t.Slug, "round", round, "rows", n,
			"took", time.Since(began).Round(time.Millisecond))
		if n <= syncEnough {
			break
		}
	}
	return mv.w.at(ctx, StepCopy, PointCopied)
}

// The copy step's rounds of catching up while the tenant works: at most
// syncRounds, until one finds at most syncEnough changed rows.
const (
	syncRounds = 5
	syncEnough = 100
)

// streamTable copies the rows of table (those matching where, when given)
// from one connection to another through COPY in text form, without
// holding them in memory.
func streamTable(ctx context.Context, from, to *pgx.Conn, table string, cols []column, where string) error {
	if len(cols) == 0 {
		return nil
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = ident(c.name)
	}
	list := strings.Join(names, ", ")
	sel := fmt.Sprintf("COPY (SELECT %s FROM %s %s) TO STDOUT", list, ident(table), where)
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		_, err := from.PgConn().CopyTo(ctx, pw, sel)
		pw.CloseWithError(err)
		errc <- err
	}()
	_, err := to.PgConn().CopyFrom(ctx, pr, fmt.Sprintf("COPY %s (%s) FROM STDIN", ident(table), list))
	pr.CloseWithError(io.ErrClosedPipe) // a failed COPY FROM stops the reader side
	if rerr := <-errc; err == nil && rerr != nil {
		err = fmt.Errorf("read: %w", rerr)
	}
	return err
}

// pause is the move's StepPause. In order: the old database becomes
// read-only for the tenant's role (new sessions only), the registry pauses
// the tenant's writes (the data plane answers requests that would write
// with 503 and opens new, read-only, connections), and every session of the
// role from before that is waited for (Options.MoveDrain) and then ended,
// so no write can commit on the old database after this step.
func (mv *mover) pause(ctx context.Context) error {
	w := mv.w
	src, err := w.server(ctx)
	if err != nil {
		return err
	}
	if _, err := src.conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s IN DATABASE %s SET default_transaction_read_only = on",
		ident(w.t.DBRole), ident(w.t.DBName))); err != nil {
		return fmt.Errorf("pause: make the old database read-only: %w", err)
	}
	var fencedAt time.Time
	if err := src.conn.QueryRow(ctx, `SELECT now()`).Scan(&fencedAt); err != nil {
		return fmt.Errorf("pause: %w", err)
	}
	if err := w.at(ctx, StepPause, PointFenced); err != nil {
		return err
	}
	if err := registry.Transact(ctx, w.reg.DB(), func(tx pgx.Tx) error {
		rg := w.reg.With(tx)
		if err := rg.SetWritesPaused(ctx, w.t.ID, true); err != nil {
			return err
		}
		return rg.Audit(ctx, w.actor, "tenant.move.pause", w.t.ID, nil, map[string]bool{"writes_paused": true})
	}); err != nil {
		return err
	}
	if err := w.at(ctx, StepPause, PointPaused); err != nil {
		return err
	}
	began := time.Now()
	if err := endSessionsBefore(ctx, src.conn, w.t.DBName, w.t.DBRole, fencedAt, w.s.opts.MoveDrain); err != nil {
		return fmt.Errorf("pause: %w", err)
	}
	w.s.log.Info("move: writes paused, older sessions ended", "tenant", w.t.Slug, "waited", time.Since(began).Round(time.Millisecond))
	return w.at(ctx, StepPause, PointDrained)
}

// endSessionsBefore ends the role's sessions on db that began before t:
// those idle for a second at once (a pool pings such a connection before
// using it again), the others once they end by themselves (the data plane
// retires its pools when the tenant changes) or drain has passed; then it
// waits until they are gone.
func endSessionsBefore(ctx context.Context, admin *pgx.Conn, db, role string, t time.Time, drain time.Duration) error {
	const older = `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND usename = $2 AND backend_start <= $3`
	const end = `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1 AND usename = $2 AND backend_start <= $3
		  AND ($4 OR (state = 'idle' AND state_change < now() - interval '1 second'))`
	start := time.Now()
	for {
		var n int
		if err := admin.QueryRow(ctx, older, db, role, t).Scan(&n); err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		if n == 0 {
			return nil
		}
		waited := time.Since(start)
		if waited > drain+10*time.Second {
			return fmt.Errorf("%d sessions from before the pause are still there", n)
		}
		if _, err := admin.Exec(ctx, end, db, role, t, waited > drain); err != nil {
			return fmt.Errorf("sessions: terminate: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// catchUp is the move's StepCatchUp, run while writes are paused: sync
// brings the changes made since the copy.
func (mv *mover) catchUp(ctx context.Context) error {
	// The password may have been rotated between a crash and this resume
	// (the rotation set it on the old server): the new server's role takes
	// the stored one before anything logs in with it.
	if err := mv.syncRole(ctx); err != nil {
		return err
	}
	p, err := mv.connectPair(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	began := time.Now()
	rows, err := syncRows(ctx, p)
	if err != nil {
		return fmt.Errorf("catch-up: %w", err)
	}
	mv.w.s.log.Info("move: caught up", "tenant", mv.w.t.Slug, "rows", rows, "took", time.Since(began).Round(time.Millisecond))
	return mv.w.at(ctx, StepCatchUp, PointCaughtUp)
}

// syncRows makes the new database equal to a snapshot of the old one: it
// compares every table's rows between the two by primary key and a digest
// of the row's text, and applies the difference in one transaction (new
// rows parents first, changed rows, then gone rows children first); then
// every sequence takes its old position. A table without a primary key is
// copied again whole. It returns how many rows differed.
func syncRows(ctx context.Context, p *pair) (int, error) {
	snap, err := p.from.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, err
	}
	defer snap.Rollback(context.Background()) //nolint:errcheck // read-only
	// The ledger too: it says when each migration ran.
	tables, err := OrderedTables(ctx, snap, "")
	if err != nil {
		return 0, fmt.Errorf("tables: %w", err)
	}
	rows := 0
	err = pgx.BeginFunc(ctx, p.to, func(tx pgx.Tx) error {
		changed, err := changedTables(ctx, snap, tx, tables)
		if err != nil {
			return err
		}
		var diffs []tableDiff
		for _, table := range tables {
			if !changed[table] {
				continue
			}
			d, err := diffTable(ctx, snap, tx, table)
			if err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
			diffs = append(diffs, d)
			rows += len(d.added) + len(d.changed) + len(d.gone)
		}
		for _, d := range diffs { // parents first
			if err := d.apply(ctx, snap, tx); err != nil {
				return fmt.Errorf("%s: %w", d.table, err)
			}
		}
		for i := len(diffs) - 1; i >= 0; i-- { // children first
			if err := diffs[i].deleteGone(ctx, tx); err != nil {
				return fmt.Errorf("%s: %w", diffs[i].table, err)
			}
		}
		return copySequences(ctx, snap, tx)
	})
	return rows, err
}

// changedTables compares a digest of every table's rows between the two
// databases, in one query on each side, and names the tables that differ.
func changedTables(ctx context.Context, from, to pgx.Tx, tables []string) (map[string]bool, error) {
	if len(tables) == 0 {
		return nil, nil
	}
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = fmt.Sprintf("SELECT %s::text, count(*) || ':' || COALESCE(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM %s x",
			literal(t), ident(t))
	}
	q := strings.Join(parts, " UNION ALL ")
	digests := func(tx pgx.Tx) (map[string]string, error) {
		rows, err := tx.Query(ctx, q)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var t, d string
			if err := rows.Scan(&t, &d); err != nil {
				return nil, err
			}
			out[t] = d
		}
		return out, rows.Err()
	}
	src, err := digests(from)
	if err != nil {
		return nil, fmt.Errorf("old tables: %w", err)
	}
	dst, err := digests(to)
	if err != nil {
		return nil, fmt.Errorf("new tables: %w", err)
	}
	out := map[string]bool{}
	for _, t := range tables {
		out[t] = src[t] != dst[t]
	}
	return out, nil
}

// tableDiff is what differs in one table between the old and new database.
type tableDiff struct {
	table   string
	cols    []column
	key     string   // ROW(x.primary key columns)::text, "" when the table has none
	pk      []string // the primary key columns, quoted
	added   []string // keys (as text) only the old database has
	changed []string // keys whose rows differ
	gone    []string // keys only the new database has
}

const primaryKeySQL = `SELECT a.attname, a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) FROM pg_index i
	JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
	WHERE i.indrelid = $1::regclass AND i.indisprimary
	ORDER BY array_position(i.indkey::int2[], a.attnum)`

func diffTable(ctx context.Context, from, to pgx.Tx, table string) (tableDiff, error) {
	d := tableDiff{table: table}
	var err error
	if d.cols, err = columns(ctx, from, table); err != nil {
		return d, err
	}
	rows, err := from.Query(ctx, primaryKeySQL, ident(table))
	if err != nil {
		return d, err
	}
	type keyColumn struct {
		Name    string
		Integer bool
	}
	pk, err := pgx.CollectRows(rows, pgx.RowToStructByPos[keyColumn])
	if err != nil {
		return d, err
	}
	if len(pk) == 0 {
		return d, nil
	}
	quoted := make([]string, len(pk))
	for i, c := range pk {
		d.pk = append(d.pk, ident(c.Name))
		quoted[i] = "x." + ident(c.Name)
	}
	d.key = "ROW(" + strings.Join(quoted, ", ") + ")::text"
	all := make([]string, len(d.cols))
	for i, c := range d.cols {
		all[i] = "x." + ident(c.name)
	}
	rowDigest := "md5(ROW(" + strings.Join(all, ", ") + ")::text)"
	// Rows are compared by groups first (a group of 1024 ids of an integer
	// key, else the whole table), and one by one only in the groups that
	// differ: most of a database does not change during a move.
	group := "0"
	if len(pk) == 1 && pk[0].Integer {
		group = "(" + quoted[0] + " >> 10)"
	}
	groupsQ := fmt.Sprintf("SELECT %[1]s::bigint, md5(string_agg(%[2]s, '' ORDER BY %[3]s)) FROM %[4]s x GROUP BY 1",
		group, rowDigest, strings.Join(quoted, ", "), ident(table))
	pairs := func(tx pgx.Tx, q string, args ...any) (map[string]string, error) {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var k, h string
			if err := rows.Scan(&k, &h); err != nil {
				return nil, err
			}
			out[k] = h
		}
		return out, rows.Err()
	}
	srcG, err := pairs(from, strings.Replace(groupsQ, "::bigint,", "::bigint::text,", 1))
	if err != nil {
		return d, fmt.Errorf("old rows: %w", err)
	}
	dstG, err := pairs(to, strings.Replace(groupsQ, "::bigint,", "::bigint::text,", 1))
	if err != nil {
		return d, fmt.Errorf("new rows: %w", err)
	}
	var differ []string
	for g, h := range srcG {
		if dstG[g] != h {
			differ = append(differ, g)
		}
	}
	for g := range dstG {
		if _, ok := srcG[g]; !ok {
			differ = append(differ, g)
		}
	}
	if len(differ) == 0 {
		return d, nil
	}
	q := fmt.Sprintf("SELECT %s, %s FROM %s x WHERE %s::bigint::text = ANY ($1)", d.key, rowDigest, ident(table), group)
	src, err := pairs(from, q, differ)
	if err != nil {
		return d, fmt.Errorf("old rows: %w", err)
	}
	dst, err := pairs(to, q, differ)
	if err != nil {
		return d, fmt.Errorf("new rows: %w", err)
	}
	for k, h := range src {
		switch dh, ok := dst[k]; {
		case !ok:
			d.added = append(d.added, k)
		case dh != h:
			d.changed = append(d.changed, k)
		}
	}
	for k := range dst {
		if _, ok := src[k]; !ok {
			d.gone = append(d.gone, k)
		}
	}
	return d, nil
}

// apply inserts the added rows and rewrites the changed ones; a table
// without a primary key is emptied and copied again.
func (d tableDiff) apply(ctx context.Context, from, to pgx.Tx) error {
	if d.key == "" {
		if _, err := to.Exec(ctx, "DELETE FROM "+ident(d.table)); err != nil {
			return err
		}
		return streamTable(ctx, from.Conn(), to.Conn(), d.table, d.cols, "")
	}
	if len(d.added) == 0 && len(d.changed) == 0 {
		return nil
	}
	names := make([]string, len(d.cols))
	for i, c := range d.cols {
		names[i] = ident(c.name)
	}
	list := strings.Join(names, ", ")
	var body string
	if err := from.QueryRow(ctx, fmt.Sprintf(`SELECT COALESCE(json_agg(r), '[]') FROM (SELECT %s FROM %s x WHERE %s IN (SELECT unnest($1::text[]))) r`,
		list, ident(d.table), d.key), append(append([]string{}, d.added...), d.changed...)).Scan(&body); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if len(d.changed) > 0 {
		sets := make([]string, len(d.cols))
		for i, n := range names {
			sets[i] = n + " = j." + n
		}
		match := make([]string, len(d.pk))
		for i, c := range d.pk {
			match[i] = "t." + c + " = j." + c
		}
		up := fmt.Sprintf(`UPDATE %[1]s t SET %[2]s FROM (SELECT * FROM json_populate_recordset(NULL::%[1]s, $1::json) x
			WHERE %[3]s IN (SELECT unnest($2::text[]))) j WHERE %[4]s`, ident(d.table), strings.Join(sets, ", "), d.key,
			strings.Join(match, " AND "))
		if _, err := to.Exec(ctx, up, body, d.changed); err != nil {
			return fmt.Errorf("update: %w", err)
		}
	}
	if len(d.added) > 0 {
		ins := fmt.Sprintf(`INSERT INTO %[1]s (%[2]s) OVERRIDING SYSTEM VALUE SELECT %[2]s
			FROM json_populate_recordset(NULL::%[1]s, $1::json) x WHERE %[3]s IN (SELECT unnest($2::text[]))`, ident(d.table), list, d.key)
		if _, err := to.Exec(ctx, ins, body, d.added); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}
	return nil
}

func (d tableDiff) deleteGone(ctx context.Context, to pgx.Tx) error {
	if len(d.gone) == 0 {
		return nil
	}
	_, err := to.Exec(ctx, fmt.Sprintf("DELETE FROM %s x WHERE %s IN (SELECT unnest($1::text[]))", ident(d.table), d.key), d.gone)
	return err
}

// copySequences gives every sequence of the new database its position in
// the old one.
func copySequences(ctx context.Context, from, to pgx.Tx) error {
	rows, err := from.Query(ctx, `SELECT c.oid::regclass::text FROM pg_class c
		WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("sequences: %w", err)
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("sequences: %w", err)
	}
	for _, seq := range seqs {
		var last int64
		var called bool
		if err := from.QueryRow(ctx, "SELECT last_value, is_called FROM "+seq).Scan(&last, &called); err != nil {
			return fmt.Errorf("sequence %s: %w", seq, err)
		}
		if _, err := to.Exec(ctx, `SELECT setval($1::regclass, $2, $3)`, seq, last, called); err != nil {
			return fmt.Errorf("sequence %s: %w", seq, err)
		}
	}
	return nil
}

// switchOver is the move's last step, one transaction: the tenant on the
// new server with its writes resumed (the data plane opens connections
// there at its next request), the move switched with its drop time, the
// step's record and the audit entry.
func (mv *mover) switchOver(ctx context.Context) error {
	w := mv.w
	return registry.Transact(ctx, w.reg.DB(), func(tx pgx.Tx) error {
		rg := w.reg.With(tx)
		var pausedMS int
		if err := tx.QueryRow(ctx, `SELECT COALESCE((extract(epoch FROM now() - started_at) * 1000)::int, 0)
			FROM provisioning_steps WHERE tenant_id = $1 AND operation = $2 AND step = $3`,
			w.t.ID, OpMove, StepPause).Scan(&pausedMS); err != nil {
			return err
		}
		if err := rg.SwitchMove(ctx, w.t.ID, pausedMS, time.Now().Add(w.s.opts.MoveGrace)); err != nil {
			return err
		}
		if err := rg.StepDone(ctx, w.t.ID, w.op, StepSwitch); err != nil {
			return err
		}
		if err := rg.Audit(ctx, w.actor, "tenant.move.switch", w.t.ID, map[string]string{"db_server": mv.m.From},
			map[string]any{"db_server": mv.m.To, "writes_paused_ms": pausedMS}); err != nil {
			return err
		}
		return w.at(ctx, StepSwitch, PointInTx)
	})
}

// abortMove undoes the pause of a move that failed: the old database takes
// the tenant's writes again, the data plane resumes them, the move is
// recorded failed and its steps forgotten (Move starts over), and the
// half-made copy on the new server is dropped when the server answers.
func (s *Service) abortMove(reg *registry.Registry, t registry.Tenant, m registry.Move, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := s.log.With("tenant", t.Slug, "op", OpMove)
	// A step that failed after the switch committed (its record, say) is
	// not undone: the tenant runs on the new server.
	cur, err := reg.TenantMove(ctx, t.ID)
	if err != nil || cur.Status != registry.MoveMoving {
		log.Error("move step failed after the switch; the move stands", "err", cause, "record", err)
		return
	}
	if now, err := reg.TenantByID(ctx, t.ID); err != nil || now.DBServerID == nil || *now.DBServerID != m.FromServerID {
		log.Error("move step failed, and the tenant is not on the old server; leaving it as it is", "err", cause)
		return
	}
	if src, err := s.connect(ctx, t.DBServerID); err != nil {
		log.Error("move failed: cannot reach the old server to resume writes", "err", err)
	} else {
		if _, err := src.conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s IN DATABASE %s RESET default_transaction_read_only",
			ident(t.DBRole), ident(t.DBName))); err != nil {
			log.Error("move failed: resuming writes on the old database", "err", err)
		}
		src.close()
	}
	if err := registry.Transact(ctx, reg.DB(), func(tx pgx.Tx) error {
		rg := reg.With(tx)
		if err := rg.SetWritesPaused(ctx, t.ID, false); err != nil {
			return err
		}
		if err := rg.EndMove(ctx, t.ID, registry.MoveFailed, cause.Error()); err != nil {
			return err
		}
		if err := rg.ClearSteps(ctx, t.ID, OpMove); err != nil {
			return err
		}
		return rg.Audit(ctx, "system", "tenant.move.failed", t.ID, nil, map[string]string{"to_server": m.To})
	}); err != nil {
		log.Error("move failed: recording it and resuming writes", "err", err)
	}
	if tgt, err := s.connect(ctx, &m.ToServerID); err == nil {
		noHook := func(context.Context, string, string) error { return nil }
		if err := dropDatabase(ctx, tgt.conn, t.DBName, t.DBRole, noHook); err != nil {
			log.Warn("move failed: dropping the half-made copy", "server", m.To, "err", err)
		}
		tgt.close()
	}
	log.Error("move failed; writes resumed on the old server", "to_server", m.To, "err", cause)
}

// DropMovedCopies drops the copies that moves left on their old servers
// once their grace period is over, and records those moves finished. It
// returns how many it dropped; the control plane runs it periodically.
func (s *Service) DropMovedCopies(ctx context.Context) (int, error) {
	due, err := s.reg.MovesDue(ctx, time.Now())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range due {
		t, err := s.reg.TenantByID(ctx, m.TenantID)
		if err != nil {
			return n, err
		}
		if err := s.dropMovedCopy(ctx, t.Slug); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (s *Service) dropMovedCopy(ctx context.Context, slug string) error {
	conn, unlock, err := s.lock(ctx, slug)
	if err != nil {
		return err
	}
	defer unlock()
	reg := s.reg.With(conn)
	t, err := reg.Tenant(ctx, slug)
	if err != nil {
		return err
	}
	m, err := reg.TenantMove(ctx, t.ID)
	if err != nil {
		return err
	}
	if m.Status != registry.MoveSwitched {
		return nil // dropped meanwhile by another replica
	}
	if t.DBServerID == nil || *t.DBServerID == m.FromServerID {
		return fmt.Errorf("tenant %s runs on %s: its database there is not an old copy: %w", slug, m.From, registry.ErrConflict)
	}
	w := &workflow{s: s, reg: reg, op: OpMove, t: t, actor: "system"}
	defer w.close()
	err = w.run(ctx, []step{{StepDrop, func(w *workflow, ctx context.Context) error {
		old, err := w.s.connect(ctx, &m.FromServerID)
		if err != nil {
			return err
		}
		defer old.close()
		return dropDatabase(ctx, old.conn, w.t.DBName, w.t.DBRole, w.at)
	}}})
	if err != nil {
		return err
	}
	return registry.Transact(ctx, reg.DB(), func(tx pgx.Tx) error {
		rg := reg.With(tx)
		if err := rg.EndMove(ctx, t.ID, registry.MoveFinished, ""); err != nil {
			return err
		}
		return rg.Audit(ctx, "system", "tenant.move.dropped", t.ID, nil, map[string]string{"db_server": m.From})
	})
}

// RegisterDBServer registers a database server (or updates the one of that
// name) once its admin connection string logs in with the rights to create
// tenant roles and databases. Errors never quote the connection string.
func (s *Service) RegisterDBServer(ctx context.Context, spec registry.DBServerSpec) (registry.DBServer, error) {
	spec, err := spec.Normalize()
	if err != nil {
		return registry.DBServer{}, err
	}
	cfg, err := pgx.ParseConfig(spec.AdminDSN)
	if err != nil {
		return registry.DBServer{}, &registry.InvalidError{Field: "admin_dsn", Message: "does not parse"}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		s.log.Warn("database server does not accept its admin connection", "server", spec.Name, "err", err)
		return registry.DBServer{}, &registry.InvalidError{Field: "admin_dsn",
			Message: fmt.Sprintf("the server at %s:%d does not accept this login", cfg.Host, cfg.Port)}
	}
	defer conn.Close(context.Background())
	var super, createdb, createrole bool
	if err := conn.QueryRow(cctx, `SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user`).
		Scan(&super, &createdb, &createrole); err != nil {
		return registry.DBServer{}, fmt.Errorf("db server %s: %w", spec.Name, err)
	}
	if !super && (!createdb || !createrole) {
		return registry.DBServer{}, &registry.InvalidError{Field: "admin_dsn",
			Message: "the login may not create roles and databases (want CREATEDB and CREATEROLE)"}
	}
	return s.reg.RegisterDBServer(ctx, spec)
}
