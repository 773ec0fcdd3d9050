package account_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/platform/mail/mailpit"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/cart"
)

const (
	// keyA and keyB are the two tenants' secret keys.
	keyA = "session-key-of-tenant-a-32-bytes"
	// replacedKeyA is the key a rotation replaced on tenant A: what it
	// signed still verifies, and nothing is signed with it.
	replacedKeyA = "replaced-key-of-tenant-a-32-byte"
	keyB         = "session-key-of-tenant-b-32-bytes"
	hostA        = "a.account.test"
	hostB        = "b.account.test"
	frontend     = "http://localhost:8080"
)

// tenantDBs gives each tenant its own real database (the pool manager's
// stand-in: it opens them from secrets).
type tenantDBs map[int64]*pgxpool.Pool

func (d tenantDBs) Do(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn) error) error {
	conn, err := d[t.ID].Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return fn(conn)
}

type fixture struct {
	// skew moves the accounts app's clock (codes expire by it).
	skew   *atomic.Int64
	app    *fiber.App
	dbs    tenantDBs
	a, b   *directory.Tenant
	keys   map[int64][]byte
	worker *mail.Worker
	mp     *mailpit.Client
	// trips counts the round trips to both tenants' databases
	trips *pgtest.RoundTrips
}

func newFixture(t testing.TB, limits map[string]ratelimit.Rate) *fixture {
	t.Helper()
	// Cheap hashing keeps the tests fast; BenchmarkLogin uses the real cost.
	return newFixtureHasher(t, limits, account.NewHasher(account.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}))
}

func newFixtureHasher(t testing.TB, limits map[string]ratelimit.Rate, hasher *account.Hasher) *fixture {
	t.Helper()
	ctx := context.Background()
	mp := mailpit.New(pgtest.Service(t, "SWA_MAILPIT_URL"))
	smtpPort, _ := strconv.Atoi(pgtest.Require(t, "SWA_SMTP_PORT"))
	relay := mail.SMTPSettings{Host: pgtest.Require(t, "SWA_SMTP_HOST"), Port: smtpPort}
	rdb, prefix := pgtest.Redis(t)

	reg := pgtest.NewPool(t, migrations.Platform)
	for _, tn := range []struct{ slug, host, from string }{{"accta", hostA, "Shop A <owner-a@example.com>"}, {"acctb", hostB, "Shop B <owner-b@example.com>"}} {
		directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: tn.slug + pgtest.RandomName("")[:6], Domains: []string{tn.host},
			Origins: []string{frontend}, Settings: directory.Settings{FrontendOrigin: frontend, FromAddress: tn.from}})
	}
	dir := directory.New(directory.Options{DB: reg, BaseDomain: "example.invalid"})
	if err := dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{mp: mp, skew: new(atomic.Int64), trips: new(pgtest.RoundTrips)}
	f.a, _ = dir.Lookup(hostA)
	f.b, _ = dir.Lookup(hostB)
	if f.a == nil || f.b == nil {
		t.Fatal("tenants not in the directory")
	}
	f.dbs = tenantDBs{f.a.ID: tracedPool(t, f.trips), f.b.ID: tracedPool(t, f.trips)}
	f.keys = map[int64][]byte{f.a.ID: []byte(keyA), f.b.ID: []byte(keyB)}
	key := func(_ context.Context, t *directory.Tenant) ([]byte, error) { return f.keys[t.ID], nil }
	keyring := func(_ context.Context, t *directory.Tenant) ([][]byte, error) {
		if t.ID == f.a.ID {
			return [][]byte{f.keys[t.ID], []byte(replacedKeyA)}, nil
		}
		return [][]byte{f.keys[t.ID]}, nil
	}

	store := sessions.New(sessions.Options{Redis: rdb, Prefix: prefix})
	limiter := ratelimit.New(ratelimit.Options{Redis: rdb, Prefix: prefix, Defaults: limits, Timeout: time.Second})
	app := account.New(account.Options{
		DB: f.dbs, Keyring: keyring, Sessions: store, Limiter: limiter, Log: slog.New(slog.DiscardHandler),
		Now:    func() time.Time { return time.Now().Add(time.Duration(f.skew.Load())) },
		Hasher: hasher,
	})
	f.app = server.New(server.Options{Directory: dir, Log: slog.New(slog.DiscardHandler),
		Middleware: []fiber.Handler{store.Handler(), csrf.New(csrf.Options{Key: csrf.KeyFunc(key)}).Handler()},
		Apps:       []server.App{app}})
	w, err := mail.NewWorker(mail.Options{
		Tenants: func(context.Context) []*directory.Tenant { return []*directory.Tenant{f.a, f.b} },
		Conn:    f.dbs.Do,
		Relay:   func(context.Context, *directory.Tenant) (mail.SMTPSettings, error) { return relay, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.worker = w
	return f
}

// tracedPool is a fresh tenant database with a pool whose queries trips
// counts.
func tracedPool(t testing.TB, trips *pgtest.RoundTrips) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t, migrations.Tenant))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = trips
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// deliver runs the mail worker once and returns the messages to rcpt.
func (f *fixture) deliver(t testing.TB, rcpt string, n int) []mailpit.Message {
	t.Helper()
	f.worker.RunOnce(context.Background())
	return f.mp.Wait(t, `to:"`+rcpt+`"`, n, 10*time.Second)
}

// browser is one visitor: a host and a cookie jar.
type browser struct {
	t       testing.TB
	f       *fixture
	host    string
	cookies map[string]string
	last    *http.Response
	body    string // the last answer's body
}

func (f *fixture) browser(t testing.TB, host string) *browser {
	return &browser{t: t, f: f, host: host, cookies: map[string]string{}}
}

