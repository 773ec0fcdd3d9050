package sites

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
)

// Points of a deploy, a rollback or a version's deletion where
// Options.Hook runs: after a change that the next one depends on, or inside
// the transaction that makes a version visible. A hook's error stops the
// work there as a crash would; the same call again completes it.
const (
	PointRecorded    = "recorded"     // pending version and its file list committed
	PointBlobStored  = "blob-stored"  // one blob written, not yet marked stored
	PointBlobsMarked = "blobs-marked" // every blob marked stored; the version still pending
	PointInTx        = "in-tx"        // inside the transaction that switches the site's version
	PointActivated   = "activated"    // the version served; older ones not yet pruned
	PointPruned      = "pruned"       // old versions deleted, their blobs marked for deletion
	PointBlobDeleted = "blob-deleted" // one unreferenced blob deleted from the backend
	PointPurged      = "site-purged"  // Purge: every version deleted, every blob marked for deletion
)

// DeployPoints lists the points a deploy passes, in order.
func DeployPoints() []string {
	return []string{PointRecorded, PointBlobStored, PointBlobsMarked, PointInTx, PointActivated, PointPruned, PointBlobDeleted}
}

// DefaultRetain is how many ready versions a site keeps by default.
const DefaultRetain = 10

// pendingTTL is how long a pending version (a deploy cut off and never
// retried) is kept for a retry to resume.
const pendingTTL = 24 * time.Hour

// Options configures a Store.
type Options struct {
	// DB is the platform database, read-write. Required.
	DB *pgxpool.Pool
	// Blobs keeps the files' bytes (default: the database backend on DB).
	Blobs Blobs
	// Retain is how many ready versions are kept, the served one always
	// among them (default 10).
	Retain int
	// Hook, when set, runs at the named points (Point*). For tests.
	Hook func(ctx context.Context, point string) error
}

// Store deploys, lists, rolls back and deletes site versions: the control
// plane's side of the package.
type Store struct {
	db     *pgxpool.Pool
	blobs  Blobs
	retain int
	hook   func(ctx context.Context, point string) error
}

// New returns a Store.
func New(o Options) (*Store, error) {
	if o.DB == nil {
		return nil, errors.New("sites: Options.DB is required")
	}
	if o.Blobs == nil {
		o.Blobs = NewDBBlobs(o.DB)
	}
	if o.Retain <= 0 {
		o.Retain = DefaultRetain
	}
	return &Store{db: o.DB, blobs: o.Blobs, retain: o.Retain, hook: o.Hook}, nil
}

// Version is one deployed version of a site.
type Version struct {
	Number int `json:"number"`
	// Ready is false for a version whose deploy was cut off: deploying its
	// bundle again completes it.
	Ready     bool       `json:"ready"`
	Current   bool       `json:"current"`
	Files     int        `json:"files"`
	Bytes     int64      `json:"bytes"`
	Actor     string     `json:"actor"`
	CreatedAt time.Time  `json:"created_at"`
	ReadyAt   *time.Time `json:"ready_at"`

	ID int64 `json:"-"`
}

// Site is a tenant's site: where it is served, which version, and the
// versions kept, newest first.
type Site struct {
	Mode           string    `json:"mode"`
	Domain         *string   `json:"domain"`
	CurrentVersion *int      `json:"current_version"`
	Versions       []Version `json:"versions"`
}

// Audit records a change in the transaction that makes it, with the state
// before and after (the provisioning layer binds the actor and tenant).
type Audit func(ctx context.Context, tx pgx.Tx, action string, before, after any) error

