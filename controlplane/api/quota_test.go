package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// Plans are listed with their limits; past the plan's custom_domains a
// domain is refused, 403 plan_limit naming the plan, and nothing is
// written; the default domain does not count, and adding one the tenant
// has changes nothing. The quota endpoint shows the plan and the months
// flagged.
func TestPlansDomainLimitAndQuota(t *testing.T) {
	h := newHarness(t)
	var plans struct {
		Plans []struct {
			Name          string `json:"name"`
			CustomDomains *int64 `json:"custom_domains"`
			Price         int64  `json:"monthly_price_cents"`
		} `json:"plans"`
	}
	h.must(http.StatusOK, "GET", "/v1/plans", "").decode(t, &plans)
	var pro bool
	for _, p := range plans.Plans {
		if p.Name == "pro" && p.CustomDomains != nil && *p.CustomDomains == 1 && p.Price == 2900 {
			pro = true
		}
	}
	if !pro {
		t.Fatalf("plans %+v lack pro with one custom domain at 2900", plans.Plans)
	}

	h.create("dom", "")
	h.must(http.StatusOK, "PATCH", "/v1/tenants/dom", `{"plan":"pro"}`)
	h.must(http.StatusCreated, "POST", "/v1/tenants/dom/domains", `{"hostname":"shop.dom.test"}`)
	h.must(http.StatusCreated, "POST", "/v1/tenants/dom/domains", `{"hostname":"shop.dom.test"}`)
	r := h.do("POST", "/v1/tenants/dom/domains", `{"hostname":"www.dom.test"}`)
	if e := r.errorOf(t); r.Status != http.StatusForbidden || e.Code != "plan_limit" || !strings.Contains(e.Message, "Pro plan allows 1 custom domains") {
		t.Errorf("second custom domain: %d %+v", r.Status, e)
	}
	var n int
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM domains WHERE hostname = 'www.dom.test'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("refused domain written: %d %v", n, err)
	}
	// A larger plan has room.
	h.must(http.StatusOK, "PATCH", "/v1/tenants/dom", `{"plan":"business"}`)
	h.must(http.StatusCreated, "POST", "/v1/tenants/dom/domains", `{"hostname":"www.dom.test"}`)

	var id int64
	if err := h.pool.QueryRow(context.Background(), `SELECT id FROM tenants WHERE slug = 'dom'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(context.Background(), `UPDATE tenants SET plan = 'free' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	var flagged bool
	if err := h.pool.QueryRow(context.Background(), `SELECT dataplane_flag_quota($1, 'orders_per_month', '2026-11-01')`, id).Scan(&flagged); err != nil || !flagged {
		t.Fatalf("flag: %v %v", flagged, err)
	}
	var q struct {
		Plan   string `json:"plan"`
		Limits struct {
			Name           string `json:"name"`
			OrdersPerMonth *int64 `json:"orders_per_month"`
		} `json:"limits"`
		Flags []struct {
			Quota, Month, Plan string
			Limit              int64
		} `json:"flags"`
	}
	h.must(http.StatusOK, "GET", "/v1/tenants/dom/quota", "").decode(t, &q)
	if q.Plan != "free" || q.Limits.Name != "free" || q.Limits.OrdersPerMonth == nil || *q.Limits.OrdersPerMonth != 100 ||
		len(q.Flags) != 1 || q.Flags[0].Month != "2026-11" || q.Flags[0].Quota != "orders_per_month" || q.Flags[0].Limit != 100 {
		t.Errorf("quota = %+v", q)
	}
	h.must(http.StatusNotFound, "GET", "/v1/tenants/nobody/quota", "")
}

// A deploy whose new files would take the tenant's stored site bytes past
// the plan's storage_bytes is refused, 403 plan_limit naming the plan;
// files already stored count once.
func TestSiteStorageLimitOfPlan(t *testing.T) {
	h := newHarness(t)
	h.create("store", "")
	if _, err := h.pool.Exec(context.Background(), `INSERT INTO plans (name, display_name, storage_bytes) VALUES ('tiny-store', 'Tiny', 20)`); err != nil {
		t.Fatal(err)
	}
	h.must(http.StatusOK, "PATCH", "/v1/tenants/store", `{"plan":"tiny-store"}`)
	if r := h.upload("store", siteTgz(t, "index.html", "<h1>one</h1>")); r.Status != http.StatusCreated { // 12 bytes
		t.Fatalf("deploy within the limit: %d %s", r.Status, r.Body)
	}
	if r := h.upload("store", siteTgz(t, "index.html", "<h1>one</h1>", "copy.html", "<h1>one</h1>")); r.Status != http.StatusCreated {
		t.Fatalf("deploy of stored bytes: %d %s", r.Status, r.Body)
	}
	r := h.upload("store", siteTgz(t, "index.html", "<h1>two</h1>"))
	if e := r.errorOf(t); r.Status != http.StatusForbidden || e.Code != "plan_limit" || !strings.Contains(e.Message, "Tiny plan allows 20 bytes of site storage") {
		t.Errorf("deploy past the limit: %d %+v", r.Status, e)
	}
	var versions int
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM site_versions v JOIN tenants t ON t.id = v.tenant_id WHERE t.slug = 'store'`).Scan(&versions); err != nil || versions != 2 {
		t.Errorf("versions = %d %v, want 2", versions, err)
	}
}
