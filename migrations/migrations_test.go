package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/pgtest"
)

// tenantTables is every table the tenant set creates, plus the ledger.
var tenantTables = []string{
	"account", "ad", "ad_status", "ad_type", "ajax_error", "button_click",
	"cart", "cart_discount", "cart_payment", "cart_shipping_address", "cart_shipping_method", "cart_sku", "catalog_version",
	"chat_message", "checkout_session", "checkout_session_discount", "checkout_session_sku", "clientevent_configuration", "customer_order", "default_shipping_address",
	"discount_code", "discount_type", "email", "email_outbox", "email_sent", "email_status", "email_type",
	"email_unsubscribe_reason", "campaign_recipient", "import_job", "insight_daily", "insight_visitor", "link_event", "member",
	"order_billing_address", "order_configuration", "order_discount", "order_email_failure", "order_payment",
	"order_shipping_address", "order_shipping_method", "order_sku", "order_status", "order_status_history", "refund",
	"pageview", "product", "product_image", "product_sku", "product_video", "prospect",
	"schema_migrations", "shipping_method", "site_deploy_request", "sku", "sku_image", "sku_inventory", "sku_price", "sku_type",
	"staff", "staff_audit_log", "staff_invitation", "staff_password_reset", "staff_recovery_code", "staff_token",
	"stripe_webhook_event", "terms_of_use_agreement", "terms_of_use_version",
}

// referenceRows is the row count of every table holding §10 reference data.
// Every other tenant table starts empty.
var referenceRows = map[string]int64{
	"catalog_version":           1,
	"clientevent_configuration": 1,
	"terms_of_use_version":      1,
	"email_type":                2,
	"email_status":              3,
	"ad_type":                   2,
	"ad_status":                 4,
	"email":                     4,
	"order_status":              7,
	"sku_type":                  1,
	"sku_inventory":             3,
	"order_configuration":       6,
	"shipping_method":           5,
	"product":                   3,
	"product_image":             3,
	"product_video":             2,
	"sku":                       6,
	"sku_price":                 7,
	"sku_image":                 5,
	"product_sku":               6,
	"discount_type":             4,
	"discount_code":             1,
}

// platformTables is what the registry migration creates; later platform
// migrations may add more.
var platformTables = []string{
	"admin_tokens", "audit_log", "db_servers", "domains", "operations",
	"provisioning_steps", "schema_migrations", "secrets", "tenant_origins", "tenants",
}