// FieldError is a bad argument, naming it.
type FieldError struct{ Field, Message string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// stopped is a hook's error: the work stops as a crash would.
type stopped struct{ err error }

func (e *stopped) Error() string { return e.err.Error() }
func (e *stopped) Unwrap() error { return e.err }

func (s *Store) at(ctx context.Context, point string) error {
	if s.hook == nil {
		return nil
	}
	if err := s.hook(ctx, point); err != nil {
		return &stopped{err}
	}
	return nil
}

// lock serialises the changes to one tenant's site across control-plane
// replicas (a session advisory lock on a connection of its own), so a
// deploy's uploads and the garbage collector never interleave. It waits
// until ctx ends.
func (s *Store) lock(ctx context.Context, tenantID int64) (func(), error) {
	conn, err := pgx.ConnectConfig(ctx, s.db.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("site lock: %w", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext($1))`, fmt.Sprintf("swa:site:%d", tenantID)); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("site lock: %w", err)
	}
	// Closing the session releases the lock.
	return func() { conn.Close(context.Background()) }, nil
}

// lockLive is lock for a change that a tenant being deleted must not get:
// taken once the delete has marked the tenant, it refuses (ErrConflict), so
// no deploy that began before the delete adds to a site its purge removed.
func (s *Store) lockLive(ctx context.Context, tenantID int64) (func(), error) {
	unlock, err := s.lock(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	var status string
	err = s.db.QueryRow(ctx, `SELECT status FROM tenants WHERE id = $1`, tenantID).Scan(&status)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		err = fmt.Errorf("tenant %d: %w", tenantID, ErrNotFound)
	case err != nil:
		err = fmt.Errorf("site lock: %w", err)
	case status == "deleting" || status == "deleted":
		err = fmt.Errorf("tenant %d is %s: %w", tenantID, status, ErrConflict)
	}
	if err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// transact runs fn in a transaction on the platform database.
func (s *Store) transact(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.db, fn)
}

// Deploy makes b the tenant's served site version and returns it. A
// deploy of the bundle already served changes nothing; one that resumes a
// deploy of the same bundle cut off earlier reuses its pending version and
// the blobs it stored. Only the last transaction makes the version visible.
func (s *Store) Deploy(ctx context.Context, tenantID int64, b *Bundle, actor string, audit Audit) (Version, error) {
	unlock, err := s.lockLive(ctx, tenantID)
	if err != nil {
		return Version{}, err
	}
	defer unlock()

	cur, err := s.current(ctx, s.db, tenantID)
	if err != nil {
		return Version{}, err
	}
	if cur != nil && cur.digest == b.Digest {
		// Served already: a deploy retried after it switched, or the same
		// bundle again. Finish the clean-up it may not have done.
		if err := s.collect(ctx, tenantID); err != nil {
			return Version{}, err
		}
		return s.version(ctx, tenantID, cur.number)
	}

	var id int64
	err = s.db.QueryRow(ctx, `SELECT id FROM site_versions WHERE tenant_id = $1 AND digest = $2 AND status = 'pending'
		ORDER BY id DESC LIMIT 1`, tenantID, b.Digest[:]).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		id, err = s.record(ctx, tenantID, b, actor)
	}
	if err != nil {
		return Version{}, fmt.Errorf("site deploy: %w", err)
	}
	if err := s.at(ctx, PointRecorded); err != nil {
		return Version{}, err
	}
	if err := s.upload(ctx, tenantID, b); err != nil {
		return Version{}, err
	}
	if err := s.activate(ctx, tenantID, id, audit); err != nil {
		return Version{}, err
	}
	if err := s.at(ctx, PointActivated); err != nil {
		return Version{}, err
	}
	if err := s.collect(ctx, tenantID); err != nil {
		return Version{}, err
	}
	var number int
	if err := s.db.QueryRow(ctx, `SELECT number FROM site_versions WHERE id = $1`, id).Scan(&number); err != nil {
		return Version{}, fmt.Errorf("site deploy: %w", err)
	}
	return s.version(ctx, tenantID, number)
}

// record commits a pending version of b with its file list and the rows of
// the blobs it names (not yet stored), so the garbage collector keeps them.
func (s *Store) record(ctx context.Context, tenantID int64, b *Bundle, actor string) (int64, error) {
	var id int64
	err := s.transact(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO sites (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING`, tenantID); err != nil {
			return err
		}
		var number int
		if err := tx.QueryRow(ctx, `UPDATE sites SET next_number = next_number + 1 WHERE tenant_id = $1
			RETURNING next_number - 1`, tenantID).Scan(&number); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO site_versions (tenant_id, number, status, digest, files, bytes, actor)
			VALUES ($1, $2, 'pending', $3, $4, $5, $6) RETURNING id`,
			tenantID, number, b.Digest[:], len(b.Files), b.Bytes, actor).Scan(&id); err != nil {
			return err
		}
		var (
			sums  [][]byte
			sizes []int64
			seen  = map[Sum]bool{}
		)
		add := func(sum Sum, n int) {
			if !seen[sum] {
				seen[sum] = true
				sums, sizes = append(sums, sum[:]), append(sizes, int64(n))
			}
		}
		rows := make([][]any, 0, len(b.Files))
		for _, f := range b.Files {
			add(f.Sum, len(f.Data))
			row := []any{id, tenantID, f.Path, f.ContentType, f.Sum[:], int64(len(f.Data)), nil, nil, nil, nil}
			if f.Gzip != nil {
				add(f.GzipSum, len(f.Gzip))
				row[6], row[7] = f.GzipSum[:], int64(len(f.Gzip))
			}
			if f.Brotli != nil {
				add(f.BrotliSum, len(f.Brotli))
				row[8], row[9] = f.BrotliSum[:], int64(len(f.Brotli))
			}
			rows = append(rows, row)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO site_blobs (tenant_id, sha256, size)
			SELECT $1, s, n FROM unnest($2::bytea[], $3::bigint[]) AS u(s, n) ON CONFLICT DO NOTHING`,
			tenantID, sums, sizes); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"site_files"},
			[]string{"version_id", "tenant_id", "path", "content_type", "sha256", "size", "gzip_sha256", "gzip_size", "br_sha256", "br_size"},
			pgx.CopyFromRows(rows))
		return err
	})
	return id, err
}

