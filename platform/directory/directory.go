package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/platform/tenancy"
)

// Result says what Lookup found for a host.
type Result int

// Lookup outcomes, one per tenancy.Routing class plus Unknown. Only Found
// routes a request; the server answers 503 for Suspended and 404 for Gone
// and Unknown alike, so a client cannot tell an unknown host from a deleted
// or unfinished tenant.
const (
	Unknown   Result = iota // no tenant answers on the host
	Found                   // a tenant whose status is served (tenancy.Serve)
	Suspended               // the tenant exists but is switched off (tenancy.Unavailable)
	Gone                    // provisioning, failed, deleting or deleted (tenancy.Gone)
)

func (r Result) String() string {
	switch r {
	case Found:
		return "found"
	case Suspended:
		return "suspended"
	case Gone:
		return "gone"
	default:
		return "unknown"
	}
}

// resultOf is the tenant's lookup result, from its status's routing class.
func resultOf(s tenancy.Status) Result {
	switch s.Routing() {
	case tenancy.Serve:
		return Found
	case tenancy.Unavailable:
		return Suspended
	default:
		return Gone
	}
}

// Channel is the NOTIFY channel the registry triggers signal on, with the
// changed tenant's id as payload.
const Channel = "tenant_changed"

// Options configures a Directory.
type Options struct {
	// DB is the registry; the directory only reads it.
	DB *pgxpool.Pool
	// BaseDomain: every tenant also answers on {slug}.{BaseDomain}.
	BaseDomain string
	// Resync is the period of the full reload (default 30s).
	Resync time.Duration
	// Log receives refresh failures and reconnects (default slog.Default()).
	Log *slog.Logger
}

// Directory maps hosts to tenants from an immutable snapshot of the registry
// that is swapped atomically, so Lookup never takes a lock.
type Directory struct {
	db     *pgxpool.Pool
	base   string // ".example.com": the suffix of slug hosts, with its dot
	resync time.Duration
	log    *slog.Logger

	snap atomic.Pointer[snapshot]

	// mu serialises writers of snap and guards listeners.
	mu        sync.Mutex
	listeners []func(old, new *Tenant)
}

// snapshot is never modified once published.
type snapshot struct {
	byHost map[string]*Tenant
	bySlug map[string]*Tenant
	byID   map[int64]*Tenant
	loaded time.Time
}

