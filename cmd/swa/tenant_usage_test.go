package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/usage"
)

// `swa tenant usage` shows what a meter flushed to the registry, as a table
// with totals and as the API's JSON.
func TestTenantUsageCLI(t *testing.T) {
	t.Parallel()
	h := newTenantCLIHarness(t)
	id := directorytest.AddTenant(t, h.pe.Platform, directorytest.Tenant{Slug: "metered"})
	hour := time.Date(2026, 2, 3, 14, 0, 0, 0, time.UTC)
	m, err := usage.NewMeter(usage.Options{DB: h.pe.Platform, Now: func() time.Time { return hour.Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m.Request(id)
	}
	m.Order(id, "usd", 1234)
	m.ClientEvent(id)
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	out := h.ok("usage", "metered", "--from", "2026-02-03", "--to", "2026-02-04")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "metered: 2026-02-03 00:00:00 to 2026-02-04 00:00:00") {
		t.Fatalf("output:\n%s", out)
	}
	for i, want := range [][]string{
		{"HOUR", "REQUESTS", "ORDERS", "REVENUE"},
		{"2026-02-03", "14:00", "3", "1", "usd", "12.34", "1", "0", "-", "-"},
		{"TOTAL", "3", "1", "usd", "12.34", "1", "0", "-", "-"},
	} {
		if got := strings.Fields(lines[i+1]); !strings.HasPrefix(strings.Join(got, " "), strings.Join(want, " ")) {
			t.Errorf("line %d = %q, want it to start with %q", i+1, got, want)
		}
	}

	var rep usageView
	if err := json.Unmarshal([]byte(h.ok("usage", "metered", "--json", "--from", "2026-02-03T14:00:00Z", "--to", "2026-02-03T15:00:00Z")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Tenant != "metered" || len(rep.Hours) != 1 || rep.Totals.Requests != 3 || rep.Totals.ClientEvents != 1 {
		t.Errorf("--json answered %+v", rep)
	}

	if _, msg, code := h.run(nil, "", "usage", "nobody"); code != exitNotFound {
		t.Errorf("unknown tenant: exit %d (%s), want %d", code, msg, exitNotFound)
	}
	if _, msg, code := h.run(nil, "", "usage", "metered", "--from", "soon"); code == 0 || !strings.Contains(msg, "from") {
		t.Errorf("bad --from: exit %d, %q", code, msg)
	}
}