func (b *browser) do(method, path string, form url.Values) (int, map[string]any) {
	b.t.Helper()
	if form == nil {
		return b.doBody(method, path, "", "")
	}
	return b.doBody(method, path, "application/x-www-form-urlencoded; charset=UTF-8", form.Encode())
}

// doBody sends a body of any type ("" sends none) with the browser's cookies.
func (b *browser) doBody(method, path, contentType, content string) (int, map[string]any) {
	b.t.Helper()
	var body io.Reader
	if contentType != "" {
		body = strings.NewReader(content)
	}
	req := httptest.NewRequest(method, "http://"+b.host+path, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	var jar []string
	for k, v := range b.cookies {
		jar = append(jar, k+"="+v)
	}
	req.Header.Set("Cookie", strings.Join(jar, "; "))
	if tok := b.cookies["csrftoken"]; tok != "" && method == http.MethodPost {
		req.Header.Set("X-CSRFToken", tok)
	}
	res, err := b.f.app.Test(req, -1)
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		// The server answered 413 on the Content-Length; Fiber's Test
		// returns the read error instead of that answer.
		return http.StatusRequestEntityTooLarge, map[string]any{"error": "payload-too-large"}
	}
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	b.last = res
	for _, ck := range res.Cookies() {
		if ck.MaxAge < 0 || (!ck.Expires.IsZero() && ck.Expires.Before(time.Now())) {
			delete(b.cookies, ck.Name)
		} else {
			b.cookies[ck.Name] = ck.Value
		}
	}
	raw, _ := io.ReadAll(res.Body)
	b.body = string(raw)
	var out map[string]any
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			b.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return res.StatusCode, out
}

// call is do for answers that must be 200 JSON with the API version.
func (b *browser) call(method, path string, form url.Values) map[string]any {
	b.t.Helper()
	status, out := b.do(method, path, form)
	if status != http.StatusOK || out["user-api-version"] != "0.0.1" {
		b.t.Fatalf("%s %s = %d %v", method, path, status, out)
	}
	delete(out, "user-api-version")
	return out
}

func (b *browser) post(path string, kv ...string) map[string]any {
	b.t.Helper()
	form := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		form.Set(kv[i], kv[i+1])
	}
	return b.call(http.MethodPost, path, form)
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func want(t testing.TB, what string, got any, expected string) {
	t.Helper()
	if g := js(got); g != expected {
		t.Fatalf("%s:\n got  %s\n want %s", what, g, expected)
	}
}

// signUp creates an account through the API and returns the browser.
func (f *fixture) signUp(t testing.TB, host, username, email string) *browser {
	t.Helper()
	b := f.browser(t, host)
	b.call("GET", "/user/token", nil)
	out := b.post("/user/create-account", "firstname", "Jane", "lastname", "Doe", "username", username,
		"email_address", email, "password", "Secret-Pass-123!", "confirm_password", "Secret-Pass-123!",
		"newsletter", "true", "remember_me", "true")
	want(t, "create-account", out, `{"create_account":"true"}`)
	return b
}

func uniqueEmail(prefix string) string { return pgtest.RandomName(prefix) + "@example.com" }

var codeRE = regexp.MustCompile(`email_verification_code=([A-Za-z0-9:_-]+)`)

