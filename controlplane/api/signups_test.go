package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/startupwebapp/platform/controlplane/registry"
)

// TestSignupsList: GET /v1/signups pages newest first by cursor, filters by
// status, refuses a bad status or cursor, and never answers a token or a
// password hash.
func TestSignupsList(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	statuses := []string{"pending", "verified", "pending", "failed", "pending"}
	for i, st := range statuses {
		_, err := h.pool.Exec(ctx, `INSERT INTO signups (email, password_hash, shop_name, slug, status, token_hash, expires_at, client_addr, verified_at)
VALUES ($1, '$argon2id$secret-hash', 'Shop', $2, $3, $4, now() + interval '1 day', '203.0.113.7',
        CASE WHEN $3 = 'pending' THEN NULL ELSE now() END)`,
			fmt.Sprintf("f%d@example.test", i), fmt.Sprintf("shop-%d", i), st, []byte(fmt.Sprintf("token-digest-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
	}
	var emails []string
	path := "/v1/signups?limit=2"
	for range 5 {
		var page signupPage
		h.must(http.StatusOK, "GET", path, "").decode(t, &page)
		if len(page.Signups) > 2 {
			t.Fatalf("page of %d", len(page.Signups))
		}
		for _, s := range page.Signups {
			emails = append(emails, s.Email)
			if s.ClientAddr != "203.0.113.7" || s.CreatedAt.IsZero() || (s.Status == "verified") != (s.VerifiedAt != nil) && s.Status != "failed" {
				t.Errorf("sign-up %+v", s)
			}
		}
		if page.NextCursor == nil {
			break
		}
		path = "/v1/signups?limit=2&cursor=" + *page.NextCursor
	}
	if got := strings.Join(emails, " "); got != "f4@example.test f3@example.test f2@example.test f1@example.test f0@example.test" {
		t.Errorf("paged: %s", got)
	}
	var pending signupPage
	h.must(http.StatusOK, "GET", "/v1/signups?status=pending", "").decode(t, &pending)
	if len(pending.Signups) != 3 || pending.NextCursor != nil {
		t.Errorf("pending: %+v", pending)
	}
	for _, s := range pending.Signups {
		if s.Status != "pending" {
			t.Errorf("status filter let through %+v", s)
		}
	}
	for _, bad := range []struct{ query, field string }{{"status=done", "status"}, {"cursor=abc", "cursor"}, {"cursor=-4", "cursor"}, {"limit=0", "limit"}} {
		r := h.must(http.StatusBadRequest, "GET", "/v1/signups?"+bad.query, "")
		if e := r.errorOf(t); e.Field != bad.field {
			t.Errorf("%s: field %q, want %q", bad.query, e.Field, bad.field)
		}
	}
	if b := h.bodies.String(); strings.Contains(b, "secret-hash") || strings.Contains(b, "token") || strings.Contains(b, "password") {
		t.Errorf("a sign-up's secrets in a response:\n%s", b)
	}
}

// TestSuspendReason: the reason given for a suspension is in its audit
// entry; one too long or on several lines is refused and suspends nothing.
func TestSuspendReason(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create("abuser", "")
	for _, bad := range []string{`{"reason":"` + strings.Repeat("x", 501) + `"}`, `{"reason":"two\nlines"}`, `{"why":"x"}`} {
		if r := h.must(http.StatusBadRequest, "POST", "/v1/tenants/abuser/suspend", bad); r.errorOf(t).Code != "invalid" {
			t.Errorf("%.40s: %s", bad, r.Body)
		}
	}
	var tn registry.Tenant
	h.must(http.StatusOK, "GET", "/v1/tenants/abuser", "").decode(t, &tn)
	if tn.Status != "active" {
		t.Fatalf("a refused suspension left the tenant %s", tn.Status)
	}
	h.must(http.StatusOK, "POST", "/v1/tenants/abuser/suspend", `{"reason":"phishing pages, report 1234"}`).decode(t, &tn)
	if tn.Status != "suspended" {
		t.Fatalf("after suspend: %s", tn.Status)
	}
	var page auditPage
	h.must(http.StatusOK, "GET", "/v1/audit?tenant=abuser&limit=1", "").decode(t, &page)
	var after struct {
		Status, Reason string
	}
	if len(page.Entries) != 1 || page.Entries[0].Action != "tenant.suspend" || json.Unmarshal(page.Entries[0].After, &after) != nil ||
		after.Reason != "phishing pages, report 1234" || after.Status != "suspended" {
		t.Errorf("audit entry %+v", page.Entries)
	}
}
