package signup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
	"github.com/startupwebapp/platform/controlplane/registry"
)

var errCrash = errors.New("simulated crash")

// verifiedSignUp records a sign-up as its confirmation click leaves it:
// verified, its shop not yet made.
func verifiedSignUp(t *testing.T, h *harness, email, slug, hash string) int64 {
	t.Helper()
	_, sum := newToken()
	var id int64
	err := h.env.Platform.QueryRow(context.Background(), `INSERT INTO signups (email, password_hash, shop_name, slug, status, token_hash, expires_at, verified_at)
VALUES ($1, $2, 'Resumed Shop', $3, 'verified', $4, now() + interval '1 day', now()) RETURNING id`, email, hash, slug, sum).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestCrashAtEveryPointResumes stops the making of a sign-up's shop at
// every point it passes — after each step of the provisioning workflow it
// runs (a fork of the starter tenant) and at each point inside one where a side effect is made and not
// yet recorded, then between the sign-up's own steps — as if the process
// died there, then finishes it again as a restarted control plane's resume
// does. Each ends with one live tenant on the free plan, one owner with
// the sign-up's password, the founder's account linked and the sign-up
// active. The points are the ones a first sign-up passes, so a point
// added to the workflow is tested without editing this list.
func TestCrashAtEveryPointResumes(t *testing.T) {
	var (
		mu     sync.Mutex
		target string // the point to crash at once; "" records the points passed
		fired  bool
		seen   []string
	)
	hit := func(point string) error {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case target == "":
			if !slices.Contains(seen, point) {
				seen = append(seen, point)
			}
		case point == target && !fired:
			fired = true
			return errCrash
		}
		return nil
	}
	h := newHarnessOn(t, provisiontest.Config{Tag: "sc", Options: func(o *provision.Options) {
		o.AfterStep = func(op, step string) error { return hit(op + "/" + step + "/after") }
		o.InStep = func(_ context.Context, op, step, point string) error { return hit(op + "/" + step + "/" + point) }
	}}, func(o *Options) { o.StarterTenant = "starter" })
	// Sign-ups fork the starter tenant's catalogue, as on the platform.
	target = "-"
	if _, err := h.env.Service.Create(context.Background(), provisiontestRequest("starter"), "admin"); err != nil {
		t.Fatal(err)
	}
	target = ""
	h.site.crashAt = func(point string) error { return hit("signup/" + point) }
	hash, err := h.opts.Hasher.Hash("Founder-Pass-42!")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := h.site.finish(ctx, verifiedSignUp(t, h, "first@example.test", "first-shop", hash)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{provision.OpFork + "/" + provision.StepCopy + "/" + provision.PointCopied, "signup/" + pointTenant, "signup/" + pointOwner} {
		if !slices.Contains(seen, want) {
			t.Fatalf("a sign-up passed %v, not %s", seen, want)
		}
	}
	t.Logf("%d crash points", len(seen))

	for i, point := range seen {
		t.Run(point, func(t *testing.T) {
			email, slug := fmt.Sprintf("crash%d@example.test", i), fmt.Sprintf("crash-%d", i)
			id := verifiedSignUp(t, h, email, slug, hash)
			mu.Lock()
			target, fired = point, false
			mu.Unlock()
			if err := h.site.finish(ctx, id); !errors.Is(err, errCrash) {
				t.Fatalf("finish with a crash at %s = %v", point, err)
			}
			if s := h.status(t, id); s != statusVerified {
				t.Fatalf("after the crash the sign-up is %s, want still verified", s)
			}
			mu.Lock()
			target = "-" // crash nowhere, record nothing
			mu.Unlock()
			if err := h.site.finish(ctx, id); err != nil {
				t.Fatalf("finishing again: %v", err)
			}
			if s := h.status(t, id); s != statusActive {
				t.Fatalf("sign-up is %s, want active", s)
			}
			tn, err := h.env.Registry.Tenant(ctx, slug)
			if err != nil || tn.Status != registry.StatusActive || tn.Plan != planForSignUps {
				t.Fatalf("tenant %s = %+v, %v; want active on %s", slug, tn, err, planForSignUps)
			}
			var owners, links int
			err = h.env.Service.InTenant(ctx, slug, func(ctx context.Context, tx pgxTx) error {
				return tx.QueryRow(ctx, `SELECT count(*) FROM staff WHERE role = 'owner' AND email = $1 AND password_hash = $2`, email, hash).Scan(&owners)
			})
			if err != nil || owners != 1 {
				t.Errorf("owners with the sign-up's password: %d (%v), want 1", owners, err)
			}
			err = h.env.Platform.QueryRow(ctx, `SELECT count(*) FROM founder_tenants ft JOIN founders f ON f.id = ft.founder_id
WHERE lower(f.email) = $1 AND ft.tenant_id = $2`, email, tn.ID).Scan(&links)
			if err != nil || links != 1 {
				t.Errorf("founder links to the shop: %d (%v), want 1", links, err)
			}
		})
	}
}

func (h *harness) status(t *testing.T, id int64) string {
	t.Helper()
	var s string
	if err := h.env.Platform.QueryRow(context.Background(), `SELECT status FROM signups WHERE id = $1`, id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}
