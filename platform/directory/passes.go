package directory

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

type backgroundKey struct{}

// Background marks ctx as a background pass's (a worker visiting tenants;
// Visits.Pass marks its own): the pools do not count its acquires as the
// tenant being used, nor keep a connection warm for them, so a worker does
// not keep visiting a tenant because it, or another worker, visited it.
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// IsBackground reports whether ctx is a background pass's (Background).
func IsBackground(ctx context.Context) bool {
	return ctx.Value(backgroundKey{}) != nil
}

// Every runs pass at once and then every interval until ctx ends: the loop
// of the data plane's background workers (mail outbox, campaigns, the back
// office's sweeper).
func Every(ctx context.Context, interval time.Duration, pass func(context.Context)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// EachTenant runs fn for every tenant, at most concurrency at a time, and
// returns when all have finished; once ctx ends no further tenant starts.
func EachTenant(ctx context.Context, tenants []*Tenant, concurrency int, fn func(context.Context, *Tenant)) {
	sem := make(chan struct{}, max(1, concurrency))
	var wg sync.WaitGroup
	for _, t := range tenants {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(ctx, t)
		}()
	}
	wg.Wait()
}

// DefaultSweep is how often Visits sends a pass to every tenant, wanted or
// not.
const DefaultSweep = 10 * time.Minute

// Visits chooses the tenants a background pass visits. Visiting all of them
// every few seconds would log in to every cold tenant's database each time
// and push the connections of the tenants being served out of the budget.
// A pass visits a tenant when:
//   - Active says so: the pools' view that it has an idle connection (the
//     visit costs no login) or served a request lately (which may have left
//     work: a mail queued, a campaign started);
//   - a visit it asked for is due (Visited with a time: the next retry of a
//     mail, a campaign scheduled to start);
//   - its sweep is due: every tenant at least every Sweep, so work left by
//     another replica, or by one that stopped, is not left for long. A
//     tenant's first sweep falls at a random moment within Sweep of its
//     first sight, so a replica that starts does not visit every tenant at
//     once.
//
// A nil *Visits visits every tenant every pass. Safe for concurrent use.
type Visits struct {
	active func(tenantID int64) bool
	sweep  time.Duration

	mu   sync.Mutex
	next map[int64]time.Time // when a tenant must be visited at the latest
}

// NewVisits returns Visits that ask active which tenants to visit each
// pass and sweep every tenant every sweep (DefaultSweep when not positive).
func NewVisits(active func(tenantID int64) bool, sweep time.Duration) *Visits {
	if sweep <= 0 {
		sweep = DefaultSweep
	}
	return &Visits{active: active, sweep: sweep, next: map[int64]time.Time{}}
}

// Select returns the tenants of a pass at now.
func (v *Visits) Select(tenants []*Tenant, now time.Time) []*Tenant {
	if v == nil {
		return tenants
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]*Tenant, 0, len(tenants))
	seen := make(map[int64]bool, len(tenants))
	for _, t := range tenants {
		seen[t.ID] = true
		next, ok := v.next[t.ID]
		if !ok {
			next = now.Add(rand.N(v.sweep))
			v.next[t.ID] = next
		}
		if !next.After(now) || v.active(t.ID) {
			out = append(out, t)
		}
	}
	for id := range v.next {
		if !seen[id] {
			delete(v.next, id) // no longer serving
		}
	}
	return out
}

// Visited records that a pass visited tenantID at now and found more work
// due at due (zero: none): the next visit is then due at due or after a
// sweep, whichever comes first.
func (v *Visits) Visited(tenantID int64, now, due time.Time) {
	if v == nil {
		return
	}
	next := now.Add(v.sweep)
	if !due.IsZero() && due.Before(next) {
		next = due
	}
	v.mu.Lock()
	v.next[tenantID] = next
	v.mu.Unlock()
}

// Pass runs one pass of a background worker over the tenants v selects,
// concurrency at a time, its context marked Background. run does a
// tenant's work; a run that failed is
// logged as what failed and tried again next pass. With v set, next then
// says when the tenant's next work is due (zero: none).
func (v *Visits) Pass(ctx context.Context, tenants []*Tenant, concurrency int, log *slog.Logger, what string,
	run func(context.Context, *Tenant) error, next func(context.Context, *Tenant) (time.Time, error)) {
	ctx = Background(ctx)
	EachTenant(ctx, v.Select(tenants, time.Now()), concurrency, func(ctx context.Context, t *Tenant) {
		start := time.Now()
		if err := run(ctx, t); err != nil {
			if ctx.Err() == nil {
				log.Warn(what+" failed", "tenant", t.Slug, "err", err)
			}
			return
		}
		if v == nil {
			return
		}
		if due, err := next(ctx, t); err == nil {
			v.Visited(t.ID, start, due)
		}
	})
}