// New returns a Directory with an empty snapshot; call Refresh (or Run) to
// fill it.
func New(o Options) *Directory {
	if o.Resync <= 0 {
		o.Resync = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	d := &Directory{
		db:     o.DB,
		base:   "." + strings.Trim(strings.ToLower(o.BaseDomain), "."),
		resync: o.Resync,
		log:    o.Log,
	}
	d.snap.Store(&snapshot{byHost: map[string]*Tenant{}, bySlug: map[string]*Tenant{}, byID: map[int64]*Tenant{}})
	return d
}

// Lookup returns the tenant a request's Host header (or trusted
// X-Forwarded-Host) names: case-insensitive, without port, exact domains
// first, then {slug}.{BaseDomain}. Only verified domains are in the
// snapshot: a pending one (its DNS record not seen yet) is Unknown. The tenant is returned for every result
// but Unknown, so callers can log who was refused.
func (d *Directory) Lookup(host string) (*Tenant, Result) {
	host = normalizeHost(host)
	s := d.snap.Load()
	t, ok := s.byHost[host]
	if !ok {
		slug, found := strings.CutSuffix(host, d.base)
		if !found || slug == "" || strings.IndexByte(slug, '.') >= 0 {
			return nil, Unknown
		}
		if t, ok = s.bySlug[slug]; !ok {
			return nil, Unknown
		}
	}
	return t, resultOf(t.Status)
}

// normalizeHost lowercases host and strips a port and a trailing dot. It
// allocates only when host has upper-case letters.
func normalizeHost(host string) string {
	if strings.HasPrefix(host, "[") { // [v6]:port
		if end := strings.IndexByte(host, ']'); end > 0 {
			host = host[1:end]
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host, ':') == i {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	return strings.ToLower(host)
}

// BySlug returns the tenant with the slug, whatever its status.
func (d *Directory) BySlug(slug string) *Tenant { return d.snap.Load().bySlug[slug] }

// ByID returns the tenant with the id, whatever its status.
func (d *Directory) ByID(id int64) *Tenant { return d.snap.Load().byID[id] }

// All returns every tenant of the snapshot, whatever its status, in no
// particular order.
func (d *Directory) All() []*Tenant {
	s := d.snap.Load()
	out := make([]*Tenant, 0, len(s.byID))
	for _, t := range s.byID {
		out = append(out, t)
	}
	return out
}

// Len returns the number of tenants in the snapshot.
func (d *Directory) Len() int { return len(d.snap.Load().byID) }

// LoadedAt returns when the snapshot was last refreshed from the registry
// (zero before the first load); readiness probes can use it.
func (d *Directory) LoadedAt() time.Time { return d.snap.Load().loaded }

// OnChange registers fn to be called after a tenant was added (old nil),
// changed, or removed from the registry (new nil). Calls come from the
// refresh goroutine, one at a time, after the new snapshot is visible; fn
// must not block.
func (d *Directory) OnChange(fn func(old, new *Tenant)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.listeners = append(d.listeners, fn)
}

const loadQuery = `
SELECT t.id, t.slug, t.display_name, t.status, t.db_name, t.db_role, t.secrets_ref,
       t.settings, t.updated_at, t.writes_paused,
       coalesce(s.host, ''), coalesce(s.port, 0),
       coalesce((SELECT array_agg(d.hostname ORDER BY d.is_default DESC, d.hostname)
                   FROM domains d WHERE d.tenant_id = t.id AND d.status = 'verified'), '{}'),
       coalesce((SELECT array_agg(o.origin ORDER BY o.origin)
                   FROM tenant_origins o WHERE o.tenant_id = t.id), '{}'),
       coalesce(si.current_version, 0), coalesce(si.domain, ''),
       t.plan, coalesce(p.display_name, t.plan), p.products, p.staff_seats, p.orders_per_month,
       p.events_per_month, p.emails_per_month, p.custom_domains, p.storage_bytes
  FROM tenants t
  LEFT JOIN plans p ON p.name = t.plan
  LEFT JOIN db_servers s ON s.id = t.db_server_id
  LEFT JOIN sites si ON si.tenant_id = t.id`

// query is the subset of pgx both a pool and a single connection offer.
type query interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// load reads tenants from the registry: all of them when ids is empty.
func (d *Directory) load(ctx context.Context, q query, ids []int64) ([]*Tenant, error) {
	sql, args := loadQuery, []any(nil)
	if len(ids) > 0 {
		sql, args = loadQuery+" WHERE t.id = ANY($1)", []any{ids}
	}
	tx, err := q.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("directory: load tenants: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	// The planner's estimate of the per-tenant subqueries crosses the JIT
	// threshold at a few thousand tenants; compiling costs more than it saves.
	if _, err := tx.Exec(ctx, "SET LOCAL jit = off"); err != nil {
		return nil, fmt.Errorf("directory: load tenants: %w", err)
	}
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("directory: load tenants: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Tenant, error) {
		var t Tenant
		var settings []byte
		var updated time.Time
		var site Site
		if err := row.Scan(&t.ID, &t.Slug, &t.DisplayName, &t.Status, &t.DBName, &t.DBRole, &t.SecretsRef,
			&settings, &updated, &t.WritesPaused, &t.DBHost, &t.DBPort, &t.Hosts, &t.Origins, &site.Version, &site.Domain,
			&t.Plan.Name, &t.Plan.DisplayName, &t.Plan.Products, &t.Plan.StaffSeats, &t.Plan.OrdersPerMonth,
			&t.Plan.EventsPerMonth, &t.Plan.EmailsPerMonth, &t.Plan.CustomDomains, &t.Plan.StorageBytes); err != nil {
			return nil, err
		}
		if site.Version != 0 {
			t.Site = &site
		}
		if len(settings) > 0 {
			if err := json.Unmarshal(settings, &t.Settings); err != nil {
				// One bad document must not take every tenant down.
				d.log.Warn("directory: malformed tenant settings", "tenant", t.Slug, "err", err)
			}
		}
		t.Generation = updated.UnixMicro()
		if h := t.Slug + d.base; !contains(t.Hosts, h) {
			t.Hosts = append(t.Hosts, h)
		}
		return &t, nil
	})
	if err != nil {
		return nil, fmt.Errorf("directory: load tenants: %w", err)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

const refreshTimeout = 15 * time.Second

// Refresh reloads every tenant from the registry and publishes the result.
func (d *Directory) Refresh(ctx context.Context) error {
	return d.refresh(ctx, d.db, nil)
}

// refresh reloads the tenants in ids (all when empty) and publishes a new
// snapshot; ids with no registry row are removed from it.
// A reload that takes longer than refreshTimeout is given up, so a hung
// registry connection is replaced instead of waited on forever.
func (d *Directory) refresh(ctx context.Context, q query, ids []int64) error {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	loaded, err := d.load(ctx, q, ids)
	if err != nil {
		return err
	}
	d.apply(loaded, ids)
	return nil
}

type change struct{ old, new *Tenant }

// apply builds and publishes the snapshot that replaces the tenants in ids
// (every tenant when ids is empty) by loaded, then tells the listeners.
// An unchanged tenant keeps its pointer, so callers can cache by identity.
func (d *Directory) apply(loaded []*Tenant, ids []int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.snap.Load()

	byID := make(map[int64]*Tenant, len(old.byID)+len(loaded))
	if len(ids) > 0 {
		for id, t := range old.byID {
			byID[id] = t
		}
		for _, id := range ids {
			delete(byID, id)
		}
	}
	var changes []change
	for _, t := range loaded {
		prev := old.byID[t.ID]
		if prev != nil && same(prev, t) {
			t = prev
		} else {
			changes = append(changes, change{prev, t})
		}
		byID[t.ID] = t
	}
	for id, t := range old.byID {
		if _, ok := byID[id]; !ok {
			changes = append(changes, change{t, nil})
		}
	}

	next := &snapshot{
		byHost: make(map[string]*Tenant, len(byID)),
		bySlug: make(map[string]*Tenant, len(byID)),
		byID:   byID,
		loaded: time.Now(),
	}
	for _, t := range byID {
		next.bySlug[t.Slug] = t
		for _, h := range t.Hosts {
			// Slug hosts resolve through bySlug, after every exact domain.
			if h != t.Slug+d.base {
				next.byHost[h] = t
			}
		}
	}
	d.snap.Store(next)
	for _, c := range changes {
		for _, fn := range d.listeners {
			fn(c.old, c.new)
		}
	}
}

// same reports whether two loads of one tenant are indistinguishable.
func same(a, b *Tenant) bool {
	return a.Generation == b.Generation && a.Status == b.Status && a.WritesPaused == b.WritesPaused &&
		a.DBHost == b.DBHost && a.DBPort == b.DBPort &&
		reflect.DeepEqual(a.Hosts, b.Hosts) && reflect.DeepEqual(a.Origins, b.Origins) &&
		reflect.DeepEqual(a.Settings, b.Settings) && reflect.DeepEqual(a.Site, b.Site)
}

// Run keeps the snapshot current until ctx ends: it LISTENs on
// tenant_changed and reloads the named tenants, reloads everything every
// Resync, and reconnects with backoff when the registry connection fails.
// Meanwhile the last snapshot keeps serving. Run returns ctx.Err().
func (d *Directory) Run(ctx context.Context) error {
	backoff := newBackoff(100*time.Millisecond, 30*time.Second)
	for {
		err := d.listen(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := backoff.next()
		d.log.Warn("directory: registry unreachable; serving the last snapshot",
			"err", err, "retry_in", wait, "tenants", d.Len(), "snapshot_age", time.Since(d.LoadedAt()).Round(time.Second))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if err == nil {
			backoff.reset()
		}
	}
}

// listen holds one registry connection: LISTEN, a full load (so nothing
// that changed before LISTEN is missed), then notifications and resyncs
// until the connection fails.
func (d *Directory) listen(ctx context.Context) error {
	conn, err := d.db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("directory: acquire: %w", err)
	}
	// A connection that was LISTENing must not go back to the pool.
	defer func() {
		c := conn.Hijack()
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = c.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("directory: listen: %w", err)
	}
	if err := d.refresh(ctx, conn, nil); err != nil {
		return err
	}
	d.log.Info("directory: loaded", "tenants", d.Len())
	nextResync := time.Now().Add(d.resync)
	for {
		wctx, cancel := context.WithDeadline(ctx, nextResync)
		n, err := conn.Conn().WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && errors.Is(err, context.DeadlineExceeded):
			if err := d.refresh(ctx, conn, nil); err != nil {
				return err
			}
			nextResync = time.Now().Add(d.resync)
			continue
		case err != nil:
			return fmt.Errorf("directory: wait for notification: %w", err)
		}
		ids := d.drain(ctx, conn.Conn(), n)
		if err := d.refresh(ctx, conn, ids); err != nil {
			return err
		}
	}
}

// drain collects the tenant ids of n and of every notification already
// received, so a burst of changes costs one reload.
func (d *Directory) drain(ctx context.Context, conn *pgx.Conn, n *pgconn.Notification) []int64 {
	seen := map[int64]bool{}
	var ids []int64
	add := func(payload string) {
		id, err := strconv.ParseInt(payload, 10, 64)
		if err != nil {
			d.log.Warn("directory: ignoring notification", "payload", payload)
			return
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	add(n.Payload)
	for len(ids) < 1000 {
		// A deadline in the past returns at once unless a notification is
		// already buffered.
		wctx, cancel := context.WithTimeout(ctx, time.Millisecond)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			break
		}
		add(n.Payload)
	}
	return ids
}

// backoff is exponential with full jitter.
type backoff struct{ min, max, cur time.Duration }

func newBackoff(lo, hi time.Duration) *backoff { return &backoff{min: lo, max: hi, cur: lo} }

func (b *backoff) next() time.Duration {
	d := b.cur/2 + rand.N(b.cur/2+1)
	b.cur = min(b.cur*2, b.max)
	return d
}

func (b *backoff) reset() { b.cur = b.min }
