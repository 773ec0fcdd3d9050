// Package importer brings a Django StartupWebApp database (the original
// app, upstream 8591b6e) into a tenant database: members keep their
// passwords (Django's pbkdf2_sha256 hashes, re-hashed at their next sign-in),
// orders, carts, prospects, campaigns and analytics keep their ids, and the
// codes in mail already sent (mb_cd, pr_cd, em_cd) keep their values.
//
// Import reads the source in one repeatable-read, read-only snapshot and
// writes each destination table in a transaction of its own, upserting by
// the source's ids, so a run that stopped part way is completed by the next
// one, and a run on the same source changes nothing. Run (tenant.go) is the
// control plane's operation around it: the tenant, its signing key and the
// report. docs/import.md is the map of names, types and rules.
package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/startupwebapp/platform/tenant/account"
)

// Options adjust an Import.
type Options struct {
	// TenantKey is the tenant's signing key (its session key): without a
	// DjangoSecretKey, unsubscribe tokens are signed again with it.
	TenantKey []byte
	// DjangoSecretKey is the source installation's SECRET_KEY. Given, every
	// signed value is kept as it is (and the tenant must sign with this key
	// from now on, see Run); without it the values signed with it are
	// dropped or signed again, and the report counts them.
	DjangoSecretKey []byte
	// DryRun writes everything in one transaction and rolls it back: the
	// report says what a real run would write.
	DryRun bool
	// RequireEmpty refuses a destination that already has people, orders or
	// carts (a first import); a re-run of an import leaves it false.
	RequireEmpty bool
	// BatchSize is how many source rows are read and written at a time
	// (default 2000).
	BatchSize int
	// Progress, when set, receives each table's report once it is done.
	Progress func(TableReport)
	// BeforeWrite, when set, runs once the source and the destination have
	// been checked and before anything is written (not on a dry run); an
	// error stops the import.
	BeforeWrite func() error
	// AfterTable, when set, runs once a table is committed; an error stops
	// the import there, as a crash would. For tests.
	AfterTable func(table string) error
}

// Report is what an import read, wrote and refused.
type Report struct {
	DryRun bool          `json:"dry_run"`
	Tables []TableReport `json:"tables"`
	// Staff is the source's staff users made back-office staff.
	Staff    *TableReport   `json:"staff"`
	Skipped  []SkippedTable `json:"not_imported"`
	Notes    []string       `json:"notes"`
	Changes  int64          `json:"changes"` // rows inserted, updated or deleted, every table
	Refused  int64          `json:"refused"`
	Started  time.Time      `json:"started_at"`
	Duration Duration       `json:"duration"`
}

// TableReport is one destination table's part of a report.
type TableReport struct {
	Table     string       `json:"table"`
	Source    string       `json:"source"`
	Read      int64        `json:"read"`
	Inserted  int64        `json:"inserted"`
	Updated   int64        `json:"updated"`
	Unchanged int64        `json:"unchanged"`
	Deleted   int64        `json:"deleted"`
	Refused   []RefusedRow `json:"refused,omitempty"`
	Notes     []string     `json:"notes,omitempty"`
	Duration  Duration     `json:"duration"`
}

// Written is the rows the table's run inserted or updated.
func (t TableReport) Written() int64 { return t.Inserted + t.Updated }

// RefusedRow is a source row that was not imported, and why.
type RefusedRow struct {
	ID     int64           `json:"id"`
	Reason string          `json:"reason"`
	Row    json.RawMessage `json:"row"`
}

// SkippedTable is a source table the platform has no place for.
type SkippedTable struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
	Why   string `json:"why"`
}

// Duration is a time.Duration that reads well in JSON ("1.25s").
type Duration time.Duration

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads the text form.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// ErrNotStartupWebApp is returned for a source without the original's tables.
var ErrNotStartupWebApp = errors.New("the source is not a StartupWebApp database (no auth_user, user_member and order_order tables)")

// ErrWrongKey is returned when the given Django SECRET_KEY signed none of the
// source's unsubscribe tokens: adopting it would break every link.
var ErrWrongKey = errors.New("the given Django SECRET_KEY does not sign this database's unsubscribe tokens")

