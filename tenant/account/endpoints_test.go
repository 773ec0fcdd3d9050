package account_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/cart"
)

// Whole-body checks, one table per endpoint, for the outcomes the flow
// tests in http_test.go leave out. Every answer is compared as a whole
// JSON document (times normalised to <time>); the API version is checked
// by call and removed.

var isoRE = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z"`)

// norm is the JSON of v with every contract datetime replaced by "<time>".
func norm(v any) string { return isoRE.ReplaceAllString(js(v), `"<time>"`) }

func wantNorm(t testing.TB, what string, got any, expected string) {
	t.Helper()
	if g := norm(got); g != expected {
		t.Fatalf("%s:\n got  %s\n want %s", what, g, expected)
	}
}

// setCookie is the response's Set-Cookie for name, nil when absent.
func setCookie(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// wantStatus posts a form and expects a bare status (no /user JSON).
func (b *browser) wantStatus(method, path string, form url.Values, status int) {
	b.t.Helper()
	if got, out := b.do(method, path, form); got != status {
		b.t.Fatalf("%s %s = %d %v, want %d", method, path, got, out, status)
	}
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// without is a form minus one field.
func without(v url.Values, name string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		if k != name {
			out[k] = vs
		}
	}
	return out
}

// signUpAs creates an account through the API (newsletter on, remembered,
// password Secret-Pass-123!) and returns its signed-in browser.
func (f *fixture) signUpAs(t testing.TB, host, first, last, username, email string) *browser {
	t.Helper()
	b := f.browser(t, host)
	b.call("GET", "/user/token", nil)
	want(t, "create-account", b.post("/user/create-account", "firstname", first, "lastname", last, "username", username,
		"email_address", email, "password", "Secret-Pass-123!", "confirm_password", "Secret-Pass-123!",
		"newsletter", "true", "remember_me", "true"), `{"create_account":"true"}`)
	return b
}

// tamper changes a code's last character.
func tamper(code string) string {
	last := code[len(code)-1]
	if last == 'A' {
		return code[:len(code)-1] + "B"
	}
	return code[:len(code)-1] + "A"
}

func mustRequest(t testing.TB, method, target string) *http.Request {
	t.Helper()
	return httptest.NewRequest(method, target, nil)
}

func readAll(t testing.TB, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRootTokenAndLoggedIn(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	b := f.browser(t, hostA)

	status, _ := b.do("GET", "/user/", nil)
	if status != http.StatusOK || b.last.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("U0 = %d %q", status, b.last.Header.Get("Content-Type"))
	}
	// U0's body is plain text; read it through a raw request.
	res, err := f.app.Test(mustRequest(t, "GET", "http://"+hostA+"/user/"), -1)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, res); body != "Hello, you're at the user API (version 0.0.1) root. Nothing to see here..." {
		t.Fatalf("U0 body %q", body)
	}

	out := b.call("GET", "/user/token", nil)
	tok := b.cookies["csrftoken"]
	want(t, "U1", out, js(map[string]string{"token": `<input type="hidden" name="csrfmiddlewaretoken" value="` + tok + `">`}))
	if c := setCookie(b.last, "csrftoken"); c == nil || c.HttpOnly || c.MaxAge != 31449600 || c.Path != "/" || c.SameSite != http.SameSiteLaxMode {
		t.Fatalf("U1 csrftoken cookie = %+v", c)
	}

	// U2 anonymous (sample 02) and signed in (sample 09).
	want(t, "U2 anonymous", b.call("GET", "/user/logged-in", nil),
		`{"cart_item_count":0,"client_event_id":"null","log_client_events":true,"logged_in":false}`)
	if c := setCookie(b.last, "anonymousclientevent"); c == nil || c.MaxAge != 31536000 || c.HttpOnly {
		t.Fatalf("U2 anonymousclientevent cookie = %+v", c)
	}
	if setCookie(b.last, "csrftoken") == nil {
		t.Fatal("U2 does not refresh the csrftoken cookie")
	}
	m := f.signUpAs(t, hostA, "Bench", "User", "bench_32594547", "bench_32594547@example.com")
	var id int64
	f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT id FROM account WHERE username = 'bench_32594547'`).Scan(&id)
	want(t, "U2 member", m.call("GET", "/user/logged-in", nil),
		`{"cart_item_count":0,"client_event_id":`+strconv.FormatInt(id, 10)+`,"email_address":"bench_32594547@example.com","first_name":"Bench","last_name":"User","log_client_events":true,"logged_in":true,"member_initials":"BU"}`)
	// The client-event switch comes from the tenant's configuration row.
	f.dbs[f.a.ID].Exec(context.Background(), `UPDATE clientevent_configuration SET log_client_events = false WHERE id = 1`)
	want(t, "U2 events off", b.call("GET", "/user/logged-in", nil),
		`{"cart_item_count":0,"client_event_id":"null","log_client_events":false,"logged_in":false}`)
}

func TestLoginTable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, map[string]ratelimit.Rate{"login": {N: 100, Window: time.Hour}, "create_account": {N: 10, Window: time.Hour}})
	f.signUpAs(t, hostA, "Bench", "User", "login_user", uniqueEmail("login"))
	f.dbs[f.a.ID].Exec(context.Background(), `INSERT INTO account (username, password_hash, is_active) SELECT 'inactive_user', password_hash, false FROM account WHERE username = 'login_user'`)
	f.dbs[f.a.ID].Exec(context.Background(), `INSERT INTO member (account_id) SELECT id FROM account WHERE username = 'inactive_user'`)
	// Q17: an account without a member row (an imported superuser) is no member.
	f.dbs[f.a.ID].Exec(context.Background(), `INSERT INTO account (username, password_hash, is_staff) SELECT 'staff_only', password_hash, true FROM account WHERE username = 'login_user'`)
	good := form("username", "login_user", "password", "Secret-Pass-123!", "remember_me", "true")
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		body   string
		maxAge int // of sessionid when set; -1: not set
	}{
		{"remember", good, 200, `{"login":"true"}`, 1209600},
		{"browser session", form("username", "login_user", "password", "Secret-Pass-123!", "remember_me", "false"), 200, `{"login":"true"}`, 0},
		{"flag not literally true", form("username", "login_user", "password", "Secret-Pass-123!", "remember_me", "True"), 200, `{"login":"true"}`, 0},
		{"bad password", form("username", "login_user", "password", "wrong", "remember_me", "true"), 200, `{"login":"false"}`, -1},
		{"unknown user", form("username", "nobody_here", "password", "Secret-Pass-123!", "remember_me", "true"), 200, `{"login":"false"}`, -1},
		{"inactive", form("username", "inactive_user", "password", "Secret-Pass-123!", "remember_me", "true"), 200, `{"login":"false"}`, -1},
		{"account without member (Q17)", form("username", "staff_only", "password", "Secret-Pass-123!", "remember_me", "true"), 200, `{"login":"false"}`, -1},
		{"empty", form("username", "", "password", "", "remember_me", ""), 200, `{"login":"false"}`, -1},
		{"no username", without(good, "username"), 400, "", -1},
		{"no password", without(good, "password"), 400, "", -1},
		{"no remember_me", without(good, "remember_me"), 400, "", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := f.browser(t, hostA)
			b.call("GET", "/user/token", nil)
			csrfBefore := b.cookies["csrftoken"]
			if tc.status != 200 {
				b.wantStatus("POST", "/user/login", tc.form, tc.status)
				return
			}
			want(t, "answer", b.call("POST", "/user/login", tc.form), tc.body)
			sid := setCookie(b.last, "sessionid")
			if tc.maxAge < 0 {
				if b.cookies["csrftoken"] != csrfBefore {
					t.Fatal("a failed login rotated the CSRF token")
				}
				return
			}
			if sid == nil || !sid.HttpOnly || sid.MaxAge != tc.maxAge || b.cookies["csrftoken"] == csrfBefore {
				t.Fatalf("sessionid %+v, csrftoken rotated %v", sid, b.cookies["csrftoken"] != csrfBefore)
			}
			if c := setCookie(b.last, "an_ct"); c == nil || c.MaxAge >= 0 && c.Expires.After(time.Now()) {
				t.Fatalf("an_ct not expired: %+v", c)
			}
		})
	}
}

func TestLogoutTable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	m := f.signUpAs(t, hostA, "Log", "Out", "logout_user", uniqueEmail("logout"))
	anon := f.browser(t, hostA)
	want(t, "anonymous", anon.call("GET", "/user/logout", nil), `{"logout":"user_not_authenticated"}`)
	if len(anon.last.Cookies()) != 0 {
		t.Fatalf("anonymous logout set cookies: %v", anon.last.Cookies())
	}
	ace := m.cookies["anonymousclientevent"]
	want(t, "member", m.call("GET", "/user/logout", nil), `{"logout":"true"}`)
	for _, name := range []string{"sessionid", "an_ct"} {
		if c := setCookie(m.last, name); c == nil || c.Value != "" && c.MaxAge >= 0 {
			t.Fatalf("%s not expired by logout: %+v", name, c)
		}
	}
	if c := setCookie(m.last, "anonymousclientevent"); c == nil || c.Value == ace || c.MaxAge != 31536000 {
		t.Fatalf("logout anonymousclientevent = %+v", c)
	}
	want(t, "after", m.call("GET", "/user/account-content", nil), `{"account_content":{"authenticated":"false"}}`)
}

func TestAccountContentWhole(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	db := f.dbs[f.a.ID]
	email := uniqueEmail("content")
	b := f.signUpAs(t, hostA, "John", "Doe", "jdoe12", email)
	var memberID int64
	db.QueryRow(ctx, `SELECT m.id FROM member m JOIN account a ON a.id = m.account_id WHERE a.username = 'jdoe12'`).Scan(&memberID)
	var o1, o2 int64
	db.QueryRow(ctx, `INSERT INTO customer_order (identifier, member_id, sales_tax_amt, order_total, order_date_time)
VALUES ('aB3dE5gH7j', $1, 0, 23.06, '2026-01-02T08:05:00.001Z') RETURNING id`, memberID).Scan(&o1)
	db.QueryRow(ctx, `INSERT INTO customer_order (identifier, member_id, sales_tax_amt, order_total, order_date_time)
VALUES ('zZ9yY8xX7w', $1, 1.5, 7, '2026-02-01T00:00:00Z') RETURNING id`, memberID).Scan(&o2)

	content := b.call("GET", "/user/account-content", nil)
	wantNorm(t, "U5", content, `{"account_content":{"authenticated":"true",`+
		`"email_data":{"email_address":"`+email+`","email_verified":false,"verification_request_sent_within_24_hours":true},`+
		`"orders_data":{"1":{"identifier":"zZ9yY8xX7w","order_date_time":"<time>","order_id":`+strconv.FormatInt(o2, 10)+`,"order_total":"7.00","sales_tax_amt":"1.50"},`+
		`"2":{"identifier":"aB3dE5gH7j","order_date_time":"<time>","order_id":`+strconv.FormatInt(o1, 10)+`,"order_total":"23.06","sales_tax_amt":"0.00"}},`+
		`"personal_data":{"email_unsubscribed":false,"first_name":"John","joined_date_time":"<time>","last_login_date_time":"<time>","last_name":"Doe",`+
		`"newsletter_subscriber":true,"terms_of_use_agreed_date_time":"<time>","username":"jdoe12"}}}`)
	orders := content["account_content"].(map[string]any)["orders_data"].(map[string]any)
	if orders["1"].(map[string]any)["order_date_time"] != "2026-02-01T00:00:00Z" || orders["2"].(map[string]any)["order_date_time"] != "2026-01-02T08:05:00.001Z" {
		t.Fatalf("order times %v", orders)
	}
	// A verification code older than 24 hours no longer counts as sent.
	f.skew.Store(int64(25 * time.Hour))
	defer f.skew.Store(0)
	ed := b.call("GET", "/user/account-content", nil)["account_content"].(map[string]any)["email_data"]
	want(t, "stale code", ed, `{"email_address":"`+email+`","email_verified":false,"verification_request_sent_within_24_hours":false}`)
}

func TestCreateAccountTable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, map[string]ratelimit.Rate{"create_account": {N: 100, Window: time.Hour}})
	f.signUpAs(t, hostA, "Taken", "User", "taken_user", uniqueEmail("taken"))
	const (
		req      = `[{"description":"This is a required field.","type":"required"}]`
		long     = `{"description":"The value you entered is too long for this field.","type":"too_many_chars"}`
		badName  = `{"description":"Please enter a valid name. Characters, numbers, and spaces are allowed.","type":"not_valid"}`
		badEmail = `{"description":"Please enter a valid email address. For example johndoe@domain.com.","type":"not_valid"}`
	)
	base := func(kv ...string) url.Values {
		v := form("firstname", "Jane", "lastname", "Doe", "username", "new_user_1", "email_address", "jane@example.com",
			"password", "Secret-Pass-123!", "confirm_password", "Secret-Pass-123!", "newsletter", "false", "remember_me", "false")
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	ok := `{"email-address":true,"firstname":true,"lastname":true,"password":true,"username":true}`
	errs := func(field, value string) string {
		return strings.Replace(ok, `"`+field+`":true`, `"`+field+`":`+value, 1)
	}
	for _, tc := range []struct {
		name string
		form url.Values
		errs string
	}{
		{"all empty", base("firstname", "", "lastname", "", "username", "", "email_address", "", "password", "", "confirm_password", ""),
			`{"email-address":` + req + `,"firstname":` + req + `,"lastname":` + req + `,"password":` + req + `,"username":` + req + `}`},
		{"first name too long and invalid", base("firstname", strings.Repeat("é", 31)), errs("firstname", `[`+badName+`,`+long+`]`)},
		{"last name 151", base("lastname", strings.Repeat("d", 151)), errs("lastname", `[`+long+`]`)},
		{"last name 150", base("lastname", strings.Repeat("d", 150), "username", "new_user_150"), ""},
		{"username short", base("username", "abc"), errs("username", `[{"description":"The username you entered is too short. Usernames must be between 6 and 150 characters in length.","type":"too_short"}]`)},
		{"username chars", base("username", "bad user!"), errs("username", `[{"description":"Please enter a valid username. Characters, numbers, underscore (\"_\"), and hyphens (\"-\") are allowed.","type":"not_valid"}]`)},
		{"username taken", base("username", "taken_user"), errs("username", `[{"description":"The username you entered is unavailable. Please enter a different username and try again.","type":"unavailable"}]`)},
		{"email", base("email_address", "_jane@example.com"), errs("email-address", `[`+badEmail+`]`)},
		{"password rules", base("password", "short", "confirm_password", "short"), errs("password",
			`[{"description":"The password you entered is too short. Passwords must be between 8 and 150 characters in length.","type":"too_short"},{"description":"Passwords must contain at least one capital letter.","type":"no_capital_letter"},{"description":"Passwords must contain at least one special character.","type":"no_special_character"}]`)},
		{"similar to email", base("email_address", "Qwertyuiop@example.com", "password", "Qwertyuiop!", "confirm_password", "Qwertyuiop!"),
			errs("password", `[{"description":"The password is too similar to the email address.","type":"django_validation"}]`)},
		{"django rules wait for the rest", base("firstname", "", "password", "Password1!", "confirm_password", "Password1!"), errs("firstname", req)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := f.browser(t, hostA)
			b.call("GET", "/user/token", nil)
			out := b.call("POST", "/user/create-account", tc.form)
			if tc.errs == "" {
				want(t, "answer", out, `{"create_account":"true"}`)
				return
			}
			want(t, "answer", out, `{"create_account":"false","errors":`+tc.errs+`}`)
			if b.cookies["sessionid"] != "" {
				t.Fatal("a refused sign-up started a session")
			}
		})
	}
	for _, field := range []string{"firstname", "lastname", "username", "email_address", "password", "confirm_password", "newsletter", "remember_me"} {
		t.Run("missing "+field, func(t *testing.T) {
			b := f.browser(t, hostA)
			b.call("GET", "/user/token", nil)
			b.wantStatus("POST", "/user/create-account", without(base("username", "missing_"+field[:4]), field), http.StatusBadRequest)
		})
	}
	var n int
	f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT count(*) FROM account`).Scan(&n)
	if n != 2 {
		t.Fatalf("%d accounts, want the taken one and the 150-character last name", n)
	}
}