// uploadConcurrency bounds the blobs written at once.
const uploadConcurrency = 4

// upload writes every blob of b not yet stored, then marks them stored.
func (s *Store) upload(ctx context.Context, tenantID int64, b *Bundle) error {
	data := map[Sum][]byte{}
	for _, f := range b.Files {
		data[f.Sum] = f.Data
		if f.Gzip != nil {
			data[f.GzipSum] = f.Gzip
		}
		if f.Brotli != nil {
			data[f.BrotliSum] = f.Brotli
		}
	}
	all := make([][]byte, 0, len(data))
	for sum := range data {
		all = append(all, sum[:])
	}
	rows, err := s.db.Query(ctx, `SELECT sha256 FROM site_blobs WHERE tenant_id = $1 AND NOT stored AND sha256 = ANY($2)`, tenantID, all)
	if err != nil {
		return fmt.Errorf("site deploy: %w", err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return fmt.Errorf("site deploy: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(uploadConcurrency)
	for _, m := range missing {
		var sum Sum
		copy(sum[:], m)
		g.Go(func() error {
			if err := s.blobs.Put(gctx, tenantID, sum, data[sum]); err != nil {
				return err
			}
			return s.at(gctx, PointBlobStored)
		})
	}
	if err := g.Wait(); err != nil {
		var st *stopped
		if errors.As(err, &st) {
			return err
		}
		return fmt.Errorf("site deploy: %w", err)
	}
	if _, err := s.db.Exec(ctx, `UPDATE site_blobs SET stored = true WHERE tenant_id = $1 AND sha256 = ANY($2)`, tenantID, missing); err != nil {
		return fmt.Errorf("site deploy: %w", err)
	}
	return s.at(ctx, PointBlobsMarked)
}

// unstoredOf counts the blobs a version names that are not stored.
const unstoredOf = `SELECT count(*) FROM site_files f JOIN site_blobs b ON b.tenant_id = f.tenant_id
	AND b.sha256 IN (f.sha256, f.gzip_sha256, f.br_sha256) WHERE f.version_id = $1 AND NOT b.stored`

// activate marks the version ready and serves it, in one transaction.
func (s *Store) activate(ctx context.Context, tenantID, id int64, audit Audit) error {
	err := s.transact(ctx, func(tx pgx.Tx) error {
		var unstored int
		if err := tx.QueryRow(ctx, unstoredOf, id).Scan(&unstored); err != nil {
			return err
		}
		if unstored > 0 {
			return fmt.Errorf("%d blobs of the version are not stored", unstored)
		}
		before, err := s.current(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		var number int
		if err := tx.QueryRow(ctx, `UPDATE site_versions SET status = 'ready', ready_at = now() WHERE id = $1 RETURNING number`, id).Scan(&number); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE sites SET current_version = $2, updated_at = now() WHERE tenant_id = $1`, tenantID, id); err != nil {
			return err
		}
		if audit != nil {
			if err := audit(ctx, tx, "site.deploy", before.view(), versionView{Number: number}); err != nil {
				return err
			}
		}
		return s.at(ctx, PointInTx)
	})
	var st *stopped
	if err != nil && !errors.As(err, &st) {
		return fmt.Errorf("site deploy: activate: %w", err)
	}
	return err
}

// versionView is what the audit log records of a served version.
type versionView struct {
	Number int `json:"current_version"`
}

type current struct {
	id     int64
	number int
	digest Sum
}

func (c *current) view() any {
	if c == nil {
		return nil
	}
	return versionView{Number: c.number}
}

// current returns the served version (nil: none).
func (s *Store) current(ctx context.Context, db DB, tenantID int64) (*current, error) {
	var (
		c current
		d []byte
	)
	err := db.QueryRow(ctx, `SELECT v.id, v.number, v.digest FROM sites si JOIN site_versions v ON v.id = si.current_version
		WHERE si.tenant_id = $1`, tenantID).Scan(&c.id, &c.number, &d)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("site: current version: %w", err)
	}
	copy(c.digest[:], d)
	return &c, nil
}

// unreferenced selects a tenant's blobs that no version names.
const unreferenced = `tenant_id = $1 AND NOT EXISTS (SELECT 1 FROM site_files f WHERE f.tenant_id = b.tenant_id
	AND (f.sha256 = b.sha256 OR f.gzip_sha256 = b.sha256 OR f.br_sha256 = b.sha256))`

// collect prunes versions past the retention (the served one always kept,
// pending ones once stale) and deletes the blobs no version names: marked
// unstored first, then deleted from the backend, then forgotten, so a
// collection cut off anywhere only repeats work when run again, and a
// deploy that names such a blob again writes it anew.
func (s *Store) collect(ctx context.Context, tenantID int64) error {
	return s.sweep(ctx, tenantID, s.at, PointPruned, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM site_versions v WHERE v.tenant_id = $1
			AND v.id IS DISTINCT FROM (SELECT current_version FROM sites WHERE tenant_id = $1)
			AND ((v.status = 'ready' AND v.number NOT IN (SELECT number FROM site_versions
			       WHERE tenant_id = $1 AND status = 'ready' ORDER BY number DESC LIMIT $2))
			  OR (v.status = 'pending' AND v.created_at < now() - make_interval(secs => $3)))`,
			tenantID, s.retain, pendingTTL.Seconds())
		return err
	})
}

// Purge deletes a tenant's whole site, for a tenant being deleted: where it
// is served, every version and every blob (in the backend too). at, when
// set, runs at PointPurged and PointBlobDeleted instead of Options.Hook.
// Cut off anywhere, it completes when run again; on a tenant without a site
// it changes nothing. The caller marks the tenant deleting first: every other
// change then refuses (lockLive), so none can follow the purge.
func (s *Store) Purge(ctx context.Context, tenantID int64, at func(ctx context.Context, point string) error) error {
	if at == nil {
		at = s.at
	}
	unlock, err := s.lock(ctx, tenantID)
	if err != nil {
		return err
	}
	defer unlock()
	err = s.sweep(ctx, tenantID, at, PointPurged, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sites WHERE tenant_id = $1`, tenantID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM site_versions WHERE tenant_id = $1`, tenantID)
		return err
	})
	if err != nil {
		return fmt.Errorf("site purge: %w", err)
	}
	return nil
}

// sweep runs remove, which deletes versions, and then deletes the blobs no
// version names: marked unstored in remove's transaction, then deleted from
// the backend, then forgotten. at runs after the transaction (at point)
// and after each blob deleted.
func (s *Store) sweep(ctx context.Context, tenantID int64, at func(context.Context, string) error, point string, remove func(tx pgx.Tx) error) error {
	var doomed [][]byte
	err := s.transact(ctx, func(tx pgx.Tx) error {
		if err := remove(tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE site_blobs b SET stored = false WHERE `+unreferenced+` RETURNING sha256`, tenantID)
		if err != nil {
			return err
		}
		doomed, err = pgx.CollectRows(rows, pgx.RowTo[[]byte])
		return err
	})
	if err != nil {
		return fmt.Errorf("site: collect: %w", err)
	}
	if err := at(ctx, point); err != nil {
		return err
	}
	for _, d := range doomed {
		var sum Sum
		copy(sum[:], d)
		if err := s.blobs.Delete(ctx, tenantID, sum); err != nil {
			return fmt.Errorf("site: collect: %w", err)
		}
		if err := at(ctx, PointBlobDeleted); err != nil {
			return err
		}
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM site_blobs b WHERE NOT stored AND `+unreferenced, tenantID); err != nil {
		return fmt.Errorf("site: collect: %w", err)
	}
	return nil
}

// Get returns the tenant's site; one never deployed nor configured is
// served nowhere, in mode replace.
func (s *Store) Get(ctx context.Context, tenantID int64) (Site, error) {
	return s.get(ctx, s.db, tenantID)
}

func (s *Store) get(ctx context.Context, db DB, tenantID int64) (Site, error) {
	site := Site{Mode: ModeReplace, Versions: []Version{}}
	var curID *int64
	err := db.QueryRow(ctx, `SELECT mode, domain, current_version FROM sites WHERE tenant_id = $1`, tenantID).
		Scan(&site.Mode, &site.Domain, &curID)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Site{}, fmt.Errorf("site: %w", err)
	}
	rows, err := db.Query(ctx, `SELECT id, number, status = 'ready', files, bytes, actor, created_at, ready_at
		FROM site_versions WHERE tenant_id = $1 ORDER BY number DESC`, tenantID)
	if err != nil {
		return Site{}, fmt.Errorf("site: versions: %w", err)
	}
	vs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Version, error) {
		var v Version
		err := row.Scan(&v.ID, &v.Number, &v.Ready, &v.Files, &v.Bytes, &v.Actor, &v.CreatedAt, &v.ReadyAt)
		return v, err
	})
	if err != nil {
		return Site{}, fmt.Errorf("site: versions: %w", err)
	}
	for i := range vs {
		if curID != nil && vs[i].ID == *curID {
			vs[i].Current = true
			site.CurrentVersion = &vs[i].Number
		}
	}
	if vs != nil {
		site.Versions = vs
	}
	return site, nil
}

