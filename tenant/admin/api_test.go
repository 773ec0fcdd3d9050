package admin_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/tenant/admin"
)

func TestRolesAndStaffManagement(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	me := owner.must(200, "GET", api+"/me", nil)
	if me["via"] != "session" || me["staff"].(map[string]any)["role"] != "owner" {
		t.Fatalf("me = %s", owner.raw)
	}
	email := f.addStaff(owner, "staff")
	staff := f.signIn(hostA, email, staffPassword)

	// Staff can read the staff list, not manage it or read the audit log.
	list := staff.must(200, "GET", api+"/staff", nil)
	if items := list["items"].([]any); len(items) != 2 || list["next_cursor"] != nil {
		t.Fatalf("staff list = %s", staff.raw)
	}
	staffID := fmt.Sprint(list["items"].([]any)[1].(map[string]any)["id"])
	ownerID := fmt.Sprint(list["items"].([]any)[0].(map[string]any)["id"])
	staff.refused(403, "forbidden", "", "POST", api+"/staff/invitations", map[string]string{"email": "x@example.com", "role": "owner"})
	staff.refused(403, "forbidden", "", "GET", api+"/staff/invitations", nil)
	staff.refused(403, "forbidden", "", "PATCH", api+"/staff/"+ownerID, map[string]any{"active": false})
	staff.refused(403, "forbidden", "", "PATCH", api+"/staff/"+staffID, map[string]any{"role": "owner"})
	staff.refused(403, "forbidden", "", "GET", api+"/audit", nil)

	// The owner cannot leave the shop without an owner.
	owner.refused(409, "last-owner", "role", "PATCH", api+"/staff/"+ownerID, map[string]any{"role": "staff"})
	owner.refused(409, "last-owner", "active", "PATCH", api+"/staff/"+ownerID, map[string]any{"active": false})
	owner.refused(400, "invalid", "role", "PATCH", api+"/staff/"+staffID, map[string]any{"role": "admin"})
	owner.refused(400, "invalid", "active", "PATCH", api+"/staff/"+staffID, map[string]any{"active": "no"})
	owner.refused(404, "not-found", "", "PATCH", api+"/staff/999999", map[string]any{"active": false})
	owner.refused(400, "invalid", "email", "POST", api+"/staff/invitations", map[string]string{"email": "not an address", "role": "staff"})
	owner.refused(409, "already-staff", "email", "POST", api+"/staff/invitations", map[string]string{"email": strings.ToUpper(email), "role": "staff"})

	// Promotion gives the rights at once, in the same session.
	owner.must(200, "PATCH", api+"/staff/"+staffID, map[string]any{"role": "owner"})
	staff.must(200, "GET", api+"/audit", nil)
	owner.must(200, "PATCH", api+"/staff/"+staffID, map[string]any{"role": "staff"})
	staff.refused(403, "forbidden", "", "GET", api+"/audit", nil)

	// Deactivation ends the session at once.
	owner.must(200, "PATCH", api+"/staff/"+staffID, map[string]any{"active": false})
	staff.refused(401, "unauthenticated", "", "GET", api+"/me", nil)
	f.client(hostA).refused(401, "sign-in-failed", "", "POST", api+"/session", map[string]string{"email": email, "password": staffPassword})

	// Every change is in the audit log, readable by owners, without secrets.
	audit := owner.must(200, "GET", api+"/audit?limit=200", nil)
	var actions []string
	for _, e := range audit["items"].([]any) {
		actions = append(actions, e.(map[string]any)["action"].(string))
	}
	for _, want := range []string{"staff.created", "invitation.created", "invitation.accepted", "session.signed_in", "staff.updated"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit log lacks %s: %v", want, actions)
		}
	}
	if strings.Contains(owner.raw, ownerPassword) || strings.Contains(owner.raw, staffPassword) || strings.Contains(owner.raw, "argon2") {
		t.Fatalf("the audit log shows a secret: %s", owner.raw)
	}
	// The deactivation's before and after.
	entry := audit["items"].([]any)[0].(map[string]any)
	if entry["action"] != "staff.updated" || fmt.Sprint(entry["before"]) != "map[active:true role:staff]" ||
		fmt.Sprint(entry["after"]) != "map[active:false role:staff]" || entry["actor"] != f.owner[f.a.ID] {
		t.Fatalf("last audit entry = %v", entry)
	}
	// Pages of the log follow their cursor to the end, newest first.
	var seen []float64
	cursor := ""
	for range 50 {
		out := owner.must(200, "GET", api+"/audit?limit=2"+cursor, nil)
		for _, e := range out["items"].([]any) {
			seen = append(seen, e.(map[string]any)["id"].(float64))
		}
		if out["next_cursor"] == nil {
			break
		}
		cursor = "&cursor=" + out["next_cursor"].(string)
	}
	if len(seen) != len(actions) || !slices.IsSortedFunc(seen, func(a, b float64) int { return int(b - a) }) {
		t.Fatalf("paged ids %v, want %d newest first", seen, len(actions))
	}
	owner.refused(400, "invalid", "cursor", "GET", api+"/audit?cursor=bogus", nil)
	owner.refused(400, "invalid", "limit", "GET", api+"/audit?limit=0", nil)
}

func TestInvitationSingleUseAndExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	anon := f.client(hostA)

	email := pgtest.RandomName("inv") + "@example.com"
	tok := f.invite(owner, email, "staff")
	inv := owner.must(200, "GET", api+"/staff/invitations", nil)
	if items := inv["items"].([]any); len(items) != 1 || items[0].(map[string]any)["email"] != email || strings.Contains(owner.raw, tok) {
		t.Fatalf("invitations = %s", owner.raw)
	}
	// A weak password is refused, naming the field, and spends nothing.
	anon.refused(400, "password-policy", "password", "POST", api+"/invitations/accept", map[string]string{"token": tok, "name": "Ivy", "password": "password"})
	anon.must(201, "POST", api+"/invitations/accept", map[string]string{"token": tok, "name": "Ivy", "password": staffPassword})
	anon.refused(400, "token-invalid", "token", "POST", api+"/invitations/accept", map[string]string{"token": tok, "name": "Ivy", "password": staffPassword})
	f.signIn(hostA, email, staffPassword)

	// An invitation expires after 72 hours.
	late := pgtest.RandomName("late") + "@example.com"
	tok = f.invite(owner, late, "staff")
	f.skewBy(admin.InvitationTTL + time.Minute)
	anon.refused(400, "token-invalid", "token", "POST", api+"/invitations/accept", map[string]string{"token": tok, "name": "Lou", "password": staffPassword})

	// A revoked one is dead too.
	f.skewBy(-admin.InvitationTTL - time.Minute)
	owner = f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	gone := pgtest.RandomName("gone") + "@example.com"
	tok = f.invite(owner, gone, "staff")
	inv = owner.must(200, "GET", api+"/staff/invitations", nil)
	var id string
	for _, i := range inv["items"].([]any) {
		if i.(map[string]any)["email"] == gone {
			id = fmt.Sprint(i.(map[string]any)["id"])
		}
	}
	owner.must(204, "DELETE", api+"/staff/invitations/"+id, nil)
	anon.refused(400, "token-invalid", "token", "POST", api+"/invitations/accept", map[string]string{"token": tok, "name": "Gus", "password": staffPassword})
	anon.refused(400, "token-invalid", "token", "POST", api+"/invitations/accept", map[string]string{"token": "made-up", "name": "Gus", "password": staffPassword})
	anon.refused(400, "required", "name", "POST", api+"/invitations/accept", map[string]string{"token": tok, "password": staffPassword})
}

func TestCSRFOnSessions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	body := map[string]string{"name": "ci"}
	tok := owner.csrf

	owner.csrf = ""
	owner.refused(403, "csrf-failed", "", "POST", api+"/tokens", body)
	owner.refused(403, "csrf-failed", "", "DELETE", api+"/session", nil)
	owner.csrf = tok[:len(tok)-1] + "x"
	owner.refused(403, "csrf-failed", "", "POST", api+"/tokens", body)
	owner.csrf = tok
	owner.header["Origin"] = "http://evil.test"
	owner.refused(403, "csrf-failed", "", "POST", api+"/tokens", body)
	// The tenant's own frontend is trusted by the member API, not here,
	// and gets no CORS headers from the back office.
	owner.header["Origin"] = frontend
	owner.refused(403, "csrf-failed", "", "POST", api+"/tokens", body)
	owner.must(200, "GET", api+"/me", nil)
	if owner.last.Header.Get("Access-Control-Allow-Origin") != "" || owner.last.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("back office answered with CORS headers: %v", owner.last.Header)
	}
	owner.header["Origin"] = "http://" + hostA
	owner.must(201, "POST", api+"/tokens", body)
	// The session's token is not the member CSRF cookie's: the member
	// middleware does not apply here, and its cookie opens nothing.
	delete(owner.header, "Origin")
	owner.csrf = ""
	owner.cookies["csrftoken"] = tok
	owner.header["X-CSRFToken"] = tok
	owner.refused(403, "csrf-failed", "", "POST", api+"/tokens", body)
}

