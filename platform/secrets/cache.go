package secrets

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultCacheTTL is the cache TTL used when none is given.
const DefaultCacheTTL = time.Minute

// staleFactor times the TTL is how long after its last successful read a
// value is still served while the backend fails.
const staleFactor = 10

// Cache is a read-through cache of Get in front of another Store.
//
// A value read is served from memory for the TTL. When a refresh fails for
// any reason other than ErrNotFound, the last good value keeps being served
// (with a warning naming the secret) until it is staleFactor TTLs old, so a
// short backend outage does not take tenants down. Concurrent misses of one
// name share a single backend read. Put and Delete through the cache
// invalidate the name; writes made elsewhere are seen within the TTL, or at
// once after Invalidate. GetVersion and Versions are not cached.
type Cache struct {
	inner Store
	ttl   time.Duration
	stale time.Duration
	log   *slog.Logger
	group singleflight.Group

	mu      sync.RWMutex
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	value   []byte // nil while nothing good has been read
	fetched time.Time
	// retryAt, after a failed refresh, is when the backend is tried again;
	// until then the stale value is served without asking it.
	retryAt time.Time
	// expired forces the next Get to the backend whatever fetched says.
	expired bool
	// gen counts invalidations; a read that started under an older
	// generation must not store its result.
	gen uint64
}

var _ Store = (*Cache)(nil)

// NewCache wraps inner with a cache of the given TTL (DefaultCacheTTL when not
// positive). log receives the stale-serving warnings; nil discards them.
func NewCache(inner Store, ttl time.Duration, log *slog.Logger) *Cache {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{
		inner:   inner,
		ttl:     ttl,
		stale:   staleFactor * ttl,
		log:     log,
		entries: make(map[string]*cacheEntry),
	}
}

// Get returns the newest version of name, from memory when fresh.
// The returned slice is the caller's own.
func (c *Cache) Get(ctx context.Context, name string) ([]byte, error) {
	c.mu.RLock()
	e := c.entries[name]
	if e != nil && e.value != nil && ((!e.expired && time.Since(e.fetched) < c.ttl) || time.Now().Before(e.retryAt)) {
		v := clone(e.value)
		c.mu.RUnlock()
		return v, nil
	}
	var gen uint64
	if e != nil {
		gen = e.gen
	}
	c.mu.RUnlock()

	// The generation is part of the key, so a Get after an invalidation
	// never joins a read that started before it.
	key := strconv.FormatUint(gen, 10) + "\x00" + name
	ch := c.group.DoChan(key, func() (any, error) {
		// Detached from the first caller's context: its cancellation must
		// not fail the others sharing this read.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return c.refresh(rctx, name, gen)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return clone(r.Val.([]byte)), nil
	}
}

// refresh reads name from the backend and records the result, or falls back
// to the last good value.
func (c *Cache) refresh(ctx context.Context, name string, gen uint64) ([]byte, error) {
	value, err := c.inner.Get(ctx, name)

	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[name]
	current := (e == nil && gen == 0) || (e != nil && e.gen == gen)
	switch {
	case err == nil:
		if current {
			if e == nil {
				e = &cacheEntry{gen: gen}
				c.entries[name] = e
			}
			e.value, e.fetched, e.retryAt, e.expired = value, time.Now(), time.Time{}, false
		}
		return value, nil
	case errors.Is(err, ErrNotFound):
		// The backend answered: the secret is gone, not unreachable.
		if current && e != nil {
			e.value = nil
		}
		return nil, err
	case current && e != nil && e.value != nil && time.Since(e.fetched) < c.stale:
		e.retryAt = time.Now().Add(c.retryDelay())
		c.log.Warn("secrets backend failed; serving the last good value",
			"secret", name, "age", time.Since(e.fetched).Round(time.Millisecond).String(), "err", err.Error())
		return e.value, nil
	default:
		return nil, err
	}
}

// retryDelay is how long a failed backend is left alone while a stale value
// is served: a tenth of the TTL, at most five seconds.
func (c *Cache) retryDelay() time.Duration {
	return min(c.ttl/10, 5*time.Second)
}

// Invalidate forgets the cached value of name, so the next Get reads the
// backend. Reads in flight when it is called do not repopulate the cache.
func (c *Cache) Invalidate(name string) { c.forget(name, true) }

// forget starts a new generation of name, so reads in flight do not store
// their results, and drops the cached value, or with drop false only
// expires it (it stays a stale fallback).
func (c *Cache) forget(name string, drop bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[name]
	if e == nil {
		// Generation 1, so a read begun at generation 0 is recognised as old.
		c.entries[name] = &cacheEntry{gen: 1}
		return
	}
	e.gen++
	e.expired, e.retryAt = true, time.Time{}
	if drop {
		e.value = nil
	}
}

// Put stores a new version in the backend and invalidates name. When the
// backend fails, whether the write landed is unknown: the cached value is
// then only expired, and stays available as a stale fallback.
func (c *Cache) Put(ctx context.Context, name string, value []byte) (int, error) {
	v, err := c.inner.Put(ctx, name, value)
	c.forget(name, err == nil)
	return v, err
}

// Delete deletes name in the backend and invalidates it (expires it only,
// as Put does, when the backend fails).
func (c *Cache) Delete(ctx context.Context, name string) error {
	err := c.inner.Delete(ctx, name)
	c.forget(name, err == nil)
	return err
}

// GetVersion reads one version from the backend (not cached).
func (c *Cache) GetVersion(ctx context.Context, name string, version int) ([]byte, error) {
	return c.inner.GetVersion(ctx, name, version)
}

// Versions lists versions from the backend (not cached).
func (c *Cache) Versions(ctx context.Context, name string) ([]int, error) {
	return c.inner.Versions(ctx, name)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
