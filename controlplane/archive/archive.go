// Package archive exports one tenant to a self-describing file and restores
// such a file as a tenant: its database at its migration version (every
// table's rows and every id sequence), its display name, plan, settings,
// domains and origins. Secrets are not in the file; a restored tenant gets
// its own. The file is gzip-compressed JSON lines: a header, then each
// table's columns and rows (parents before children), then the sequences.
package archive

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// Format names the file kind; Version its layout.
const (
	Format  = "swa-tenant-archive"
	Version = 1
)

// ledger is the migration ledger of a tenant database: its version is in
// the header, and a restored database keeps its own.
const ledger = "schema_migrations"

// Header is the archive's first line.
type Header struct {
	Format        string           `json:"format"`
	Version       int              `json:"version"`
	SchemaVersion int64            `json:"schema_version"` // the tenant migration the database is at
	Slug          string           `json:"slug"`
	DisplayName   string           `json:"display_name"`
	Plan          string           `json:"plan"`
	Settings      tenancy.Settings `json:"settings"`
	Domains       []string         `json:"domains"` // default first
	Origins       []string         `json:"origins"`
	ExportedAt    time.Time        `json:"exported_at"`
	Tables        []string         `json:"tables"` // in the order they follow, parents first
}

// line is every line after the header: a table's start, a row, or the end.
type line struct {
	Table     string           `json:"table,omitempty"`
	Columns   []string         `json:"columns,omitempty"`
	Row       json.RawMessage  `json:"row,omitempty"`
	Sequences map[string]int64 `json:"sequences,omitempty"` // table -> last value (0: never used)
	End       bool             `json:"end,omitempty"`
}

// Service exports and restores tenants.
type Service struct {
	Provision *provision.Service
	Secrets   secrets.Store
	// Progress, when set, hears of each table done (rows so far).
	Progress func(table string, rows int64)
}

// ErrNewer refuses an archive from a newer tenant migration than this
// platform has.
var ErrNewer = errors.New("the archive is from a newer tenant migration than this platform knows")

// ErrOlder refuses an archive from an older tenant migration: its rows are
// restored only into the schema they were exported from.
var ErrOlder = errors.New("the archive is from an older tenant migration than this platform's")