// ErrNotEmpty is returned when RequireEmpty finds people, orders or carts.
var ErrNotEmpty = errors.New("the tenant already has members, prospects, orders or carts")

// peopleTables are the ones RequireEmpty checks.
var peopleTables = []string{"account", "member", "prospect", "customer_order", "cart", "chat_message"}

// Import copies the Django database on src into the tenant database on dst.
func Import(ctx context.Context, src, dst *pgx.Conn, o Options) (*Report, error) {
	if o.BatchSize <= 0 {
		o.BatchSize = 2000
	}
	if o.DjangoSecretKey == nil && len(o.TenantKey) == 0 {
		return nil, errors.New("import: the tenant's signing key is required")
	}
	rep := &Report{DryRun: o.DryRun, Started: time.Now().UTC()}
	snap, err := src.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("import: source snapshot: %w", err)
	}
	defer snap.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	for _, t := range []string{"auth_user", "user_member", "order_order"} {
		if ok, err := sourceHas(ctx, snap, t); err != nil {
			return nil, fmt.Errorf("import: source: %w", err)
		} else if !ok {
			return nil, ErrNotStartupWebApp
		}
	}
	if o.RequireEmpty {
		for _, t := range peopleTables {
			var any bool
			if err := dst.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+ident(t)+")").Scan(&any); err != nil {
				return nil, fmt.Errorf("import: destination %s: %w", t, err)
			}
			if any {
				return nil, fmt.Errorf("import: %w (table %s)", ErrNotEmpty, t)
			}
		}
	}
	sig, err := newSignedValues(o)
	if err != nil {
		return nil, err
	}
	if err := sig.checkKey(ctx, snap); err != nil {
		return nil, err
	}

	if o.BeforeWrite != nil && !o.DryRun {
		if err := o.BeforeWrite(); err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
	}

	// A dry run nests every table in one transaction that is rolled back;
	// a real run commits each table on its own.
	begin := func(ctx context.Context) (pgx.Tx, error) { return dst.Begin(ctx) }
	if o.DryRun {
		outer, err := dst.Begin(ctx)
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		defer outer.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
		begin = outer.Begin
	}

	for _, t := range tables {
		tr, err := importTable(ctx, snap, begin, t, sig, o)
		if err != nil {
			return nil, fmt.Errorf("import: %s: %w", t.Dest, err)
		}
		if tr == nil {
			continue
		}
		rep.Tables = append(rep.Tables, *tr)
		rep.Changes += tr.Inserted + tr.Updated + tr.Deleted
		rep.Refused += int64(len(tr.Refused))
		if o.Progress != nil {
			o.Progress(*tr)
		}
		if o.AfterTable != nil {
			if err := o.AfterTable(t.Dest); err != nil {
				return nil, fmt.Errorf("import: stopped after %s: %w", t.Dest, err)
			}
		}
	}
	// The insight rollups are the batch writer's; events copied here are
	// counted by recomputing them (a re-run recomputes them again).
	if rep.Changes > 0 && !o.DryRun {
		if _, err := dst.Exec(ctx, `SELECT insight_rebuild()`); err != nil {
			return nil, fmt.Errorf("import: insight rollups: %w", err)
		}
	}
	for _, nt := range notImported {
		ok, err := sourceHas(ctx, snap, nt.Table)
		if err != nil {
			return nil, fmt.Errorf("import: source: %w", err)
		}
		if !ok {
			continue
		}
		var n int64
		if err := snap.QueryRow(ctx, "SELECT count(*) FROM "+ident(nt.Table)).Scan(&n); err != nil {
			return nil, fmt.Errorf("import: source %s: %w", nt.Table, err)
		}
		rep.Skipped = append(rep.Skipped, SkippedTable{Table: nt.Table, Rows: n, Why: nt.Why})
	}
	rep.Notes = append(rep.Notes, sig.notes()...)
	staff, err := importStaff(ctx, snap, begin)
	if err != nil {
		return nil, fmt.Errorf("import: staff: %w", err)
	}
	rep.Staff = staff
	rep.Changes += staff.Inserted + staff.Updated
	rep.Refused += int64(len(staff.Refused))
	if o.Progress != nil {
		o.Progress(*staff)
	}
	rep.Duration = Duration(time.Since(rep.Started))
	return rep, nil
}

