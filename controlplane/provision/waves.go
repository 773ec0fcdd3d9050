package provision

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// Waves says how MigrateWaves rolls a schema change out: the canaries
// first, then the gate, then everyone else in batches. A wave with a
// failure stops the rollout; the tenants of later waves are not touched.
type Waves struct {
	// Canaries names the first wave; when empty, CanaryPercent of the
	// tenants (at least one when above zero) are picked by a hash of their
	// slug, so the pick is stable from run to run and spread over names.
	Canaries      []string
	CanaryPercent int
	// Batch is the size of every later wave (0: all the rest at once).
	Batch int
	// Concurrency is how many tenants of a wave migrate at once.
	Concurrency int
	// Gate, when set, runs after the canaries with their results; an
	// error stops the rollout.
	Gate func(ctx context.Context, canaries []MigrateResult) error
}

// Wave is one wave's tenants and, once run, their results.
type Wave struct {
	Name    string          `json:"name"` // "canary", "batch 1", ...
	Slugs   []string        `json:"slugs"`
	Results []MigrateResult `json:"results,omitempty"`
}

// WaveReport is the outcome of MigrateWaves.
type WaveReport struct {
	Waves []Wave `json:"waves"`
	// Stopped says why the rollout stopped early (empty: it ran through).
	Stopped string `json:"stopped,omitempty"`
	// Untouched are the tenants left at their schema because it stopped.
	Untouched []string `json:"untouched,omitempty"`
}

// ErrRolloutStopped is wrapped by MigrateWaves' error when a wave failed
// or the gate refused.
var ErrRolloutStopped = errors.New("migration rollout stopped")

// PlanWaves splits every active and suspended tenant into waves without
// migrating anything.
func (s *Service) PlanWaves(ctx context.Context, w Waves) ([]Wave, []registry.Tenant, error) {
	tenants, err := s.reg.Tenants(ctx, registry.TenantFilter{Statuses: []tenancy.Status{registry.StatusActive, registry.StatusSuspended}})
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(tenants, func(i, j int) bool { return tenants[i].Slug < tenants[j].Slug })
	if w.CanaryPercent < 0 || w.CanaryPercent > 100 || w.Batch < 0 {
		return nil, nil, fmt.Errorf("migrate waves: canary percent must be 0..100 and batch at least 0")
	}
	bySlug := map[string]bool{}
	for _, t := range tenants {
		bySlug[t.Slug] = true
	}
	canary := map[string]bool{}
	for _, slug := range w.Canaries {
		if !bySlug[slug] {
			return nil, nil, fmt.Errorf("canary %q is not an active or suspended tenant: %w", slug, registry.ErrNotFound)
		}
		canary[slug] = true
	}
	if len(w.Canaries) == 0 && w.CanaryPercent > 0 && len(tenants) > 0 {
		n := max(1, (len(tenants)*w.CanaryPercent+99)/100)
		order := make([]string, len(tenants))
		for i, t := range tenants {
			order[i] = t.Slug
		}
		sort.Slice(order, func(i, j int) bool { return slugHash(order[i]) < slugHash(order[j]) })
		for _, slug := range order[:n] {
			canary[slug] = true
		}
	}
	var waves []Wave
	if len(canary) > 0 {
		c := Wave{Name: "canary"}
		for _, t := range tenants {
			if canary[t.Slug] {
				c.Slugs = append(c.Slugs, t.Slug)
			}
		}
		waves = append(waves, c)
	}
	var rest []string
	for _, t := range tenants {
		if !canary[t.Slug] {
			rest = append(rest, t.Slug)
		}
	}
	size := w.Batch
	if size == 0 {
		size = max(len(rest), 1)
	}
	for i := 0; i < len(rest); i += size {
		waves = append(waves, Wave{Name: "batch " + strconv.Itoa(i/size+1), Slugs: rest[i:min(i+size, len(rest))]})
	}
	return waves, tenants, nil
}

func slugHash(slug string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(slug))
	return h.Sum64()
}

