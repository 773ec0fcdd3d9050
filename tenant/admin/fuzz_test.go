package admin_test

import (
	"context"
	"fmt"
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
		{"POST", "/products", true},
		{"PATCH", "/products/1", true},
		{"PUT", "/products/1/skus/2", true},
		{"DELETE", "/products/1/skus/1", true},
		{"POST", "/skus", true},
		{"PATCH", "/skus/1", true},
		{"POST", "/skus/1/prices", true},
		{"PATCH", "/shipping-methods/1", true},
		{"POST", "/discount-codes", true},
		{"PATCH", "/discount-codes/1", true},
		{"PUT", "/settings", true},
		{"POST", "/ads", true},
		{"PATCH", "/ads/1", true},
		{"POST", "/campaigns", true},
		{"PUT", "/campaigns/3", true},
		{"POST", "/terms", true},
		{"POST", "/orders/Fuzz1/status", true},
		{"POST", "/orders/Fuzz1/refunds", true},
	}
	for i := range routes {
		for _, body := range []string{"", "{}", "null", "[]", `{"email":5}`, "\x00\xff{",
			`{"email":"x@example.com","role":"staff","name":"Nan","code":"123456","recovery_code":"abcd-efgh","password":"Fuzz-Pass-2026!","token":"t","active":false}`,
			`{"role":"owner","active":true}`, `{"name":"` + string(make([]byte, 300)) + `"}`,
			`{"title":"T","title_url":"T","images":[{"url":"/i.jpg"}],"price":"1.00","inventory":"in-stock","product_id":1}`,
			`{"price":1e400,"amount":"99999999.99","shipping_cost":-0.001,"display_order":1e10}`,
			`{"status":"shipped","shipping_method":"UPSGround","tracking_number":"1Z","notify":true}`,
			`{"code":"F","description":"d","start_date_time":"2026-01-01T00:00:00Z","end_date_time":"x","discount_amount":"1","discount_type":"percent-off"}`,
			`{"version_note":"v","publication_date_time":"0000-00-00"}`,
			`{"archived":true,"shop_name":"S","frontend_origin":"https://a.example","primary_color":"#000000","logo_url":"javascript:x"}`,
			`{"ad_type":"Facebook","headline_1":"H","final_url":"https://x.example","ad_status":"Running"}`,
			`{"subject":"S","type":"member","from_address":"a@b.c","body_text":"Hi {recipient_first_name} {nope}","body_html":"<p>{em_cd}</p>"}`} {
			f.Add(uint8(i), body)
		}
	}
	off := map[string]ratelimit.Rate{"admin_login": {}, "admin_login_account": {}, "admin_reset": {}, "admin_link": {}}
	fx := newFixture(f, fixtureOptions{limits: off})
	owner := fx.signIn(hostA, fx.owner[fx.a.ID], ownerPassword)
	// An order to move and refund (stripe-mock answers the refunds).
	seedOrder(f, fx.dbs[fx.a.ID], "Fuzz1", "fuzz@example.com", "10.00")
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
		before := fx.rowsFingerprint(t)
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
			// A refusal wrote nothing (a refund Stripe refused keeps its
			// row, marked failed, so refunds are not counted by status).
			if after := fx.rowsFingerprint(t); after != before && status != 502 {
				t.Fatalf("%s %s %q = %d but rows changed: %s -> %s", rt.method, rt.path, body, status, before, after)
			}
		}
	})
}

// FuzzCSVImport uploads arbitrary files as either import kind: every
// answer is below 500 with the error shape when refused, the dry run
// writes nothing, and applying either writes every row it reported or
// nothing at all.
func FuzzCSVImport(f *testing.F) {
	for _, seed := range []string{
		prospectsCSV,
		"email\n", "", "\xef\xbb\xbfemail,first_name\nx@example.com,X\n", "email;phone\na@b.c;1\n",
		"email,first_name\n\"unterminated,x\n", "email\n\xff\xfe\n", "email,first_name\na@example.com,\x00\n",
		"product_identifier,product_title,product_title_url,sku_color,price\np1,P,p,red,1.00\np1,,,red,abc\np2,,,,-1\n",
		"product_identifier,price\np1,99999999.99\np1,1e3\n",
	} {
		f.Add(uint8(0), seed)
		f.Add(uint8(1), seed)
	}
	fx := newFixture(f, fixtureOptions{})
	owner := fx.signIn(hostA, fx.owner[fx.a.ID], ownerPassword)
	const state = `SELECT (SELECT count(*) FROM prospect) + (SELECT count(*) FROM product) + (SELECT count(*) FROM sku) + (SELECT count(*) FROM sku_price)`
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		kind := importKindsForFuzz[int(which)%len(importKindsForFuzz)]
		c := *owner
		c.t = t
		c.cookies = map[string]string{}
		for k, v := range owner.cookies {
			c.cookies[k] = v
		}
		count := func() int {
			var n int
			if err := fx.dbs[fx.a.ID].QueryRow(context.Background(), state).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := count()
		status, out := c.uploadCSV(kind, "fuzz.csv", []byte(body))
		if status >= 500 || status == 0 {
			t.Fatalf("upload %s %q = %d %s", kind, body, status, c.raw)
		}
		if status >= 400 {
			if _, ok := out["error"].(string); !ok {
				t.Fatalf("upload %q = %d without the error shape: %s", body, status, c.raw)
			}
			return
		}
		if after := count(); after != before {
			t.Fatalf("the dry run of %q wrote: %d rows became %d", body, before, after)
		}
		applied := c.must(202, "POST", fmt.Sprintf("%s/imports/%v/apply", api, out["id"]), nil)
		done := c.waitJob(applied["id"])
		if done["status"] != "done" {
			t.Fatalf("job of %q = %s", body, c.raw)
		}
		n := counts(t, done["result"])
		after := count()
		if n["create"]+n["update"] == 0 && after != before {
			t.Fatalf("a job that reported no change wrote: %q", body)
		}
		if n["create"] > 0 && after <= before {
			t.Fatalf("a job that reported creations wrote nothing: %q", body)
		}
	})
}

// importKindsForFuzz are the kinds the fuzz target picks from.
var importKindsForFuzz = []string{"prospects", "catalog"}

// rowsFingerprint counts the rows the catalogue, order and refund routes
// write, to see that a refused request wrote none.
func (f *fixture) rowsFingerprint(t testing.TB) string {
	var s string
	err := f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT concat_ws(',',
(SELECT count(*) FROM product), (SELECT count(*) FROM product_image), (SELECT count(*) FROM product_video),
(SELECT count(*) FROM product_sku), (SELECT count(*) FROM sku), (SELECT count(*) FROM sku_price),
(SELECT count(*) FROM discount_code), (SELECT count(*) FROM terms_of_use_version), (SELECT count(*) FROM refund),
(SELECT count(*) FROM order_status_history), (SELECT count(*) FROM order_shipping_method), (SELECT count(*) FROM email_outbox),
(SELECT md5(string_agg(id || active::text || shipping_cost::text, ',' ORDER BY id)) FROM shipping_method),
(SELECT md5(string_agg(dc::text, ',' ORDER BY id)) FROM discount_code dc),
(SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM ad x), (SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM email x),
(SELECT md5(string_agg(id || coalesce(archived_at::text, '-'), ',' ORDER BY id)) FROM product))`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	var settings string
	if err := f.reg.QueryRow(context.Background(), `SELECT md5(display_name || settings::text) FROM tenants WHERE id = $1`, f.a.ID).Scan(&settings); err != nil {
		t.Fatal(err)
	}
	return s + "," + settings
}