// importStaff makes the source's staff users (is_staff or is_superuser)
// back-office staff, matched by e-mail address (the staff table's key;
// its ids are the platform's own): a superuser becomes an owner, the others
// staff, each keeping the Django password hash, which the back office
// verifies and re-hashes like the members'. They also keep their account
// row with is_staff. A user without an address cannot sign in there and is
// refused, with the row in the report.
func importStaff(ctx context.Context, snap pgx.Tx, begin func(context.Context) (pgx.Tx, error)) (*TableReport, error) {
	start := time.Now()
	tr := &TableReport{Table: "staff", Source: "auth_user"}
	rows, err := snap.Query(ctx, `SELECT row_to_json(x)::text FROM (
	SELECT id, email, btrim(first_name || ' ' || last_name) AS name, password AS password_hash,
		CASE WHEN is_superuser THEN 'owner' ELSE 'staff' END AS role, is_active, last_login, date_joined AS created_at
	FROM auth_user WHERE is_staff OR is_superuser ORDER BY id) x`)
	if err != nil {
		return nil, err
	}
	raw, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	tx, err := begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	const upsert = `WITH src AS (SELECT * FROM json_populate_record(NULL::staff, $1::json)),
up AS (INSERT INTO staff AS d (email, name, password_hash, role, is_active, last_login, created_at)
	SELECT email, name, password_hash, role, is_active, last_login, created_at FROM src
	ON CONFLICT (lower(email)) DO UPDATE SET name = EXCLUDED.name,
		password_hash = CASE WHEN d.password_hash LIKE '$argon2id$%' THEN d.password_hash ELSE EXCLUDED.password_hash END,
		role = EXCLUDED.role, is_active = EXCLUDED.is_active, last_login = GREATEST(d.last_login, EXCLUDED.last_login)
	WHERE ROW(d.name, d.password_hash, d.role, d.is_active, d.last_login) IS DISTINCT FROM
		ROW(EXCLUDED.name, CASE WHEN d.password_hash LIKE '$argon2id$%' THEN d.password_hash ELSE EXCLUDED.password_hash END,
			EXCLUDED.role, EXCLUDED.is_active, GREATEST(d.last_login, EXCLUDED.last_login))
	RETURNING (xmax = 0) AS inserted)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up`
	for _, r := range raw {
		tr.Read++
		var row map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r), &row); err != nil {
			return nil, err
		}
		var id int64
		_ = json.Unmarshal(row["id"], &id)
		if email, _ := str(row, "email"); strings.TrimSpace(email) == "" {
			tr.Refused = append(tr.Refused, refused(id, "a staff user without an e-mail address cannot sign in to the back office (the account is imported)", row))
			continue
		}
		sp, err := tx.Begin(ctx)
		if err != nil {
			return nil, err
		}
		var c counts
		if err := sp.QueryRow(ctx, upsert, r).Scan(&c.inserted, &c.updated); err != nil {
			_ = sp.Rollback(ctx)
			if !isDataError(err) {
				return nil, err
			}
			tr.Refused = append(tr.Refused, refused(id, "the tenant's schema refuses it: "+pgMessage(err), row))
			continue
		}
		if err := sp.Commit(ctx); err != nil {
			return nil, err
		}
		tr.Inserted += c.inserted
		tr.Updated += c.updated
	}
	tr.Unchanged = tr.Read - tr.Inserted - tr.Updated - int64(len(tr.Refused))
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	tr.Duration = Duration(time.Since(start))
	return tr, nil
}