// MigrateWaves migrates every active and suspended tenant wave by wave
// (see Waves), calling progress after each tenant. A wave in which any
// tenant failed, or a refusing gate, stops the rollout: the report names
// the failed tenants and the untouched ones, and the error wraps
// ErrRolloutStopped.
func (s *Service) MigrateWaves(ctx context.Context, w Waves, progress func(wave string, r MigrateResult)) (WaveReport, error) {
	waves, tenants, err := s.PlanWaves(ctx, w)
	if err != nil {
		return WaveReport{}, err
	}
	byslug := map[string]registry.Tenant{}
	for _, t := range tenants {
		byslug[t.Slug] = t
	}
	servers := s.serverCache()
	var rep WaveReport
	for i, wave := range waves {
		var batch []registry.Tenant
		for _, slug := range wave.Slugs {
			batch = append(batch, byslug[slug])
		}
		wave.Results = s.migrateSet(ctx, batch, w.Concurrency, servers, func(r MigrateResult) {
			if progress != nil {
				progress(wave.Name, r)
			}
		})
		rep.Waves = append(rep.Waves, wave)
		var failed []string
		for _, r := range wave.Results {
			if r.Error != "" {
				failed = append(failed, r.Slug)
			}
		}
		switch {
		case len(failed) > 0:
			rep.Stopped = fmt.Sprintf("%s: %s failed", wave.Name, strings.Join(failed, ", "))
		case ctx.Err() != nil:
			rep.Stopped = fmt.Sprintf("%s: %v", wave.Name, ctx.Err())
		case wave.Name == "canary" && w.Gate != nil:
			if gerr := w.Gate(ctx, wave.Results); gerr != nil {
				rep.Stopped = fmt.Sprintf("gate after the canaries (%s): %v", strings.Join(wave.Slugs, ", "), gerr)
			}
		}
		if rep.Stopped != "" {
			for _, later := range waves[i+1:] {
				rep.Untouched = append(rep.Untouched, later.Slugs...)
			}
			return rep, fmt.Errorf("%w at %s; %d tenants not migrated", ErrRolloutStopped, rep.Stopped, len(rep.Untouched))
		}
	}
	return rep, nil
}

// serverCache looks each database server up once per run.
func (s *Service) serverCache() func(context.Context, *int64) (*server, error) {
	var (
		mu    sync.Mutex
		known = map[int64]*server{}
	)
	return func(ctx context.Context, id *int64) (*server, error) {
		mu.Lock()
		defer mu.Unlock()
		if id != nil && known[*id] != nil {
			return known[*id], nil
		}
		sv, err := s.lookup(ctx, id)
		if err == nil && id != nil {
			known[*id] = sv
		}
		return sv, err
	}
}

// migrateSet migrates tenants, at most concurrency at a time, and returns
// their results sorted by slug.
func (s *Service) migrateSet(ctx context.Context, tenants []registry.Tenant, concurrency int,
	servers func(context.Context, *int64) (*server, error), progress func(MigrateResult)) []MigrateResult {
	if concurrency < 1 {
		concurrency = 1
	}
	var (
		mu      sync.Mutex
		results = make([]MigrateResult, 0, len(tenants))
		wg      sync.WaitGroup
		next    = make(chan registry.Tenant)
	)
	for range min(concurrency, max(len(tenants), 1)) {
		wg.Go(func() {
			for t := range next {
				r := s.migrateOne(ctx, t, MigrateAllActor, servers)
				mu.Lock()
				results = append(results, r)
				if progress != nil {
					progress(r)
				}
				mu.Unlock()
			}
		})
	}
	for _, t := range tenants {
		next <- t
	}
	close(next)
	wg.Wait()
	sort.Slice(results, func(i, j int) bool { return results[i].Slug < results[j].Slug })
	return results
}

// Pending is what a migration run would apply to one tenant.
type Pending struct {
	Slug string `json:"slug"`
	From int64  `json:"from"`
	// Migrations are the file names of the pending migrations, in order.
	Migrations []string `json:"migrations"`
}

// PendingMigrations lists, per tenant of tenants, the migrations newer
// than the schema version the registry records for it. It reads the
// registry only.
func (s *Service) PendingMigrations(tenants []registry.Tenant) ([]Pending, error) {
	type file struct {
		version int64
		name    string
	}
	var files []file
	err := fs.WalkDir(s.tenantFS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".sql") {
			return err
		}
		base := p[strings.LastIndex(p, "/")+1:]
		v, perr := strconv.ParseInt(strings.SplitN(base, "_", 2)[0], 10, 64)
		if perr != nil {
			return nil
		}
		files = append(files, file{v, base})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].version < files[j].version })
	out := make([]Pending, 0, len(tenants))
	for _, t := range tenants {
		p := Pending{Slug: t.Slug, From: t.SchemaVersion}
		for _, f := range files {
			if f.version > t.SchemaVersion {
				p.Migrations = append(p.Migrations, f.name)
			}
		}
		out = append(out, p)
	}
	return out, nil
}