func TestCreateAccountVerifyEmail(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	b := f.browser(t, hostA)

	out := b.call("GET", "/user/token", nil)
	if tok := b.cookies["csrftoken"]; len(tok) != 32 || !strings.Contains(out["token"].(string), tok) {
		t.Fatalf("token %v, cookie %q", out, tok)
	}
	out = b.call("GET", "/user/logged-in", nil)
	want(t, "anonymous logged-in", out, `{"cart_item_count":0,"client_event_id":"null","log_client_events":true,"logged_in":false}`)
	ace := b.cookies["anonymousclientevent"]
	if len(strings.Split(ace, ":")) != 3 {
		t.Fatalf("anonymousclientevent = %q", ace)
	}
	b.call("GET", "/user/logged-in", nil)
	if b.cookies["anonymousclientevent"] != ace {
		t.Fatal("a valid anonymousclientevent cookie was replaced")
	}

	email := uniqueEmail("jane")
	out = b.post("/user/create-account", "firstname", "Jane", "lastname", "Doe", "username", "jane_doe", "email_address", email,
		"password", "Secret-Pass-123!", "confirm_password", "Secret-Pass-12!", "newsletter", "true", "remember_me", "false")
	want(t, "mismatch", out, `{"create_account":"false","errors":{"email-address":true,"firstname":true,"lastname":true,"password":[{"description":"Please make sure your passwords match.","type":"confirm_password_doesnt_match"}],"username":true}}`)
	out = b.post("/user/create-account", "firstname", "Jane", "lastname", "Doe", "username", "jane_doe", "email_address", email,
		"password", "Password1!", "confirm_password", "Password1!", "newsletter", "true", "remember_me", "false")
	want(t, "common password", out, `{"create_account":"false","errors":{"email-address":true,"firstname":true,"lastname":true,"password":[{"description":"This password is too common.","type":"django_validation"}],"username":true}}`)

	csrfBefore := b.cookies["csrftoken"]
	out = b.post("/user/create-account", "firstname", "Jane", "lastname", "Doe", "username", "jane_doe", "email_address", email,
		"password", "Secret-Pass-123!", "confirm_password", "Secret-Pass-123!", "newsletter", "true", "remember_me", "false")
	want(t, "create", out, `{"create_account":"true"}`)
	if b.cookies["sessionid"] == "" || b.cookies["csrftoken"] == csrfBefore {
		t.Fatalf("login did not set a session and rotate the CSRF token: %v", b.cookies)
	}
	out = b.post("/user/create-account", "firstname", "Jo", "lastname", "Doe", "username", "jane_doe", "email_address", email,
		"password", "Secret-Pass-123!", "confirm_password", "Secret-Pass-123!", "newsletter", "true", "remember_me", "false")
	want(t, "taken", out["errors"].(map[string]any)["username"],
		`[{"description":"The username you entered is unavailable. Please enter a different username and try again.","type":"unavailable"}]`)

	out = b.call("GET", "/user/logged-in", nil)
	if out["logged_in"] != true || out["member_initials"] != "JD" || out["email_address"] != email {
		t.Fatalf("member logged-in = %v", out)
	}
	content := b.call("GET", "/user/account-content", nil)["account_content"].(map[string]any)
	want(t, "email_data", content["email_data"], `{"email_address":"`+email+`","email_verified":false,"verification_request_sent_within_24_hours":true}`)
	if pd := content["personal_data"].(map[string]any); pd["username"] != "jane_doe" || pd["newsletter_subscriber"] != true ||
		pd["terms_of_use_agreed_date_time"] == nil || !strings.HasSuffix(pd["joined_date_time"].(string), "Z") {
		t.Fatalf("personal_data = %v", pd)
	}
	want(t, "orders", content["orders_data"], `{}`)

	msgs := f.deliver(t, email, 1)
	m := msgs[0]
	if m.Subject != "Welcome to "+frontend || !strings.Contains(m.Text, "jane_doe") || m.HTML == "" || m.From.Address != "owner-a@example.com" {
		t.Fatalf("welcome mail = %+v", m)
	}
	code := codeRE.FindStringSubmatch(m.Text)
	if code == nil || !strings.Contains(m.Text, frontend+"/account/?email_verification_code=") {
		t.Fatalf("no verification link in %q", m.Text)
	}
	out = b.post("/user/verify-email-address-response", "email_verification_code", code[1]+"x")
	want(t, "tampered code", out, `{"verify_email_address_response":"signature-invalid"}`)
	out = b.post("/user/verify-email-address-response", "email_verification_code", code[1])
	want(t, "verify", out, `{"verify_email_address_response":"success"}`)
	out = b.post("/user/verify-email-address-response", "email_verification_code", code[1])
	want(t, "verify again", out, `{"verify_email_address_response":"code-doesnt-match"}`)
	content = b.call("GET", "/user/account-content", nil)["account_content"].(map[string]any)
	want(t, "verified", content["email_data"], `{"email_address":"`+email+`","email_verified":true,"verification_request_sent_within_24_hours":false}`)

	// A new code by mail, then the anonymous answers.
	want(t, "new code", b.call("GET", "/user/verify-email-address", nil), `{"verify_email_address":"verification_email_sent"}`)
	verification := f.deliver(t, email, 2)[0]
	wantVerificationMail(t, verification, "Jane Doe", "jane_doe", f.a.DisplayName)
	want(t, "logout", b.call("GET", "/user/logout", nil), `{"logout":"true"}`)
	if b.cookies["sessionid"] != "" || b.cookies["anonymousclientevent"] == ace {
		t.Fatalf("logout cookies = %v", b.cookies)
	}
	for path, key := range map[string]string{"/user/logout": "logout", "/user/verify-email-address": "verify_email_address"} {
		want(t, path, b.call("GET", path, nil), `{"`+key+`":"user_not_authenticated"}`)
	}
	want(t, "anon content", b.call("GET", "/user/account-content", nil), `{"account_content":{"authenticated":"false"}}`)
}

// wantVerificationMail compares a delivered verification mail (E2) as a
// whole: it names the username that claims the address, so the address's
// owner can tell which account asked.
func wantVerificationMail(t *testing.T, m mailpit.Message, name, username, site string) {
	t.Helper()
	code := codeRE.FindStringSubmatch(m.Text)
	if code == nil {
		t.Fatalf("no verification code in %q", m.Text)
	}
	link := frontend + "/account/?email_verification_code=" + code[1]
	for _, c := range []struct{ part, got, want string }{
		{"subject", m.Subject, "Email Verification Request for " + frontend},
		{"text", m.Text, "Hi " + name + ",\r\n\r\n" +
			"We received a request to verify this email address for the username " + username + " at " + frontend + ". " +
			"If you made it, please confirm that you may use this address by following this link (it is valid for 24 hours from this request):\r\n" +
			link + "\r\n\r\n" +
			"Do not follow the link if the request was not yours.\r\n\r\n" +
			"If you did not request this, please forward this email to owner-a@example.com and let us know.\r\n\r\n" +
			"Questions? Call us toll-free at 1-800-123-4567.\r\n\r\n" +
			"Thank you,\r\n" + site + "\r\n"},
		{"html", m.HTML, "<p>Hi " + name + ",</p>" +
			"<p>We received a request to verify this email address for the username <b>" + username + "</b> at " + frontend + ". " +
			`If you made it, please <a href="` + link + `">confirm that you may use this address</a> (the link is valid for 24 hours from this request):<br>` + link + "</p>" +
			"<p>Do not follow the link if the request was not yours.</p>" +
			`<p>If you did not request this, please forward this email to <a href="mailto:owner-a@example.com">owner-a@example.com</a> and let us know.</p>` +
			"<p>Questions? Call us toll-free at 1-800-123-4567.</p><p>Thank you,<br>" + site + "</p>"},
	} {
		if c.got != c.want {
			t.Errorf("verification mail %s:\n got %q\nwant %q", c.part, c.got, c.want)
		}
	}
}