func sourceHas(ctx context.Context, q pgx.Tx, table string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT to_regclass('public.' || quote_ident($1)) IS NOT NULL`, table).Scan(&ok)
	return ok, err
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// importTable copies one table; nil when an optional source table is missing.
func importTable(ctx context.Context, snap pgx.Tx, begin func(context.Context) (pgx.Tx, error), t table, sig *signedValues, o Options) (*TableReport, error) {
	start := time.Now()
	ok, err := sourceHas(ctx, snap, t.Source)
	if err != nil {
		return nil, err
	}
	if !ok {
		if t.Optional {
			return nil, nil
		}
		return nil, fmt.Errorf("the source has no table %s", t.Source)
	}
	tr := &TableReport{Table: t.Dest, Source: t.Source}
	read := readSQL(t, t.Cols)
	write := upsertSQL(t, sig.columns(t))

	tx, err := begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck

	var kept []int64 // ids in the destination after this run (Mirror)
	var after int64 = -1 << 62
	for {
		rows, err := snap.Query(ctx, read, after, o.BatchSize)
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		raw, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		if len(raw) == 0 {
			break
		}
		var batch []map[string]json.RawMessage
		var ids []int64
		for _, r := range raw {
			var row map[string]json.RawMessage
			if err := json.Unmarshal(r, &row); err != nil {
				return nil, fmt.Errorf("read: %w", err)
			}
			var id int64
			if err := json.Unmarshal(row["id"], &id); err != nil {
				return nil, fmt.Errorf("read: row without an integer id: %w", err)
			}
			after = id
			tr.Read++
			if reason := keepNewest(t, row, id); reason != "" {
				tr.Refused = append(tr.Refused, refused(id, reason, row))
				continue
			}
			for k := range row {
				if strings.HasPrefix(k, "_keep_") {
					delete(row, k)
				}
			}
			sig.apply(t.Dest, row)
			batch = append(batch, row)
			ids = append(ids, id)
		}
		written, bad, err := writeBatch(ctx, tx, write, batch, ids)
		if err != nil {
			return nil, err
		}
		tr.Inserted += written.inserted
		tr.Updated += written.updated
		tr.Refused = append(tr.Refused, bad...)
		for _, id := range ids {
			if !slices.ContainsFunc(bad, func(r RefusedRow) bool { return r.ID == id }) {
				kept = append(kept, id)
			}
		}
		if len(raw) < o.BatchSize {
			break
		}
	}
	tr.Unchanged = tr.Read - tr.Inserted - tr.Updated - int64(len(tr.Refused))
	if t.Mirror {
		tag, err := tx.Exec(ctx, "DELETE FROM "+ident(t.Dest)+" WHERE NOT (id = ANY($1))", kept)
		if err != nil {
			return nil, fmt.Errorf("delete rows the source no longer has: %w", err)
		}
		tr.Deleted = tag.RowsAffected()
	}
	if err := moveSequence(ctx, snap, tx, t); err != nil {
		return nil, fmt.Errorf("sequence: %w", err)
	}
	tr.Notes = append(tr.Notes, sig.tableNotes(t.Dest)...)
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	tr.Duration = Duration(time.Since(start))
	return tr, nil
}

// redacted are the columns a refused row shows masked: the report goes to
// the audit log and the API, which never hold password hashes or the codes
// and tokens that act as credentials.
var redacted = []string{"password_hash", "email_verification_string", "email_verification_string_signed",
	"reset_password_string", "reset_password_string_signed", "email_unsubscribe_string", "email_unsubscribe_string_signed",
	"stripe_customer_token"}

func refused(id int64, reason string, row map[string]json.RawMessage) RefusedRow {
	clean := make(map[string]json.RawMessage, len(row))
	for k, v := range row {
		switch {
		case strings.HasPrefix(k, "_keep_"):
		case slices.Contains(redacted, k) && string(v) != "null":
			clean[k] = json.RawMessage(`"***"`)
		default:
			clean[k] = v
		}
	}
	b, _ := json.Marshal(clean)
	return RefusedRow{ID: id, Reason: reason, Row: b}
}

// keepNewest applies the table's KeepNewest rule to one row: a reason to
// refuse it, or "".
func keepNewest(t table, row map[string]json.RawMessage, id int64) string {
	for i, set := range t.KeepNewest {
		v, ok := row[fmt.Sprintf("_keep_%d", i)]
		if !ok || string(v) == "null" {
			continue
		}
		var keep int64
		if err := json.Unmarshal(v, &keep); err == nil && keep != id {
			return fmt.Sprintf("another %s row has the same %s and the tenant allows one (the original only checked this in code): the newest, id %d, is imported",
				t.Source, strings.Join(set, ", "), keep)
		}
	}
	return ""
}

func sourceExpr(c col) string {
	if c.Source != "" {
		return "s." + ident(c.Source)
	}
	return "s." + ident(c.Name)
}

// readSQL reads one batch of the source, keyed by id, as JSON rows named
// with the destination's columns, plus the id each KeepNewest set keeps.
func readSQL(t table, cs []col) string {
	var sel []string
	for _, c := range cs {
		sel = append(sel, sourceExpr(c)+" AS "+ident(c.Name))
	}
	inner := "SELECT *"
	for i, set := range t.KeepNewest {
		var src, notNull []string
		for _, name := range set {
			e := sourceExpr(colNamed(cs, name))[2:]
			src = append(src, e)
			notNull = append(notNull, e+" IS NOT NULL")
		}
		inner += fmt.Sprintf(", CASE WHEN %s THEN max(id) OVER (PARTITION BY %s) END AS _keep_%d",
			strings.Join(notNull, " AND "), strings.Join(src, ", "), i)
		sel = append(sel, fmt.Sprintf("s._keep_%d", i))
	}
	inner += " FROM " + ident(t.Source)
	return fmt.Sprintf(`SELECT row_to_json(x)::text FROM (SELECT %s FROM (%s) s WHERE s.id > $1::bigint ORDER BY s.id LIMIT $2::bigint) x`,
		strings.Join(sel, ", "), inner)
}

func colNamed(cs []col, name string) col {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return col{Name: name}
}

// upsertSQL writes a JSON array of rows: new ids are inserted, existing
// ones updated where they differ; it returns how many of each.
func upsertSQL(t table, cs []col) string {
	var names, sets, cur, next []string
	for _, c := range cs {
		names = append(names, ident(c.Name))
		if c.Name == "id" {
			continue
		}
		up := c.Update
		if up == "" {
			up = "EXCLUDED." + ident(c.Name)
		}
		sets = append(sets, ident(c.Name)+" = "+up)
		cur = append(cur, "d."+ident(c.Name))
		next = append(next, up)
	}
	list := strings.Join(names, ", ")
	return fmt.Sprintf(`WITH up AS (
	INSERT INTO %[1]s AS d (%[2]s) OVERRIDING SYSTEM VALUE
	SELECT %[2]s FROM json_populate_recordset(NULL::%[1]s, $1::json)
	ON CONFLICT (id) DO UPDATE SET %[3]s
	WHERE ROW(%[4]s) IS DISTINCT FROM ROW(%[5]s)
	RETURNING (xmax = 0) AS inserted)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up`,
		ident(t.Dest), list, strings.Join(sets, ", "), strings.Join(cur, ", "), strings.Join(next, ", "))
}

type counts struct{ inserted, updated int64 }

// writeBatch upserts rows in a savepoint; should the batch break a
// constraint, its rows are written one by one and those that fail are
// refused with the database's reason.
func writeBatch(ctx context.Context, tx pgx.Tx, q string, rows []map[string]json.RawMessage, ids []int64) (counts, []RefusedRow, error) {
	if len(rows) == 0 {
		return counts{}, nil, nil
	}
	c, err := writeRows(ctx, tx, q, rows)
	if err == nil {
		return c, nil, nil
	}
	if !isDataError(err) {
		return counts{}, nil, err
	}
	var total counts
	var bad []RefusedRow
	for i, row := range rows {
		c, err := writeRows(ctx, tx, q, rows[i:i+1])
		if err != nil {
			if !isDataError(err) {
				return counts{}, nil, err
			}
			bad = append(bad, refused(ids[i], "the tenant's schema refuses it: "+pgMessage(err), row))
			continue
		}
		total.inserted += c.inserted
		total.updated += c.updated
	}
	return total, bad, nil
}

func writeRows(ctx context.Context, tx pgx.Tx, q string, rows []map[string]json.RawMessage) (counts, error) {
	body, err := json.Marshal(rows)
	if err != nil {
		return counts{}, err
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return counts{}, err
	}
	var c counts
	if err := sp.QueryRow(ctx, q, string(body)).Scan(&c.inserted, &c.updated); err != nil {
		_ = sp.Rollback(ctx)
		return counts{}, err
	}
	return c, sp.Commit(ctx)
}

// isDataError reports a constraint or value error of one row (class 22 data
// exception, class 23 integrity violation), as opposed to a failure of the
// connection or the statement itself.
func isDataError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23"))
}

func pgMessage(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Detail != "" {
			return pe.Message + " (" + pe.Detail + ")"
		}
		return pe.Message
	}
	return err.Error()
}

// moveSequence moves the destination's id sequence past both the ids it
// holds and every id the source has handed out (deleted carts used ids too),
// so rows made on the platform never take an id a newer copy of the source
// brings. It never moves a sequence back.
func moveSequence(ctx context.Context, snap, tx pgx.Tx, t table) error {
	var seq *string
	if err := tx.QueryRow(ctx, `SELECT pg_get_serial_sequence($1, 'id')`, t.Dest).Scan(&seq); err != nil || seq == nil {
		return err
	}
	var srcNext int64
	var srcSeq *string
	if err := snap.QueryRow(ctx, `SELECT pg_get_serial_sequence($1, 'id')`, t.Source).Scan(&srcSeq); err != nil {
		return err
	}
	if srcSeq != nil {
		var last int64
		var called bool
		if err := snap.QueryRow(ctx, "SELECT last_value, is_called FROM "+*srcSeq).Scan(&last, &called); err != nil {
			return err
		}
		srcNext = last
		if !called {
			srcNext = last - 1
		}
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(`SELECT setval($1, v) FROM (
	SELECT GREATEST((SELECT COALESCE(max(id), 0) FROM %[1]s), $2::bigint) AS v) n, %[2]s s
WHERE n.v > s.last_value OR (n.v = s.last_value AND NOT s.is_called AND n.v > 0)`, ident(t.Dest), *seq), *seq, srcNext)
	return err
}

// signedValues is how one run treats the values the source signed with its
// SECRET_KEY, and what it counted of them.
type signedValues struct {
	withKey bool
	django  *account.Signer // the source's key, when given
	tenant  *account.Signer // the tenant's key
	// counts, by what happened
	droppedVerification, droppedReset int64
	resigned, unverified              map[string]int64
	anonymousCarts                    int64
}

func newSignedValues(o Options) (*signedValues, error) {
	s := &signedValues{resigned: map[string]int64{}, unverified: map[string]int64{}}
	if o.DjangoSecretKey != nil {
		if len(o.DjangoSecretKey) == 0 {
			return nil, errors.New("import: the Django SECRET_KEY is empty")
		}
		s.withKey = true
		s.django = account.NewSigner(o.DjangoSecretKey)
	}
	if len(o.TenantKey) > 0 {
		s.tenant = account.NewSigner(o.TenantKey)
	}
	return s, nil
}

// droppedColumns are written only when the Django key is given: codes
// signed with it that cannot verify under another key, and are short-lived
// anyway (a verification code lasts a day, a reset code an hour).
var droppedColumns = map[string][]string{
	"member": {"email_verification_string", "email_verification_string_signed", "reset_password_string", "reset_password_string_signed"},
}

// checkKey refuses a Django key under which none of a sample of the
// source's unsubscribe tokens verifies.
func (s *signedValues) checkKey(ctx context.Context, snap pgx.Tx) error {
	if !s.withKey {
		return nil
	}
	rows, err := snap.Query(ctx, `(SELECT email_unsubscribe_string, email_unsubscribe_string_signed FROM user_member
	WHERE email_unsubscribe_string IS NOT NULL AND email_unsubscribe_string_signed IS NOT NULL ORDER BY id DESC LIMIT 20)
UNION ALL (SELECT email_unsubscribe_string, email_unsubscribe_string_signed FROM user_prospect
	WHERE email_unsubscribe_string IS NOT NULL AND email_unsubscribe_string_signed IS NOT NULL ORDER BY id DESC LIMIT 20)`)
	if err != nil {
		return fmt.Errorf("import: source tokens: %w", err)
	}
	pairs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var p [2]string
		err := r.Scan(&p[0], &p[1])
		return p, err
	})
	if err != nil {
		return fmt.Errorf("import: source tokens: %w", err)
	}
	for _, p := range pairs {
		if s.django.CheckUnsubscribeToken(p[0], p[1]) {
			return nil
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	return ErrWrongKey
}

// columns is the table's columns for this run.
func (s *signedValues) columns(t table) []col {
	drop := droppedColumns[t.Dest]
	if s.withKey || len(drop) == 0 {
		return t.Cols
	}
	var out []col
	for _, c := range t.Cols {
		if !slices.Contains(drop, c.Name) {
			out = append(out, c)
		}
	}
	return out
}

func str(row map[string]json.RawMessage, name string) (string, bool) {
	v, ok := row[name]
	if !ok {
		return "", false
	}
	var s *string
	if err := json.Unmarshal(v, &s); err != nil || s == nil {
		return "", false
	}
	return *s, true
}

// apply adjusts one row's signed values and counts them.
func (s *signedValues) apply(dest string, row map[string]json.RawMessage) {
	switch dest {
	case "member", "prospect":
	case "cart":
		if _, ok := str(row, "anonymous_cart_id"); ok {
			s.anonymousCarts++
		}
		return
	default:
		return
	}
	if dest == "member" && !s.withKey {
		// The columns are read to count them, and not written.
		if _, ok := str(row, "email_verification_string_signed"); ok {
			s.droppedVerification++
		}
		if _, ok := str(row, "reset_password_string_signed"); ok {
			s.droppedReset++
		}
		for _, c := range droppedColumns["member"] {
			delete(row, c)
		}
	}
	unsub, ok := str(row, "email_unsubscribe_string")
	if !ok {
		return
	}
	token, _ := str(row, "email_unsubscribe_string_signed")
	if s.withKey {
		if !s.django.CheckUnsubscribeToken(unsub, token) {
			s.unverified[dest]++
		}
		return
	}
	if fresh := s.tenant.UnsubscribeToken(unsub); fresh != token {
		b, _ := json.Marshal(fresh)
		row["email_unsubscribe_string_signed"] = b
		s.resigned[dest]++
	}
}

func (s *signedValues) tableNotes(dest string) []string {
	var out []string
	switch dest {
	case "member":
		if s.droppedVerification > 0 {
			out = append(out, fmt.Sprintf("%d pending e-mail verification code(s) dropped: they were signed with the Django SECRET_KEY (the member asks for a new one)", s.droppedVerification))
		}
		if s.droppedReset > 0 {
			out = append(out, fmt.Sprintf("%d pending password-reset code(s) dropped: they were signed with the Django SECRET_KEY", s.droppedReset))
		}
	}
	switch dest {
	case "member", "prospect":
		if n := s.resigned[dest]; n > 0 {
			out = append(out, fmt.Sprintf("%d unsubscribe token(s) signed again with the tenant's key: links in mail already sent answer member-not-found; give the Django SECRET_KEY to keep them", n))
		}
		if n := s.unverified[dest]; n > 0 {
			out = append(out, fmt.Sprintf("%d unsubscribe token(s) do not verify with the given Django SECRET_KEY: their links answer token-altered", n))
		}
	case "cart":
		if !s.withKey && s.anonymousCarts > 0 {
			out = append(out, fmt.Sprintf("%d anonymous cart(s) imported; their visitors' an_ct cookies were signed with the Django SECRET_KEY, so only members' carts are reachable without it", s.anonymousCarts))
		}
	}
	return out
}

func (s *signedValues) notes() []string {
	if s.withKey {
		return []string{"signed values kept as they are: the tenant signs with the Django SECRET_KEY from now on"}
	}
	return nil
}