// Export writes the tenant slug to w, from one repeatable-read snapshot.
func (s *Service) Export(ctx context.Context, slug string, w io.Writer) (Header, error) {
	reg := s.Provision.Registry()
	t, err := reg.Tenant(ctx, slug)
	if err != nil {
		return Header{}, err
	}
	if t.Status != registry.StatusActive && t.Status != registry.StatusSuspended {
		return Header{}, fmt.Errorf("export %s: tenant is %s: %w", slug, t.Status, registry.ErrConflict)
	}
	// A restore adds the archive's domains as an operator would, verified:
	// a domain still pending DNS verification stays out of the archive.
	details, err := reg.Domains(ctx, t.ID)
	if err != nil {
		return Header{}, fmt.Errorf("export %s: %w", slug, err)
	}
	t.Domains = t.Domains[:0]
	for _, d := range details {
		if d.Status == tenancy.DomainVerified {
			t.Domains = append(t.Domains, d.Hostname)
		}
	}
	conn, err := s.connect(ctx, t)
	if err != nil {
		return Header{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return Header{}, fmt.Errorf("export %s: %w", slug, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	var version int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version_id), 0) FROM `+ledger+` WHERE is_applied`).Scan(&version); err != nil {
		return Header{}, fmt.Errorf("export %s: migration version: %w", slug, err)
	}
	tables, err := provision.OrderedTables(ctx, tx, ledger)
	if err != nil {
		return Header{}, fmt.Errorf("export %s: %w", slug, err)
	}
	h := Header{Format: Format, Version: Version, SchemaVersion: version, Slug: t.Slug, DisplayName: t.DisplayName,
		Plan: t.Plan, Settings: t.Settings, Domains: t.Domains, Origins: t.Origins, ExportedAt: time.Now().UTC(), Tables: tables}

	zw := gzip.NewWriter(w)
	bw := bufio.NewWriterSize(zw, 64<<10)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(h); err != nil {
		return Header{}, err
	}
	seqs := map[string]int64{}
	for _, table := range tables {
		cols, err := columnNames(ctx, tx, table)
		if err != nil {
			return Header{}, fmt.Errorf("export %s: %s: %w", slug, table, err)
		}
		if err := enc.Encode(line{Table: table, Columns: cols}); err != nil {
			return Header{}, err
		}
		rows, err := tx.Query(ctx, "SELECT row_to_json(x)::text FROM "+ident(table)+" x")
		if err != nil {
			return Header{}, fmt.Errorf("export %s: %s: %w", slug, table, err)
		}
		var n int64
		for rows.Next() {
			var raw string
			if err := rows.Scan(&raw); err != nil {
				rows.Close()
				return Header{}, err
			}
			if err := enc.Encode(line{Row: json.RawMessage(raw)}); err != nil {
				rows.Close()
				return Header{}, err
			}
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return Header{}, fmt.Errorf("export %s: %s: %w", slug, table, err)
		}
		last, ok, err := sequenceValue(ctx, tx, table)
		if err != nil {
			return Header{}, fmt.Errorf("export %s: %s: sequence: %w", slug, table, err)
		}
		if ok {
			seqs[table] = last
		}
		if s.Progress != nil {
			s.Progress(table, n)
		}
	}
	if err := enc.Encode(line{Sequences: seqs, End: true}); err != nil {
		return Header{}, err
	}
	if err := bw.Flush(); err != nil {
		return Header{}, err
	}
	if err := zw.Close(); err != nil {
		return Header{}, err
	}
	return h, nil
}

// Restore creates the tenant slug from an archive: a new tenant with the
// archive's name, plan, settings and origins, and the domains no other
// tenant holds (the default one is the new slug's), then every row and
// sequence in one transaction. It refuses an archive from another tenant
// migration than this platform's newest. A restore that stopped after the
// tenant was created is completed by running it again.
func (s *Service) Restore(ctx context.Context, r io.Reader, slug, actor string) (registry.Tenant, Header, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return registry.Tenant{}, Header{}, fmt.Errorf("restore: not a tenant archive (not gzip): %w", err)
	}
	dec := json.NewDecoder(bufio.NewReaderSize(zr, 64<<10))
	var h Header
	if err := dec.Decode(&h); err != nil || h.Format != Format {
		return registry.Tenant{}, h, errors.New("restore: not a tenant archive (no swa-tenant-archive header)")
	}
	if h.Version != Version {
		return registry.Tenant{}, h, fmt.Errorf("restore: archive layout %d, this platform reads %d", h.Version, Version)
	}
	latest := s.Provision.LatestMigration()
	switch {
	case h.SchemaVersion > latest:
		return registry.Tenant{}, h, fmt.Errorf("restore: %w: the archive is at tenant migration %d and this platform's newest is %d; restore it with a newer swa",
			ErrNewer, h.SchemaVersion, latest)
	case h.SchemaVersion < latest:
		return registry.Tenant{}, h, fmt.Errorf("restore: %w: the archive is at tenant migration %d and this platform's newest is %d; migrate the tenant it came from (swa migrate --tenant %s) and export it again",
			ErrOlder, h.SchemaVersion, latest, h.Slug)
	}

	reg := s.Provision.Registry()
	t, err := reg.Tenant(ctx, slug)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		domains, err := freeDomains(ctx, reg, h)
		if err != nil {
			return registry.Tenant{}, h, err
		}
		t, err = s.Provision.Create(ctx, provision.CreateRequest{Slug: slug, DisplayName: h.DisplayName, Plan: h.Plan,
			Settings: h.Settings, Domains: domains, Origins: h.Origins}, actor)
		if err != nil {
			return registry.Tenant{}, h, err
		}
		if err := reg.Audit(ctx, actor, "tenant.restore.start", t.ID, nil, map[string]any{"from": h.Slug, "exported_at": h.ExportedAt}); err != nil {
			return t, h, err
		}
	case err != nil:
		return registry.Tenant{}, h, err
	default:
		begun, err := restoreBegun(ctx, reg, slug)
		if err != nil {
			return t, h, err
		}
		if !begun {
			return t, h, fmt.Errorf("restore: tenant %s exists: restore to a new slug: %w", slug, registry.ErrConflict)
		}
	}

	conn, err := s.connect(ctx, t)
	if err != nil {
		return t, h, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		tables, err := provision.OrderedTables(ctx, tx, ledger)
		if err != nil {
			return err
		}
		quoted := make([]string, len(tables))
		for i, tb := range tables {
			quoted[i] = ident(tb)
		}
		// The new database's seed rows give way to the archive's.
		if _, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(quoted, ", ")); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
		return load(ctx, tx, dec, tables)
	})
	if err != nil {
		return t, h, fmt.Errorf("restore %s: %w", slug, err)
	}
	if err := reg.Audit(ctx, actor, "tenant.restore", t.ID, nil, map[string]any{"from": h.Slug, "exported_at": h.ExportedAt, "schema_version": h.SchemaVersion}); err != nil {
		return t, h, err
	}
	return t, h, nil
}

// load reads the archive's tables and writes their rows in batches.
func load(ctx context.Context, tx pgx.Tx, dec *json.Decoder, tables []string) error {
	var (
		table string
		cols  []string
		batch []json.RawMessage
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		body, err := json.Marshal(batch)
		if err != nil {
			return err
		}
		list := strings.Join(cols, ", ")
		q := fmt.Sprintf("INSERT INTO %[1]s (%[2]s) OVERRIDING SYSTEM VALUE SELECT %[2]s FROM json_populate_recordset(NULL::%[1]s, $1::json)",
			ident(table), list)
		if _, err := tx.Exec(ctx, q, string(body)); err != nil {
			return fmt.Errorf("%s: %w", table, err)
		}
		batch = batch[:0]
		return nil
	}
	for {
		var l line
		if err := dec.Decode(&l); err != nil {
			if err == io.EOF {
				return errors.New("the archive ends before its last line: it is cut short")
			}
			return fmt.Errorf("read archive: %w", err)
		}
		switch {
		case l.End:
			if err := flush(); err != nil {
				return err
			}
			for tb, last := range l.Sequences {
				if !slices.Contains(tables, tb) {
					return fmt.Errorf("sequence of unknown table %s", tb)
				}
				if last <= 0 {
					continue
				}
				if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, 'id'), $2)`, tb, last); err != nil {
					return fmt.Errorf("%s: sequence: %w", tb, err)
				}
			}
			return nil
		case l.Table != "":
			if err := flush(); err != nil {
				return err
			}
			if !slices.Contains(tables, l.Table) {
				return fmt.Errorf("the archive has a table %s this schema lacks", l.Table)
			}
			table = l.Table
			cols = cols[:0]
			for _, c := range l.Columns {
				cols = append(cols, ident(c))
			}
		case l.Row != nil:
			if table == "" {
				return errors.New("a row before any table")
			}
			batch = append(batch, l.Row)
			if len(batch) >= 1000 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
}