func TestCreateAccountAdoptsCartAndIsRateLimited(t *testing.T) {
	t.Parallel()
	f := newFixture(t, map[string]ratelimit.Rate{"create_account": {N: 2, Window: time.Hour}})
	ctx := context.Background()
	db := f.dbs[f.a.ID]
	var cartID int64
	db.QueryRow(ctx, `INSERT INTO cart (anonymous_cart_id) VALUES ('AdoptMeAdoptMeAdopt1') RETURNING id`).Scan(&cartID)
	db.Exec(ctx, `INSERT INTO cart_sku (cart_id, sku_id, quantity) VALUES ($1, 1, 3)`, cartID)
	b := f.browser(t, hostA)
	b.call("GET", "/user/token", nil)
	b.cookies["an_ct"] = cart.SignAnonymousID(f.keys[f.a.ID], "AdoptMeAdoptMeAdopt1", time.Now())
	want(t, "bad", b.post("/user/create-account", "firstname", "", "lastname", "A", "username", "adopter_1", "email_address", "a@example.com",
		"password", "Secret-Pass-123!", "confirm_password", "Secret-Pass-123!", "newsletter", "true", "remember_me", "true"),
		`{"create_account":"false","errors":{"email-address":true,"firstname":[{"description":"This is a required field.","type":"required"}],"lastname":true,"password":true,"username":true}}`)
	want(t, "good", b.post("/user/create-account", "firstname", "Ada", "lastname", "A", "username", "adopter_1", "email_address", "a@example.com",
		"password", "Secret-Pass-123!", "confirm_password", "Secret-Pass-123!", "newsletter", "true", "remember_me", "true"), `{"create_account":"true"}`)
	if setCookie(b.last, "an_ct") != nil {
		t.Fatal("create-account must not touch an_ct")
	}
	var owner *int64
	db.QueryRow(ctx, `SELECT member_id FROM cart WHERE id = $1 AND anonymous_cart_id IS NULL`, cartID).Scan(&owner)
	if owner == nil {
		t.Fatal("the anonymous cart was not adopted")
	}
	if out := b.call("GET", "/user/logged-in", nil); out["cart_item_count"] != float64(1) {
		t.Fatalf("member cart count = %v", out)
	}
	b.wantStatus("POST", "/user/create-account", form("firstname", "X"), http.StatusForbidden)
}

