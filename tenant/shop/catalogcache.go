package shop

import (
	"container/list"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/server"
)

// The catalogue answers (O1 products, O2 product detail) are the busiest
// reads and change rarely, so each replica keeps their encoded bodies in
// memory. Every write to the catalogue's tables, by anyone, bumps the
// tenant database's catalog_version (triggers, tenant migration 00005); an
// answer is served from memory while its tenant's version was confirmed
// within CatalogFresh, and a request that finds it older asks the database
// for the version (one one-row query) before serving or rebuilding. So a
// catalogue write shows on every replica within CatalogFresh plus one
// query, and a replica that has not been told anything still notices.
// Checkout and the cart never read from here: their prices are read fresh.

// Defaults of the catalogue cache.
const (
	DefaultCatalogCacheBytes = 64 << 20
	DefaultCatalogFresh      = 500 * time.Millisecond
)

// catalogTenantKey names one tenant at one registry generation: a tenant
// whose row changed (a move, a restore) starts afresh.
type catalogTenantKey struct{ id, gen int64 }

type catalogTenant struct {
	key     catalogTenantKey
	version int64     // the catalog_version the entries were built at
	checked time.Time // when that version was last read from the database
	entries map[string]*list.Element
}

type catalogEntry struct {
	tenant *catalogTenant
	key    string
	body   []byte
}

// catalogCache holds encoded catalogue answers of every tenant, at most
// maxBytes of bodies in all, the least recently used evicted first.
type catalogCache struct {
	fresh    time.Duration
	maxBytes int64

	mu      sync.Mutex
	size    int64
	lru     *list.List // of *catalogEntry, most recent first
	tenants map[catalogTenantKey]*catalogTenant

	hits, misses, checks prometheus.Counter
}

// newCatalogCache returns an empty cache; its counters go to reg unless a
// second cache already registered them there (then they are not exported).
func newCatalogCache(maxBytes int64, fresh time.Duration, reg prometheus.Registerer, log *slog.Logger) *catalogCache {
	c := &catalogCache{
		fresh: fresh, maxBytes: maxBytes, lru: list.New(), tenants: map[catalogTenantKey]*catalogTenant{},
		hits:   prometheus.NewCounter(prometheus.CounterOpts{Name: "swa_catalog_cache_hits_total", Help: "Catalogue answers served from memory."}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{Name: "swa_catalog_cache_builds_total", Help: "Catalogue answers built from the database."}),
		checks: prometheus.NewCounter(prometheus.CounterOpts{Name: "swa_catalog_cache_checks_total", Help: "Catalogue versions read from tenant databases."}),
	}
	if reg != nil {
		for _, m := range []prometheus.Collector{c.hits, c.misses, c.checks} {
			if err := reg.Register(m); err != nil {
				log.Warn("catalogue cache metrics not registered", "err", err)
			}
		}
	}
	return c
}

func tenantKeyOf(t *directory.Tenant) catalogTenantKey {
	return catalogTenantKey{id: t.ID, gen: t.Generation}
}

// get returns the body of key when its tenant's version was confirmed
// recently enough.
func (cc *catalogCache) get(t *directory.Tenant, key string, now time.Time) ([]byte, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	ts := cc.tenants[tenantKeyOf(t)]
	if ts == nil || now.Sub(ts.checked) > cc.fresh {
		return nil, false
	}
	el := ts.entries[key]
	if el == nil {
		return nil, false
	}
	cc.lru.MoveToFront(el)
	return el.Value.(*catalogEntry).body, true
}

// confirm records that the tenant's database had version at readAt, and
// returns key's body when it is still good. A newer version drops every
// answer of the tenant; an older one (a read that raced a newer read) is
// ignored.
func (cc *catalogCache) confirm(t *directory.Tenant, key string, version int64, readAt time.Time) ([]byte, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	k := tenantKeyOf(t)
	ts := cc.tenants[k]
	if ts == nil {
		ts = &catalogTenant{key: k, version: version, entries: map[string]*list.Element{}}
		cc.tenants[k] = ts
	}
	switch {
	case version < ts.version:
		return nil, false
	case version > ts.version:
		for _, el := range ts.entries {
			cc.remove(el, false)
		}
		ts.version = version
	}
	if readAt.After(ts.checked) {
		ts.checked = readAt
	}
	if el := ts.entries[key]; el != nil {
		cc.lru.MoveToFront(el)
		return el.Value.(*catalogEntry).body, true
	}
	return nil, false
}

// put stores key's body built at version, unless the tenant has moved on
// to another version meanwhile.
func (cc *catalogCache) put(t *directory.Tenant, key string, version int64, body []byte) {
	if int64(len(body)) > cc.maxBytes/4 {
		return // one answer may not crowd out everything else
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	ts := cc.tenants[tenantKeyOf(t)]
	if ts == nil || ts.version != version {
		return
	}
	if el := ts.entries[key]; el != nil {
		cc.remove(el, false)
	}
	ts.entries[key] = cc.lru.PushFront(&catalogEntry{tenant: ts, key: key, body: body})
	cc.size += int64(len(body))
	for cc.size > cc.maxBytes {
		cc.remove(cc.lru.Back(), true)
	}
}

// remove drops one entry (under mu). An evicted entry's tenant, left
// without entries, is forgotten too, so the map holds only tenants with
// something cached.
func (cc *catalogCache) remove(el *list.Element, evicted bool) {
	e := el.Value.(*catalogEntry)
	cc.lru.Remove(el)
	delete(e.tenant.entries, e.key)
	cc.size -= int64(len(e.body))
	if evicted && len(e.tenant.entries) == 0 && cc.tenants[e.tenant.key] == e.tenant {
		delete(cc.tenants, e.tenant.key)
	}
}

const catalogVersionSQL = `SELECT version FROM catalog_version`

// catalogAnswer serves a catalogue answer: from memory when its tenant's
// catalogue version is known to be current, otherwise after reading the
// version and, when the answer is missing or out of date, building it.
// The version is read before the answer is built, so an answer is never
// stored under a version newer than its data.
func (a *App) catalogAnswer(c *fiber.Ctx, key string, build func(rq *request) (object, error)) error {
	cc := a.catalog
	if cc == nil {
		return a.withCatalog(c, func(rq *request) error {
			o, err := build(rq)
			if err != nil {
				return err
			}
			return reply(c, o)
		})
	}
	t := server.Tenant(c)
	if body, ok := cc.get(t, key, time.Now()); ok {
		cc.hits.Inc()
		return sendJSON(c, body)
	}
	return a.withCatalog(c, func(rq *request) error {
		readAt := time.Now()
		var version int64
		if err := rq.conn.QueryRow(rq.ctx, catalogVersionSQL).Scan(&version); err != nil {
			return fmt.Errorf("catalogue version: %w", err)
		}
		cc.checks.Inc()
		if body, ok := cc.confirm(t, key, version, readAt); ok {
			cc.hits.Inc()
			return sendJSON(c, body)
		}
		o, err := build(rq)
		if err != nil {
			return err
		}
		body, err := json.Marshal(append(o, kv{"order-api-version", APIVersion}))
		if err != nil {
			return fmt.Errorf("catalogue answer: %w", err)
		}
		cc.misses.Inc()
		cc.put(t, key, version, body)
		return sendJSON(c, body)
	})
}

// sendJSON writes an encoded JSON body as c.JSON does.
func sendJSON(c *fiber.Ctx, body []byte) error {
	c.Response().SetBodyRaw(body)
	c.Response().Header.SetContentType(fiber.MIMEApplicationJSON)
	return nil
}
