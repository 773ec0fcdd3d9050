package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/usage"
)

// A tenant's usage, counted by a meter and sampled by the control plane
// (its real database's size, from the database server), is answered hour
// by hour with totals; bad ranges are refused with the field named.
func TestTenantUsage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	tn := h.create("metered", "")
	hour := time.Now().UTC().Truncate(time.Hour)
	m, err := usage.NewMeter(usage.Options{DB: h.pool, Now: func() time.Time { return hour.Add(5 * time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	for range 7 {
		m.Request(tn.ID)
	}
	m.Order(tn.ID, "usd", 4200)
	m.EmailSent(tn.ID)
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := usage.NewSampler(usage.SamplerOptions{DB: h.pool, DatabaseSizes: h.prov.DatabaseSizes, Now: func() time.Time { return hour }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}

	var rep usageReport
	h.must(http.StatusOK, "GET", "/v1/tenants/metered/usage", "").decode(t, &rep)
	if rep.Tenant != "metered" || len(rep.Hours) != 1 || !rep.Hours[0].Hour.Equal(hour) {
		t.Fatalf("usage = %+v", rep)
	}
	tt := rep.Totals
	if tt.Requests != 7 || tt.Orders != 1 || tt.EmailsSent != 1 || len(tt.Revenue) != 1 || tt.Revenue[0] != (usage.Revenue{Currency: "usd", Orders: 1, Cents: 4200}) {
		t.Errorf("totals = %+v", tt)
	}
	if tt.DBBytes == nil || *tt.DBBytes < 1<<20 || tt.SiteBytes == nil || *tt.SiteBytes != 0 {
		t.Errorf("gauges db_bytes=%v site_bytes=%v, want the database's size and 0", tt.DBBytes, tt.SiteBytes)
	}
	// A range before the hour holds nothing.
	h.must(http.StatusOK, "GET", "/v1/tenants/metered/usage?from=2020-01-01&to=2020-01-02", "").decode(t, &rep)
	if len(rep.Hours) != 0 || rep.Totals.Requests != 0 {
		t.Errorf("an empty range answered %+v", rep)
	}
	for _, tc := range []struct{ query, field string }{
		{"from=yesterday", "from"},
		{"to=2026-13-01", "to"},
		{"from=2026-01-02&to=2026-01-01", "from"},
		{"from=2025-01-01&to=2026-01-01", "from"},
	} {
		r := h.must(http.StatusBadRequest, "GET", "/v1/tenants/metered/usage?"+tc.query, "")
		if e := r.errorOf(t); e.Field != tc.field {
			t.Errorf("%s: field %q, want %q", tc.query, e.Field, tc.field)
		}
	}
	h.must(http.StatusNotFound, "GET", "/v1/tenants/nobody/usage", "")
	if r := h.doAs("", "GET", "/v1/tenants/metered/usage", ""); r.Status != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", r.Status)
	}
}