// TestCartCookieOutlivesKeyRotation: an an_ct cookie signed under a key a
// rotation replaced still names its cart (so a rotation does not empty
// every visitor's cart), and the tenant's other keys or another tenant's
// do not stand in for it.
func TestCartCookieOutlivesKeyRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	db := f.dbs[f.a.ID]
	if _, err := db.Exec(t.Context(), `
WITH c AS (INSERT INTO cart (anonymous_cart_id) VALUES ('RotatedKeyCart000001') RETURNING id)
INSERT INTO cart_sku (cart_id, sku_id, quantity) SELECT c.id, s, 1 FROM c, unnest(ARRAY[1, 2]) s`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		key   string
		count float64
	}{{"current key", keyA, 2}, {"replaced key", replacedKeyA, 2}, {"another tenant's key", keyB, 0}} {
		b := f.browser(t, hostA)
		b.cookies[cart.CookieName] = cart.SignAnonymousID([]byte(tc.key), "RotatedKeyCart000001", time.Now())
		if out := b.call("GET", "/user/logged-in", nil); out["cart_item_count"] != tc.count {
			t.Errorf("%s: cart count = %v, want %v", tc.name, out["cart_item_count"], tc.count)
		}
	}
}

func TestVerifyEmailAddressResponseTable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	email := uniqueEmail("verify")
	b := f.signUpAs(t, hostA, "Vera", "Fy", "verify_user", email)
	code := codeRE.FindStringSubmatch(f.deliver(t, email, 1)[0].Text)[1]
	other := account.NewSigner([]byte(keyA)).VerificationCode("not-the-stored-one00")
	const key = "verify_email_address_response"
	anon := f.browser(t, hostA)
	anon.call("GET", "/user/token", nil)
	want(t, "anonymous", anon.post("/user/verify-email-address-response", "email_verification_code", code), `{"`+key+`":"user_not_authenticated"}`)
	b.wantStatus("POST", "/user/verify-email-address-response", url.Values{}, http.StatusBadRequest)
	for _, tc := range []struct {
		name, code, outcome string
		skew                time.Duration
	}{
		{"empty", "", "signature-invalid", 0},
		{"garbage", "abc", "signature-invalid", 0},
		{"tampered", tamper(code), "signature-invalid", 0},
		{"expired (Q1: never signature-expired)", code, "signature-invalid", 24*time.Hour + time.Minute},
		{"another string", other, "code-doesnt-match", 0},
		{"just in time", code, "success", 23 * time.Hour},
		{"used", code, "code-doesnt-match", 0},
	} {
		f.skew.Store(int64(tc.skew))
		want(t, tc.name, b.post("/user/verify-email-address-response", "email_verification_code", tc.code), `{"`+key+`":"`+tc.outcome+`"}`)
		f.skew.Store(0)
	}
}

