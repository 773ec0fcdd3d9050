package importer_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/admin"
	"github.com/startupwebapp/platform/tenant/shop"
)

// dataPlane is the data plane as swa serve wires it (directory, pools,
// sessions, CSRF, the accounts and shop apps), on the test's registry.
type dataPlane struct {
	app *fiber.App
}

func newDataPlane(t *testing.T, e *env) *dataPlane {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	dir := directory.New(directory.Options{DB: e.Platform, BaseDomain: "example.test", Log: log})
	if err := dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	pm, err := pools.New(pools.Options{Secrets: e.Secrets, ConnParams: "sslmode=disable", MaxConns: 4, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pm.CloseAll)
	rdb, prefix := pgtest.Redis(t)
	key := csrf.BundleKey(e.Secrets, time.Minute)
	sess := sessions.New(sessions.Options{Redis: rdb, Prefix: prefix, Log: log})
	accounts := account.New(account.Options{DB: pm, Key: account.KeyFunc(key), Sessions: sess, Log: log,
		// Cheap new hashes; the imported pbkdf2 hashes cost what they cost.
		Hasher: account.NewHasher(account.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})})
	shopApp := shop.New(shop.Options{Pools: pm, Payments: payments.New(payments.Options{Secrets: e.Secrets, Log: log}),
		Key: shop.KeyFunc(key), Account: accounts.SessionClaim, Log: log})
	// A 1,000,000-iteration pbkdf2 check takes seconds under the race
	// detector: the request deadline is generous.
	back := admin.New(admin.Options{DB: pm, Key: admin.KeyFunc(key), Redis: rdb, Prefix: prefix, Log: log,
		Hasher: account.NewHasher(account.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})})
	app := server.New(server.Options{Directory: dir, Pools: pm, Log: log, Env: "dev", RequestTimeout: 2 * time.Minute,
		Middleware: []fiber.Handler{sess.Handler(), csrf.New(csrf.Options{Key: key, Log: log, ExemptPrefixes: []string{"/admin/"}}).Handler()},
		Apps:       []server.App{accounts, shopApp, back}})
	return &dataPlane{app: app}
}

// browser is one visitor of a tenant, with its cookies.
type browser struct {
	t       *testing.T
	h       *dataPlane
	host    string
	cookies map[string]string
}

func (h *dataPlane) browser(t *testing.T, slug string) *browser {
	return &browser{t: t, h: h, host: slug + ".example.test", cookies: map[string]string{}}
}

func (b *browser) do(method, path string, form url.Values) map[string]any {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, "http://"+b.host+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	var jar []string
	for k, v := range b.cookies {
		jar = append(jar, k+"="+v)
	}
	req.Header.Set("Cookie", strings.Join(jar, "; "))
	if tok := b.cookies["csrftoken"]; tok != "" {
		req.Header.Set("X-CSRFToken", tok)
	}
	res, err := b.h.app.Test(req, -1)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	for _, ck := range res.Cookies() {
		if ck.MaxAge < 0 {
			delete(b.cookies, ck.Name)
		} else {
			b.cookies[ck.Name] = ck.Value
		}
	}
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		b.t.Fatalf("%s %s = %d %s", method, path, res.StatusCode, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		b.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
	}
	return out
}

func (b *browser) get(path string) map[string]any { return b.do(http.MethodGet, path, nil) }

func (b *browser) post(path string, form url.Values) map[string]any {
	if b.cookies["csrftoken"] == "" {
		b.get("/user/token")
	}
	return b.do(http.MethodPost, path, form)
}

// login signs in and returns the answer's "login" value.
func (b *browser) login(username, password string) any {
	return b.post("/user/login", url.Values{"username": {username}, "password": {password}, "remember_me": {"false"}})["login"]
}

// staffSignIn signs in to the back office's API and returns its status and
// answer.
func (b *browser) staffSignIn(email, password string) (int, map[string]any) {
	b.t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	req := httptest.NewRequest(http.MethodPost, "http://"+b.host+admin.APIPrefix+"/session", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	res, err := b.h.app.Test(req, -1)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(raw, &out)
	return res.StatusCode, out
}
