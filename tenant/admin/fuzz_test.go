package admin_test

import (
	"testing"

	"github.com/startupwebapp/platform/platform/ratelimit"
)

// FuzzAPIBodies sends arbitrary bodies to the API's unsafe routes, as an
// owner's session (with its CSRF token) or anonymously: every answer is
// below 500, and every refusal has the error shape.
func FuzzAPIBodies(f *testing.F) {
	routes := []struct {
		method, path string
		signedIn     bool
	}{
		{"POST", "/session", false},
		{"POST", "/invitations/accept", false},
		{"POST", "/password/forgot", false},
		{"POST", "/password/reset", false},
		{"POST", "/session/totp", false},
		{"POST", "/me/totp/confirm", true},
		{"POST", "/me/recovery-codes", true},
		{"POST", "/staff/invitations", true},
		{"PATCH", "/staff/1", true},
		{"PATCH", "/staff/2", true},
		{"POST", "/tokens", true},
		{"DELETE", "/tokens/1", true},
		{"DELETE", "/staff/invitations/1", true},
	}
	for i := range routes {
		for _, body := range []string{"", "{}", "null", "[]", `{"email":5}`, "\x00\xff{",
			`{"email":"x@example.com","role":"staff","name":"Nan","code":"123456","recovery_code":"abcd-efgh","password":"Fuzz-Pass-2026!","token":"t","active":false}`,
			`{"role":"owner","active":true}`, `{"name":"` + string(make([]byte, 300)) + `"}`} {
			f.Add(uint8(i), body)
		}
	}
	off := map[string]ratelimit.Rate{"admin_login": {}, "admin_login_account": {}, "admin_reset": {}, "admin_link": {}}
	fx := newFixture(f, fixtureOptions{limits: off})
	owner := fx.signIn(hostA, fx.owner[fx.a.ID], ownerPassword)
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		rt := routes[int(which)%len(routes)]
		c := fx.client(hostA)
		c.t = t
		if rt.signedIn {
			c.cookies = map[string]string{}
			for k, v := range owner.cookies {
				c.cookies[k] = v
			}
			c.csrf = owner.csrf
		}
		status, out := c.doRaw(rt.method, api+rt.path, "application/json", body)
		if status >= 500 || status == 0 {
			t.Fatalf("%s %s %q = %d %s", rt.method, rt.path, body, status, c.raw)
		}
		if status >= 400 {
			if _, ok := out["error"].(string); !ok {
				t.Fatalf("%s %s %q = %d without the error shape: %s", rt.method, rt.path, body, status, c.raw)
			}
			if _, ok := out["detail"].(string); !ok {
				t.Fatalf("%s %s %q = %d without detail: %s", rt.method, rt.path, body, status, c.raw)
			}
		}
	})
}