func TestSetNewPasswordTable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, map[string]ratelimit.Rate{"reset_password": {N: 5, Window: time.Hour}})
	email := uniqueEmail("setpw")
	f.signUpAs(t, hostA, "Set", "Pw", "setpw_user", email)
	b := f.browser(t, hostA)
	b.call("GET", "/user/token", nil)
	want(t, "reset", b.post("/user/reset-password", "username", "setpw_user", "email_address", email), `{"reset_password":"success"}`)
	code := resetRE.FindStringSubmatch(f.deliver(t, email, 2)[0].Text)[1]
	const key = "set_new_password"
	full := func(user, c string) url.Values {
		return form("username", user, "password_reset_code", c, "new_password", "Brand-New-789!", "confirm_new_password", "Brand-New-789!")
	}
	b.wantStatus("POST", "/user/set-new-password", url.Values{}, http.StatusBadRequest)
	b.wantStatus("POST", "/user/set-new-password", form("username", "setpw_user"), http.StatusBadRequest)
	// Fields are read one step at a time, so an unknown user needs nothing else.
	want(t, "unknown user alone", b.post("/user/set-new-password", "username", "nobody"),
		`{"error":"No account with that username could be found.","`+key+`":"username-not-found"}`)
	// Q2: this platform keeps the mail's one hour, not upstream's 24.
	f.skew.Store(int64(61 * time.Minute))
	want(t, "after an hour", b.call("POST", "/user/set-new-password", full("setpw_user", code)), `{"`+key+`":"signature-invalid"}`)
	f.skew.Store(int64(59 * time.Minute))
	want(t, "mismatch", b.call("POST", "/user/set-new-password", form("username", "setpw_user", "password_reset_code", code, "new_password", "Brand-New-789!", "confirm_new_password", "x")),
		`{"errors":{"new-password":[{"description":"Please make sure your passwords match.","type":"confirm_password_doesnt_match"}]},"`+key+`":"password-error"}`)
	want(t, "common", b.call("POST", "/user/set-new-password", form("username", "setpw_user", "password_reset_code", code, "new_password", "Password1!", "confirm_new_password", "Password1!")),
		`{"errors":{"new-password":[{"description":"This password is too common.","type":"django_validation"}]},"`+key+`":"password-error"}`)
	want(t, "within the hour", b.call("POST", "/user/set-new-password", full("setpw_user", code)), `{"`+key+`":"success"}`)
	f.skew.Store(0)

	// Rate limit: five reset requests an hour per posted username.
	for i := 0; i < 4; i++ {
		want(t, "reset", b.post("/user/reset-password", "username", "setpw_user", "email_address", "nobody@example.com"), `{"reset_password":"success"}`)
	}
	b.wantStatus("POST", "/user/reset-password", form("username", "setpw_user", "email_address", email), http.StatusForbidden)
	want(t, "other username", b.post("/user/reset-password", "username", "someone_else", "email_address", email), `{"reset_password":"success"}`)
	b.wantStatus("POST", "/user/reset-password", form("username", "someone_else"), http.StatusBadRequest)
}

