package main

import (
	"context"
	"strings"
	"testing"
)

// swa plan list shows the plans with limits and prices; swa tenant plan
// moves a tenant to one, audited, and refuses a plan that does not exist.
func TestPlanCLI(t *testing.T) {
	t.Parallel()
	h := newTenantCLIHarness(t)
	out, msg, code := h.runCommand(planCommand, nil, "", "list")
	if code != 0 {
		t.Fatalf("swa plan list: exit %d: %s", code, msg)
	}
	for _, want := range []string{"NAME", "free", "pro", "29.00", "unlimited", "5368709120"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan list lacks %q:\n%s", want, out)
		}
	}

	h.ok("create", "--slug", "planned", "--wait")
	out = h.ok("plan", "planned", "pro")
	if !strings.Contains(out, "plan:") || !strings.Contains(out, "pro") {
		t.Errorf("plan change output:\n%s", out)
	}
	var plan string
	var audited int
	ctx := context.Background()
	if err := h.pe.Platform.QueryRow(ctx, `SELECT plan FROM tenants WHERE slug = 'planned'`).Scan(&plan); err != nil || plan != "pro" {
		t.Errorf("plan = %q %v, want pro", plan, err)
	}
	if err := h.pe.Platform.QueryRow(ctx, `SELECT count(*) FROM audit_log a JOIN tenants t ON t.id = a.tenant_id
		WHERE t.slug = 'planned' AND a.after ->> 'plan' = 'pro'`).Scan(&audited); err != nil || audited != 1 {
		t.Errorf("audit rows of the change = %d %v, want 1", audited, err)
	}
	if _, msg, code := h.run(nil, "", "plan", "planned", "no-such-plan"); code == 0 {
		t.Errorf("unknown plan accepted: %s", msg)
	}
	if _, _, code := h.run(nil, "", "plan", "planned"); code != exitUsage {
		t.Errorf("missing plan: exit %d, want %d", code, exitUsage)
	}
}
