package importer_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/importer"
	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/provision/provisiontest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/tenant/account"
)

// restoreFixture restores testdata/django-startupwebapp.sql (a pg_dump of
// the original Django app's database) into a new database with psql, as an
// operator would, and returns its connection string. psql must know the
// \restrict meta-command the dump opens with (psql 15.14+, 16.10+, 17.6+).
func restoreFixture(t *testing.T) string {
	t.Helper()
	admin := pgtest.AdminURL(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatalf("psql is needed to restore the fixture: %v", err)
	}
	name := pgtest.RandomName("django_")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pgtest.Drop(t, admin, name) })
	dsn := pgtest.WithDatabase(admin, name)
	out, err := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn,
		"-f", filepath.Join("testdata", "django-startupwebapp.sql")).CombinedOutput()
	if err != nil {
		t.Fatalf("psql restore: %v\n%s", err, out)
	}
	return dsn
}

func exec1(t *testing.T, dsn string, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

type env struct {
	*provisiontest.Env
	runner *importer.Runner
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := provisiontest.New(t, provisiontest.Config{Tag: "imp"})
	return &env{Env: e, runner: &importer.Runner{Provision: e.Service, Secrets: e.Secrets}}
}

// tenantDSN connects to a tenant's database as the cluster's admin (for the
// test's own reads).
func (e *env) tenantDSN(t *testing.T, slug string) string {
	t.Helper()
	tn, err := e.Registry.Tenant(context.Background(), slug)
	if err != nil {
		t.Fatal(err)
	}
	return pgtest.WithDatabase(e.AdminURL, tn.DBName)
}

// counts compares every imported table's row count with its source's.
// platformRows are reference rows every tenant has that the original app
// has not: the back office's order states delivered, cancelled and refunded
// (tenant migration 00006).
var platformRows = map[string]int64{"order_status": 3}

func checkCounts(t *testing.T, rep *importer.Report, src, dst string) {
	t.Helper()
	ctx := context.Background()
	s, err := pgx.Connect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	d, err := pgx.Connect(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	if len(rep.Tables) < 45 {
		t.Fatalf("the report has %d tables", len(rep.Tables))
	}
	for _, tr := range rep.Tables {
		var ns, nd int64
		if err := s.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{tr.Source}.Sanitize()).Scan(&ns); err != nil {
			t.Fatal(err)
		}
		if err := d.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{tr.Table}.Sanitize()).Scan(&nd); err != nil {
			t.Fatal(err)
		}
		if ns+platformRows[tr.Table] != nd || tr.Read != ns {
			t.Errorf("%s: source %s has %d rows, read %d, the tenant has %d (%d of the platform's own)",
				tr.Table, tr.Source, ns, tr.Read, nd, platformRows[tr.Table])
		}
	}
}

// digest is every table's content, to compare two imports: the columns
// that differ by nature (a cart's creation time is the import's, a
// re-signed unsubscribe token is keyed by the tenant) are left out.
func digest(t *testing.T, dsn string, rep *importer.Report) map[string]string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	out := map[string]string{}
	for _, tr := range rep.Tables {
		var sum string
		q := fmt.Sprintf(`SELECT coalesce(md5(string_agg((to_jsonb(x) - 'created_date_time' - 'email_unsubscribe_string_signed')::text, ',' ORDER BY x.id)), '')
			FROM %s x`, pgx.Identifier{tr.Table}.Sanitize())
		if tr.Table != "cart" {
			q = strings.Replace(q, " - 'created_date_time'", "", 1)
		}
		if err := c.QueryRow(ctx, q).Scan(&sum); err != nil {
			t.Fatal(err)
		}
		out[tr.Table] = sum
	}
	return out
}

func find(rep *importer.Report, table string) importer.TableReport {
	for _, tr := range rep.Tables {
		if tr.Table == table {
			return tr
		}
	}
	return importer.TableReport{}
}