func TestForgotUsernameMailsEveryAccountWithTheAddress(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	email := uniqueEmail("shared")
	f.signUpAs(t, hostA, "One", "User", "shared_one", email)
	f.signUpAs(t, hostA, "Two", "User", "shared_two", email)
	f.deliver(t, email, 2)
	b := f.browser(t, hostA)
	b.call("GET", "/user/token", nil)
	want(t, "other case", b.post("/user/forgot-username", "email_address", strings.ToUpper(email)), `{"forgot_username":"success"}`)
	want(t, "unknown", b.post("/user/forgot-username", "email_address", "nobody@example.com"), `{"forgot_username":"success"}`)
	want(t, "exact", b.post("/user/forgot-username", "email_address", email), `{"forgot_username":"success"}`)
	msgs := f.deliver(t, email, 4)
	names := map[string]bool{}
	for _, m := range msgs[:2] {
		if m.Subject != "Forgot Username Request for "+frontend {
			t.Fatalf("mail %q (the upper-case request must send nothing)", m.Subject)
		}
		for _, u := range []string{"shared_one", "shared_two"} {
			if strings.Contains(m.Text, u) {
				names[u] = true
			}
		}
	}
	if len(names) != 2 {
		t.Fatalf("usernames mailed: %v", names)
	}
	b.wantStatus("POST", "/user/forgot-username", url.Values{}, http.StatusBadRequest)
}

func TestJSONFlagEndpointsAnonymous(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	anon := f.browser(t, hostA)
	anon.call("GET", "/user/token", nil)
	for _, tc := range []struct{ method, path, key string }{
		{"GET", "/user/logout", "logout"},
		{"GET", "/user/verify-email-address", "verify_email_address"},
		{"POST", "/user/verify-email-address-response", "verify_email_address_response"},
		{"POST", "/user/update-my-information", "update_my_information"},
		{"POST", "/user/update-communication-preferences", "update_communication_preferences"},
		{"POST", "/user/change-my-password", "change_my_password"},
		{"POST", "/user/terms-of-use-agree", "terms_of_use_agree"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			var body url.Values
			if tc.method == "POST" {
				body = url.Values{} // nothing: the flag is checked first
			}
			anon.t = t
			want(t, tc.path, anon.call(tc.method, tc.path, body), `{"`+tc.key+`":"user_not_authenticated"}`)
		})
	}
	anon.t = t
	want(t, "account-content", anon.call("GET", "/user/account-content", nil), `{"account_content":{"authenticated":"false"}}`)
	status, _ := anon.do("GET", "/user/terms-of-use-agree-check", nil)
	if status != http.StatusFound || anon.last.Header.Get("Location") != "/login?next=/user/terms-of-use-agree-check" {
		t.Fatalf("U18 anonymous = %d %q (Q31)", status, anon.last.Header.Get("Location"))
	}
}

func TestUpdateMyInformationTable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	email := uniqueEmail("info")
	b := f.signUpAs(t, hostA, "Info", "User", "info_user", email)
	const key = "update_my_information"
	full := form("firstname", "Info", "lastname", "User", "email_address", email)
	for _, field := range []string{"firstname", "lastname", "email_address"} {
		b.wantStatus("POST", "/user/update-my-information", without(full, field), http.StatusBadRequest)
	}
	for _, tc := range []struct{ name, first, last, email, body string }{
		{"all empty", "", "", "", `{"errors":{"email-address":[{"description":"This is a required field.","type":"required"}],"firstname":[{"description":"This is a required field.","type":"required"}],"lastname":[{"description":"This is a required field.","type":"required"}]},"` + key + `":"errors"}`},
		{"too long", strings.Repeat("F", 31), strings.Repeat("L", 151), strings.Repeat("e", 250) + "@x.com", `{"errors":{"email-address":[{"description":"The value you entered is too long for this field.","type":"too_many_chars"}],"firstname":[{"description":"The value you entered is too long for this field.","type":"too_many_chars"}],"lastname":[{"description":"The value you entered is too long for this field.","type":"too_many_chars"}]},"` + key + `":"errors"}`},
		{"unchanged", "Info", "User", email, `{"` + key + `":"success"}`},
	} {
		want(t, tc.name, b.post("/user/update-my-information", "firstname", tc.first, "lastname", tc.last, "email_address", tc.email), tc.body)
	}
	if n := f.mp.Count(t, `to:"`+email+`" subject:"Email Address Changed"`); n != 0 {
		t.Fatalf("%d change notices for an unchanged address", n)
	}
}

func TestCommunicationPreferencesTable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	db := f.dbs[f.a.ID]
	b := f.signUpAs(t, hostA, "Pref", "User", "pref_user", uniqueEmail("pref"))
	const key = "update_communication_preferences"
	token := func() (tok string, news, unsub bool) {
		db.QueryRow(ctx, `SELECT email_unsubscribe_string_signed, newsletter_subscriber, email_unsubscribed FROM member`).Scan(&tok, &news, &unsub)
		return
	}
	reasons := func() (n int) {
		db.QueryRow(ctx, `SELECT count(*) FROM email_unsubscribe_reason`).Scan(&n)
		return
	}
	full := func(news, unsub, spam, other string) url.Values {
		return form("newsletter", news, "email_unsubscribe", unsub, "no_longer_want_to_receive", "false", "never_signed_up", "false",
			"inappropriate", "false", "spam", spam, "other", other)
	}
	status, out := b.do("GET", "/user/update-communication-preferences?newsletter=true&email_unsubscribe=false", nil)
	if status != 200 {
		t.Fatalf("GET = %d", status)
	}
	delete(out, "user-api-version")
	want(t, "GET", out, `{"errors":{"data_missing":"Required data was missing from the request."},"`+key+`":"errors"}`)
	want(t, "no newsletter", b.call("POST", "/user/update-communication-preferences", form("email_unsubscribe", "false")),
		`{"errors":{"data_missing":"Required data was missing from the request."},"`+key+`":"errors"}`)
	b.wantStatus("POST", "/user/update-communication-preferences", form("newsletter", "false", "email_unsubscribe", "false"), http.StatusBadRequest)

	tok0, _, _ := token()
	want(t, "same state", b.call("POST", "/user/update-communication-preferences", full("true", "false", "false", "")), `{"`+key+`":"success"}`)
	if tok, news, unsub := token(); tok != tok0 || !news || unsub || reasons() != 0 {
		t.Fatalf("unchanged preferences: token changed %v, newsletter %v, unsubscribed %v, %d reasons", tok != tok0, news, unsub, reasons())
	}
	want(t, "unsubscribe with a reason", b.call("POST", "/user/update-communication-preferences", full("false", "true", "true", "")), `{"`+key+`":"success"}`)
	tok1, news, unsub := token()
	if tok1 == tok0 || news || !unsub || reasons() != 1 {
		t.Fatalf("unsubscribe: token changed %v, newsletter %v, unsubscribed %v, %d reasons", tok1 != tok0, news, unsub, reasons())
	}
	want(t, "other text only", b.call("POST", "/user/update-communication-preferences", full("false", "true", "false", "moved")), `{"`+key+`":"success"}`)
	if tok, _, _ := token(); tok != tok1 || reasons() != 2 {
		t.Fatalf("same unsubscribe state: token changed %v, %d reasons", tok != tok1, reasons())
	}
	want(t, "flag must be literally true", b.call("POST", "/user/update-communication-preferences", full("TRUE", "false", "yes", "")), `{"`+key+`":"success"}`)
	if _, news, unsub := token(); news || unsub || reasons() != 2 {
		t.Fatalf("TRUE/yes read as true: newsletter %v, unsubscribed %v, %d reasons", news, unsub, reasons())
	}
}