func TestLoginRehashesImportedPasswordAndMergesCart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	db := f.dbs[f.a.ID]
	// member06 of the upstream fixture, with its Django hash.
	var accountID, memberID int64
	if err := db.QueryRow(ctx, `INSERT INTO account (username, password_hash, first_name, last_name, email) VALUES
('member06', 'pbkdf2_sha256$260000$4azUANpC2xNt3WutSfuRN9$RmYxkqtY0riwkx9PEsmj/ce5/yU37m9hkivJCm5rFgE=', 'Farid', 'Fahmy', 'farid@example.com') RETURNING id`).Scan(&accountID); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(ctx, `INSERT INTO member (account_id) VALUES ($1) RETURNING id`, accountID).Scan(&memberID); err != nil {
		t.Fatal(err)
	}
	// Member cart with SKU 1; anonymous cart with SKUs 1 and 6 and a shipping method.
	var memberCart, anonCart int64
	db.QueryRow(ctx, `INSERT INTO cart (member_id) VALUES ($1) RETURNING id`, memberID).Scan(&memberCart)
	db.QueryRow(ctx, `INSERT INTO cart (anonymous_cart_id) VALUES ('Jgl5eesrgwWpWvpZ9w2Y') RETURNING id`).Scan(&anonCart)
	if _, err := db.Exec(ctx, `INSERT INTO cart_sku (cart_id, sku_id, quantity) VALUES ($1, 1, 1), ($2, 1, 5), ($2, 6, 2);
INSERT INTO cart_shipping_method (cart_id, shipping_method_id) VALUES ($2, 2)`, memberCart, anonCart); err != nil {
		// Two statements need the simple protocol.
		for _, q := range []string{
			`INSERT INTO cart_sku (cart_id, sku_id, quantity) VALUES (` + strconv.FormatInt(memberCart, 10) + `, 1, 1), (` + strconv.FormatInt(anonCart, 10) + `, 1, 5), (` + strconv.FormatInt(anonCart, 10) + `, 6, 2)`,
			`INSERT INTO cart_shipping_method (cart_id, shipping_method_id) VALUES (` + strconv.FormatInt(anonCart, 10) + `, 2)`,
		} {
			if _, err := db.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}

	b := f.browser(t, hostA)
	b.call("GET", "/user/token", nil)
	b.cookies["an_ct"] = cart.SignAnonymousID(f.keys[f.a.ID], "Jgl5eesrgwWpWvpZ9w2Y", time.Now())
	if out := b.call("GET", "/user/logged-in", nil); out["cart_item_count"] != float64(2) {
		t.Fatalf("anonymous cart count = %v", out)
	}
	want(t, "bad password", b.post("/user/login", "username", "member06", "password", "wrong", "remember_me", "false"), `{"login":"false"}`)
	want(t, "unknown user", b.post("/user/login", "username", "nobody", "password", "wrong", "remember_me", "false"), `{"login":"false"}`)
	want(t, "case matters", b.post("/user/login", "username", "Member06", "password", "Fixture-Pass-06!", "remember_me", "false"), `{"login":"false"}`)
	want(t, "login", b.post("/user/login", "username", "member06", "password", "Fixture-Pass-06!", "remember_me", "true"), `{"login":"true"}`)
	if _, ok := b.cookies["an_ct"]; ok {
		t.Fatal("an_ct not expired by login")
	}
	var hash string
	var lastLogin *time.Time
	db.QueryRow(ctx, `SELECT password_hash, last_login FROM account WHERE id = $1`, accountID).Scan(&hash, &lastLogin)
	if !strings.HasPrefix(hash, "$argon2id$") || lastLogin == nil {
		t.Fatalf("after login: hash %q, last_login %v", hash, lastLogin)
	}
	var lines string
	db.QueryRow(ctx, `SELECT string_agg(sku_id || 'x' || quantity, ',' ORDER BY sku_id) FROM cart_sku WHERE cart_id = $1`, memberCart).Scan(&lines)
	var anonLeft, ship int
	db.QueryRow(ctx, `SELECT count(*) FROM cart WHERE id = $1`, anonCart).Scan(&anonLeft)
	db.QueryRow(ctx, `SELECT count(*) FROM cart_shipping_method WHERE cart_id = $1 AND shipping_method_id = 2`, memberCart).Scan(&ship)
	if lines != "1x1,6x2" || anonLeft != 0 || ship != 1 {
		t.Fatalf("merged cart lines %q, anonymous cart left %d, shipping %d", lines, anonLeft, ship)
	}
	if out := b.call("GET", "/user/logged-in", nil); out["cart_item_count"] != float64(2) || out["client_event_id"] != float64(accountID) {
		t.Fatalf("member logged-in = %v", out)
	}
	// The re-hashed password still works.
	b2 := f.browser(t, hostA)
	b2.call("GET", "/user/token", nil)
	want(t, "login after rehash", b2.post("/user/login", "username", "member06", "password", "Fixture-Pass-06!", "remember_me", "false"), `{"login":"true"}`)
}

var resetRE = regexp.MustCompile(`/set-new-password\?password_reset_code=([A-Za-z0-9:_-]+)`)

