package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestSignupListCLI: swa signup list prints the sign-ups as a table and as
// JSON, filters by status, and refuses an unknown one with exit status 2;
// swa tenant suspend --reason records the reason in the audit log.
func TestSignupListCLI(t *testing.T) {
	t.Parallel()
	h := newTenantCLIHarness(t)
	for i, st := range []string{"pending", "failed", "pending"} {
		_, err := h.pe.Platform.Exec(context.Background(), `INSERT INTO signups (email, password_hash, shop_name, slug, status, token_hash, expires_at, client_addr)
VALUES ($1, 'hash-not-shown', 'Shop', $2, $3, $4, now() + interval '1 day', '198.51.100.4')`,
			fmt.Sprintf("cli%d@example.test", i), fmt.Sprintf("cli-shop-%d", i), st, []byte(fmt.Sprintf("digest-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
	}
	out, msg, code := h.runCommand(signupCommand, nil, "", "list")
	if code != 0 {
		t.Fatalf("swa signup list: %d %s", code, msg)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "EMAIL") || !strings.HasPrefix(lines[1], "cli2@example.test") ||
		!strings.Contains(lines[2], "failed") || !strings.Contains(lines[3], "198.51.100.4") {
		t.Errorf("table:\n%s", out)
	}
	out, _, code = h.runCommand(signupCommand, nil, "", "list", "--status", "pending", "--json")
	var list []struct{ Email, Status string }
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || list[0].Status != "pending" || list[1].Email != "cli0@example.test" {
		t.Errorf("--json --status pending: %d %+v\n%s", code, list, out)
	}
	if strings.Contains(h.output.String(), "hash-not-shown") {
		t.Errorf("the password hash was printed:\n%s", h.output.String())
	}
	if _, msg, code := h.runCommand(signupCommand, nil, "", "list", "--status", "done"); code != exitUsage || !strings.Contains(msg, "status") {
		t.Errorf("unknown status: %d %s", code, msg)
	}

	h.ok("create", "--slug", "spammy", "--wait")
	if out := h.ok("suspend", "spammy", "--reason", "spam campaign"); !strings.Contains(out, "suspended") {
		t.Errorf("suspend: %s", out)
	}
	var reason string
	err := h.pe.Platform.QueryRow(context.Background(), `SELECT after->>'reason' FROM audit_log WHERE action = 'tenant.suspend' ORDER BY id DESC LIMIT 1`).Scan(&reason)
	if err != nil || reason != "spam campaign" {
		t.Errorf("audited reason %q (%v)", reason, err)
	}
}
