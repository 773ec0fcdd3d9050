package signup

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/tenant/admin"
)

const founderPassword = "Founder-Pass-42!"

// reply is one answer of the site.
type reply struct {
	code     int
	location string
	body     string
	cookies  []*http.Cookie
}

// send makes a request to the site with the CSRF pair, the founder's
// session cookie (when given) and the client address addr.
func (h *harness) send(method, path string, form url.Values, session string) reply {
	h.t.Helper()
	var body io.Reader
	if form != nil {
		form.Set("csrf", strings.Repeat("c", 43))
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, "http://www.example.test"+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.AddCookie(&http.Cookie{Name: csrfCookie, Value: strings.Repeat("c", 43)})
	if session != "" {
		req.AddCookie(&http.Cookie{Name: founderCookie, Value: session})
	}
	resp, err := h.site.App().Test(req, 30_000)
	if err != nil {
		h.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header.Get("Location"), string(b), resp.Cookies()}
}

// shopOf creates a live tenant whose owner and founder is email, as a
// finished sign-up leaves them.
func (h *harness) shopOf(email, slug string) registry.Tenant {
	h.t.Helper()
	ctx := context.Background()
	req := provisiontestRequest(slug)
	req.Plan = planForSignUps
	tn, err := h.env.Service.Create(ctx, req, "test")
	if err != nil {
		h.t.Fatal(err)
	}
	hash, err := h.opts.Hasher.Hash(founderPassword)
	if err != nil {
		h.t.Fatal(err)
	}
	err = h.env.Service.InTenant(ctx, slug, func(ctx context.Context, tx pgx.Tx) error {
		_, err := admin.CreateOwnerHash(ctx, tx, email, "Founder", hash, "test")
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, h.env.Platform, func(tx pgx.Tx) error { return linkFounder(ctx, tx, email, hash, tn.ID) }); err != nil {
		h.t.Fatal(err)
	}
	return tn
}

var onwardRE = regexp.MustCompile(`http-equiv="refresh" content="0;url=([^"]+)"`)

// onward is where a page that moves on by itself goes ("" for none).
func onward(page string) string {
	m := onwardRE.FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// signIn signs email in and returns the session cookie's value.
func (h *harness) signIn(email string) string {
	h.t.Helper()
	r := h.send("POST", "/signin", url.Values{"email": {email}, "password": {founderPassword}}, "")
	if r.code != 303 || r.location != "/shops" {
		h.t.Fatalf("sign in %s: %d %q\n%s", email, r.code, r.location, r.body)
	}
	for _, c := range r.cookies {
		if c.Name == founderCookie && c.Value != "" {
			return c.Value
		}
	}
	h.t.Fatalf("sign in %s: no session cookie in %v", email, r.cookies)
	return ""
}

func (h *harness) planOf(tenantID int64) string {
	h.t.Helper()
	var plan string
	if err := h.env.Platform.QueryRow(context.Background(), `SELECT plan FROM tenants WHERE id = $1`, tenantID).Scan(&plan); err != nil {
		h.t.Fatal(err)
	}
	return plan
}

func (h *harness) count(sql string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.env.Platform.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// TestFounderSignIn: the founder signs in with the sign-up's password and
// gets a session cookie of the site; a wrong password and an unknown
// address get the very same answer; signing out ends the session.
func TestFounderSignIn(t *testing.T) {
	h := newHarness(t, nil)
	email := "signin-" + strings.ToLower(pgtest.RandomName("f")) + "@example.test"
	h.shopOf(email, "signin-shop")

	if r := h.send("GET", "/shops", nil, ""); r.code != 303 || r.location != "/signin" {
		t.Errorf("/shops signed out: %d %q, want 303 to /signin", r.code, r.location)
	}
	wrong := h.send("POST", "/signin", url.Values{"email": {email}, "password": {"Wrong-Pass-42!"}}, "")
	unknown := h.send("POST", "/signin", url.Values{"email": {"nobody@example.test"}, "password": {"Wrong-Pass-42!"}}, "")
	if wrong.code != 401 || unknown.code != 401 {
		t.Errorf("refusals: wrong password %d, unknown email %d, want 401 both", wrong.code, unknown.code)
	}
	if strings.ReplaceAll(wrong.body, email, "X") != strings.ReplaceAll(unknown.body, "nobody@example.test", "X") {
		t.Errorf("a wrong password and an unknown email answer differently:\n%s\n---\n%s", wrong.body, unknown.body)
	}
	if !strings.Contains(wrong.body, "do not match an account") {
		t.Errorf("refusal page:\n%s", wrong.body)
	}
	for _, r := range []reply{wrong, unknown} {
		for _, c := range r.cookies {
			if c.Name == founderCookie {
				t.Errorf("a refused sign-in set a session cookie")
			}
		}
	}

	r := h.send("POST", "/signin", url.Values{"email": {strings.ToUpper(email)}, "password": {founderPassword}}, "")
	if r.code != 303 || r.location != "/shops" {
		t.Fatalf("sign in: %d %q\n%s", r.code, r.location, r.body)
	}
	var session *http.Cookie
	for _, c := range r.cookies {
		if c.Name == founderCookie {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.Path != "/" || session.SameSite != http.SameSiteLaxMode || len(session.Value) != 43 {
		t.Fatalf("session cookie %+v: want HttpOnly, Path=/, SameSite=Lax", session)
	}
	if page := h.send("GET", "/shops", nil, session.Value); page.code != 200 || !strings.Contains(page.body, "signin-shop.example.test") {
		t.Fatalf("/shops signed in: %d\n%s", page.code, page.body)
	}
	if out := h.send("POST", "/signout", url.Values{}, session.Value); out.code != 200 || !strings.Contains(out.body, "signed out") {
		t.Errorf("sign out: %d\n%s", out.code, out.body)
	}
	if again := h.send("GET", "/shops", nil, session.Value); again.code != 303 {
		t.Errorf("/shops with the ended session: %d, want 303 to /signin", again.code)
	}
	// The form needs its CSRF pair.
	req := httptest.NewRequest("POST", "http://www.example.test/signin", strings.NewReader(url.Values{"email": {email}, "password": {founderPassword}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := h.site.App().Test(req, 30_000); err != nil || resp.StatusCode != 403 {
		t.Errorf("sign in without the CSRF token: %v %v, want 403", resp.StatusCode, err)
	}
}

// TestFounderSignInRateLimit: attempts are counted per email (whatever the
// address) and per client address (whatever the email); over the rate even
// the right password is refused, until the window passes.
func TestFounderSignInRateLimit(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.SignInRate = ratelimit.Rate{N: 3, Window: time.Hour} })
	email := "limit-" + strings.ToLower(pgtest.RandomName("f")) + "@example.test"
	h.shopOf(email, "limit-shop")
	for i := range 3 {
		if r := h.send("POST", "/signin", url.Values{"email": {email}, "password": {"Wrong-Pass-42!"}}, ""); r.code != 401 {
			t.Fatalf("attempt %d: %d, want 401", i+1, r.code)
		}
	}
	r := h.send("POST", "/signin", url.Values{"email": {email}, "password": {founderPassword}}, "")
	if r.code != 429 || !strings.Contains(r.body, "Too many") {
		t.Errorf("4th attempt with the right password: %d, want 429\n%s", r.code, r.body)
	}
	// The address is over its rate too: another email is refused as well.
	if r := h.send("POST", "/signin", url.Values{"email": {"other@example.test"}, "password": {"x"}}, ""); r.code != 429 {
		t.Errorf("another email from the same address: %d, want 429", r.code)
	}
	h.mu.Lock()
	h.now = h.now.Add(time.Hour)
	h.mu.Unlock()
	h.signIn(email)
	// Per email, from other addresses: the site trusts no proxy here, so
	// the email's count is checked by going over it alone.
	for range 3 {
		h.send("POST", "/signin", url.Values{"email": {"x" + email}, "password": {"x"}}, "")
	}
	if r := h.send("POST", "/signin", url.Values{"email": {"X" + strings.ToUpper(email)}, "password": {"x"}}, ""); r.code != 429 {
		t.Errorf("email over its rate (in other case): %d, want 429", r.code)
	}
}

// TestFounderSeesOnlyOwnShops: /shops lists the founder's shops only;
// another founder's shop is neither listed nor opened nor re-planned.
func TestFounderSeesOnlyOwnShops(t *testing.T) {
	h := newHarness(t, nil)
	suffix := strings.ToLower(pgtest.RandomName("f"))
	a, b := "a-"+suffix+"@example.test", "b-"+suffix+"@example.test"
	mine := h.shopOf(a, "mine-shop")
	theirs := h.shopOf(b, "theirs-shop")
	session := h.signIn(a)

	page := h.send("GET", "/shops", nil, session)
	if page.code != 200 || !strings.Contains(page.body, `id="shop-mine-shop"`) || strings.Contains(page.body, "theirs-shop") {
		t.Fatalf("/shops of a: %d\n%s", page.code, page.body)
	}
	for _, want := range []string{"https://mine-shop.example.test/", "active", "Free", `action="/shops/mine-shop/back-office"`, `value="pro"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("/shops lacks %q", want)
		}
	}
	if r := h.send("POST", "/shops/theirs-shop/back-office", url.Values{}, session); r.code != 404 || r.location != "" {
		t.Errorf("handoff into another founder's shop: %d %q, want 404", r.code, r.location)
	}
	if r := h.send("POST", "/shops/theirs-shop/plan", url.Values{"plan": {"business"}}, session); r.code != 404 {
		t.Errorf("plan change of another founder's shop: %d, want 404", r.code)
	}
	if got := h.planOf(theirs.ID); got != "free" {
		t.Errorf("their shop's plan is %s", got)
	}
	r := h.send("POST", "/shops/mine-shop/back-office", url.Values{}, session)
	prefix := "https://mine-shop.example.test" + admin.HandoffPath + "?token="
	link := onward(r.body)
	if r.code != 200 || !strings.HasPrefix(link, prefix) {
		t.Fatalf("handoff into my shop: %d %q\n%s", r.code, link, r.body)
	}
	// The handoff is the back office's single-use one: its key is there once.
	tok, _ := url.QueryUnescape(strings.TrimPrefix(link, prefix))
	keys, err := h.opts.Redis.Keys(context.Background(), h.opts.RedisPrefix+fmt.Sprint(mine.ID)+":staffhandoff:*").Result()
	if err != nil || len(keys) != 1 || tok == "" {
		t.Errorf("handoff keys %v (%v) for token %q, want one", keys, err, tok)
	}
}

// TestFounderFreePlanChange: a free plan applies at once and the registry's
// audit log names the founder.
func TestFounderFreePlanChange(t *testing.T) {
	h := newHarness(t, nil)
	email := "free-" + strings.ToLower(pgtest.RandomName("f")) + "@example.test"
	tn := h.shopOf(email, "free-shop")
	if _, err := h.env.Platform.Exec(context.Background(), `UPDATE tenants SET plan = 'pro' WHERE id = $1`, tn.ID); err != nil {
		t.Fatal(err)
	}
	session := h.signIn(email)
	if r := h.send("POST", "/shops/free-shop/plan", url.Values{"plan": {"standard"}}, session); r.code != 400 {
		t.Errorf("an unlisted plan: %d, want 400", r.code)
	}
	r := h.send("POST", "/shops/free-shop/plan", url.Values{"plan": {"free"}}, session)
	if r.code != 303 || r.location != "/shops?done=changed" {
		t.Fatalf("change to free: %d %q\n%s", r.code, r.location, r.body)
	}
	if got := h.planOf(tn.ID); got != "free" {
		t.Fatalf("plan after the change: %s, want free", got)
	}
	var founderID int64
	if err := h.env.Platform.QueryRow(context.Background(), `SELECT id FROM founders WHERE email = $1`, email).Scan(&founderID); err != nil {
		t.Fatal(err)
	}
	if n := h.count(`SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'tenant.plan' AND actor = $2
AND before->>'plan' = 'pro' AND after->>'plan' = 'free'`, tn.ID, founderActor(founderID)); n != 1 {
		t.Errorf("audit entries of the change by the founder: %d, want 1", n)
	}
	if page := h.send("GET", "/shops?done=changed", nil, session); !strings.Contains(page.body, "Your plan is changed") {
		t.Errorf("/shops after the change:\n%s", page.body)
	}
}

// TestFounderPaidPlan: a paid plan goes through a Checkout Session of the
// platform's Stripe account, created against stripe-mock; the plan changes
// when the signed webhook reports the subscription active, exactly once
// even when the event is delivered twice at the same moment, and goes back
// to free when the subscription is deleted. stripe-mock sends no webhooks,
// so the test builds and signs each event itself, as Stripe would send it;
// no other stand-in is needed.
func TestFounderPaidPlan(t *testing.T) {
	base := pgtest.Service(t, "SWA_STRIPE_API_BASE")
	const secret = "whsec_platform_test"
	h := newHarness(t, func(o *Options) {
		o.Billing = Billing{SecretKey: "sk_test_platform", WebhookSecret: secret, APIBase: base}
	})
	email := "paid-" + strings.ToLower(pgtest.RandomName("f")) + "@example.test"
	tn := h.shopOf(email, "paid-shop")
	session := h.signIn(email)

	r := h.send("POST", "/shops/paid-shop/plan", url.Values{"plan": {"pro"}}, session)
	if r.code != 200 || !strings.HasPrefix(onward(r.body), "https://checkout.stripe.com/") {
		t.Fatalf("choose pro: %d %q\n%s", r.code, onward(r.body), r.body)
	}
	if got := h.planOf(tn.ID); got != "free" {
		t.Errorf("plan before Stripe confirms: %s, want free", got)
	}
	var founderID int64
	if err := h.env.Platform.QueryRow(context.Background(), `SELECT id FROM founders WHERE email = $1`, email).Scan(&founderID); err != nil {
		t.Fatal(err)
	}
	if n := h.count(`SELECT count(*) FROM billing_customers WHERE founder_id = $1 AND stripe_customer_id LIKE 'cus_%'`, founderID); n != 1 {
		t.Errorf("billing customers of the founder: %d, want 1", n)
	}
	var priceID string
	if err := h.env.Platform.QueryRow(context.Background(), `SELECT stripe_price_id FROM billing_prices WHERE plan = 'pro' AND monthly_price_cents = 2900`).Scan(&priceID); err != nil {
		t.Fatalf("pro's price is not remembered: %v", err)
	}
	// A second checkout reuses the customer and the price.
	if r := h.send("POST", "/shops/paid-shop/plan", url.Values{"plan": {"pro"}}, session); r.code != 200 || onward(r.body) == "" {
		t.Errorf("second checkout: %d", r.code)
	}
	if n := h.count(`SELECT count(*) FROM billing_customers`) + h.count(`SELECT count(*) FROM billing_prices`); n != 2 {
		t.Errorf("customers + prices after two checkouts: %d, want 2", n)
	}

	meta := fmt.Sprintf(`{"tenant_id":"%d","founder_id":"%d","plan":"pro"}`, tn.ID, founderID)
	event := func(id, typ, status string, created time.Time) ([]byte, string) {
		body := fmt.Appendf(nil, `{"id":%q,"object":"event","api_version":"2023-10-16","created":%d,"type":%q,"data":{"object":`+
			`{"id":"sub_paidshop","object":"subscription","status":%q,"customer":"cus_x","metadata":%s,`+
			`"items":{"object":"list","data":[{"id":"si_1","object":"subscription_item","price":{"id":%q,"object":"price"}}]}}}}`,
			id, created.Unix(), typ, status, meta, priceID)
		return body, webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()}).Header
	}
	deliver := func(body []byte, sig string) reply {
		req := httptest.NewRequest("POST", "http://www.example.test/billing/webhook", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Stripe-Signature", sig)
		resp, err := h.site.App().Test(req, 30_000)
		if err != nil {
			t.Error(err)
			return reply{}
		}
		b, _ := io.ReadAll(resp.Body)
		return reply{code: resp.StatusCode, body: string(b)}
	}

	body, sig := event("evt_active", "customer.subscription.created", "active", time.Now())
	if r := deliver(body, sig[:len(sig)-2]+"00"); r.code != 400 {
		t.Errorf("a bad signature: %d, want 400", r.code)
	}
	if r := deliver(append([]byte(" "), body...), sig); r.code != 400 {
		t.Errorf("a changed body: %d, want 400", r.code)
	}
	if got := h.planOf(tn.ID); got != "free" {
		t.Fatalf("plan after refused deliveries: %s", got)
	}

	// The same event twice at once.
	replies := make([]reply, 2)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range replies {
		wg.Go(func() { <-start; replies[i] = deliver(body, sig) })
	}
	close(start)
	wg.Wait()
	outcomes := map[string]int{}
	for i, r := range replies {
		if r.code != 200 {
			t.Fatalf("delivery %d: %d %s", i, r.code, r.body)
		}
		for _, o := range []string{outcomeApplied, outcomeDuplicate} {
			if strings.Contains(r.body, `"outcome":"`+o+`"`) {
				outcomes[o]++
			}
		}
	}
	if outcomes[outcomeApplied] != 1 || outcomes[outcomeDuplicate] != 1 {
		t.Errorf("outcomes of the two deliveries %v, want one applied and one duplicate", outcomes)
	}
	if got := h.planOf(tn.ID); got != "pro" {
		t.Fatalf("plan after the subscription is active: %s, want pro", got)
	}
	if n := h.count(`SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'tenant.plan' AND after->>'plan' = 'pro'`, tn.ID); n != 1 {
		t.Errorf("audit entries of the change to pro: %d, want exactly 1", n)
	}
	if n := h.count(`SELECT count(*) FROM billing_events WHERE id = 'evt_active' AND outcome = 'applied'`); n != 1 {
		t.Errorf("recorded events: %d, want 1", n)
	}
	if page := h.send("GET", "/shops", nil, session); !strings.Contains(page.body, "Pro") || !strings.Contains(page.body, "subscription active") {
		t.Errorf("/shops after the upgrade:\n%s", page.body)
	}

	// An older event delivered late changes nothing.
	body, sig = event("evt_old", "customer.subscription.updated", "canceled", time.Now().Add(-time.Hour))
	if r := deliver(body, sig); r.code != 200 || !strings.Contains(r.body, outcomeStale) {
		t.Errorf("older event: %d %s, want stale", r.code, r.body)
	}
	if got := h.planOf(tn.ID); got != "pro" {
		t.Errorf("plan after a stale event: %s, want pro", got)
	}
	// An event of a type the platform does not act on is recorded, once.
	other := fmt.Appendf(nil, `{"id":"evt_invoice","object":"event","type":"invoice.paid","created":%d,"data":{"object":{"id":"in_1","object":"invoice"}}}`, time.Now().Unix())
	otherSig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: other, Secret: secret, Timestamp: time.Now()}).Header
	if r := deliver(other, otherSig); r.code != 200 || !strings.Contains(r.body, outcomeIgnored) {
		t.Errorf("invoice.paid: %d %s, want ignored", r.code, r.body)
	}

	body, sig = event("evt_deleted", "customer.subscription.deleted", "canceled", time.Now().Add(time.Second))
	if r := deliver(body, sig); r.code != 200 {
		t.Fatalf("deleted: %d %s", r.code, r.body)
	}
	if got := h.planOf(tn.ID); got != "free" {
		t.Errorf("plan after the subscription is deleted: %s, want free", got)
	}
	if r := deliver(body, sig); r.code != 200 || !strings.Contains(r.body, outcomeDuplicate) {
		t.Errorf("deleted again: %d %s, want duplicate", r.code, r.body)
	}
	if n := h.count(`SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'tenant.plan' AND actor = 'billing'`, tn.ID); n != 2 {
		t.Errorf("plan changes by billing: %d, want 2 (to pro, back to free)", n)
	}
}
