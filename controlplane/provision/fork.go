package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/secrets"
)

// forkTables are the tables a fork copies from its source, parents before
// children: the catalog, shipping methods, terms of use, email templates and
// the shop configuration. Members, orders, carts, prospects and events are
// never copied.
var forkTables = []string{
	"email_type", "email_status", "email",
	"terms_of_use_version",
	"order_configuration",
	"sku_type", "sku_inventory", "sku", "sku_price", "sku_image",
	"product", "product_image", "product_video", "product_sku",
	"shipping_method",
}

// mergeSettings is the source's settings with the request's non-empty fields
// on top (a fork given a frontend_origin keeps it, not the source's).
func mergeSettings(src, req directory.Settings) directory.Settings {
	out := src
	if req.FrontendOrigin != "" {
		out.FrontendOrigin = req.FrontendOrigin
	}
	if req.FromAddress != "" {
		out.FromAddress = req.FromAddress
	}
	if req.CookieDomain != "" {
		out.CookieDomain = req.CookieDomain
	}
	// A fork looks like its source unless the request brings a look of
	// its own.
	if req.Branding != nil {
		out.Branding = req.Branding
	}
	if len(src.RateLimits)+len(req.RateLimits) > 0 {
		out.RateLimits = map[string]string{}
		for k, v := range src.RateLimits {
			out.RateLimits[k] = v
		}
		for k, v := range req.RateLimits {
			out.RateLimits[k] = v
		}
	}
	return out
}

// copyFromSource is a fork's copy step: it reads the source tenant's rows in
// one repeatable-read snapshot and writes them into the new database in one
// transaction, replacing the seeded reference rows, keeping ids, and moving
// the id sequences past them. Rerunning it gives the same result.
func (w *workflow) copyFromSource(ctx context.Context) error {
	src, err := w.reg.TenantByID(ctx, *w.t.ForkOfID)
	if err != nil {
		return err
	}
	srcSv, err := w.s.connect(ctx, src.DBServerID)
	if err != nil {
		return err
	}
	defer srcSv.close()
	from, err := pgx.ConnectConfig(ctx, srcSv.as(src.DBName, "", ""))
	if err != nil {
		return fmt.Errorf("fork source %s: connect: %w", src.Slug, err)
	}
	defer from.Close(context.Background())

	sv, err := w.server(ctx)
	if err != nil {
		return err
	}
	b, err := secrets.LoadBundle(ctx, w.s.opts.Secrets, w.t.SecretsRef)
	if err != nil {
		return err
	}
	to, err := pgx.ConnectConfig(ctx, sv.as(w.t.DBName, w.t.DBRole, b.DBPassword))
	if err != nil {
		return fmt.Errorf("database %s: connect as tenant: %w", w.t.DBName, err)
	}
	defer to.Close(context.Background())

	snap, err := from.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("fork source %s: %w", src.Slug, err)
	}
	defer snap.Rollback(context.Background()) //nolint:errcheck

	err = pgx.BeginFunc(ctx, to, func(tx pgx.Tx) error {
		quoted := make([]string, len(forkTables))
		for i, t := range forkTables {
			quoted[i] = ident(t)
		}
		// Only the new database's own seed rows reference these tables; the
		// cascade reaches tables that are still empty there.
		if _, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(quoted, ", ")+" CASCADE"); err != nil {
			return fmt.Errorf("fork: truncate: %w", err)
		}
		for _, table := range forkTables {
			if err := copyTable(ctx, snap, tx, table); err != nil {
				return fmt.Errorf("fork: %s: %w", table, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return w.at(ctx, StepCopy, PointCopied)
}

type column struct {
	name      string
	sequenced bool // identity or serial: its sequence moves past the copied ids
}

const columnsSQL = `SELECT column_name, (is_identity = 'YES' OR COALESCE(column_default LIKE 'nextval(%', false)) AS sequenced
	FROM information_schema.columns
	WHERE table_schema = 'public' AND table_name = $1 AND is_generated = 'NEVER'
	ORDER BY ordinal_position`

func columns(ctx context.Context, q pgx.Tx, table string) ([]column, error) {
	rows, err := q.Query(ctx, columnsSQL, table)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		err := r.Scan(&c.name, &c.sequenced)
		return c, err
	})
}

// copyTable moves one table's rows as a JSON array, which carries every
// column type through its text form; only the columns both databases have
// are copied, so a source a migration behind or ahead still forks.
func copyTable(ctx context.Context, from, to pgx.Tx, table string) error {
	srcCols, err := columns(ctx, from, table)
	if err != nil {
		return err
	}
	dstCols, err := columns(ctx, to, table)
	if err != nil {
		return err
	}
	if len(dstCols) == 0 {
		return fmt.Errorf("table is missing in the new database")
	}
	var names []string
	for _, c := range dstCols {
		if slices.ContainsFunc(srcCols, func(s column) bool { return s.name == c.name }) {
			names = append(names, ident(c.name))
		}
	}
	if len(names) == 0 {
		return nil
	}
	list := strings.Join(names, ", ")
	var rows []byte
	if err := from.QueryRow(ctx, fmt.Sprintf("SELECT COALESCE(json_agg(x), '[]') FROM (SELECT %s FROM %s) x", list, ident(table))).
		Scan(&rows); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	ins := fmt.Sprintf("INSERT INTO %[1]s (%[2]s) OVERRIDING SYSTEM VALUE SELECT %[2]s FROM json_populate_recordset(NULL::%[1]s, $1::json)",
		ident(table), list)
	if _, err := to.Exec(ctx, ins, string(rows)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	for _, c := range dstCols {
		if !c.sequenced {
			continue
		}
		q := fmt.Sprintf("SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(max(%[1]s), 0) + 1, false) FROM %[2]s",
			ident(c.name), ident(table))
		if _, err := to.Exec(ctx, q, table, c.name); err != nil {
			return fmt.Errorf("sequence %s: %w", c.name, err)
		}
	}
	return nil
}

// OrderedTables lists the database's tables but skip (its migration
// ledger), each after the
// tables it references, and last those that neither reference nor are
// referenced: counters kept by triggers on other tables (catalog_version)
// are then written after those triggers have fired, as they were.
func OrderedTables(ctx context.Context, tx pgx.Tx, skip string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> $1 ORDER BY 1`, skip)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	rows, err = tx.Query(ctx, `SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c
		WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace AND c.conrelid <> c.confrelid`)
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{}
	referenced := map[string]bool{}
	err = func() error {
		defer rows.Close()
		for rows.Next() {
			var child, parent string
			if err := rows.Scan(&child, &parent); err != nil {
				return err
			}
			deps[child] = append(deps[child], parent)
			referenced[parent] = true
		}
		return rows.Err()
	}()
	if err != nil {
		return nil, err
	}
	var out, isolated []string
	done := map[string]bool{}
	for _, n := range names {
		if len(deps[n]) == 0 && !referenced[n] {
			isolated = append(isolated, n)
			done[n] = true
		}
	}
	names = slices.DeleteFunc(names, func(n string) bool { return slices.Contains(isolated, n) })
	for len(out) < len(names) {
		progress := false
		for _, n := range names {
			if done[n] {
				continue
			}
			ready := true
			for _, p := range deps[n] {
				if !done[p] && p != n {
					ready = false
				}
			}
			if ready {
				done[n] = true
				out = append(out, n)
				progress = true
			}
		}
		if !progress {
			return nil, errors.New("the tables' references form a cycle")
		}
	}
	return append(out, isolated...), nil
}
