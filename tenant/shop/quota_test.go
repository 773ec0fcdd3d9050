package shop_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// Past the plan's orders_per_month an order still completes, and the
// tenant is flagged for the month in the registry, once, though two
// orders over the quota complete at the same moment.
func TestOrderQuotaFlagsTenant(t *testing.T) {
	t.Parallel()
	d := newStripeDouble(t)
	e := newEnv(t, envOptions{stripeBase: d.srv.URL})
	ctx := context.Background()
	plan := pgtest.RandomName("ord")
	if _, err := e.reg.Exec(ctx, `INSERT INTO plans (name, display_name, orders_per_month) VALUES ($1, 'Orders', 0)`, plan); err != nil {
		t.Fatal(err)
	}
	alpha := e.dir.BySlug("alpha")
	directorytest.SetPlan(t, e.reg, alpha.ID, plan)
	if err := e.dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	// Two shoppers, each with a paid Checkout Session.
	var buyers []*browser
	var ids []string
	for i, name := range []string{"quota1", "quota2"} {
		b := e.browser(t, hostA)
		b.login(newMember(t, e.db, name, name+"@example.com"))
		b.post("/order/cart-add-product-sku", form("sku_id", "1", "quantity", "1"))
		b.post("/order/cart-update-shipping-method", form("shipping_method_identifier", "USPSRetailGround"))
		cs := b.post("/order/create-checkout-session", form("agree_to_terms_of_sale", "true", "newsletter", "", "save_defaults", "false")).json(t)
		id, _ := cs["session_id"].(string)
		if cs["create_checkout_session"] != "success" || id == "" {
			t.Fatalf("shopper %d: create session: %v", i, cs)
		}
		d.pay(id)
		buyers, ids = append(buyers, b), append(ids, id)
	}

	// Both success redirects at once.
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	answers := make([]map[string]any, len(buyers))
	errs := make([]error, len(buyers))
	for i := range buyers {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			a, err := buyers[i].try(http.MethodGet, "/order/checkout-session-success?session_id="+ids[i], nil, nil)
			if err == nil {
				answers[i], err = a.decode()
			}
			errs[i] = err
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	for i := range buyers {
		if errs[i] != nil || answers[i]["checkout_session_success"] != "success" {
			t.Errorf("order %d over the quota: %v %v, want it completed", i, answers[i], errs[i])
		}
	}
	if n := count(t, e.db, `SELECT count(*) FROM customer_order`); n != 2 {
		t.Errorf("orders = %d, want 2", n)
	}
	var flags int
	var flaggedPlan string
	var limit int64
	if err := e.reg.QueryRow(ctx, `SELECT count(*), min(plan), min(quota_limit) FROM quota_flags
		WHERE tenant_id = $1 AND quota = 'orders_per_month' AND month = date_trunc('month', now() AT TIME ZONE 'UTC')::date`,
		alpha.ID).Scan(&flags, &flaggedPlan, &limit); err != nil {
		t.Fatal(err)
	}
	if flags != 1 || flaggedPlan != plan || limit != 0 {
		t.Errorf("flags = %d (%s, %d), want one for plan %s limit 0", flags, flaggedPlan, limit, plan)
	}
	// The other tenant, unlimited, is not flagged.
	if n := count(t, e.reg, `SELECT count(*) FROM quota_flags WHERE tenant_id <> $1`, alpha.ID); n != 0 {
		t.Errorf("%d flags of other tenants", n)
	}
}