func restoreBegun(ctx context.Context, reg *registry.Registry, slug string) (bool, error) {
	entries, err := reg.ListAudit(ctx, registry.AuditFilter{TenantSlug: slug, Limit: 500})
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if e.Action == "tenant.restore" {
			return false, nil // finished: not to be overwritten
		}
		if e.Action == "tenant.restore.start" {
			return true, nil
		}
	}
	return false, nil
}

// freeDomains is the archive's custom domains that no tenant holds (its
// default domain belongs to the old slug).
func freeDomains(ctx context.Context, reg *registry.Registry, h Header) ([]string, error) {
	ts, err := reg.Tenants(ctx, registry.TenantFilter{})
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	for _, t := range ts {
		for _, d := range t.Domains {
			taken[d] = true
		}
	}
	var out []string
	for i, d := range h.Domains {
		if i == 0 || taken[d] {
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

func (s *Service) connect(ctx context.Context, t registry.Tenant) (*pgx.Conn, error) {
	if t.DBServerID == nil {
		return nil, fmt.Errorf("tenant %s has no database server", t.Slug)
	}
	reg := s.Provision.Registry()
	sv, err := reg.DBServerByID(ctx, *t.DBServerID)
	if err != nil {
		return nil, err
	}
	dsn, err := reg.AdminDSN(ctx, sv)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("db server %s: admin connection string does not parse", sv.Name)
	}
	b, err := secrets.LoadBundle(ctx, s.Secrets, t.SecretsRef)
	if err != nil {
		return nil, err
	}
	cfg.Database, cfg.User, cfg.Password = t.DBName, t.DBRole, b.DBPassword
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: connect: %w", t.Slug, err)
	}
	return conn, nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func columnNames(ctx context.Context, tx pgx.Tx, table string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = $1 AND is_generated = 'NEVER' ORDER BY ordinal_position`, table)
	if err != nil {
		return nil, err
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	sort.Strings(cols)
	return cols, err
}

// sequenceValue is the table's id sequence position (0: never used).
func sequenceValue(ctx context.Context, tx pgx.Tx, table string) (int64, bool, error) {
	var seq *string
	err := tx.QueryRow(ctx, `SELECT pg_get_serial_sequence($1, 'id') FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = $1 AND column_name = 'id'`, table).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil // no id column
	}
	if err != nil {
		return 0, false, err
	}
	if seq == nil {
		return 0, false, nil
	}
	var last int64
	var called bool
	if err := tx.QueryRow(ctx, "SELECT last_value, is_called FROM "+*seq).Scan(&last, &called); err != nil {
		return 0, false, err
	}
	if !called {
		return 0, true, nil
	}
	return last, true, nil
}
