package provision

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

const servingDatabasesSQL = `
SELECT id, db_server_id, db_name FROM tenants
 WHERE status IN ('active', 'suspended') AND db_server_id IS NOT NULL
 ORDER BY db_server_id, id`

const databaseSizesSQL = `SELECT datname, pg_database_size(datname) FROM pg_database WHERE datname = ANY ($1)`

// DatabaseSizes returns the size in bytes of every serving tenant's
// database, by tenant id (the usage sampler's database gauge). A server
// that cannot be reached leaves its tenants out and is reported in the
// error, with the sizes of the others.
func (s *Service) DatabaseSizes(ctx context.Context) (map[int64]int64, error) {
	type row struct {
		ID, Server int64
		DB         string
	}
	rows, err := s.opts.Platform.Query(ctx, servingDatabasesSQL)
	if err != nil {
		return nil, fmt.Errorf("database sizes: %w", err)
	}
	tenants, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		return nil, fmt.Errorf("database sizes: %w", err)
	}
	byServer := map[int64]map[string]int64{} // server → database → tenant
	for _, t := range tenants {
		if byServer[t.Server] == nil {
			byServer[t.Server] = map[string]int64{}
		}
		byServer[t.Server][t.DB] = t.ID
	}
	out := make(map[int64]int64, len(tenants))
	var errs []error
	for id, dbs := range byServer {
		if err := s.serverSizes(ctx, id, dbs, out); err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

func (s *Service) serverSizes(ctx context.Context, id int64, dbs map[string]int64, out map[int64]int64) error {
	sv, err := s.connect(ctx, &id)
	if err != nil {
		return err
	}
	defer sv.close()
	names := make([]string, 0, len(dbs))
	for n := range dbs {
		names = append(names, n)
	}
	rows, err := sv.conn.Query(ctx, databaseSizesSQL, names)
	if err != nil {
		return fmt.Errorf("db server %s: database sizes: %w", sv.info.Name, err)
	}
	var name string
	var size int64
	_, err = pgx.ForEachRow(rows, []any{&name, &size}, func() error {
		out[dbs[name]] = size
		return nil
	})
	if err != nil {
		return fmt.Errorf("db server %s: database sizes: %w", sv.info.Name, err)
	}
	return nil
}
