package account_test

import (
	"net/http"
	"testing"

	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/tenant/account"
)

// BenchmarkLogin is POST /user/login through the whole serve chain
// (tenant, session and CSRF middleware, handler, Postgres, Redis) with the
// production password hashing (DefaultArgon2): what a member waits for.
func BenchmarkLogin(b *testing.B) {
	f := newFixtureHasher(b, map[string]ratelimit.Rate{}, account.NewHasher(account.DefaultArgon2))
	f.signUpAs(b, hostA, "Bench", "User", "bench_login", "bench_login@example.com")
	for _, bc := range []struct{ name, username, password, outcome string }{
		{"success", "bench_login", "Secret-Pass-123!", `{"login":"true"}`},
		{"wrong password", "bench_login", "Wrong-Pass-123!", `{"login":"false"}`},
		{"unknown user", "nobody_at_all", "Secret-Pass-123!", `{"login":"false"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			br := f.browser(b, hostA)
			br.call("GET", "/user/token", nil)
			form := form("username", bc.username, "password", bc.password, "remember_me", "true")
			for b.Loop() {
				// Each success rotates the CSRF token; the browser keeps up.
				want(b, "login", br.call(http.MethodPost, "/user/login", form), bc.outcome)
			}
		})
	}
}
