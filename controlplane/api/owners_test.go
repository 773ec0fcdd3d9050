package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/tenant/account"
)

// TestCreateOwner: the control plane gives a tenant its first back-office
// owner. Bad input names its field; an address already staff is a
// conflict; the password is kept only as a hash that verifies, and appears
// in no response, log or audit entry.
func TestCreateOwner(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create("owned", "")
	const password = "Owner-Pass-42!"
	body := func(email, name, pw string) string {
		return `{"email":"` + email + `","name":"` + name + `","password":"` + pw + `"}`
	}
	for _, tc := range []struct{ body, field string }{
		{body("", "Ada Owner", password), "email"},
		{body("not-an-address", "Ada Owner", password), "email"},
		{body("ada@owned.test", "", password), "name"},
		{body("ada@owned.test", "Ada Owner", ""), "password"},
		{body("ada@owned.test", "Ada Owner", "short"), "password"},
		{`{"email":"ada@owned.test","name":"Ada","password":"` + password + `","role":"staff"}`, "role"},
	} {
		e := h.must(http.StatusBadRequest, "POST", "/v1/tenants/owned/owners", tc.body).errorOf(t)
		if e.Field != tc.field {
			t.Errorf("%s: field %q, want %q (%s)", tc.body, e.Field, tc.field, e.Message)
		}
	}
	h.must(http.StatusNotFound, "POST", "/v1/tenants/nobody/owners", body("ada@owned.test", "Ada Owner", password))

	var got ownerResponse
	h.must(http.StatusCreated, "POST", "/v1/tenants/owned/owners", body("Ada@Owned.test", "Ada Owner", password)).decode(t, &got)
	if got != (ownerResponse{Tenant: "owned", Email: "Ada@Owned.test", Name: "Ada Owner", Role: "owner"}) {
		t.Errorf("created %+v", got)
	}
	if e := h.must(http.StatusConflict, "POST", "/v1/tenants/owned/owners", body("ada@owned.test", "Ada Again", password)).errorOf(t); e.Field != "email" {
		t.Errorf("second owner with the address: %+v", e)
	}

	var role, hash string
	var staff int
	err := h.prov.InTenant(context.Background(), "owned", func(ctx context.Context, tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM staff`).Scan(&staff); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT role, password_hash FROM staff WHERE lower(email) = 'ada@owned.test'`).Scan(&role, &hash)
	})
	if err != nil {
		t.Fatal(err)
	}
	if staff != 1 || role != "owner" {
		t.Errorf("staff rows %d, role %q", staff, role)
	}
	if ok, err := account.NewHasher(account.DefaultArgon2).Verify(hash, password); err != nil || !ok {
		t.Errorf("stored hash %q does not verify the password: %v", hash, err)
	}
	entries, err := h.prov.Registry().ListAudit(context.Background(), registry.AuditFilter{TenantSlug: "owned"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		found = found || e.Action == "tenant.owner_created"
		if strings.Contains(string(e.After), password) || strings.Contains(string(e.Before), password) {
			t.Errorf("audit entry %s holds the password", e.Action)
		}
	}
	if !found {
		t.Error("no tenant.owner_created audit entry")
	}
	if strings.Contains(h.allResponses(), password) || strings.Contains(h.logs.String(), password) {
		t.Error("the password is in a response or a log line")
	}
}