func TestForgotUsernameAndResetPassword(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	email := uniqueEmail("reset")
	other := f.signUp(t, hostA, "reset_user", email) // stays signed in elsewhere
	f.deliver(t, email, 1)

	b := f.browser(t, hostA)
	b.call("GET", "/user/token", nil)
	want(t, "forgot", b.post("/user/forgot-username", "email_address", email), `{"forgot_username":"success"}`)
	msgs := f.deliver(t, email, 2)
	if msgs[0].Subject != "Forgot Username Request for "+frontend || !strings.Contains(msgs[0].Text, "reset_user") {
		t.Fatalf("forgot-username mail = %q %q", msgs[0].Subject, msgs[0].Text)
	}
	want(t, "reset mismatch", b.post("/user/reset-password", "username", "reset_user", "email_address", "x"+email), `{"reset_password":"success"}`)
	want(t, "reset", b.post("/user/reset-password", "username", "reset_user", "email_address", strings.ToUpper(email)), `{"reset_password":"success"}`)
	msgs = f.deliver(t, email, 3)
	if msgs[0].Subject != "Password Reset Request for "+frontend {
		t.Fatalf("reset mail = %q (the mismatched request must send nothing)", msgs[0].Subject)
	}
	code := resetRE.FindStringSubmatch(msgs[0].Text)
	if code == nil {
		t.Fatalf("no reset link in %q", msgs[0].Text)
	}
	set := func(user, c, pw string) map[string]any {
		return b.post("/user/set-new-password", "username", user, "password_reset_code", c, "new_password", pw, "confirm_new_password", pw)
	}
	want(t, "unknown user", set("nobody", code[1], "New-Pass-456!"), `{"error":"No account with that username could be found.","set_new_password":"username-not-found"}`)
	want(t, "bad code", set("reset_user", code[1][:len(code[1])-2], "New-Pass-456!"), `{"set_new_password":"signature-invalid"}`)
	want(t, "weak", set("reset_user", code[1], "newpass"), `{"errors":{"new-password":[{"description":"The password you entered is too short. Passwords must be between 8 and 150 characters in length.","type":"too_short"},{"description":"Passwords must contain at least one capital letter.","type":"no_capital_letter"},{"description":"Passwords must contain at least one special character.","type":"no_special_character"}]},"set_new_password":"password-error"}`)
	want(t, "similar", set("reset_user", code[1], "Reset_User!1"), `{"errors":{"new-password":[{"description":"The password is too similar to the username.","type":"django_validation"}]},"set_new_password":"password-error"}`)
	want(t, "success", set("reset_user", code[1], "New-Pass-456!"), `{"set_new_password":"success"}`)
	want(t, "single use", set("reset_user", code[1], "Other-Pass-789!"), `{"set_new_password":"code-doesnt-match"}`)
	if got := f.deliver(t, email, 4)[0].Subject; got != "Password Changed on "+frontend {
		t.Fatalf("newest mail = %q", got)
	}
	// The reset signed the member out everywhere.
	want(t, "other session", other.call("GET", "/user/account-content", nil), `{"account_content":{"authenticated":"false"}}`)
	want(t, "old password", b.post("/user/login", "username", "reset_user", "password", "Secret-Pass-123!", "remember_me", "false"), `{"login":"false"}`)
	want(t, "new password", b.post("/user/login", "username", "reset_user", "password", "New-Pass-456!", "remember_me", "false"), `{"login":"true"}`)
}

func TestChangePasswordEndsOtherSessions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	email := uniqueEmail("change")
	b := f.signUp(t, hostA, "change_user", email)
	other := f.browser(t, hostA)
	other.call("GET", "/user/token", nil)
	want(t, "second login", other.post("/user/login", "username", "change_user", "password", "Secret-Pass-123!", "remember_me", "true"), `{"login":"true"}`)

	change := func(cur, pw, confirm string) map[string]any {
		return b.post("/user/change-my-password", "current_password", cur, "new_password", pw, "confirm_new_password", confirm)
	}
	want(t, "wrong current", change("nope", "New-Pass-456!", "New-Pass-456!"), `{"change_my_password":"errors","errors":{"current-password":[{"description":"The current password you provided is incorrect.","type":"current_password_invalid"}]}}`)
	want(t, "same", change("Secret-Pass-123!", "Secret-Pass-123!", "Secret-Pass-123!"), `{"change_my_password":"errors","errors":{"password":[{"description":"The new password cannot be the same as the old password.","type":"new_password_same_as_current_password"}]}}`)
	want(t, "mismatch", change("Secret-Pass-123!", "New-Pass-456!", "New-Pass-457!"), `{"change_my_password":"errors","errors":{"password":[{"description":"Please make sure your passwords match.","type":"confirm_password_doesnt_match"}]}}`)
	sid, tok := b.cookies["sessionid"], b.cookies["csrftoken"]
	want(t, "change", change("Secret-Pass-123!", "New-Pass-456!", "New-Pass-456!"), `{"change_my_password":"success"}`)
	if b.cookies["sessionid"] == sid || b.cookies["csrftoken"] == tok {
		t.Fatal("change-my-password did not rotate the session and CSRF token")
	}
	if out := b.call("GET", "/user/account-content", nil)["account_content"].(map[string]any); out["authenticated"] != "true" {
		t.Fatalf("own session ended: %v", out)
	}
	want(t, "other session", other.call("GET", "/user/account-content", nil), `{"account_content":{"authenticated":"false"}}`)
	if got := f.deliver(t, email, 2)[0].Subject; got != "Password Changed on "+frontend {
		t.Fatalf("newest mail = %q", got)
	}
	anon := f.browser(t, hostA)
	anon.call("GET", "/user/token", nil)
	want(t, "anonymous", anon.post("/user/change-my-password", "current_password", "a", "new_password", "b", "confirm_new_password", "b"),
		`{"change_my_password":"user_not_authenticated"}`)
}

var unsubRE = regexp.MustCompile(`/account/email-unsubscribe\?em_cd=[^&]+&mb_cd=[^&]+&token=([A-Za-z0-9_-]+)`)

func TestUnsubscribeWithMailedToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	email := uniqueEmail("unsub")
	b := f.signUp(t, hostA, "unsub_user", email)
	ctx := context.Background()
	db := f.dbs[f.a.ID]

	// A campaign mail as the admin app will send it, with the member's token.
	var token, mbCd string
	db.QueryRow(ctx, `SELECT m.email_unsubscribe_string_signed, m.mb_cd FROM member m JOIN account a ON a.id = m.account_id WHERE a.username = 'unsub_user'`).Scan(&token, &mbCd)
	page, headers := account.UnsubscribeLinks(frontend, "P0Ps5FLIfUUiMpdV3HOB", mbCd, token, false)
	tx, _ := db.Begin(ctx)
	if err := mail.Enqueue(ctx, tx, mail.Message{Kind: "campaign", From: "Shop A <owner-a@example.com>", To: []string{email},
		Subject: "News", Text: "Unsubscribe: " + page, Headers: headers}); err != nil {
		t.Fatal(err)
	}
	tx.Commit(ctx)
	var campaign mailpit.Message
	for _, m := range f.deliver(t, email, 2) {
		if m.Subject == "News" {
			campaign = m
		}
	}
	if lu := campaign.Headers["List-Unsubscribe"]; len(lu) != 1 || lu[0] != "<"+page+">" {
		t.Fatalf("List-Unsubscribe = %v", lu)
	}
	got := unsubRE.FindStringSubmatch(campaign.Text)
	if got == nil {
		t.Fatalf("no unsubscribe link in %q", campaign.Text)
	}
	tok := got[1]

	anon := f.browser(t, hostA)
	anon.call("GET", "/user/token", nil)
	masked := `"` + email[:4] + strings.Repeat("*", len(strings.Split(email, "@")[0])-4) + "@example.com" + `"`
	want(t, "no token", anon.call("GET", "/user/email-unsubscribe-lookup", nil), `{"email_unsubscribe_lookup":"error","errors":{"error":"token-required"}}`)
	want(t, "unknown", anon.call("GET", "/user/email-unsubscribe-lookup?token=abc", nil), `{"email_unsubscribe_lookup":"error","errors":{"error":"member-not-found"}}`)
	want(t, "lookup", anon.call("GET", "/user/email-unsubscribe-lookup?token="+tok, nil), `{"email_address":`+masked+`,"email_unsubscribe_lookup":"success"}`)
	out := anon.post("/user/email-unsubscribe-confirm", "token", tok)
	newTok, _ := out["token"].(string)
	if out["email_unsubscribe_confirm"] != "success" || len(newTok) != 43 || newTok == tok || js(out["email_address"]) != masked {
		t.Fatalf("confirm = %v", out)
	}
	want(t, "old token", anon.call("GET", "/user/email-unsubscribe-lookup?token="+tok, nil), `{"email_unsubscribe_lookup":"error","errors":{"error":"member-not-found"}}`)
	want(t, "already", anon.call("GET", "/user/email-unsubscribe-lookup?token="+newTok, nil), `{"email_unsubscribe_lookup":"error","errors":{"error":"email-address-already-unsubscribed"}}`)
	want(t, "confirm again", anon.post("/user/email-unsubscribe-confirm", "token", newTok), `{"email_unsubscribe_confirm":"error","errors":{"error":"email-address-already-unsubscribed"}}`)
	want(t, "why", anon.post("/user/email-unsubscribe-why", "token", newTok, "no_longer_want_to_receive", "true", "never_signed_up", "false",
		"inappropriate", "false", "spam", "false", "other", "Too many"), `{"email_unsubscribe_why":"success"}`)
	var reasons int
	db.QueryRow(ctx, `SELECT count(*) FROM email_unsubscribe_reason WHERE no_longer_want_to_receive AND other = 'Too many'`).Scan(&reasons)
	if reasons != 1 {
		t.Fatalf("%d reason rows", reasons)
	}
	content := b.call("GET", "/user/account-content", nil)["account_content"].(map[string]any)["personal_data"].(map[string]any)
	if content["email_unsubscribed"] != true || content["newsletter_subscriber"] != false {
		t.Fatalf("after unsubscribe: %v", content)
	}
	// A stored token that no longer verifies under the tenant's key.
	db.Exec(ctx, `UPDATE member SET email_unsubscribed = false, email_unsubscribe_string = 'changedchangedchange' WHERE email_unsubscribe_string_signed = $1`, newTok)
	want(t, "altered", anon.call("GET", "/user/email-unsubscribe-lookup?token="+newTok, nil), `{"email_unsubscribe_lookup":"error","errors":{"error":"token-altered"}}`)

	// Communication preferences.
	want(t, "both", b.post("/user/update-communication-preferences", "newsletter", "true", "email_unsubscribe", "true"),
		`{"errors":{"invalid_data":"The request included an invalid data combination."},"update_communication_preferences":"errors"}`)
	want(t, "missing", b.post("/user/update-communication-preferences", "newsletter", "true"),
		`{"errors":{"data_missing":"Required data was missing from the request."},"update_communication_preferences":"errors"}`)
	want(t, "resubscribe", b.post("/user/update-communication-preferences", "newsletter", "true", "email_unsubscribe", "false",
		"no_longer_want_to_receive", "false", "never_signed_up", "false", "inappropriate", "false", "spam", "false", "other", ""),
		`{"update_communication_preferences":"success"}`)
}

func TestTermsOfUse(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	anon := f.browser(t, hostA)
	status, _ := anon.do("GET", "/user/terms-of-use-agree-check", nil)
	if status != http.StatusFound || anon.last.Header.Get("Location") != "/login?next=/user/terms-of-use-agree-check" {
		t.Fatalf("anonymous check = %d %q", status, anon.last.Header.Get("Location"))
	}
	b := f.signUp(t, hostA, "terms_user", uniqueEmail("terms"))
	want(t, "agreed at sign-up", b.call("GET", "/user/terms-of-use-agree-check", nil), `{"terms_of_use_agree_check":true}`)
	if _, err := f.dbs[f.a.ID].Exec(context.Background(),
		`INSERT INTO terms_of_use_version (version, version_note, publication_date_time) VALUES (2, 'New <b>terms</b>', now())`); err != nil {
		t.Fatal(err)
	}
	want(t, "new version", b.call("GET", "/user/terms-of-use-agree-check", nil), `{"terms_of_use_agree_check":false,"version":2,"version_note":"New \u003cb\u003eterms\u003c/b\u003e"}`)
	want(t, "missing", b.post("/user/terms-of-use-agree"), `{"errors":{"error":"version-required"},"terms_of_use_agree":"error"}`)
	want(t, "not int", b.post("/user/terms-of-use-agree", "version", "x"), `{"errors":{"error":"version-not-found"},"terms_of_use_agree":"error","version":"x"}`)
	want(t, "unknown", b.post("/user/terms-of-use-agree", "version", "9"), `{"errors":{"error":"version-not-found"},"terms_of_use_agree":"error","version":"9"}`)
	want(t, "old", b.post("/user/terms-of-use-agree", "version", "1"), `{"errors":{"error":"version-provided-not-most-recent"},"terms_of_use_agree":"error","version":"1"}`)
	want(t, "agree", b.post("/user/terms-of-use-agree", "version", "2"), `{"terms_of_use_agree":"success","version":"2"}`)
	want(t, "again", b.post("/user/terms-of-use-agree", "version", "2"), `{"errors":{"error":"version-already-agreed"},"terms_of_use_agree":"error","version":"2"}`)
	want(t, "check", b.call("GET", "/user/terms-of-use-agree-check", nil), `{"terms_of_use_agree_check":true}`)
	anon.call("GET", "/user/token", nil)
	want(t, "anonymous agree", anon.post("/user/terms-of-use-agree", "version", "2"), `{"terms_of_use_agree":"user_not_authenticated"}`)
}