func TestLockoutDoesNotTellWhoExists(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	email := f.owner[f.a.ID]
	c := f.client(hostA)
	unknown := c.refused(401, "sign-in-failed", "", "POST", api+"/session", map[string]string{"email": "nobody@example.com", "password": "x"})
	for i := range admin.DefaultMaxFailures {
		out := c.refused(401, "sign-in-failed", "", "POST", api+"/session", map[string]string{"email": email, "password": fmt.Sprint("wrong", i)})
		if fmt.Sprint(out) != fmt.Sprint(unknown) {
			t.Fatalf("wrong password answered %v, unknown address %v", out, unknown)
		}
	}
	// Locked: the right password is refused with the very same answer.
	locked := c.refused(401, "sign-in-failed", "", "POST", api+"/session", map[string]string{"email": email, "password": ownerPassword})
	if fmt.Sprint(locked) != fmt.Sprint(unknown) {
		t.Fatalf("locked answered %v, unknown address %v", locked, unknown)
	}
	if !slices.Contains(f.auditActions(f.a), "staff.locked") {
		t.Fatal("the lock is not in the audit log")
	}
	// Tenant B's owner is not locked by A's failures.
	f.signIn(hostB, f.owner[f.b.ID], ownerPassword)
	f.skewBy(admin.DefaultLockout + time.Minute)
	f.signIn(hostA, email, ownerPassword)
}

func TestLoginRateLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{limits: map[string]ratelimit.Rate{
		"admin_login": {N: 3, Window: time.Hour}, "admin_login_account": {N: 2, Window: time.Hour}}})
	c := f.client(hostA)
	target := "target@example.com"
	c.refused(401, "sign-in-failed", "", "POST", api+"/session", map[string]string{"email": target, "password": "x"})
	c.refused(401, "sign-in-failed", "", "POST", api+"/session", map[string]string{"email": strings.ToUpper(target), "password": "x"})
	// The third try on the same address is over its limit, whatever its case.
	c.refused(403, "rate_limited", "", "POST", api+"/session", map[string]string{"email": target, "password": "x"})
	// Another address from the same client: the fourth request of the
	// client address is over its limit.
	c.refused(403, "rate_limited", "", "POST", api+"/session", map[string]string{"email": f.owner[f.a.ID], "password": ownerPassword})
}