// version returns one version by its number.
func (s *Store) version(ctx context.Context, tenantID int64, number int) (Version, error) {
	site, err := s.Get(ctx, tenantID)
	if err != nil {
		return Version{}, err
	}
	for _, v := range site.Versions {
		if v.Number == number {
			return v, nil
		}
	}
	return Version{}, fmt.Errorf("site version %d: %w", number, ErrNotFound)
}

// Rollback serves an earlier (or any kept) ready version again.
func (s *Store) Rollback(ctx context.Context, tenantID int64, number int, audit Audit) (Site, error) {
	unlock, err := s.lockLive(ctx, tenantID)
	if err != nil {
		return Site{}, err
	}
	defer unlock()
	var site Site
	err = s.transact(ctx, func(tx pgx.Tx) error {
		var (
			id     int64
			status string
		)
		err := tx.QueryRow(ctx, `SELECT id, status FROM site_versions WHERE tenant_id = $1 AND number = $2`, tenantID, number).Scan(&id, &status)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("site version %d: %w", number, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if status != "ready" {
			return fmt.Errorf("site version %d is not finished deploying; deploy its bundle again: %w", number, ErrConflict)
		}
		before, err := s.current(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE sites SET current_version = $2, updated_at = now() WHERE tenant_id = $1`, tenantID, id); err != nil {
			return err
		}
		if audit != nil {
			if err := audit(ctx, tx, "site.rollback", before.view(), versionView{Number: number}); err != nil {
				return err
			}
		}
		site, err = s.get(ctx, tx, tenantID)
		return err
	})
	if err != nil {
		return Site{}, fmt.Errorf("site rollback: %w", err)
	}
	return site, nil
}

// modeView is what the audit log records of a mode change.
type modeView struct {
	Mode   string  `json:"mode"`
	Domain *string `json:"domain"`
}

// SetMode chooses where the site is served: ModeReplace (every host of the
// tenant) or ModeDomain on domain, which must be one of the tenant's
// domains. It can be set before the first deploy.
func (s *Store) SetMode(ctx context.Context, tenantID int64, mode, domain string, audit Audit) (Site, error) {
	var dom *string
	switch mode {
	case ModeReplace:
		if domain != "" {
			return Site{}, &FieldError{Field: "domain", Message: "mode replace serves every host of the tenant; give no domain"}
		}
	case ModeDomain:
		if domain == "" {
			return Site{}, &FieldError{Field: "domain", Message: "mode domain needs the hostname to serve the site on"}
		}
		dom = &domain
	default:
		return Site{}, &FieldError{Field: "mode", Message: "want replace or domain"}
	}
	unlock, err := s.lockLive(ctx, tenantID)
	if err != nil {
		return Site{}, err
	}
	defer unlock()
	var site Site
	err = s.transact(ctx, func(tx pgx.Tx) error {
		if dom != nil {
			// Locked until the commit: the domain's removal waits, then
			// sees the site served on it and refuses.
			err := tx.QueryRow(ctx, `SELECT 1 FROM domains WHERE hostname = $1 AND tenant_id = $2 FOR SHARE`,
				domain, tenantID).Scan(new(int))
			if errors.Is(err, pgx.ErrNoRows) {
				return &FieldError{Field: "domain", Message: fmt.Sprintf("%s is not a domain of the tenant; add it first", domain)}
			}
			if err != nil {
				return err
			}
		}
		before, err := s.get(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sites (tenant_id, mode, domain) VALUES ($1, $2, $3)
			ON CONFLICT (tenant_id) DO UPDATE SET mode = $2, domain = $3, updated_at = now()`, tenantID, mode, dom); err != nil {
			return err
		}
		if audit != nil {
			if err := audit(ctx, tx, "site.mode", modeView{before.Mode, before.Domain}, modeView{mode, dom}); err != nil {
				return err
			}
		}
		site, err = s.get(ctx, tx, tenantID)
		return err
	})
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return Site{}, fe
		}
		return Site{}, fmt.Errorf("site mode: %w", err)
	}
	return site, nil
}

// DeleteVersion deletes a version that is not served, and the blobs only it
// named.
func (s *Store) DeleteVersion(ctx context.Context, tenantID int64, number int, audit Audit) error {
	unlock, err := s.lockLive(ctx, tenantID)
	if err != nil {
		return err
	}
	defer unlock()
	err = s.transact(ctx, func(tx pgx.Tx) error {
		cur, err := s.current(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		if cur != nil && cur.number == number {
			return fmt.Errorf("site version %d is the one served; roll back to another first: %w", number, ErrConflict)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM site_versions WHERE tenant_id = $1 AND number = $2`, tenantID, number)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("site version %d: %w", number, ErrNotFound)
		}
		if audit != nil {
			return audit(ctx, tx, "site.delete-version", versionRef{number}, nil)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("site delete version: %w", err)
	}
	return s.collect(ctx, tenantID)
}

type versionRef struct {
	Number int `json:"version"`
}