func hasNote(notes []string, part string) bool {
	for _, n := range notes {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}

// TestImportFixture imports the fixture into a new tenant, runs the import
// again (nothing changes), checks the dry run writes nothing, and drives
// the tenant over HTTP: every member signs in with the fixture's password.
func TestImportFixture(t *testing.T) {
	e := newEnv(t)
	src := restoreFixture(t)
	ctx := context.Background()

	start := time.Now()
	rep, err := e.runner.Run(ctx, importer.Request{Slug: "legacy", Name: "Legacy shop", From: src}, "test", "op-1")
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	dst := e.tenantDSN(t, "legacy")
	checkCounts(t, rep, src, dst)
	if rep.Refused != 0 {
		t.Fatalf("the fixture has no row the tenant refuses: %+v", rep)
	}
	var lines []string
	for _, tr := range rep.Tables {
		lines = append(lines, fmt.Sprintf("%s %d/%d", tr.Table, tr.Read, tr.Written()))
	}
	t.Logf("import of the fixture in %s (report %s): %s", took.Round(time.Millisecond), time.Duration(rep.Duration).Round(time.Millisecond), strings.Join(lines, ", "))

	// What the fixture's README says the import meets.
	members := find(rep, "member")
	if !hasNote(members.Notes, "5 pending e-mail verification code(s) dropped") || !hasNote(members.Notes, "12 unsubscribe token(s) signed again") {
		t.Errorf("member notes: %q", members.Notes)
	}
	if !hasNote(find(rep, "prospect").Notes, "6 unsubscribe token(s) signed again") {
		t.Errorf("prospect notes: %q", find(rep, "prospect").Notes)
	}
	if !hasNote(find(rep, "cart").Notes, "3 anonymous cart(s)") {
		t.Errorf("cart notes: %q", find(rep, "cart").Notes)
	}
	if rep.Staff == nil || rep.Staff.Read != 1 || rep.Staff.Inserted != 1 {
		t.Errorf("staff: %+v", rep.Staff)
	}
	skipped := map[string]int64{}
	for _, s := range rep.Skipped {
		skipped[s.Table] = s.Rows
	}
	if skipped["django_session"] != 14 || skipped["auth_permission"] != 200 {
		t.Errorf("not imported: %+v", rep.Skipped)
	}
	if got, err := importer.LastReport(ctx, e.Registry, "legacy", "op-1"); err != nil || got == nil || got.Changes != rep.Changes {
		t.Fatalf("the audit log holds the operation's report: %v %v", got, err)
	}

	// Sequences: past the source's (next cart 16, next account 14).
	var nextCart, nextAccount int64
	dc, err := pgx.Connect(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close(ctx)
	if err := dc.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('cart', 'id')), nextval(pg_get_serial_sequence('account', 'id'))`).Scan(&nextCart, &nextAccount); err != nil {
		t.Fatal(err)
	}
	if nextCart != 16 || nextAccount != 14 {
		t.Fatalf("next cart id %d (want 16), next account id %d (want 14)", nextCart, nextAccount)
	}
	// The imported events are in the insight rollups.
	var rolled, views int64
	if err := dc.QueryRow(ctx, `SELECT (SELECT coalesce(sum(count), 0) FROM insight_daily WHERE metric = 'pageview'), (SELECT count(*) FROM pageview)`).Scan(&rolled, &views); err != nil {
		t.Fatal(err)
	}
	if rolled != views || views == 0 {
		t.Errorf("insight rollups count %d page views, the table holds %d", rolled, views)
	}

	// The same source again: nothing changes.
	again, err := e.runner.Run(ctx, importer.Request{Slug: "legacy", From: src}, "test", "op-2")
	if err != nil {
		t.Fatal(err)
	}
	if again.Changes != 0 || again.Refused != 0 {
		for _, tr := range again.Tables {
			if tr.Written()+tr.Deleted > 0 {
				t.Errorf("second run wrote %s: %+v", tr.Table, tr)
			}
		}
		t.Fatalf("second run: %d changes, %d refused", again.Changes, again.Refused)
	}
	checkCounts(t, again, src, dst)

	// A dry run into another tenant writes nothing and says what it would.
	if _, err := e.Service.Create(ctx, provisionRequest("dry"), "test"); err != nil {
		t.Fatal(err)
	}
	dry, err := e.runner.Run(ctx, importer.Request{Slug: "dry", From: src, DryRun: true}, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || dry.Changes != rep.Changes {
		t.Fatalf("dry run: %d changes, the real run %d", dry.Changes, rep.Changes)
	}
	var n int64
	if err := pgxCount(t, e.tenantDSN(t, "dry"), "account", &n); n != 0 || err != nil {
		t.Fatalf("the dry run wrote %d accounts (%v)", n, err)
	}
	// A newer copy of the source: what changed is reported, the rest is not.
	exec1(t, src, `UPDATE order_cart_sku SET quantity = 7 WHERE id = (SELECT min(id) FROM order_cart_sku WHERE cart_id = 9)`)
	// Checked out: the original deletes the cart, its lines and method.
	exec1(t, src, `DELETE FROM order_cart_sku WHERE cart_id = 1`)
	exec1(t, src, `DELETE FROM order_cart_shipping_method WHERE cart_id = 1`)
	exec1(t, src, `DELETE FROM order_cart WHERE id = 1`)
	exec1(t, src, `INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
		VALUES (14, 'pbkdf2_sha256$1000$abcdefghijklmnopqrstuv$AAAA', false, 'member13', 'M', 'Thirteen', 'm13@example.com', false, true, now())`)
	newer, err := e.runner.Run(ctx, importer.Request{Slug: "legacy", From: src}, "test", "op-3")
	if err != nil {
		t.Fatal(err)
	}
	if a, cs, c := find(newer, "account"), find(newer, "cart_sku"), find(newer, "cart"); a.Inserted != 1 || a.Updated != 0 ||
		cs.Updated != 1 || c.Deleted != 1 || newer.Changes != 3 {
		t.Fatalf("newer copy: account %+v, cart_sku %+v, cart %+v, %d changes", a, cs, c, newer.Changes)
	}

	h := newDataPlane(t, e)
	for i := 1; i <= 12; i++ {
		b := h.browser(t, "legacy")
		user, pw := fmt.Sprintf("member%02d", i), fmt.Sprintf("Fixture-Pass-%02d!", i)
		if got := b.login(user, pw); got != "true" {
			t.Fatalf("%s signs in: %v", user, got)
		}
		var hash string
		if err := dc.QueryRow(ctx, `SELECT password_hash FROM account WHERE username = $1`, user).Scan(&hash); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(hash, "$argon2id$") {
			t.Fatalf("%s's hash was not re-hashed: %.20s", user, hash)
		}
		if got := b.get("/user/terms-of-use-agree-check"); got["terms_of_use_agree_check"] != true {
			t.Fatalf("%s terms: %v", user, got)
		}
		switch i {
		case 1:
			content := b.get("/user/account-content")["account_content"].(map[string]any)
			orders := content["orders_data"].(map[string]any)
			if len(orders) != 2 || orders["1"].(map[string]any)["identifier"] != "dc2hvJ42Nt" || orders["2"].(map[string]any)["identifier"] != "wfJg4FdHMS" {
				t.Fatalf("member01's orders: %v", orders)
			}
			detail := b.get("/order/wfJg4FdHMS")
			data, _ := detail["order_data"].(map[string]any)
			if detail["order_detail"] != "success" || len(data["order_items"].(map[string]any)["product_sku_data"].(map[string]any)) != 2 ||
				len(data["order_statuses"].(map[string]any)) != 4 || fmt.Sprint(data["order_totals"].(map[string]any)["order_total"]) != "28.53" {
				t.Fatalf("member01's order detail: %v", detail)
			}
			if got := b.get("/order/fxJT5n5enR"); got["order_detail"] != "error" {
				t.Fatalf("member01 sees member02's order: %v", got)
			}
		}
		// The open carts of the fixture's README (member03's as the newer
		// copy changed it); the other members have none.
		want := map[int]map[float64]float64{3: {2: 7, 4: 2, 6: 2}, 8: {4: 1, 6: 3}, 10: {1: 1, 6: 1, 7: 2}}[i]
		data, _ := b.get("/order/cart-items")["item_data"].(map[string]any)
		items, _ := data["product_sku_data"].(map[string]any)
		qty := map[float64]float64{}
		for _, v := range items {
			line := v.(map[string]any)
			qty[line["sku_id"].(float64)] = line["quantity"].(float64)
		}
		if len(qty) != len(want) {
			t.Fatalf("%s's cart: %v, want %v", user, qty, want)
		}
		for sku, n := range want {
			if qty[sku] != n {
				t.Fatalf("%s's cart: %v, want %v", user, qty, want)
			}
		}
	}
	// member06's hash has 260,000 iterations, the others 1,000,000: each
	// verifies with its own count (checked above); the staff user has no
	// member row and is no member here (Q17).
	if got := h.browser(t, "legacy").login("siteadmin", "Fixture-Admin-Pass-00!"); got != "false" {
		t.Fatalf("the staff user signed in as a member: %v", got)
	}
	// The staff user signs in to the back office with the Django password.
	if status, out := h.browser(t, "legacy").staffSignIn("siteadmin@example.com", "Fixture-Admin-Pass-00!"); status != http.StatusOK || out["totp_required"] != false {
		t.Fatalf("back-office sign-in of the imported staff user: %d %v", status, out)
	}
	var role string
	if err := dc.QueryRow(ctx, `SELECT role FROM staff WHERE lower(email) = 'siteadmin@example.com'`).Scan(&role); err != nil || role != "owner" {
		t.Fatalf("the superuser's staff role: %q %v", role, err)
	}
	// A guest's order, by its identifier.
	if got := h.browser(t, "legacy").get("/order/mahlZmtmY4"); got["order_detail"] != "success" {
		t.Fatalf("guest order: %v", got)
	}

	// Unsubscribe links: the tenant's tokens work; the Django-signed ones
	// could not be kept without the Django key.
	var token, prToken, oldToken string
	if err := dc.QueryRow(ctx, `SELECT email_unsubscribe_string_signed FROM member WHERE id = 5`).Scan(&token); err != nil {
		t.Fatal(err)
	}
	if err := dc.QueryRow(ctx, `SELECT email_unsubscribe_string_signed FROM prospect WHERE id = 2`).Scan(&prToken); err != nil {
		t.Fatal(err)
	}
	sc, err := pgx.Connect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(ctx)
	if err := sc.QueryRow(ctx, `SELECT email_unsubscribe_string_signed FROM user_member WHERE id = 5`).Scan(&oldToken); err != nil {
		t.Fatal(err)
	}
	anon := h.browser(t, "legacy")
	if got := anon.get("/user/email-unsubscribe-lookup?token=" + url.QueryEscape(token)); got["email_unsubscribe_lookup"] != "success" || got["email_address"] != "elen*********@example.com" {
		t.Fatalf("member unsubscribe lookup: %v", got)
	}
	if got := anon.get("/user/email-unsubscribe-lookup?pr_token=" + url.QueryEscape(prToken)); got["email_unsubscribe_lookup"] != "error" ||
		got["errors"].(map[string]any)["error"] != "email-address-already-unsubscribed" {
		t.Fatalf("prospect unsubscribe lookup (prospects are unsubscribed): %v", got)
	}
	if got := anon.get("/user/email-unsubscribe-lookup?token=" + url.QueryEscape(oldToken)); got["errors"].(map[string]any)["error"] != "member-not-found" {
		t.Fatalf("a Django-signed token: %v", got)
	}
	if got := anon.post("/user/email-unsubscribe-confirm", url.Values{"token": {token}}); got["email_unsubscribe_confirm"] != "success" {
		t.Fatalf("unsubscribe: %v", got)
	}

	// After sign-ins (re-hashed passwords, new last_login) the same source
	// changes nothing the platform made.
	last, err := e.runner.Run(ctx, importer.Request{Slug: "legacy", From: src}, "test", "op-4")
	if err != nil {
		t.Fatal(err)
	}
	if a := find(last, "account"); a.Written() != 0 {
		t.Fatalf("a re-run after sign-ins rewrote accounts: %+v", a)
	}
}

func pgxCount(t *testing.T, dsn, table string, n *int64) error {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(n)
}

// TestImportResumesAfterACrash stops an import after the orders, as a kill
// would, and runs it again: the result is an uninterrupted import's.
func TestImportResumesAfterACrash(t *testing.T) {
	e := newEnv(t)
	src := restoreFixture(t)
	ctx := context.Background()

	whole, err := e.runner.Run(ctx, importer.Request{Slug: "whole", From: src}, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	crash := errors.New("killed")
	var seen []string
	crashing := &importer.Runner{Provision: e.Service, Secrets: e.Secrets, AfterTable: func(table string) error {
		seen = append(seen, table)
		if table == "customer_order" {
			return crash
		}
		return nil
	}}
	if _, err := crashing.Run(ctx, importer.Request{Slug: "killed", From: src}, "test", ""); !errors.Is(err, crash) {
		t.Fatalf("the crashing run: %v", err)
	}
	var orders, lines int64
	if err := pgxCount(t, e.tenantDSN(t, "killed"), "customer_order", &orders); err != nil || orders != 8 {
		t.Fatalf("orders committed before the crash: %d %v", orders, err)
	}
	if err := pgxCount(t, e.tenantDSN(t, "killed"), "order_sku", &lines); err != nil || lines != 0 {
		t.Fatalf("order lines written after the crash point: %d %v", lines, err)
	}
	// The re-run may find the tenant half full: it was this import's.
	resumed, err := e.runner.Run(ctx, importer.Request{Slug: "killed", From: src}, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	if o := find(resumed, "customer_order"); o.Written() != 0 || o.Unchanged != 8 {
		t.Fatalf("the re-run rewrote the committed orders: %+v", o)
	}
	if l := find(resumed, "order_sku"); l.Inserted != 16 {
		t.Fatalf("the re-run's order lines: %+v", l)
	}
	a, b := digest(t, e.tenantDSN(t, "whole"), whole), digest(t, e.tenantDSN(t, "killed"), resumed)
	for table, sum := range a {
		if b[table] != sum {
			t.Errorf("%s differs between the whole import and the resumed one", table)
		}
	}
	checkCounts(t, resumed, src, e.tenantDSN(t, "killed"))

	// A tenant with people of its own, never imported into, is refused.
	if _, err := e.Service.Create(ctx, provisionRequest("busy"), "test"); err != nil {
		t.Fatal(err)
	}
	exec1(t, e.tenantDSN(t, "busy"), `INSERT INTO account (username, password_hash) VALUES ('someone', 'x')`)
	for range 2 { // and stays refused
		if _, err := e.runner.Run(ctx, importer.Request{Slug: "busy", From: src}, "test", ""); !errors.Is(err, importer.ErrNotEmpty) {
			t.Fatalf("import into a tenant with accounts: %v", err)
		}
	}
}

func provisionRequest(slug string) provision.CreateRequest {
	return provision.CreateRequest{Slug: slug}
}

// TestImportWithDjangoKey imports a source whose SECRET_KEY is known (the
// fixture's signatures are made again with a test key, as the source's own
// would be): the tenant then signs with that key, so the links and codes
// in mail already sent keep their values and work. The source also holds
// two carts for one member, which the original only prevented in code.
func TestImportWithDjangoKey(t *testing.T) {
	e := newEnv(t)
	src := restoreFixture(t)
	ctx := context.Background()
	djangoKey := "django-insecure-" + pgtest.RandomName("k")
	signer := account.NewSigner([]byte(djangoKey))

	sc, err := pgx.Connect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(ctx)
	for _, tbl := range []string{"user_member", "user_prospect"} {
		rows, _ := sc.Query(ctx, "SELECT id, email_unsubscribe_string FROM "+tbl)
		type pair struct {
			id  int64
			str string
		}
		ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pair, error) {
			var p pair
			return p, r.Scan(&p.id, &p.str)
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if _, err := sc.Exec(ctx, "UPDATE "+tbl+" SET email_unsubscribe_string_signed = $2 WHERE id = $1", p.id, signer.UnsubscribeToken(p.str)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var verification string
	if err := sc.QueryRow(ctx, `SELECT email_verification_string FROM user_member WHERE id = 3`).Scan(&verification); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Exec(ctx, `UPDATE user_member SET email_verification_string_signed = $1 WHERE id = 3`, signer.VerificationCode(verification)); err != nil {
		t.Fatal(err)
	}
	// An account the tenant refuses (a username longer than its 150
	// characters): the report shows the row, its password hash masked.
	if _, err := sc.Exec(ctx, `ALTER TABLE auth_user ALTER COLUMN username TYPE varchar(200);
		INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
		VALUES (50, 'pbkdf2_sha256$1000$abcdefghijklmnopqrstuv$AAAA', false, repeat('x', 160), '', '', '', false, true, now())`); err != nil {
		t.Fatal(err)
	}
	// A second cart for member08 (cart 10): the newer one is kept.
	if _, err := sc.Exec(ctx, `INSERT INTO order_cart (id, member_id) VALUES (20, 8);
		INSERT INTO order_cart_sku (id, quantity, cart_id, sku_id) VALUES (40, 5, 20, 7)`); err != nil {
		t.Fatal(err)
	}

	if _, err := e.runner.Run(ctx, importer.Request{Slug: "keyed", From: src, DjangoSecretKey: "not-the-key"}, "test", ""); !errors.Is(err, importer.ErrWrongKey) {
		t.Fatalf("a wrong key: %v", err)
	}
	rep, err := e.runner.Run(ctx, importer.Request{Slug: "keyed", From: src, DjangoSecretKey: djangoKey}, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	cart, lines, method := find(rep, "cart"), find(rep, "cart_sku"), find(rep, "cart_shipping_method")
	if len(cart.Refused) != 1 || cart.Refused[0].ID != 10 || !strings.Contains(cart.Refused[0].Reason, "id 20, is imported") ||
		!strings.Contains(string(cart.Refused[0].Row), `"member_id":8`) {
		t.Fatalf("cart refusals: %+v", cart.Refused)
	}
	acct := find(rep, "account")
	if len(acct.Refused) != 1 || acct.Refused[0].ID != 50 || !strings.Contains(acct.Refused[0].Reason, "too long") ||
		!strings.Contains(string(acct.Refused[0].Row), `"password_hash":"***"`) || strings.Contains(string(acct.Refused[0].Row), "pbkdf2") {
		t.Fatalf("account refusals: %+v", acct.Refused)
	}
	if len(lines.Refused) != 2 || len(method.Refused) != 1 || rep.Refused != 5 {
		t.Fatalf("the refused cart's lines and method are refused too, with their rows: %+v %+v (%d)", lines.Refused, method.Refused, rep.Refused)
	}
	if find(rep, "member").Notes != nil || !hasNote(rep.Notes, "signs with the Django SECRET_KEY") {
		t.Fatalf("notes: %q %q", find(rep, "member").Notes, rep.Notes)
	}

	h := newDataPlane(t, e)
	var oldToken string
	if err := sc.QueryRow(ctx, `SELECT email_unsubscribe_string_signed FROM user_member WHERE id = 1`).Scan(&oldToken); err != nil {
		t.Fatal(err)
	}
	anon := h.browser(t, "keyed")
	if got := anon.get("/user/email-unsubscribe-lookup?token=" + url.QueryEscape(oldToken)); got["email_unsubscribe_lookup"] != "success" {
		t.Fatalf("the mailed token: %v", got)
	}
	b := h.browser(t, "keyed")
	if got := b.login("member03", "Fixture-Pass-03!"); got != "true" {
		t.Fatalf("member03 signs in: %v", got)
	}
	email := b.get("/user/account-content")["account_content"].(map[string]any)["email_data"].(map[string]any)
	if email["verification_request_sent_within_24_hours"] != true {
		t.Fatalf("member03's pending verification code no longer verifies: %v", email)
	}
	if got := b.get("/user/logged-in"); got["logged_in"] != true {
		t.Fatalf("logged-in: %v", got)
	}
	// member08 has the newer cart (sku 7 x 5).
	b8 := h.browser(t, "keyed")
	if got := b8.login("member08", "Fixture-Pass-08!"); got != "true" {
		t.Fatalf("member08 signs in: %v", got)
	}
	items := b8.get("/order/cart-items")["item_data"].(map[string]any)["product_sku_data"].(map[string]any)
	if len(items) != 1 || items["0"].(map[string]any)["sku_id"] != float64(7) {
		t.Fatalf("member08's cart: %v", items)
	}
}

// TestDocsListEveryTable keeps docs/import.md's map in step with the code's.
func TestDocsListEveryTable(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "import.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range importer.Tables() {
		row := fmt.Sprintf("| `%s` | `%s` |", tb[0], tb[1])
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/import.md has no row %s", row)
		}
	}
}

// TestFixtureIsTheDump: testdata holds the dump the fixture's README
// describes, byte for byte.
func TestFixtureIsTheDump(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "django-startupwebapp.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if sum := fmt.Sprintf("%x", sha256.Sum256(raw)); sum != "61096ab89b7ccfec89946fd376cff5058344c6cfe0c59423e4574917fa51ca0b" || len(raw) != 219251 {
		t.Fatalf("testdata/django-startupwebapp.sql: %d bytes, SHA-256 %s", len(raw), sum)
	}
}