func TestOtherTenantRejectsSessionsCodesTokensAndCookies(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	email := uniqueEmail("cross")
	a := f.signUp(t, hostA, "cross_user", email)
	code := codeRE.FindStringSubmatch(f.deliver(t, email, 1)[0].Text)[1]
	// The same username on B, signed in with A's cookies.
	bUser := f.signUp(t, hostB, "cross_user", uniqueEmail("crossb"))

	onB := f.browser(t, hostB)
	for k, v := range a.cookies {
		onB.cookies[k] = v
	}
	want(t, "A's session on B", onB.call("GET", "/user/account-content", nil), `{"account_content":{"authenticated":"false"}}`)
	if status, out := onB.do("POST", "/user/terms-of-use-agree", url.Values{"version": {"1"}}); status != http.StatusForbidden {
		t.Fatalf("A's CSRF token accepted on B: %d %v", status, out)
	}
	want(t, "A's code on B", bUser.post("/user/verify-email-address-response", "email_verification_code", code), `{"verify_email_address_response":"signature-invalid"}`)
	// A's an_ct cookie names a cart on B: not honoured.
	if _, err := f.dbs[f.b.ID].Exec(context.Background(), `INSERT INTO cart (anonymous_cart_id) VALUES ('Jgl5eesrgwWpWvpZ9w2Y')`); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dbs[f.b.ID].Exec(context.Background(), `INSERT INTO cart_sku (cart_id, sku_id) SELECT id, 1 FROM cart WHERE anonymous_cart_id = 'Jgl5eesrgwWpWvpZ9w2Y'`); err != nil {
		t.Fatal(err)
	}
	anonB := f.browser(t, hostB)
	anonB.cookies["an_ct"] = cart.SignAnonymousID(f.keys[f.a.ID], "Jgl5eesrgwWpWvpZ9w2Y", time.Now())
	if out := anonB.call("GET", "/user/logged-in", nil); out["cart_item_count"] != float64(0) {
		t.Fatalf("A's an_ct counted on B: %v", out)
	}
	anonB.cookies["an_ct"] = cart.SignAnonymousID(f.keys[f.b.ID], "Jgl5eesrgwWpWvpZ9w2Y", time.Now())
	if out := anonB.call("GET", "/user/logged-in", nil); out["cart_item_count"] != float64(1) {
		t.Fatalf("B's own an_ct not counted: %v", out)
	}
	// A's anonymousclientevent cookie is replaced on B.
	anonA := f.browser(t, hostA)
	anonA.call("GET", "/user/logged-in", nil)
	anonB.cookies["anonymousclientevent"] = anonA.cookies["anonymousclientevent"]
	anonB.call("GET", "/user/logged-in", nil)
	if anonB.cookies["anonymousclientevent"] == anonA.cookies["anonymousclientevent"] {
		t.Fatal("A's anonymousclientevent cookie kept on B")
	}
	// A's unsubscribe token means nothing on B.
	var token string
	f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT email_unsubscribe_string_signed FROM member`).Scan(&token)
	want(t, "A's token on B", anonB.call("GET", "/user/email-unsubscribe-lookup?token="+token, nil), `{"email_unsubscribe_lookup":"error","errors":{"error":"member-not-found"}}`)
}

func TestChatAndNotifyMeCaptureProspects(t *testing.T) {
	t.Parallel()
	f := newFixture(t, map[string]ratelimit.Rate{"notify_me": {N: 3, Window: time.Hour}, "chat": {N: 100, Window: time.Hour}})
	ctx := context.Background()
	db := f.dbs[f.a.ID]
	b := f.browser(t, hostA)
	b.call("GET", "/user/token", nil)

	want(t, "chat invalid", b.post("/user/put-chat-message", "name", "Bad-Name", "email_address", "x", "message", ""),
		`{"errors":{"email_address":[{"description":"Please enter a valid email address. For example johndoe@domain.com.","type":"not_valid"}],"message":[{"description":"This is a required field.","type":"required"}],"name":[{"description":"Please enter a valid name. Characters, numbers, and spaces are allowed.","type":"not_valid"}]},"put_chat_message":"validation_error"}`)
	email := uniqueEmail("chat")
	want(t, "chat", b.post("/user/put-chat-message", "name", "Quentin", "email_address", email, "message", "Hello <b>there</b>"), `{"put_chat_message":"true"}`)
	var comment string
	var unsubscribed bool
	db.QueryRow(ctx, `SELECT swa_comment, email_unsubscribed FROM prospect WHERE email = $1`, email).Scan(&comment, &unsubscribed)
	var linked int
	db.QueryRow(ctx, `SELECT count(*) FROM chat_message c JOIN prospect p ON p.id = c.prospect_id WHERE p.email = $1`, email).Scan(&linked)
	if comment != "Captured from chat message submission" || !unsubscribed || linked != 1 {
		t.Fatalf("prospect comment %q, unsubscribed %v, linked messages %d", comment, unsubscribed, linked)
	}
	f.worker.RunOnce(ctx)
	owner := f.mp.Wait(t, `to:"owner-a@example.com" subject:"New Chat Message"`, 1, 10*time.Second)
	if strings.Contains(owner[0].Text, "Hello") {
		t.Fatal("the owner notice must not carry the message")
	}

	notify := uniqueEmail("bot")
	want(t, "notify invalid", b.post("/user/pythonabot-notify-me", "email_address", notify, "how_excited", "6"),
		`{"errors":{"email_address":true,"how_excited":[{"description":"The value provided is out of range.","type":"out_of_range"}]},"pythonabot_notify_me":"validation_error"}`)
	want(t, "notify", b.post("/user/pythonabot-notify-me", "email_address", notify, "how_excited", "4"), `{"pythonabot_notify_me":"success"}`)
	want(t, "duplicate", b.post("/user/pythonabot-notify-me", "email_address", notify, "how_excited", "3"),
		`{"errors":{"email_address":[{"description":"I already know about this email address. Please enter a different email address.","type":"duplicate"}],"how_excited":true},"pythonabot_notify_me":"duplicate_prospect"}`)
	var pc string
	db.QueryRow(ctx, `SELECT prospect_comment || ' / ' || swa_comment FROM prospect WHERE email = $1`, notify).Scan(&pc)
	if pc != "4 on a scale of 1-5 for how excited they are / This prospect would like to be notified when PythonABot is ready to be purchased." {
		t.Fatalf("prospect comments %q", pc)
	}
	if status, _ := b.do("POST", "/user/pythonabot-notify-me", url.Values{"email_address": {notify}, "how_excited": {"3"}}); status != http.StatusForbidden {
		t.Fatalf("4th notify-me in the window = %d, want 403", status)
	}

	// A prospect who signs up is converted.
	f.signUp(t, hostA, "bot_fan", notify)
	db.QueryRow(ctx, `SELECT swa_comment FROM prospect WHERE email = $1 AND converted_date_time IS NOT NULL`, notify).Scan(&pc)
	if !strings.HasSuffix(pc, "purchased.. Prospect converted by creating user id 1.") {
		t.Fatalf("converted prospect comment %q", pc)
	}
}

func TestLoginRateLimitAndBadRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t, map[string]ratelimit.Rate{"login": {N: 3, Window: time.Hour}})
	b := f.browser(t, hostA)
	status, _ := b.do("GET", "/user/", nil)
	if status != http.StatusOK || b.last.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("root = %d %s", status, b.last.Header.Get("Content-Type"))
	}
	b.call("GET", "/user/token", nil)
	if status, out := b.do("POST", "/user/login", url.Values{"username": {"x"}}); status != http.StatusBadRequest {
		t.Fatalf("missing fields = %d %v", status, out)
	}
	for i := 0; i < 2; i++ {
		want(t, "login", b.post("/user/login", "username", "x", "password", "y", "remember_me", "false"), `{"login":"false"}`)
	}
	if status, _ := b.do("POST", "/user/login", url.Values{"username": {"x"}, "password": {"y"}, "remember_me": {"false"}}); status != http.StatusForbidden {
		t.Fatalf("4th login in the window = %d, want 403", status)
	}
	if status, _ := b.do("GET", "/user/login/", nil); status != http.StatusNotFound {
		t.Fatalf("trailing slash = %d", status)
	}
}

func TestUpdateMyInformationMailsOldAndNewAddress(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	oldEmail, newEmail := uniqueEmail("old"), uniqueEmail("new")
	b := f.signUp(t, hostA, "mover_1", oldEmail)
	f.deliver(t, oldEmail, 1)

	want(t, "invalid", b.post("/user/update-my-information", "firstname", "", "lastname", "Doe", "email_address", "bad"),
		`{"errors":{"email-address":[{"description":"Please enter a valid email address. For example johndoe@domain.com.","type":"not_valid"}],"firstname":[{"description":"This is a required field.","type":"required"}],"lastname":true},"update_my_information":"errors"}`)
	want(t, "same address", b.post("/user/update-my-information", "firstname", "Janet", "lastname", "Doe", "email_address", oldEmail),
		`{"update_my_information":"success"}`)
	content := b.call("GET", "/user/account-content", nil)["account_content"].(map[string]any)
	if content["personal_data"].(map[string]any)["first_name"] != "Janet" {
		t.Fatalf("name not saved: %v", content)
	}
	want(t, "new address", b.post("/user/update-my-information", "firstname", "Janet", "lastname", "Doe", "email_address", newEmail),
		`{"update_my_information":"success"}`)
	got := f.deliver(t, newEmail, 1)[0]
	if got.Subject != "Email Address Changed on "+frontend || len(got.To) != 2 || !strings.Contains(got.Text, oldEmail) ||
		codeRE.FindStringSubmatch(got.Text) == nil {
		t.Fatalf("email-changed mail = %+v", got)
	}
	if n := f.mp.Count(t, `to:"`+oldEmail+`"`); n != 2 {
		t.Fatalf("old address got %d mails, want welcome + change notice", n)
	}
	content = b.call("GET", "/user/account-content", nil)["account_content"].(map[string]any)
	want(t, "email_data", content["email_data"], `{"email_address":"`+newEmail+`","email_verified":false,"verification_request_sent_within_24_hours":true}`)
	code := codeRE.FindStringSubmatch(got.Text)[1]
	want(t, "verify new", b.post("/user/verify-email-address-response", "email_verification_code", code), `{"verify_email_address_response":"success"}`)
}