// code is the TOTP code of secret at the fixture's clock plus offset steps.
func (f *fixture) code(t *testing.T, secret string, steps int) string {
	t.Helper()
	at := time.Now().Add(time.Duration(f.skew.Load()) + time.Duration(steps)*30*time.Second)
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrolTOTP signs email in on tenant A and turns its second factor on
// (confirmed with the current step's code); it returns the session and the
// secret.
func (f *fixture) enrolTOTP(t *testing.T, email string) (*client, string) {
	t.Helper()
	owner := f.signIn(hostA, email, ownerPassword)
	secret := owner.must(200, "POST", api+"/me/totp", nil)["secret"].(string)
	owner.must(200, "POST", api+"/me/totp/confirm", map[string]string{"code": f.code(t, secret, 0)})
	return owner, secret
}

// passwordStep signs email in with the password alone on tenant A: a
// client at the second-factor step.
func (f *fixture) passwordStep(email string) *client {
	c := f.client(hostA)
	c.csrf = c.must(200, "POST", api+"/session", map[string]string{"email": email, "password": ownerPassword})["csrf_token"].(string)
	return c
}

func TestTOTPSecondFactor(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	email := f.owner[f.a.ID]
	owner := f.signIn(hostA, email, ownerPassword)

	enrol := owner.must(200, "POST", api+"/me/totp", nil)
	secret := enrol["secret"].(string)
	if !strings.HasPrefix(enrol["qr_png"].(string), "data:image/png;base64,") || !strings.Contains(enrol["otpauth_url"].(string), "secret="+secret) {
		t.Fatalf("enrol = %s", owner.raw)
	}
	// Stored sealed, never as the secret itself.
	var sealed []byte
	if err := f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT totp_secret FROM staff WHERE lower(email) = $1`, email).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if len(sealed) < 28 || strings.Contains(string(sealed), secret) {
		t.Fatalf("totp secret stored as %q", sealed)
	}
	owner.refused(401, "code-invalid", "code", "POST", api+"/me/totp/confirm", map[string]string{"code": "000000"})
	conf := owner.must(200, "POST", api+"/me/totp/confirm", map[string]string{"code": f.code(t, secret, 0)})
	recovery := conf["recovery_codes"].([]any)
	if len(recovery) != 10 {
		t.Fatalf("recovery codes = %v", recovery)
	}
	owner.must(204, "DELETE", api+"/session", nil)

	// A password alone now opens only the second-factor step.
	c := f.client(hostA)
	out := c.must(200, "POST", api+"/session", map[string]string{"email": email, "password": ownerPassword})
	if out["totp_required"] != true {
		t.Fatalf("sign-in = %s", c.raw)
	}
	c.csrf = out["csrf_token"].(string)
	c.refused(401, "unauthenticated", "", "GET", api+"/me", nil)
	c.refused(401, "unauthenticated", "", "POST", api+"/tokens", map[string]string{"name": "x"})
	c.refused(401, "code-invalid", "code", "POST", api+"/session/totp", map[string]string{"code": "123456"})
	// The code used to confirm is spent; the next step's code works once.
	c.refused(401, "code-invalid", "code", "POST", api+"/session/totp", map[string]string{"code": f.code(t, secret, 0)})
	next := f.code(t, secret, 1)
	out = c.must(200, "POST", api+"/session/totp", map[string]string{"code": next})
	c.csrf = out["csrf_token"].(string)
	c.must(200, "GET", api+"/me", nil)

	c2 := f.client(hostA)
	c2.csrf = c2.must(200, "POST", api+"/session", map[string]string{"email": email, "password": ownerPassword})["csrf_token"].(string)
	c2.refused(401, "code-invalid", "code", "POST", api+"/session/totp", map[string]string{"code": next})
	// A recovery code works once, in any case and grouping.
	rc := recovery[0].(string)
	c2.must(200, "POST", api+"/session/totp", map[string]string{"recovery_code": strings.ToUpper(strings.ReplaceAll(rc, "-", " "))})
	c3 := f.client(hostA)
	c3.csrf = c3.must(200, "POST", api+"/session", map[string]string{"email": email, "password": ownerPassword})["csrf_token"].(string)
	c3.refused(401, "code-invalid", "recovery_code", "POST", api+"/session/totp", map[string]string{"recovery_code": rc})

	// Turning it off takes the password.
	c.refused(400, "password-wrong", "password", "DELETE", api+"/me/totp", map[string]string{"password": "nope"})
	codes := c.must(200, "POST", api+"/me/recovery-codes", map[string]string{"password": ownerPassword})["recovery_codes"].([]any)
	if len(codes) != 10 || codes[0] == recovery[0] {
		t.Fatalf("new recovery codes = %v", codes)
	}
	c.must(204, "DELETE", api+"/me/totp", map[string]string{"password": ownerPassword})
	f.signIn(hostA, email, ownerPassword)
	for _, want := range []string{"totp.enrolment_started", "totp.enabled", "totp.recovery_code_used", "totp.recovery_codes_replaced", "totp.disabled"} {
		if !slices.Contains(f.auditActions(f.a), want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	if logs := f.logs.String(); strings.Contains(logs, secret) || strings.Contains(logs, rc) {
		t.Fatal("a TOTP secret or recovery code reached the log")
	}
}

// TestTOTPOutlivesKeyRotation: a second factor sealed under the tenant's key
// still opens after rotate-secrets replaced that key, and is sealed again
// under the new one at its first use, so it survives the next rotations too.
func TestTOTPOutlivesKeyRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	email := f.owner[f.a.ID]
	owner, secret := f.enrolTOTP(t, email)
	sealed := func() []byte {
		var b []byte
		if err := f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT totp_secret FROM staff WHERE lower(email) = $1`, email).Scan(&b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := sealed()

	f.keys.rotate(f.a.ID)
	// The rotation ended the session (it was bound with the old key).
	owner.refused(401, "unauthenticated", "", "GET", api+"/me", nil)
	c := f.passwordStep(email)
	out := c.must(200, "POST", api+"/session/totp", map[string]string{"code": f.code(t, secret, 1)})
	c.csrf = out["csrf_token"].(string)
	c.must(200, "GET", api+"/me", nil)
	resealed := sealed()
	if bytes.Equal(first, resealed) {
		t.Fatal("the TOTP secret is still sealed under the replaced key")
	}

	// Two more rotations later the factor still opens: it moved to each key
	// in turn, at each sign-in.
	for range 2 {
		f.keys.rotate(f.a.ID)
		f.skewBy(30 * time.Second) // a fresh step: each code works once
		c := f.passwordStep(email)
		c.must(200, "POST", api+"/session/totp", map[string]string{"code": f.code(t, secret, 1)})
	}
	// The other tenant's key opens nothing here.
	f.keys.mu.Lock()
	f.keys.keys[f.a.ID] = [][]byte{[]byte("a-key-this-tenant-never-had")}
	f.keys.mu.Unlock()
	f.skewBy(30 * time.Second)
	c = f.passwordStep(email)
	if status, _ := c.do("POST", api+"/session/totp", map[string]string{"code": f.code(t, secret, 1)}); status == 200 {
		t.Fatal("a TOTP secret opened under a key the tenant never had")
	}
}

func TestPasswordResetAndChange(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	email := f.owner[f.a.ID]
	session := f.signIn(hostA, email, ownerPassword)
	anon := f.client(hostA)

	anon.must(202, "POST", api+"/password/forgot", map[string]string{"email": "nobody@example.com"})
	anon.must(202, "POST", api+"/password/forgot", map[string]string{"email": strings.ToUpper(email)})
	tok := linkToken(t, f.deliver(email, 1)[0])
	anon.refused(400, "password-policy", "password", "POST", api+"/password/reset", map[string]string{"token": tok, "password": "12345678"})
	newPass := "Reset-Pass-2026!"
	anon.must(204, "POST", api+"/password/reset", map[string]string{"token": tok, "password": newPass})
	anon.refused(400, "token-invalid", "token", "POST", api+"/password/reset", map[string]string{"token": tok, "password": "Other-Pass-2026!"})
	// The reset ended the open session; the old password is dead.
	session.refused(401, "unauthenticated", "", "GET", api+"/me", nil)
	anon.refused(401, "sign-in-failed", "", "POST", api+"/session", map[string]string{"email": email, "password": ownerPassword})
	c := f.signIn(hostA, email, newPass)

	// An expired link is refused.
	anon.must(202, "POST", api+"/password/forgot", map[string]string{"email": email})
	tok = linkToken(t, f.deliver(email, 2)[0])
	f.skewBy(admin.ResetTTL + time.Minute)
	anon.refused(400, "token-invalid", "token", "POST", api+"/password/reset", map[string]string{"token": tok, "password": "Later-Pass-2026!"})
	f.skewBy(-admin.ResetTTL - time.Minute)

	// A change needs the current password; other sessions end, this one
	// goes on with a new id and token.
	other := f.signIn(hostA, email, newPass)
	c.refused(400, "password-wrong", "current_password", "POST", api+"/me/password", map[string]string{"current_password": "x", "new_password": "Third-Pass-2026!"})
	c.refused(400, "password-policy", "new_password", "POST", api+"/me/password", map[string]string{"current_password": newPass, "new_password": "short"})
	oldCookie := c.cookies[admin.CookieName]
	out := c.must(200, "POST", api+"/me/password", map[string]string{"current_password": newPass, "new_password": "Third-Pass-2026!"})
	c.csrf = out["csrf_token"].(string)
	if c.cookies[admin.CookieName] == oldCookie {
		t.Fatal("the session kept its id across a password change")
	}
	c.must(200, "GET", api+"/me", nil)
	other.refused(401, "unauthenticated", "", "GET", api+"/me", nil)
	if logs := f.logs.String(); strings.Contains(logs, tok) || strings.Contains(logs, newPass) {
		t.Fatal("a reset token or password reached the log")
	}
}

func TestAPITokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	staffEmail := f.addStaff(owner, "staff")
	staff := f.signIn(hostA, staffEmail, staffPassword)

	created := staff.must(201, "POST", api+"/tokens", map[string]string{"name": "deploy bot"})
	tok := created["token"].(string)
	if !strings.HasPrefix(tok, admin.TokenPrefix) {
		t.Fatalf("token = %s", staff.raw)
	}
	bot := f.client(hostA)
	bot.bearer = tok
	me := bot.must(200, "GET", api+"/me", nil)
	if me["via"] != "token" || me["staff"].(map[string]any)["email"] != staffEmail {
		t.Fatalf("me by token = %s", bot.raw)
	}
	// A token acts as its staff member: no more.
	bot.refused(403, "forbidden", "", "GET", api+"/audit", nil)
	bot.refused(403, "session-required", "", "POST", api+"/tokens", map[string]string{"name": "another"})
	bot.refused(403, "session-required", "", "POST", api+"/me/password", map[string]string{"current_password": staffPassword, "new_password": "Bot-Pass-2026!!"})
	list := bot.must(200, "GET", api+"/tokens", nil)
	if items := list["items"].([]any); len(items) != 1 || strings.Contains(bot.raw, tok) {
		t.Fatalf("token list = %s", bot.raw)
	}
	// A second token revokes the first without any CSRF token: bearer
	// requests carry no ambient credential.
	second := staff.must(201, "POST", api+"/tokens", map[string]string{"name": "second"})
	bot2 := f.client(hostA)
	bot2.bearer = second["token"].(string)
	bot2.must(204, "DELETE", api+"/tokens/"+fmt.Sprint(created["id"]), nil)
	bot.refused(401, "token-invalid", "", "GET", api+"/me", nil)
	bot2.refused(404, "not-found", "", "DELETE", api+"/tokens/"+fmt.Sprint(created["id"]), nil)
	// The token is nowhere but in its creating answer.
	var n int
	if err := f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT count(*) FROM staff_token WHERE token_hash::text LIKE '%' || $1 || '%'`, tok).Scan(&n); err != nil || n != 0 {
		t.Fatalf("token stored in the clear (%d, %v)", n, err)
	}
	if strings.Contains(f.logs.String(), tok) {
		t.Fatal("an API token reached the log")
	}
	// A deactivated staff member's tokens stop working.
	id := fmt.Sprint(me["staff"].(map[string]any)["id"])
	owner.must(200, "PATCH", api+"/staff/"+id, map[string]any{"active": false})
	bot2.refused(401, "token-invalid", "", "GET", api+"/me", nil)
	bot.bearer = "Basic"
	bot.header["Authorization"] = "Basic Zm9vOmJhcg=="
	bot.refused(401, "unauthenticated", "", "GET", api+"/me", nil)
	for _, want := range []string{"token.created", "token.revoked"} {
		if !slices.Contains(f.auditActions(f.a), want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
}

// TestIdentitiesAreSeparate: a member's session opens nothing in the back
// office, a staff session nothing in the member API, and one tenant's staff
// nothing on another tenant (both tenants have staff id 1).
func TestIdentitiesAreSeparate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})

	member := f.client(hostA)
	member.do("GET", "/user/token", nil)
	member.header["X-CSRFToken"] = member.cookies["csrftoken"]
	status, _ := member.form("/user/create-account", "firstname", "Mia", "lastname", "Member", "username", pgtest.RandomName("mia"),
		"email_address", f.owner[f.a.ID], "password", ownerPassword, "confirm_password", ownerPassword, "newsletter", "false", "remember_me", "true")
	if status != 200 || member.cookies["sessionid"] == "" || !strings.Contains(member.raw, `"create_account":"true"`) {
		t.Fatalf("member sign-up = %d %s", status, member.raw)
	}
	// Same address and password as the owner, but a member session.
	member.refused(401, "unauthenticated", "", "GET", api+"/me", nil)
	member.refused(401, "unauthenticated", "", "GET", api+"/staff", nil)

	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	staffCookie := owner.cookies[admin.CookieName]
	if owner.last.Header.Get("Set-Cookie") == "" {
		t.Fatal("no cookie")
	}
	ck := owner.last.Cookies()[0]
	if ck.Name != admin.CookieName || ck.Path != "/admin" || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("staff cookie = %+v", ck)
	}
	// The staff cookie (even sent where the browser would not) is nobody
	// on the member API, under either cookie name.
	visitor := f.client(hostA)
	visitor.cookies[admin.CookieName] = staffCookie
	visitor.cookies["sessionid"] = staffCookie
	visitor.do("GET", "/user/logged-in", nil)
	if !strings.Contains(visitor.raw, `"logged_in":false`) {
		t.Fatalf("staff session on /user: %s", visitor.raw)
	}

	// Tenant A's session and token on tenant B: nothing.
	tok := owner.must(201, "POST", api+"/tokens", map[string]string{"name": "a"})["token"].(string)
	onB := f.client(hostB)
	onB.cookies[admin.CookieName] = staffCookie
	onB.csrf = owner.csrf
	onB.refused(401, "unauthenticated", "", "GET", api+"/me", nil)
	onB.refused(401, "unauthenticated", "", "GET", api+"/staff", nil)
	onB.cookies = map[string]string{}
	onB.bearer = tok
	onB.refused(401, "token-invalid", "", "GET", api+"/me", nil)
	// A's owner's password does not open B's owner, though both are id 1.
	f.client(hostB).refused(401, "sign-in-failed", "", "POST", api+"/session", map[string]string{"email": f.owner[f.a.ID], "password": ownerPassword})
	bOwner := f.signIn(hostB, f.owner[f.b.ID], ownerPassword)
	a := owner.must(200, "GET", api+"/me", nil)["staff"].(map[string]any)
	b := bOwner.must(200, "GET", api+"/me", nil)["staff"].(map[string]any)
	if a["id"] != b["id"] || a["email"] == b["email"] {
		t.Fatalf("want the same id with different people: %v %v", a, b)
	}
}

func TestBadInputIsAClearClientError(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	anon := f.client(hostA)
	anon.refused(400, "required", "email", "POST", api+"/session", map[string]string{"password": "x"})
	anon.refused(400, "required", "password", "POST", api+"/session", map[string]string{"email": "x@example.com"})
	anon.refused(400, "invalid", "email", "POST", api+"/session", map[string]any{"email": 5, "password": "x"})
	anon.refused(401, "unauthenticated", "", "GET", api+"/me", nil)
	anon.refused(401, "unauthenticated", "", "DELETE", api+"/session", nil)
	anon.refused(404, "not-found", "", "GET", api+"/nothing-here", nil)

	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	owner.refused(404, "not-found", "", "PATCH", api+"/staff/abc", map[string]any{"role": "staff"})
	owner.refused(400, "required", "name", "POST", api+"/tokens", map[string]string{"name": "  "})
	owner.refused(400, "invalid", "name", "POST", api+"/tokens", map[string]string{"name": strings.Repeat("n", 101)})
	owner.refused(409, "totp-not-enrolled", "", "POST", api+"/me/totp/confirm", map[string]string{"code": "123456"})

	req := func(ct, body string) (int, string) {
		status, _ := owner.doRaw("POST", api+"/tokens", ct, body)
		return status, owner.raw
	}
	if s, raw := req("application/json", "{not json"); s != 400 || !strings.Contains(raw, `"invalid-json"`) {
		t.Fatalf("bad JSON = %d %s", s, raw)
	}
	if s, raw := req("text/plain", `{"name":"x"}`); s != 415 || !strings.Contains(raw, `"unsupported-media-type"`) {
		t.Fatalf("text body = %d %s", s, raw)
	}
}

func (c *client) doRaw(method, path, contentType, body string) (int, map[string]any) {
	c.t.Helper()
	req := httptest.NewRequest(method, "http://"+c.host+path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	c.prepare(req, method)
	return c.send(req)
}

// TestSingleUseUnderRace: many requests spending one invitation, one reset
// link or one recovery code at the same moment; exactly one succeeds.
func TestSingleUseUnderRace(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	const n = 6
	race := func(what string, call func(c *client) int) {
		t.Helper()
		var ready, start sync.WaitGroup
		ready.Add(n)
		start.Add(1)
		statuses := make([]int, n)
		var done sync.WaitGroup
		for i := range n {
			c := f.client(hostA)
			c.t = nopTB{t}
			done.Go(func() {
				ready.Done()
				start.Wait()
				statuses[i] = call(c)
			})
		}
		ready.Wait()
		start.Done()
		done.Wait()
		ok := 0
		for _, s := range statuses {
			if s < 300 {
				ok++
			} else if s >= 500 || s == 0 {
				t.Fatalf("%s: a racer got %d: %v", what, s, statuses)
			}
		}
		if ok != 1 {
			t.Fatalf("%s: %d racers succeeded, want 1: %v", what, ok, statuses)
		}
	}

	email := pgtest.RandomName("race") + "@example.com"
	tok := f.invite(owner, email, "staff")
	race("invitation", func(c *client) int {
		s, _ := c.do("POST", api+"/invitations/accept", map[string]string{"token": tok, "name": "Rae", "password": staffPassword})
		return s
	})
	f.client(hostA).must(202, "POST", api+"/password/forgot", map[string]string{"email": email})
	reset := linkToken(t, f.deliver(email, 2)[0])
	race("reset link", func(c *client) int {
		s, _ := c.do("POST", api+"/password/reset", map[string]string{"token": reset, "password": "Raced-Pass-2026!"})
		return s
	})
}

// nopTB lets racing goroutines use a client: a failure there is reported
// through the status the test goroutine checks, never t.Fatal.
type nopTB struct{ testing.TB }

func (nopTB) Helper()               {}
func (nopTB) Fatal(...any)          {}
func (nopTB) Fatalf(string, ...any) {}

// TestTOTPGuessesLock: wrong codes count towards the lockout, and signing
// in again with the password does not forgive them.
func TestTOTPGuessesLock(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	email := f.owner[f.a.ID]
	_, secret := f.enrolTOTP(t, email)

	wrong := func(c *client) string {
		for _, code := range []string{"000000", "111111", "222222"} {
			if code != f.code(t, secret, -1) && code != f.code(t, secret, 0) && code != f.code(t, secret, 1) {
				return code
			}
		}
		t.Fatal("no wrong code")
		return ""
	}
	for i := range admin.DefaultMaxFailures {
		c := f.client(hostA)
		c.csrf = c.must(200, "POST", api+"/session", map[string]string{"email": email, "password": ownerPassword})["csrf_token"].(string)
		if i == admin.DefaultMaxFailures-1 {
			c.refused(401, "code-invalid", "code", "POST", api+"/session/totp", map[string]string{"code": wrong(c)})
			// Locked now: even the right code is refused, with the sign-in answer.
			c.refused(401, "sign-in-failed", "", "POST", api+"/session/totp", map[string]string{"code": f.code(t, secret, 1)})
			break
		}
		c.refused(401, "code-invalid", "code", "POST", api+"/session/totp", map[string]string{"code": wrong(c)})
	}
	f.client(hostA).refused(401, "sign-in-failed", "", "POST", api+"/session", map[string]string{"email": email, "password": ownerPassword})
}

// TestSessionAbsoluteExpiry: a session ends AbsoluteTimeout after sign-in
// however much it is used.
func TestSessionAbsoluteExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	f.skewBy(admin.DefaultAbsoluteTimeout - time.Minute)
	owner.must(200, "GET", api+"/me", nil)
	f.skewBy(2 * time.Minute)
	owner.refused(401, "unauthenticated", "", "GET", api+"/me", nil)
}

// TestSessionIdleExpiry: a session unused for IdleTimeout is gone (Redis
// expires it; the wait is well past the timeout).
func TestSessionIdleExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{idle: time.Second})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	owner.must(200, "GET", api+"/me", nil)
	time.Sleep(2500 * time.Millisecond)
	owner.refused(401, "unauthenticated", "", "GET", api+"/me", nil)
}

// TestCookieOverHTTPS: behind a TLS-terminating proxy the staff cookie is
// Secure, and the origin check expects https.
func TestCookieOverHTTPS(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{trustProxy: true})
	c := f.client(hostA)
	c.header["X-Forwarded-Proto"] = "https"
	c.header["Origin"] = "https://" + hostA
	out := c.must(200, "POST", api+"/session", map[string]string{"email": f.owner[f.a.ID], "password": ownerPassword})
	ck := c.last.Cookies()[0]
	if ck.Name != admin.CookieName || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/admin" {
		t.Fatalf("cookie over HTTPS = %+v", ck)
	}
	c.csrf = out["csrf_token"].(string)
	c.header["Origin"] = "http://" + hostA
	c.refused(403, "csrf-failed", "", "POST", api+"/tokens", map[string]string{"name": "x"})
	c.header["Origin"] = "https://" + hostA
	c.must(201, "POST", api+"/tokens", map[string]string{"name": "x"})
}

// TestOwnersDemotingEachOther: two owners demote each other at the same
// moment; one wins, the shop keeps exactly one owner.
func TestOwnersDemotingEachOther(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	first := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	secondEmail := f.addStaff(first, "owner")
	second := f.signIn(hostA, secondEmail, staffPassword)
	ids := map[*client]string{}
	for _, c := range []*client{first, second} {
		ids[c] = fmt.Sprint(c.must(200, "GET", api+"/me", nil)["staff"].(map[string]any)["id"])
	}
	for round := range 3 {
		var ready, start, done sync.WaitGroup
		ready.Add(2)
		start.Add(1)
		statuses := map[*client]int{}
		var mu sync.Mutex
		pairs := [][2]*client{{first, second}, {second, first}}
		for _, p := range pairs {
			actor, target := p[0], p[1]
			actor.t = nopTB{t}
			done.Go(func() {
				ready.Done()
				start.Wait()
				s, _ := actor.do("PATCH", api+"/staff/"+ids[target], map[string]any{"role": "staff"})
				mu.Lock()
				statuses[actor] = s
				mu.Unlock()
			})
		}
		ready.Wait()
		start.Done()
		done.Wait()
		first.t, second.t = t, t
		ok, refused := 0, 0
		for _, s := range statuses {
			switch s {
			case 200:
				ok++
			case 403, 409:
				refused++
			}
		}
		var owners int
		if err := f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT count(*) FROM staff WHERE role = 'owner' AND is_active`).Scan(&owners); err != nil {
			t.Fatal(err)
		}
		if ok != 1 || refused != 1 || owners != 1 {
			t.Fatalf("round %d: statuses %v, %d owners left; want one success, one refusal, one owner", round, statuses, owners)
		}
		// Restore the second owner for the next round, by whoever won.
		for c, s := range statuses {
			if s == 200 {
				target := first
				if c == first {
					target = second
				}
				c.must(200, "PATCH", api+"/staff/"+ids[target], map[string]any{"role": "owner"})
			}
		}
	}
}