// emptyDatabase creates a database with nothing in it and drops it when the
// test ends.
func emptyDatabase(t *testing.T) (dsn, name string) {
	t.Helper()
	admin := pgtest.AdminURL(t)
	name = pgtest.RandomName("test_migrations_")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() { pgtest.Drop(t, admin, name) })
	return pgtest.WithDatabase(admin, name), name
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func tables(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		`SELECT table_name FROM information_schema.tables
		 WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	return names
}

// rowCounts counts the rows of every table but the ledger.
func rowCounts(t *testing.T, conn *pgx.Conn) map[string]int64 {
	t.Helper()
	counts := map[string]int64{}
	for _, name := range tables(t, conn) {
		if name == "schema_migrations" {
			continue
		}
		var n int64
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+name).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", name, err)
		}
		counts[name] = n
	}
	return counts
}

// ledger returns how many times each version (> 0) is recorded as applied.
func ledger(t *testing.T, conn *pgx.Conn) map[int64]int {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		"SELECT version_id FROM schema_migrations WHERE version_id > 0 AND is_applied")
	if err != nil {
		t.Fatalf("read ledger: %v", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatalf("read ledger: %v", err)
	}
	seen := map[int64]int{}
	for _, v := range versions {
		seen[v]++
	}
	return seen
}

// versionsOf lists the versions a set's files declare.
func versionsOf(t *testing.T, set migrations.Set) []int64 {
	t.Helper()
	fsys, err := set.FS()
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var vs []int64
	for _, n := range names {
		var v int64
		if _, err := fmt.Sscanf(n, "%d_", &v); err != nil {
			t.Fatalf("migration %s has no version: %v", n, err)
		}
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

func wantLedger(t *testing.T, conn *pgx.Conn, set migrations.Set) {
	t.Helper()
	got := ledger(t, conn)
	want := versionsOf(t, set)
	if len(got) != len(want) {
		t.Errorf("ledger holds %d versions %v, want %v", len(got), got, want)
	}
	for _, v := range want {
		if got[v] != 1 {
			t.Errorf("ledger records version %d %d times, want once", v, got[v])
		}
	}
}

func wantReferenceCounts(t *testing.T, counts map[string]int64) {
	t.Helper()
	for _, name := range tenantTables {
		if name == "schema_migrations" {
			continue
		}
		if got, want := counts[name], referenceRows[name]; got != want {
			t.Errorf("%s has %d rows, want %d", name, got, want)
		}
	}
}

func TestTenantUpCreatesSchemaAndReferenceData(t *testing.T) {
	t.Parallel()
	dsn, _ := emptyDatabase(t)
	ctx := context.Background()

	res, err := migrations.UpDSN(ctx, dsn, migrations.Tenant)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	latest, err := migrations.Latest(migrations.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(versionsOf(t, migrations.Tenant)); res.From != 0 || res.To != latest || res.Applied != want {
		t.Errorf("up = %+v, want From 0, To %d, Applied %d", res, latest, want)
	}

	conn := connect(t, dsn)
	want := slices.Clone(tenantTables)
	slices.Sort(want)
	if got := tables(t, conn); !slices.Equal(got, want) {
		t.Errorf("tables:\n got  %v\n want %v", got, want)
	}
	wantLedger(t, conn, migrations.Tenant)
	wantReferenceCounts(t, rowCounts(t, conn))

	values := []struct {
		name, query, want string
	}{
		{"shipping costs", `SELECT string_agg(identifier || '=' || shipping_cost::text || '/' || active::text, ' ' ORDER BY id) FROM shipping_method`,
			"USPSPriorityMail2Day=13.65/true USPSRetailGround=9.56/true FedExGround=10.85/true UPSGround=11.34/true None=0.00/false"},
		{"sku 7 current price", `SELECT price::text FROM sku_price WHERE sku_id = 7 ORDER BY created_date_time DESC, id DESC LIMIT 1`, "14.99"},
		{"current prices", `SELECT string_agg(s.id || '=' || p.price::text, ' ' ORDER BY s.id) FROM sku s
			CROSS JOIN LATERAL (SELECT price FROM sku_price WHERE sku_id = s.id ORDER BY created_date_time DESC, id DESC LIMIT 1) p`,
			"1=3.50 2=3.50 4=5.99 5=4.99 6=3.99 7=14.99"},
		{"member confirmation em_cd", `SELECT string_value FROM order_configuration WHERE key = 'order_confirmation_em_cd_member'`, "gvREoqen93ffZsmBIc8zl"},
		{"prospect confirmation em_cd", `SELECT string_value FROM order_configuration WHERE key = 'order_confirmation_em_cd_prospect'`, "FpGyZy6kld9R2XTjqvBQN"},
		{"member confirmation template", `SELECT e.id || ' ' || t.title || ' ' || s.title || ' ' || e.subject FROM email e
			JOIN email_type t ON t.id = e.email_type_id JOIN email_status s ON s.id = e.email_status_id WHERE em_cd = 'gvREoqen93ffZsmBIc8zl'`,
			"1 Member Ready StartUpWebApp.com Order Confirmation"},
		{"prospect confirmation template", `SELECT e.id || ' ' || t.title || ' ' || s.title || ' ' || (e.body_text LIKE '%{prosepct_email_unsubscribe_str}') FROM email e
			JOIN email_type t ON t.id = e.email_type_id JOIN email_status s ON s.id = e.email_status_id WHERE em_cd = 'FpGyZy6kld9R2XTjqvBQN'`,
			"2 Prospect Ready true"},
		{"template senders", `SELECT string_agg(DISTINCT from_address || '|' || bcc_address, ',') FROM email`,
			"StartUpWebApp <bart+startupwebapp@mosaicmeshai.com>|"},
		{"clientevent configuration 1", `SELECT log_client_events::text FROM clientevent_configuration WHERE id = 1`, "true"},
		{"terms of use 1", `SELECT version || ' ' || publication_date_time AT TIME ZONE 'UTC' || ' ' || (version_note LIKE '%href="/privacy-policy"%href="/terms-of-sale"%')
			FROM terms_of_use_version WHERE id = 1`, "1 2019-04-20 00:00:00 true"},
		{"configuration keys", `SELECT string_agg(id || ':' || key || '=' || string_value, ' ' ORDER BY id) FROM order_configuration`,
			"1:usernames_allowed_to_checkout=* 2:an_ct_values_allowed_to_checkout=* 3:default_shipping_method=USPSRetailGround " +
				"4:initial_order_status=accepted 5:order_confirmation_em_cd_member=gvREoqen93ffZsmBIc8zl 6:order_confirmation_em_cd_prospect=FpGyZy6kld9R2XTjqvBQN"},
		{"order statuses", `SELECT string_agg(id || ':' || identifier, ' ' ORDER BY id) FROM order_status`, "1:accepted 2:manufacturing 3:packing 4:shipped 5:delivered 6:cancelled 7:refunded"},
		{"products", `SELECT string_agg(id || ':' || identifier || ':' || title_url, ' ' ORDER BY id) FROM product`,
			"1:bSusp6dBHm:PaperClips 2:ITHJW3mytn:BinderClips 3:v26ujdy3N1:RubberBands"},
		{"sku inventories", `SELECT string_agg(s.id || ':' || i.identifier, ' ' ORDER BY s.id) FROM sku s JOIN sku_inventory i ON i.id = s.sku_inventory_id`,
			"1:in-stock 2:back-ordered 4:back-ordered 5:out-of-stock 6:in-stock 7:in-stock"},
		{"welcome code", `SELECT code || ' ' || discount_amount::text || ' ' || t.action || ' ' || (end_date_time - start_date_time)::text FROM discount_code c
			JOIN discount_type t ON t.id = c.discount_type_id`, "WELCOME10 10.00 percent-off 365 days"},
		{"sequences continue after seeded ids", `SELECT nextval(pg_get_serial_sequence('sku', 'id')) || ' ' || nextval(pg_get_serial_sequence('sku_price', 'id'))`, "8 9"},
	}
	for _, v := range values {
		t.Run(v.name, func(t *testing.T) {
			var got string
			if err := conn.QueryRow(ctx, v.query).Scan(&got); err != nil {
				t.Fatalf("query: %v", err)
			}
			if got != v.want {
				t.Errorf("got %q, want %q", got, v.want)
			}
		})
	}
}

func TestUpAgainIsNoOp(t *testing.T) {
	t.Parallel()
	for _, set := range []migrations.Set{migrations.Tenant, migrations.Platform} {
		t.Run(string(set), func(t *testing.T) {
			t.Parallel()
			dsn, _ := emptyDatabase(t)
			ctx := context.Background()
			first, err := migrations.UpDSN(ctx, dsn, set)
			if err != nil {
				t.Fatalf("first up: %v", err)
			}
			conn := connect(t, dsn)
			before := rowCounts(t, conn)

			again, err := migrations.UpDSN(ctx, dsn, set)
			if err != nil {
				t.Fatalf("second up: %v", err)
			}
			if again.Applied != 0 || again.From != first.To || again.To != first.To {
				t.Errorf("second up = %+v, want nothing applied at version %d", again, first.To)
			}
			if after := rowCounts(t, conn); !mapsEqual(before, after) {
				t.Errorf("row counts changed:\n before %v\n after  %v", before, after)
			}
			wantLedger(t, conn, set)
		})
	}
}

func TestPlatformUpCreatesRegistry(t *testing.T) {
	t.Parallel()
	dsn, _ := emptyDatabase(t)
	res, err := migrations.UpDSN(context.Background(), dsn, migrations.Platform)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	latest, err := migrations.Latest(migrations.Platform)
	if err != nil {
		t.Fatal(err)
	}
	if res.To != latest || res.Applied != len(versionsOf(t, migrations.Platform)) {
		t.Errorf("up = %+v, want To %d with every migration applied", res, latest)
	}
	conn := connect(t, dsn)
	got := tables(t, conn)
	for _, name := range platformTables {
		if !slices.Contains(got, name) {
			t.Errorf("table %s missing; have %v", name, got)
		}
	}
	// The registry is not a tenant database.
	if slices.Contains(got, "customer_order") {
		t.Errorf("platform database holds tenant tables: %v", got)
	}
	wantLedger(t, conn, migrations.Platform)
}

func TestConcurrentUpTakesTurns(t *testing.T) {
	t.Parallel()
	dsn, _ := emptyDatabase(t)
	ctx := context.Background()
	n := len(versionsOf(t, migrations.Tenant))

	var wg sync.WaitGroup
	results := make([]migrations.Result, 2)
	errs := make([]error, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = migrations.UpDSN(ctx, dsn, migrations.Tenant)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("up %d: %v", i, err)
		}
	}
	// Taking turns means one call applied everything and the other nothing;
	// interleaving would split the work or apply a version twice.
	applied := []int{results[0].Applied, results[1].Applied}
	slices.Sort(applied)
	if applied[0] != 0 || applied[1] != n {
		t.Errorf("applied %v, want one call to apply all %d and the other none", applied, n)
	}
	conn := connect(t, dsn)
	wantLedger(t, conn, migrations.Tenant)
	wantReferenceCounts(t, rowCounts(t, conn))
}

func TestUpWaitsForMigrationLock(t *testing.T) {
	t.Parallel()
	dsn, name := emptyDatabase(t)
	ctx := context.Background()
	holder := connect(t, dsn)
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", migrations.LockID); err != nil {
		t.Fatalf("take lock: %v", err)
	}

	done := make(chan error, 1)
	var res migrations.Result
	go func() {
		var err error
		res, err = migrations.UpDSN(ctx, dsn, migrations.Tenant)
		done <- err
	}()

	// Wait until the migrator is blocked on the advisory lock.
	observer := connect(t, pgtest.AdminURL(t))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		err := observer.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = $1 AND wait_event_type = 'Lock' AND wait_event = 'advisory'`, name).Scan(&waiting)
		if err != nil {
			t.Fatalf("pg_stat_activity: %v", err)
		}
		if waiting == 1 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("up finished while the lock was held (err %v)", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("migrator never waited on the migration lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var tablesNow int
	if err := holder.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
		WHERE table_schema = 'public' AND table_name <> 'schema_migrations'`).Scan(&tablesNow); err != nil {
		t.Fatal(err)
	}
	if tablesNow != 0 {
		t.Errorf("%d tables created while the lock was held", tablesNow)
	}

	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock($1)", migrations.LockID); err != nil {
		t.Fatalf("release lock: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("up: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("up did not finish after the lock was released")
	}
	if want := len(versionsOf(t, migrations.Tenant)); res.Applied != want {
		t.Errorf("applied %d, want %d", res.Applied, want)
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Rows the constraint cases build on: member 9001 (account 9001) with cart
// 9001 holding SKU 1, order 9001 paid with intent pi_one, and checkout
// session cs_test_two of cart 9001 charging SKU 6 with WELCOME10.
const constraintSetup = `
INSERT INTO account (id, username, password_hash, email) VALUES (9001, 'alice', 'x', 'alice@example.com'), (9002, 'bob', 'x', 'bob@example.com');
INSERT INTO member (id, account_id, mb_cd) VALUES (9001, 9001, 'MBCD1'), (9002, 9002, 'MBCD2');
INSERT INTO cart (id, member_id) VALUES (9001, 9001);
INSERT INTO cart (id, anonymous_cart_id) VALUES (9002, 'anon-1');
INSERT INTO cart_sku (cart_id, sku_id, quantity) VALUES (9001, 1, 2), (9001, 6, 1), (9002, 7, 1);
INSERT INTO cart_shipping_method (cart_id, shipping_method_id) VALUES (9001, 2);
INSERT INTO cart_discount (cart_id, discount_code_id) VALUES (9001, 1);
INSERT INTO order_payment (id, stripe_payment_intent_id) VALUES (9001, 'pi_one');
INSERT INTO customer_order (id, identifier, member_id, payment_id, stripe_checkout_session_id, item_subtotal, order_total)
    VALUES (9001, 'ORDER00001', 9001, 9001, 'cs_test_one', 7.00, 16.56);
INSERT INTO order_sku (order_id, sku_id, quantity, price_each) VALUES (9001, 1, 2, 3.50);
INSERT INTO order_status_history (order_id, order_status_id) VALUES (9001, 1);
INSERT INTO order_shipping_method (order_id, shipping_method_id) VALUES (9001, 2);
INSERT INTO pageview (account_id, url) VALUES (9001, 'https://shop.example.com/');
INSERT INTO staff (email, password_hash) VALUES ('Owner@example.com', 'x');
INSERT INTO stripe_webhook_event (event_id, type) VALUES ('evt_1', 'checkout.session.completed');
INSERT INTO checkout_session (id, cart_id, member_id, shipping_method_id, item_subtotal, shipping, total)
    VALUES ('cs_test_two', 9001, 9001, 2, 3.99, 9.56, 13.55);
INSERT INTO checkout_session_sku (checkout_session_id, sku_id, quantity, price_each) VALUES ('cs_test_two', 6, 1, 3.99);
INSERT INTO checkout_session_discount (checkout_session_id, discount_code_id, applied) VALUES ('cs_test_two', 1, false);
`

// inTx runs fn in a transaction on top of constraintSetup and rolls it back.
func inTx(t *testing.T, conn *pgx.Conn, fn func(tx pgx.Tx)) {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, constraintSetup); err != nil {
		t.Fatalf("setup: %v", err)
	}
	fn(tx)
}

func TestTenantConstraints(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, migrations.Tenant)
	conn := connect(t, dsn)

	cases := []struct {
		name, stmt, code, constraint string
	}{
		{"second cart for a member", `INSERT INTO cart (member_id) VALUES (9001)`, "23505", "cart_member_id_key"},
		{"second cart for an anonymous id", `INSERT INTO cart (anonymous_cart_id) VALUES ('anon-1')`, "23505", "cart_anonymous_cart_id_key"},
		{"same sku twice in a cart", `INSERT INTO cart_sku (cart_id, sku_id) VALUES (9001, 1)`, "23505", "cart_sku_cart_id_sku_id_key"},
		{"negative cart quantity", `UPDATE cart_sku SET quantity = -1 WHERE cart_id = 9001`, "23514", "cart_sku_quantity_check"},
		{"second shipping method for a cart", `INSERT INTO cart_shipping_method (cart_id, shipping_method_id) VALUES (9001, 3)`, "23505", "cart_shipping_method_cart_id_key"},
		{"duplicate payment intent", `INSERT INTO order_payment (stripe_payment_intent_id) VALUES ('pi_one')`, "23505", "order_payment_stripe_payment_intent_id_key"},
		{"duplicate order identifier", `INSERT INTO customer_order (identifier) VALUES ('ORDER00001')`, "23505", "customer_order_identifier_key"},
		{"second order for a checkout session", `INSERT INTO customer_order (identifier, stripe_checkout_session_id) VALUES ('ORDER00002', 'cs_test_one')`, "23505", "customer_order_stripe_checkout_session_id_key"},
		{"negative order price", `INSERT INTO order_sku (order_id, sku_id, price_each) VALUES (9001, 6, -0.01)`, "23514", "order_sku_price_each_check"},
		{"negative sku price", `INSERT INTO sku_price (sku_id, price) VALUES (1, -1)`, "23514", "sku_price_price_check"},
		{"negative shipping cost", `UPDATE shipping_method SET shipping_cost = -1 WHERE id = 1`, "23514", "shipping_method_shipping_cost_check"},
		{"sku in two products", `INSERT INTO product_sku (product_id, sku_id) VALUES (2, 1)`, "23505", "product_sku_sku_id_key"},
		{"duplicate username", `INSERT INTO account (username, password_hash) VALUES ('alice', 'x')`, "23505", "account_username_key"},
		{"username too long", `INSERT INTO account (username, password_hash) VALUES (repeat('u', 151), 'x')`, "22001", ""},
		{"prospect comment too long", `INSERT INTO prospect (email, prospect_comment) VALUES ('p@example.com', repeat('c', 5001))`, "22001", ""},
		{"second member for an account", `INSERT INTO member (account_id) VALUES (9001)`, "23505", "member_account_id_key"},
		{"duplicate mb_cd", `UPDATE member SET mb_cd = 'MBCD1' WHERE id = 9002`, "23505", "member_mb_cd_key"},
		{"duplicate prospect email", `INSERT INTO prospect (email) VALUES ('x@example.com'), ('x@example.com')`, "23505", "prospect_email_key"},
		{"terms agreed twice", `INSERT INTO terms_of_use_agreement (member_id, terms_of_use_version_id) VALUES (9001, 1), (9001, 1)`, "23505", "terms_of_use_agreement_member_id_terms_of_use_version_id_key"},
		{"duplicate template em_cd", `UPDATE email SET em_cd = 'gvREoqen93ffZsmBIc8zl' WHERE id = 2`, "23505", "email_em_cd_key"},
		{"duplicate product identifier", `UPDATE product SET identifier = 'bSusp6dBHm' WHERE id = 2`, "23505", "product_identifier_key"},
		{"staff email differing in case", `INSERT INTO staff (email, password_hash) VALUES ('owner@EXAMPLE.com', 'x')`, "23505", "staff_email_key"},
		{"unknown staff role", `INSERT INTO staff (email, password_hash, role) VALUES ('x@example.com', 'x', 'root')`, "23514", "staff_role_check"},
		{"the retired admin role", `INSERT INTO staff (email, password_hash, role) VALUES ('x@example.com', 'x', 'admin')`, "23514", "staff_role_check"},
		{"api token stored twice", `INSERT INTO staff_token (staff_id, name, token_hash) SELECT id, 'a', '\x01'::bytea FROM staff UNION ALL SELECT id, 'b', '\x01'::bytea FROM staff`, "23505", "staff_token_token_hash_key"},
		{"invitation with an unknown role", `INSERT INTO staff_invitation (email, role, token_hash, expires_at) VALUES ('x@example.com', 'root', '\x02', now())`, "23514", "staff_invitation_role_check"},
		{"negative failed sign-ins", `UPDATE staff SET failed_logins = -1`, "23514", "staff_failed_logins_check"},
		{"webhook event seen twice", `INSERT INTO stripe_webhook_event (event_id, type) VALUES ('evt_1', 'x')`, "23505", "stripe_webhook_event_event_id_key"},
		{"outbox unknown status", `INSERT INTO email_outbox (to_addresses, from_address, subject, body_text, kind, status) VALUES ('["a@example.com"]', 'f@example.com', 's', 'b', 'test', 'lost')`, "23514", "email_outbox_status_check"},
		{"outbox without recipients", `INSERT INTO email_outbox (to_addresses, from_address, subject, body_text, kind) VALUES ('[]', 'f@example.com', 's', 'b', 'test')`, "23514", "email_outbox_to_addresses_check"},
		{"sku in an order cannot be deleted", `DELETE FROM sku WHERE id = 1`, "23503", "order_sku_sku_id_fkey"},
		{"checkout session recorded twice", `INSERT INTO checkout_session (id, cart_id, total) VALUES ('cs_test_two', 9002, 0)`, "23505", "checkout_session_pkey"},
		{"same sku twice in a checkout session", `INSERT INTO checkout_session_sku (checkout_session_id, sku_id, quantity, price_each) VALUES ('cs_test_two', 6, 2, 3.99)`, "23505", "checkout_session_sku_checkout_session_id_sku_id_key"},
		{"negative checkout session total", `INSERT INTO checkout_session (id, cart_id, total) VALUES ('cs_test_three', 9002, -1)`, "23514", "checkout_session_total_check"},
		{"sku in a checkout session cannot be deleted", `DELETE FROM sku WHERE id = 6`, "23503", "checkout_session_sku_sku_id_fkey"},
		{"unknown email failure type", `INSERT INTO order_email_failure (order_id, failure_type, error_message, customer_email) VALUES (9001, 'boom', 'e', 'a@example.com')`, "23514", "order_email_failure_failure_type_check"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inTx(t, conn, func(tx pgx.Tx) {
				_, err := tx.Exec(context.Background(), c.stmt)
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) {
					t.Fatalf("err = %v, want SQLSTATE %s", err, c.code)
				}
				if pgErr.Code != c.code || pgErr.ConstraintName != c.constraint {
					t.Errorf("got %s %q (%s), want %s %q", pgErr.Code, pgErr.ConstraintName, pgErr.Message, c.code, c.constraint)
				}
			})
		})
	}
}

func TestTenantDeletes(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, migrations.Tenant)
	conn := connect(t, dsn)

	cases := []struct {
		name, stmt string
		// want maps a query returning one number to its value afterwards.
		want map[string]int64
	}{
		{"deleting a cart removes its lines, shipping method and discounts", `DELETE FROM cart WHERE id = 9001`, map[string]int64{
			`SELECT count(*) FROM cart_sku WHERE cart_id = 9001`:             0,
			`SELECT count(*) FROM cart_shipping_method WHERE cart_id = 9001`: 0,
			`SELECT count(*) FROM cart_discount WHERE cart_id = 9001`:        0,
			`SELECT count(*) FROM cart_sku`:                                  1,
			`SELECT count(*) FROM sku`:                                       6,
		}},
		{"deleting an account removes member and cart but keeps orders and events", `DELETE FROM account WHERE id = 9001`, map[string]int64{
			`SELECT count(*) FROM member WHERE id = 9001`:                                          0,
			`SELECT count(*) FROM cart WHERE id = 9001`:                                            0,
			`SELECT count(*) FROM cart_sku WHERE cart_id = 9001`:                                   0,
			`SELECT count(*) FROM customer_order WHERE id = 9001 AND member_id IS NULL`:            1,
			`SELECT count(*) FROM pageview WHERE account_id IS NULL AND url LIKE '%shop%'`:         1,
			`SELECT count(*) FROM checkout_session WHERE id = 'cs_test_two' AND member_id IS NULL`: 1,
		}},
		{"deleting a cart keeps its checkout sessions", `DELETE FROM cart WHERE id = 9001`, map[string]int64{
			`SELECT count(*) FROM checkout_session WHERE cart_id = 9001`:                          1,
			`SELECT count(*) FROM checkout_session_sku WHERE checkout_session_id = 'cs_test_two'`: 1,
		}},
		{"deleting a checkout session removes its lines and codes", `DELETE FROM checkout_session WHERE id = 'cs_test_two'`, map[string]int64{
			`SELECT count(*) FROM checkout_session_sku`:      0,
			`SELECT count(*) FROM checkout_session_discount`: 0,
			`SELECT count(*) FROM sku WHERE id = 6`:          1,
		}},
		{"deleting an order removes its lines, history and shipping method", `DELETE FROM customer_order WHERE id = 9001`, map[string]int64{
			`SELECT count(*) FROM order_sku WHERE order_id = 9001`:             0,
			`SELECT count(*) FROM order_status_history WHERE order_id = 9001`:  0,
			`SELECT count(*) FROM order_shipping_method WHERE order_id = 9001`: 0,
			`SELECT count(*) FROM order_payment WHERE id = 9001`:               1,
		}},
		{"deleting a product removes its skus' links, images and videos", `DELETE FROM product WHERE id = 2`, map[string]int64{
			`SELECT count(*) FROM product_sku WHERE product_id = 2`:   0,
			`SELECT count(*) FROM product_image WHERE product_id = 2`: 0,
			`SELECT count(*) FROM product_video WHERE product_id = 2`: 0,
			`SELECT count(*) FROM sku WHERE id IN (4, 5, 6)`:          3,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inTx(t, conn, func(tx pgx.Tx) {
				ctx := context.Background()
				if _, err := tx.Exec(ctx, c.stmt); err != nil {
					t.Fatalf("%s: %v", c.stmt, err)
				}
				for q, want := range c.want {
					var got int64
					if err := tx.QueryRow(ctx, q).Scan(&got); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
					if got != want {
						t.Errorf("%s = %d, want %d", strings.Join(strings.Fields(q), " "), got, want)
					}
				}
			})
		})
	}
}

// The runner only goes up, but the Down sections must still undo their Up
// sections, so that a bad release can be rolled back by hand.
func TestDownUndoesUp(t *testing.T) {
	t.Parallel()
	for _, set := range []migrations.Set{migrations.Tenant} {
		t.Run(string(set), func(t *testing.T) {
			t.Parallel()
			dsn, _ := emptyDatabase(t)
			ctx := context.Background()
			if _, err := migrations.UpDSN(ctx, dsn, set); err != nil {
				t.Fatalf("up: %v", err)
			}
			db, err := migrations.Open(dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			fsys, err := set.FS()
			if err != nil {
				t.Fatal(err)
			}
			p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
				goose.WithTableName(migrations.LedgerTable), goose.WithDisableGlobalRegistry(true))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.DownTo(ctx, 0); err != nil {
				t.Fatalf("down: %v", err)
			}
			conn := connect(t, dsn)
			if got := tables(t, conn); !slices.Equal(got, []string{migrations.LedgerTable}) {
				t.Errorf("after down, tables = %v, want only the ledger", got)
			}
			res, err := migrations.Up(ctx, db, set)
			if err != nil {
				t.Fatalf("up again: %v", err)
			}
			if res.Applied != len(versionsOf(t, set)) {
				t.Errorf("up again applied %d, want %d", res.Applied, len(versionsOf(t, set)))
			}
		})
	}
}
