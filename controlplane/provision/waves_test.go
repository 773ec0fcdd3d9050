package provision_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
)

// createTenants makes n tenants named prefix-00 ... in parallel.
func createTenants(t testing.TB, e *env, prefix string, n int) []string {
	t.Helper()
	ctx := context.Background()
	slugs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		slugs[i] = fmt.Sprintf("%s-%02d", prefix, i)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			_, errs[i] = e.svc.Create(ctx, provision.CreateRequest{Slug: slugs[i]}, "t")
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return slugs
}

type migState struct {
	version int64
	at      *time.Time
}

// migrationStates reads what the registry records of each tenant's last
// migration: a tenant a run touched has another LastMigrationAt.
func migrationStates(t *testing.T, reg *registry.Registry, slugs []string) map[string]migState {
	t.Helper()
	out := map[string]migState{}
	for _, slug := range slugs {
		tn, err := reg.Tenant(context.Background(), slug)
		if err != nil {
			t.Fatal(err)
		}
		out[slug] = migState{tn.SchemaVersion, tn.LastMigrationAt}
	}
	return out
}

func sameAt(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// TestMigrateWavesOverFiftyTenants releases one new migration to 50
// tenants in waves: a failing canary stops the rollout before any other
// tenant is touched, so does a refusing gate, and a healthy run migrates
// every tenant, canaries first, then batches of the given size.
func TestMigrateWavesOverFiftyTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	slugs := createTenants(t, e, "w", 50)
	before := e.svc.LatestMigration()
	extra, newest := withExtra(t, 1)
	next := e.with(func(o *provision.Options) { o.TenantMigrations = extra })
	reg := e.svc.Registry()
	canaries := []string{"w-07", "w-31"}

	// The dry run's view: one pending migration for everyone, nothing done.
	_, tenants, err := next.PlanWaves(ctx, provision.Waves{Canaries: canaries, Batch: 10})
	if err != nil {
		t.Fatal(err)
	}
	pending, err := next.PendingMigrations(tenants)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 50 {
		t.Fatalf("%d pending entries", len(pending))
	}
	for _, p := range pending {
		if p.From != before || len(p.Migrations) != 1 || !strings.Contains(p.Migrations[0], "extra_1") {
			t.Errorf("%s pending %+v", p.Slug, p)
		}
	}
	start := migrationStates(t, reg, slugs)

	// w-31 cannot log in: its canary migration fails.
	bad, err := reg.Tenant(ctx, "w-31")
	if err != nil {
		t.Fatal(err)
	}
	admin := e.adminConn("")
	if _, err := admin.Exec(ctx, "ALTER ROLE "+ident(bad.DBRole)+" NOLOGIN"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var touched []string
	rep, err := next.MigrateWaves(ctx, provision.Waves{Canaries: canaries, Batch: 10, Concurrency: 4},
		func(_ string, r provision.MigrateResult) {
			mu.Lock()
			touched = append(touched, r.Slug)
			mu.Unlock()
		})
	if !errors.Is(err, provision.ErrRolloutStopped) || !strings.Contains(err.Error(), "w-31") {
		t.Fatalf("err %v, want a stopped rollout naming w-31", err)
	}
	slices.Sort(touched)
	if !slices.Equal(touched, canaries) || len(rep.Waves) != 1 || len(rep.Untouched) != 48 || !strings.Contains(rep.Stopped, "w-31") {
		t.Fatalf("touched %v, report %+v", touched, rep)
	}
	after := migrationStates(t, reg, slugs)
	for _, slug := range slugs {
		switch slug {
		case "w-07":
			if after[slug].version != newest {
				t.Errorf("healthy canary w-07 at %d, want %d", after[slug].version, newest)
			}
		case "w-31":
			if after[slug].version != before {
				t.Errorf("failed canary at %d", after[slug].version)
			}
		default:
			if after[slug].version != before || !sameAt(after[slug].at, start[slug].at) {
				t.Errorf("%s was touched after the canary failed: %+v, was %+v", slug, after[slug], start[slug])
			}
		}
	}

	// The canaries pass, the gate refuses: still nobody else.
	if _, err := admin.Exec(ctx, "ALTER ROLE "+ident(bad.DBRole)+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	var gated []string
	rep, err = next.MigrateWaves(ctx, provision.Waves{Canaries: canaries, Batch: 10, Concurrency: 4,
		Gate: func(_ context.Context, rs []provision.MigrateResult) error {
			for _, r := range rs {
				gated = append(gated, r.Slug)
			}
			return errors.New("canary error rate 4%")
		}}, nil)
	if !errors.Is(err, provision.ErrRolloutStopped) || !strings.Contains(rep.Stopped, "gate") || len(rep.Untouched) != 48 {
		t.Fatalf("gate: err %v report %+v", err, rep)
	}
	if !slices.Equal(gated, canaries) {
		t.Errorf("gate saw %v", gated)
	}
	after = migrationStates(t, reg, slugs)
	for _, slug := range slugs {
		if !slices.Contains(canaries, slug) && (after[slug].version != before || !sameAt(after[slug].at, start[slug].at)) {
			t.Errorf("%s was touched past a refusing gate", slug)
		}
	}

	// A healthy run: canaries, then five batches (10, 10, 10, 10, 8).
	var order []string
	rep, err = next.MigrateWaves(ctx, provision.Waves{Canaries: canaries, Batch: 10, Concurrency: 4,
		Gate: func(context.Context, []provision.MigrateResult) error { return nil }},
		func(wave string, _ provision.MigrateResult) {
			mu.Lock()
			order = append(order, wave)
			mu.Unlock()
		})
	if err != nil || rep.Stopped != "" {
		t.Fatalf("healthy run: %v %+v", err, rep)
	}
	var sizes []int
	for _, w := range rep.Waves {
		sizes = append(sizes, len(w.Results))
	}
	if !slices.Equal(sizes, []int{2, 10, 10, 10, 10, 8}) || rep.Waves[0].Name != "canary" {
		t.Errorf("wave sizes %v", sizes)
	}
	if len(order) != 50 || order[0] != "canary" || order[1] != "canary" || order[2] != "batch 1" {
		t.Errorf("progress order %v", order)
	}
	for slug, st := range migrationStates(t, reg, slugs) {
		if st.version != newest {
			t.Errorf("%s at %d after a healthy run, want %d", slug, st.version, newest)
		}
	}
	pending, err = next.PendingMigrations(mustTenants(t, next, slugs))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pending {
		if len(p.Migrations) != 0 {
			t.Errorf("%s still pending %v", p.Slug, p.Migrations)
		}
	}
}

func mustTenants(t *testing.T, svc *provision.Service, slugs []string) []registry.Tenant {
	t.Helper()
	var out []registry.Tenant
	for _, s := range slugs {
		tn, err := svc.Registry().Tenant(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tn)
	}
	return out
}

func TestPlanWaves(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	createTenants(t, e, "pw", 20)
	plan := func(w provision.Waves) []provision.Wave {
		t.Helper()
		waves, _, err := e.svc.PlanWaves(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		return waves
	}
	a, b := plan(provision.Waves{CanaryPercent: 10, Batch: 5}), plan(provision.Waves{CanaryPercent: 10, Batch: 5})
	if len(a) != 5 || a[0].Name != "canary" || len(a[0].Slugs) != 2 || !slices.Equal(a[0].Slugs, b[0].Slugs) {
		t.Fatalf("10%% of 20 in batches of 5: %+v", a)
	}
	seen := map[string]bool{}
	for _, w := range a {
		for _, s := range w.Slugs {
			if seen[s] {
				t.Errorf("%s in two waves", s)
			}
			seen[s] = true
		}
	}
	if len(seen) != 20 {
		t.Errorf("%d tenants planned", len(seen))
	}
	// One percent of 20 still makes one canary; no canary and no batch is one wave.
	if w := plan(provision.Waves{CanaryPercent: 1}); len(w) != 2 || len(w[0].Slugs) != 1 || len(w[1].Slugs) != 19 {
		t.Errorf("1%%: %+v", w)
	}
	if w := plan(provision.Waves{}); len(w) != 1 || len(w[0].Slugs) != 20 {
		t.Errorf("no waves: %+v", w)
	}
	if _, _, err := e.svc.PlanWaves(ctx, provision.Waves{Canaries: []string{"pw-01", "nobody"}}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown canary: %v", err)
	}
}
