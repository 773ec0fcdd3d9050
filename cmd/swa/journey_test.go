package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/mail/mailpit"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// shopper is a browser-like client of the StartupWebApp frontend at
// http://localhost:8080 calling the startupwebapp tenant, with cookies.
type shopper struct {
	t      *testing.T
	base   string
	client *http.Client
}

func (s *shopper) do(method, path string, form url.Values) map[string]any {
	s.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, s.base+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Host = "localhost"
	req.Header.Set("Origin", "http://localhost:8080")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
		// The jar files cookies under the Host the request named.
		for _, c := range s.client.Jar.Cookies(&url.URL{Scheme: "http", Host: "localhost"}) {
			if c.Name == "csrftoken" {
				req.Header.Set("X-CSRFToken", c.Value)
			}
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, raw)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://localhost:8080" {
		s.t.Fatalf("%s %s: Access-Control-Allow-Origin = %q", method, path, got)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		s.t.Fatalf("%s %s: %v in %s", method, path, err, raw)
	}
	return v
}

// TestDevShopperJourney drives the wiring of swa dev the way the frontend
// does: token, anonymous cart, sign-up (which adopts the cart), and the
// welcome mail delivered by the data plane's outbox worker to Mailpit.
func TestDevShopperJourney(t *testing.T) {
	mp := mailpit.New(pgtest.Service(t, "SWA_MAILPIT_URL"))
	h := newDevHarness(t)
	h.start()
	jar, _ := cookiejar.New(nil)
	s := &shopper{t: t, base: h.urls.Data, client: &http.Client{Jar: jar, Timeout: 10 * time.Second}}

	s.do(http.MethodGet, "/user/token", nil)
	if got := s.do(http.MethodPost, "/order/cart-add-product-sku", url.Values{"sku_id": {"1"}, "quantity": {"2"}}); got["cart_add_product_sku"] != "success" {
		t.Fatalf("add to cart: %v", got)
	}
	user := pgtest.RandomName("shopper")
	email := user + "@example.com"
	got := s.do(http.MethodPost, "/user/create-account", url.Values{
		"firstname": {"Sam"}, "lastname": {"Shopper"}, "username": {user}, "email_address": {email},
		"password": {"Xq7!journey#Pw"}, "confirm_password": {"Xq7!journey#Pw"},
		"newsletter": {"false"}, "remember_me": {"true"},
	})
	if got["create_account"] != "true" {
		t.Fatalf("create account: %v", got)
	}
	if got := s.do(http.MethodGet, "/user/logged-in", nil); got["logged_in"] != true || got["email_address"] != email {
		t.Fatalf("logged-in: %v", got)
	}
	items := s.do(http.MethodGet, "/order/cart-items", nil)
	skus, _ := items["item_data"].(map[string]any)["product_sku_data"].(map[string]any)
	if line, _ := skus["0"].(map[string]any); line == nil || line["sku_id"] != float64(1) || line["quantity"] != float64(2) {
		t.Fatalf("the anonymous cart was not adopted at sign-up: %v", items)
	}
	msgs := mp.Wait(t, "to:"+email, 1, 30*time.Second)
	if len(msgs) == 0 {
		t.Fatal("no mail reached Mailpit")
	}
}