func TestProspectUnsubscribeTable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	db := f.dbs[f.a.ID]
	b := f.browser(t, hostA)
	b.call("GET", "/user/token", nil)
	want(t, "notify", b.post("/user/pythonabot-notify-me", "email_address", "ab@example.com", "how_excited", "5"), `{"pythonabot_notify_me":"success"}`)
	var prTok string
	// Prospects start unsubscribed (§4 U21); a campaign list would
	// subscribe them, which the admin app does.
	db.QueryRow(ctx, `UPDATE prospect SET email_unsubscribed = false WHERE email = 'ab@example.com' RETURNING email_unsubscribe_string_signed`).Scan(&prTok)
	f.signUpAs(t, hostA, "Mem", "Ber", "member_tok", uniqueEmail("mtok"))
	var memTok, memEmail string
	db.QueryRow(ctx, `SELECT m.email_unsubscribe_string_signed, a.email FROM member m JOIN account a ON a.id = m.account_id WHERE a.username = 'member_tok'`).Scan(&memTok, &memEmail)
	masked := memEmail[:4] + strings.Repeat("*", len(strings.Split(memEmail, "@")[0])-4) + "@example.com"

	const l, c, w = "email_unsubscribe_lookup", "email_unsubscribe_confirm", "email_unsubscribe_why"
	errBody := func(key, code string) string { return `{"` + key + `":"error","errors":{"error":"` + code + `"}}` }
	for _, tc := range []struct{ name, query, body string }{
		{"prospect", "pr_token=" + prTok, `{"email_address":"ab@example.com","` + l + `":"success"}`},
		{"token wins", "token=" + memTok + "&pr_token=" + prTok, `{"email_address":"` + masked + `","` + l + `":"success"}`},
		{"empty token falls back", "token=&pr_token=" + prTok, `{"email_address":"ab@example.com","` + l + `":"success"}`},
		{"member token as pr_token", "pr_token=" + memTok, errBody(l, "member-not-found")},
		{"raw colon", "token=a:b:c", errBody(l, "member-not-found")},
		{"none", "", errBody(l, "token-required")},
	} {
		t.Run("lookup "+tc.name, func(t *testing.T) {
			b.t = t
			want(t, "answer", b.call("GET", "/user/email-unsubscribe-lookup?"+tc.query, nil), tc.body)
		})
	}
	b.t = t
	want(t, "lookup by POST", b.post("/user/email-unsubscribe-lookup", "token", memTok), errBody(l, "token-required"))

	want(t, "confirm none", b.post("/user/email-unsubscribe-confirm"), errBody(c, "token-required"))
	want(t, "confirm unknown", b.post("/user/email-unsubscribe-confirm", "pr_token", "nope"), errBody(c, "member-not-found"))
	out := b.post("/user/email-unsubscribe-confirm", "pr_token", prTok)
	newTok, _ := out["token"].(string)
	want(t, "confirm prospect", out, `{"email_address":"ab@example.com","`+c+`":"success","token":"`+newTok+`"}`)
	if len(newTok) != 43 || newTok == prTok {
		t.Fatalf("new prospect token %q", newTok)
	}
	want(t, "confirm again", b.post("/user/email-unsubscribe-confirm", "pr_token", newTok), errBody(c, "email-address-already-unsubscribed"))

	why := func(kv ...string) url.Values {
		return form(append([]string{"no_longer_want_to_receive", "false", "never_signed_up", "true", "inappropriate", "false", "spam", "false", "other", ""}, kv...)...)
	}
	want(t, "why none", b.call("POST", "/user/email-unsubscribe-why", why()), errBody(w, "token-required"))
	want(t, "why unknown", b.call("POST", "/user/email-unsubscribe-why", why("pr_token", prTok)), errBody(w, "member-not-found"))
	b.wantStatus("POST", "/user/email-unsubscribe-why", form("pr_token", newTok), http.StatusBadRequest)
	want(t, "why prospect", b.call("POST", "/user/email-unsubscribe-why", why("pr_token", newTok)), `{"`+w+`":"success"}`)
	// Not checked against the unsubscribed state, and nothing ticked still counts.
	want(t, "why member, nothing ticked", b.call("POST", "/user/email-unsubscribe-why",
		form("token", memTok, "no_longer_want_to_receive", "false", "never_signed_up", "false", "inappropriate", "false", "spam", "false", "other", "")), `{"`+w+`":"success"}`)
	var rows, prospectRows int
	db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE prospect_id IS NOT NULL AND never_signed_up) FROM email_unsubscribe_reason`).Scan(&rows, &prospectRows)
	if rows != 2 || prospectRows != 1 {
		t.Fatalf("%d reasons, %d from the prospect", rows, prospectRows)
	}
	db.Exec(ctx, `UPDATE prospect SET email_unsubscribe_string = 'alteredalteredaltere' WHERE email = 'ab@example.com'`)
	want(t, "why altered", b.call("POST", "/user/email-unsubscribe-why", why("pr_token", newTok)), errBody(w, "token-altered"))
	want(t, "confirm altered", b.post("/user/email-unsubscribe-confirm", "pr_token", newTok), errBody(c, "token-altered"))
}

func TestChatLinksAndMissingFields(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	db := f.dbs[f.a.ID]
	memberEmail := uniqueEmail("chatm")
	m := f.signUpAs(t, hostA, "Chat", "Member", "chat_member", memberEmail)
	anon := f.browser(t, hostA)
	anon.call("GET", "/user/token", nil)
	want(t, "notify", anon.post("/user/pythonabot-notify-me", "email_address", "known@example.com", "how_excited", "1"), `{"pythonabot_notify_me":"success"}`)

	const key = "put_chat_message"
	for _, tc := range []struct {
		name, email, link string
		b                 *browser
	}{
		{"signed in, any address", "elsewhere@example.com", "member", m},
		{"anonymous, a member's address", memberEmail, "member", anon},
		{"anonymous, a prospect's address", "known@example.com", "prospect", anon},
		{"anonymous, new address", "fresh@example.com", "new prospect", anon},
	} {
		want(t, tc.name, tc.b.post("/user/put-chat-message", "name", "Chatty", "email_address", tc.email, "message", tc.name), `{"`+key+`":"true"}`)
		var memberID, prospectID *int64
		db.QueryRow(ctx, `SELECT member_id, prospect_id FROM chat_message WHERE message = $1`, tc.name).Scan(&memberID, &prospectID)
		if (tc.link == "member") != (memberID != nil) || (tc.link != "member") != (prospectID != nil) {
			t.Fatalf("%s: member %v, prospect %v", tc.name, memberID, prospectID)
		}
	}
	var prospects int
	db.QueryRow(ctx, `SELECT count(*) FROM prospect`).Scan(&prospects)
	if prospects != 2 {
		t.Fatalf("%d prospects, want the notify-me one and the new chat one", prospects)
	}
	want(t, "too long", anon.post("/user/put-chat-message", "name", strings.Repeat("n", 31), "email_address", "x@example.com", "message", strings.Repeat("m", 5001)),
		`{"errors":{"email_address":true,"message":[{"description":"The value you entered is too long for this field.","type":"too_many_chars"}],"name":[{"description":"The value you entered is too long for this field.","type":"too_many_chars"}]},"`+key+`":"validation_error"}`)
	for _, field := range []string{"name", "email_address", "message"} {
		anon.wantStatus("POST", "/user/put-chat-message", without(form("name", "A", "email_address", "a@example.com", "message", "m"), field), http.StatusBadRequest)
	}
	const nk = "pythonabot_notify_me"
	want(t, "notify empty", anon.post("/user/pythonabot-notify-me", "email_address", "", "how_excited", ""),
		`{"errors":{"email_address":[{"description":"This is a required field.","type":"required"}],"how_excited":[{"description":"This is a required field.","type":"required"}]},"`+nk+`":"validation_error"}`)
	want(t, "notify not a number", anon.post("/user/pythonabot-notify-me", "email_address", "n@example.com", "how_excited", "x"),
		`{"errors":{"email_address":true,"how_excited":[{"description":"The value provided is out of range.","type":"out_of_range"}]},"`+nk+`":"validation_error"}`)
	want(t, "notify member address (not checked)", anon.post("/user/pythonabot-notify-me", "email_address", memberEmail, "how_excited", "2"), `{"`+nk+`":"success"}`)
	anon.wantStatus("POST", "/user/pythonabot-notify-me", form("email_address", "n@example.com"), http.StatusBadRequest)
	anon.wantStatus("POST", "/user/pythonabot-notify-me", form("how_excited", "3"), http.StatusBadRequest)
}

// TestFlowsOnTwoTenantsAtOnce runs the member journey on both tenants in
// parallel, then offers each tenant the other's codes, tokens and cookies.
func TestFlowsOnTwoTenantsAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	results := map[string]*journeyResult{}
	var mu sync.Mutex
	t.Run("journeys", func(t *testing.T) {
		for _, host := range []string{hostA, hostB} {
			t.Run(host, func(t *testing.T) {
				t.Parallel()
				r := journey(t, f, host)
				mu.Lock()
				results[host] = r
				mu.Unlock()
			})
		}
	})
	a, b := results[hostA], results[hostB]
	if a == nil || b == nil {
		t.Fatal("a journey failed")
	}
	onB := f.browser(t, hostB)
	onB.call("GET", "/user/token", nil)
	// B's own member, signed in on B, offered A's codes.
	memberB := f.browser(t, hostB)
	memberB.call("GET", "/user/token", nil)
	want(t, "B login", memberB.post("/user/login", "username", b.username, "password", "Bright-Final-3!", "remember_me", "true"), `{"login":"true"}`)
	want(t, "A's verification code on B", memberB.post("/user/verify-email-address-response", "email_verification_code", a.verify), `{"verify_email_address_response":"signature-invalid"}`)
	want(t, "A's reset code on B", onB.post("/user/set-new-password", "username", b.username, "password_reset_code", a.reset,
		"new_password", "Other-Pass-999!", "confirm_new_password", "Other-Pass-999!"), `{"set_new_password":"signature-invalid"}`)
	want(t, "A's unsubscribe token on B", onB.call("GET", "/user/email-unsubscribe-lookup?token="+a.unsubscribe, nil), `{"email_unsubscribe_lookup":"error","errors":{"error":"member-not-found"}}`)
	want(t, "A's unsubscribe token on B (confirm)", onB.post("/user/email-unsubscribe-confirm", "token", a.unsubscribe), `{"email_unsubscribe_confirm":"error","errors":{"error":"member-not-found"}}`)
	stolen := f.browser(t, hostB)
	for k, v := range a.session {
		stolen.cookies[k] = v
	}
	want(t, "A's session on B", stolen.call("GET", "/user/account-content", nil), `{"account_content":{"authenticated":"false"}}`)
	stolen.wantStatus("POST", "/user/change-my-password", form("current_password", "Bright-Final-3!", "new_password", "X-Pass-12345!", "confirm_new_password", "X-Pass-12345!"), http.StatusForbidden)
	// The member's own session still works on its own tenant.
	own := f.browser(t, hostA)
	for k, v := range a.session {
		own.cookies[k] = v
	}
	if out := own.call("GET", "/user/account-content", nil)["account_content"].(map[string]any); out["authenticated"] != "true" {
		t.Fatalf("A's session on A: %v", out)
	}
}

// journeyResult is what a journey leaves that another tenant must refuse.
type journeyResult struct {
	session                              map[string]string
	verify, reset, unsubscribe, username string
}

// journey is the member's life on one tenant: sign-up, verification by
// mail, forgotten username and reset by mail, a password change that ends
// another session, unsubscribe from the mailed token, terms, and an
// anonymous cart merged at login. It returns what another tenant must
// refuse.
func journey(t *testing.T, f *fixture, host string) *journeyResult {
	ctx := context.Background()
	tn := f.a
	if host == hostB {
		tn = f.b
	}
	db := f.dbs[tn.ID]
	email := uniqueEmail("journey")
	username := "journey_user" // the same on both tenants
	b := f.signUpAs(t, host, "Jo", "Urney", username, email)
	verify := codeRE.FindStringSubmatch(f.deliver(t, email, 1)[0].Text)[1]
	want(t, "verify", b.post("/user/verify-email-address-response", "email_verification_code", verify), `{"verify_email_address_response":"success"}`)
	ed := b.call("GET", "/user/account-content", nil)["account_content"].(map[string]any)["email_data"]
	want(t, "verified", ed, `{"email_address":"`+email+`","email_verified":true,"verification_request_sent_within_24_hours":false}`)

	anon := f.browser(t, host)
	anon.call("GET", "/user/token", nil)
	want(t, "forgot", anon.post("/user/forgot-username", "email_address", email), `{"forgot_username":"success"}`)
	if m := f.deliver(t, email, 2)[0]; !strings.Contains(m.Text, username) || !strings.HasPrefix(m.Subject, "Forgot Username") {
		t.Fatalf("forgot-username mail %q", m.Subject)
	}
	want(t, "reset", anon.post("/user/reset-password", "username", username, "email_address", email), `{"reset_password":"success"}`)
	reset := resetRE.FindStringSubmatch(f.deliver(t, email, 3)[0].Text)[1]
	want(t, "set", anon.post("/user/set-new-password", "username", username, "password_reset_code", reset,
		"new_password", "Bright-Reset-2!", "confirm_new_password", "Bright-Reset-2!"), `{"set_new_password":"success"}`)
	want(t, "signed out by reset", b.call("GET", "/user/account-content", nil), `{"account_content":{"authenticated":"false"}}`)

	// An anonymous cart, merged when this browser signs in.
	cartID := "JourneyCartOfTenantA"
	if host == hostB {
		cartID = "JourneyCartOfTenantB"
	}
	var anonCart int64
	db.QueryRow(ctx, `INSERT INTO cart (anonymous_cart_id) VALUES ($1) RETURNING id`, cartID).Scan(&anonCart)
	db.Exec(ctx, `INSERT INTO cart_sku (cart_id, sku_id, quantity) VALUES ($1, 2, 1)`, anonCart)
	anon.cookies["an_ct"] = cart.SignAnonymousID(f.keys[tn.ID], cartID, time.Now())
	want(t, "login", anon.post("/user/login", "username", username, "password", "Bright-Reset-2!", "remember_me", "true"), `{"login":"true"}`)
	if out := anon.call("GET", "/user/logged-in", nil); out["cart_item_count"] != float64(1) || out["logged_in"] != true {
		t.Fatalf("after merge: %v", out)
	}
	second := f.browser(t, host)
	second.call("GET", "/user/token", nil)
	want(t, "second login", second.post("/user/login", "username", username, "password", "Bright-Reset-2!", "remember_me", "false"), `{"login":"true"}`)
	want(t, "change", anon.post("/user/change-my-password", "current_password", "Bright-Reset-2!", "new_password", "Bright-Final-3!",
		"confirm_new_password", "Bright-Final-3!"), `{"change_my_password":"success"}`)
	want(t, "other session ended", second.call("GET", "/user/account-content", nil), `{"account_content":{"authenticated":"false"}}`)
	if f.deliver(t, email, 5)[0].Subject != "Password Changed on "+frontend {
		t.Fatal("no password-changed mail")
	}

	var unsub string
	db.QueryRow(ctx, `SELECT email_unsubscribe_string_signed FROM member`).Scan(&unsub)
	out := anon.post("/user/email-unsubscribe-confirm", "token", unsub)
	if out["email_unsubscribe_confirm"] != "success" {
		t.Fatalf("unsubscribe: %v", out)
	}
	want(t, "why", anon.post("/user/email-unsubscribe-why", "token", out["token"].(string), "no_longer_want_to_receive", "true",
		"never_signed_up", "false", "inappropriate", "false", "spam", "false", "other", ""), `{"email_unsubscribe_why":"success"}`)
	want(t, "terms", anon.call("GET", "/user/terms-of-use-agree-check", nil), `{"terms_of_use_agree_check":true}`)
	want(t, "terms again", anon.post("/user/terms-of-use-agree", "version", "1"), `{"errors":{"error":"version-already-agreed"},"terms_of_use_agree":"error","version":"1"}`)

	// Fresh codes for the cross-tenant checks.
	want(t, "new verification", anon.call("GET", "/user/verify-email-address", nil), `{"verify_email_address":"verification_email_sent"}`)
	db.QueryRow(ctx, `SELECT email_verification_string_signed FROM member`).Scan(&verify)
	want(t, "new reset", second.post("/user/reset-password", "username", username, "email_address", email), `{"reset_password":"success"}`)
	db.QueryRow(ctx, `SELECT reset_password_string_signed, email_unsubscribe_string_signed FROM member`).Scan(&reset, &unsub)
	session := map[string]string{}
	for k, v := range anon.cookies {
		session[k] = v
	}
	return &journeyResult{session: session, verify: verify, reset: reset, unsubscribe: unsub, username: username}
}
