package admin_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/pgtest"
)

const memberPassword = "Member-Pass-2026!"

// signUp creates a member through the member API and returns the client
// signed in as them, with their username.
func (f *fixture) signUp(host, first, last, email string) (*client, string) {
	f.t.Helper()
	m := f.client(host)
	m.do("GET", "/user/token", nil)
	m.header["X-CSRFToken"] = m.cookies["csrftoken"]
	user := pgtest.RandomName(strings.ToLower(first))
	status, _ := m.form("/user/create-account", "firstname", first, "lastname", last, "username", user,
		"email_address", email, "password", memberPassword, "confirm_password", memberPassword, "newsletter", "true", "remember_me", "true")
	if status != 200 || !strings.Contains(m.raw, `"create_account":"true"`) {
		f.t.Fatalf("sign-up = %d %s", status, m.raw)
	}
	return m, user
}

// memberLogIn signs a member in on a fresh client.
func (f *fixture) memberLogIn(host, username string) (*client, string) {
	f.t.Helper()
	m := f.client(host)
	m.do("GET", "/user/token", nil)
	m.header["X-CSRFToken"] = m.cookies["csrftoken"]
	m.form("/user/login", "username", username, "password", memberPassword, "remember_me", "false")
	return m, m.raw
}

func loggedIn(t *testing.T, m *client) bool {
	t.Helper()
	m.do("GET", "/user/logged-in", nil)
	switch {
	case strings.Contains(m.raw, `"logged_in":true`):
		return true
	case strings.Contains(m.raw, `"logged_in":false`):
		return false
	}
	t.Fatalf("logged-in = %s", m.raw)
	return false
}

func (f *fixture) exec(tn *directory.Tenant, sql string, args ...any) {
	f.t.Helper()
	if _, err := f.dbs[tn.ID].Exec(context.Background(), sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

func (f *fixture) count(tn *directory.Tenant, sql string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.dbs[tn.ID].QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func items(t *testing.T, out map[string]any) []map[string]any {
	t.Helper()
	raw, ok := out["items"].([]any)
	if !ok {
		t.Fatalf("no items in %v", out)
	}
	var res []map[string]any
	for _, it := range raw {
		res = append(res, it.(map[string]any))
	}
	return res
}

// TestMembersSearchDetailDeactivate: a staff member (not an owner) finds
// members by name, address and username, reads one's orders and chat
// messages, and deactivates them: both of the member's sessions end at
// once and they cannot sign in again until reactivated; each change is
// audited.
func TestMembersSearchDetailDeactivate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	staff := f.signIn(hostA, f.addStaff(owner, "staff"), staffPassword)

	mia, miaUser := f.signUp(hostA, "Mia", "Moreno", "mia.moreno@example.com")
	_, otherUser := f.signUp(hostA, "Otto", "Olsen", "otto@example.net")
	mia2, _ := f.memberLogIn(hostA, miaUser)
	if !loggedIn(t, mia) || !loggedIn(t, mia2) {
		t.Fatal("the member is not signed in")
	}
	var miaID int64
	if err := f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT m.id FROM member m JOIN account a ON a.id = m.account_id WHERE a.username = $1`, miaUser).Scan(&miaID); err != nil {
		t.Fatal(err)
	}
	f.exec(f.a, `INSERT INTO customer_order (identifier, member_id, order_total, sales_tax_amt) VALUES ('ORD-MIA-1', $1, 42.50, 2.10)`, miaID)
	f.exec(f.a, `INSERT INTO chat_message (member_id, name, email_address, message) VALUES ($1, 'Mia', 'mia.moreno@example.com', 'Where is my parcel?')`, miaID)
	// Tenant B's members are not tenant A's.
	f.signUp(hostB, "Mia", "Elsewhere", "mia.b@example.com")

	for _, q := range []string{"moreno", "MIA.MORENO@", miaUser, "Mia Mor"} {
		got := items(t, staff.must(200, "GET", api+"/members?q="+strings.ReplaceAll(q, " ", "%20"), nil))
		if len(got) != 1 || got[0]["username"] != miaUser {
			t.Fatalf("search %q = %v", q, got)
		}
	}
	if got := items(t, staff.must(200, "GET", api+"/members?q=olsen", nil)); len(got) != 1 || got[0]["username"] != otherUser {
		t.Fatalf("search olsen = %v", got)
	}
	if got := items(t, staff.must(200, "GET", api+"/members", nil)); len(got) != 2 {
		t.Fatalf("all members of tenant A = %d, want 2", len(got))
	}
	// %, _ are matched literally.
	if got := items(t, staff.must(200, "GET", api+"/members?q=%25", nil)); len(got) != 0 {
		t.Fatalf("search %% = %v", got)
	}
	page1 := staff.must(200, "GET", api+"/members?limit=1", nil)
	page2 := staff.must(200, "GET", api+"/members?limit=1&cursor="+page1["next_cursor"].(string), nil)
	if items(t, page1)[0]["id"] == items(t, page2)[0]["id"] || page2["next_cursor"] != nil {
		t.Fatalf("pages = %v %v", page1, page2)
	}

	path := fmt.Sprintf("%s/members/%d", api, miaID)
	d := staff.must(200, "GET", path, nil)
	orders := d["orders"].([]any)
	chats := d["chat_messages"].([]any)
	if d["email"] != "mia.moreno@example.com" || d["active"] != true || d["newsletter_subscriber"] != true || d["email_verified"] != false ||
		len(orders) != 1 || orders[0].(map[string]any)["identifier"] != "ORD-MIA-1" || orders[0].(map[string]any)["order_total"] != "42.5" ||
		len(chats) != 1 || chats[0].(map[string]any)["message"] != "Where is my parcel?" {
		t.Fatalf("detail = %s", staff.raw)
	}
	staff.refused(404, "not-found", "", "GET", api+"/members/999999", nil)
	staff.refused(404, "not-found", "", "POST", api+"/members/999999/deactivate", nil)
	// The CSRF token is required of a session.
	noToken := *staff
	noToken.csrf = ""
	noToken.refused(403, "csrf-failed", "", "POST", path+"/deactivate", nil)

	if out := staff.must(200, "POST", path+"/deactivate", nil); out["active"] != false {
		t.Fatalf("deactivate = %s", staff.raw)
	}
	if loggedIn(t, mia) || loggedIn(t, mia2) {
		t.Fatal("a deactivated member's session still works")
	}
	if _, raw := f.memberLogIn(hostA, miaUser); !strings.Contains(raw, `"login":"false"`) {
		t.Fatalf("a deactivated member signs in: %s", raw)
	}
	staff.must(200, "POST", path+"/reactivate", nil)
	again, raw := f.memberLogIn(hostA, miaUser)
	if !strings.Contains(raw, `"login":"true"`) || !loggedIn(t, again) {
		t.Fatalf("reactivated member cannot sign in: %s", raw)
	}
	staff.must(204, "DELETE", path+"/sessions", nil)
	if loggedIn(t, again) {
		t.Fatal("ending the sessions left one")
	}
	acts := f.auditActions(f.a)
	for _, want := range []string{"member.deactivated", "member.reactivated", "member.sessions_ended"} {
		if !slices.Contains(acts, want) {
			t.Errorf("audit lacks %s: %v", want, acts)
		}
	}
	var actor string
	if err := f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT actor FROM staff_audit_log WHERE action = 'member.deactivated'`).Scan(&actor); err != nil || actor == f.owner[f.a.ID] {
		t.Fatalf("deactivation audited as %q (%v), want the staff member", actor, err)
	}

	// The pages: search, detail, and deactivation behind its checkbox.
	owner.do("GET", "/admin/members?q=moreno", nil)
	if owner.last.StatusCode != 200 || !strings.Contains(owner.raw, miaUser) || strings.Contains(owner.raw, otherUser) {
		t.Fatalf("members page = %d %s", owner.last.StatusCode, owner.raw)
	}
	page := fmt.Sprintf("/admin/members/%d", miaID)
	if status, body := owner.form(page+"/deactivate", "csrf_token", owner.csrf); status != 400 || !strings.Contains(body, "Tick the box") {
		t.Fatalf("deactivate without confirmation = %d", status)
	}
	if status, body := owner.form(page+"/deactivate", "csrf_token", owner.csrf, "confirm", "yes"); status != 200 || !strings.Contains(body, "deactivated and signed out") {
		t.Fatalf("deactivate page = %d %s", status, body)
	}
	if f.count(f.a, `SELECT count(*) FROM account WHERE username = $1 AND is_active`, miaUser) != 0 {
		t.Fatal("the page did not deactivate")
	}
}

// TestProspectsChatAddresses lists prospects with their codes, chat
// messages newest first and default shipping addresses.
func TestProspectsChatAddresses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	staff := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	f.exec(f.a, `INSERT INTO prospect (email, first_name, pr_cd) VALUES ('pat@example.com', 'Pat', 'PRCD-PAT'), ('quinn@example.com', 'Quinn', 'PRCD-Q')`)
	f.exec(f.a, `INSERT INTO chat_message (name, message, created_date_time) VALUES ('A', 'first', now() - interval '1 hour'), ('B', 'second', now())`)
	f.exec(f.a, `INSERT INTO default_shipping_address (name, city) VALUES ('Pat', 'Lyon')`)
	got := items(t, staff.must(200, "GET", api+"/prospects?q=pat", nil))
	if len(got) != 1 || got[0]["pr_cd"] != "PRCD-PAT" {
		t.Fatalf("prospects = %v", got)
	}
	chat := items(t, staff.must(200, "GET", api+"/chat-messages", nil))
	if len(chat) != 2 || chat[0]["message"] != "second" {
		t.Fatalf("chat = %v", chat)
	}
	if a := items(t, staff.must(200, "GET", api+"/shipping-addresses", nil)); len(a) != 1 || a[0]["city"] != "Lyon" {
		t.Fatalf("addresses = %v", a)
	}
	for _, p := range []string{"/admin/prospects", "/admin/chat-messages", "/admin/shipping-addresses"} {
		staff.do("GET", p, nil)
		if staff.last.StatusCode != 200 || !strings.Contains(staff.raw, "<table") {
			t.Fatalf("%s = %d", p, staff.last.StatusCode)
		}
	}
	if !strings.Contains(staff.raw, "Lyon") {
		t.Fatal("addresses page lacks the address")
	}
	anon := f.client(hostA)
	anon.refused(401, "unauthenticated", "", "GET", api+"/prospects", nil)
}

// readCSV fetches an export and parses it.
func (c *client) readCSV(kind string) [][]string {
	c.t.Helper()
	c.do("GET", api+"/exports/"+kind, nil)
	if c.last.StatusCode != 200 || !strings.HasPrefix(c.last.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(c.last.Header.Get("Content-Disposition"), "attachment; filename=") {
		c.t.Fatalf("export %s = %d %v %s", kind, c.last.StatusCode, c.last.Header, c.raw)
	}
	recs, err := csv.NewReader(strings.NewReader(c.raw)).ReadAll()
	if err != nil {
		c.t.Fatalf("export %s is not CSV: %v", kind, err)
	}
	return recs
}

// TestExportsAreCSVWithFormulasEscaped: every export opens as CSV with
// its header, and cells a spreadsheet would run start with a quote.
func TestExportsAreCSVWithFormulasEscaped(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	staff := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	_, user := f.signUp(hostA, "Formula", "Plain", "formula@example.com")
	// Names the sign-up form refuses can still arrive (an import, SQL).
	f.exec(f.a, `UPDATE account SET first_name = '=HYPERLINK("http://evil")' WHERE username = $1`, user)
	f.exec(f.a, `INSERT INTO prospect (email, first_name, last_name, phone, pr_cd) VALUES ('p@example.com', '+SUM(A1)', '@cmd', '-1+2', 'X')`)
	f.exec(f.a, `INSERT INTO chat_message (name, message) VALUES (E'\tTab', E'\rreturn'), ('Safe', 'a = b')`)
	f.exec(f.a, `INSERT INTO customer_order (identifier, order_total) VALUES ('=1+1', 10.00)`)
	for _, kind := range []string{"products", "skus", "prices", "orders", "members", "prospects", "chat-messages"} {
		if recs := staff.readCSV(kind); len(recs) < 1 || recs[0][0] != "id" {
			t.Fatalf("export %s header = %v", kind, recs)
		}
	}
	if recs := staff.readCSV("products"); len(recs) < 2 {
		t.Fatalf("products export has %d lines; the seeded catalogue is missing", len(recs))
	}
	members := staff.readCSV("members")
	if len(members) != 2 || members[1][2] != `'=HYPERLINK("http://evil")` || members[1][3] != "Plain" {
		t.Fatalf("members = %q", members)
	}
	pr := staff.readCSV("prospects")
	if pr[1][2] != "'+SUM(A1)" || pr[1][3] != "'@cmd" || pr[1][4] != "'-1+2" {
		t.Fatalf("prospects = %q", pr)
	}
	chat := staff.readCSV("chat-messages")
	if chat[1][3] != "'\tTab" || chat[1][5] != "'\rreturn" || chat[2][5] != "a = b" {
		t.Fatalf("chat = %q", chat)
	}
	if o := staff.readCSV("orders"); o[1][1] != "'=1+1" || o[1][11] != "10.00" {
		t.Fatalf("orders = %q", o)
	}
	if n := f.count(f.a, `SELECT count(*) FROM staff_audit_log WHERE action = 'export.downloaded' AND after->>'kind' = 'members'`); n != 2 {
		t.Fatalf("members export audited %d times, want 2 (two downloads)", n)
	}
	staff.refused(404, "not-found", "kind", "GET", api+"/exports/passwords", nil)
	f.client(hostA).refused(401, "unauthenticated", "", "GET", api+"/exports/members", nil)
}

// uploadCSV posts a file as the import form does.
func (c *client) uploadCSV(kind, name string, content []byte) (int, map[string]any) {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("kind", kind)
	fw, _ := mw.CreateFormFile("file", name)
	_, _ = fw.Write(content)
	_ = mw.Close()
	req := httptest.NewRequest(http.MethodPost, "http://"+c.host+api+"/imports", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	c.prepare(req, http.MethodPost)
	return c.send(req)
}

// waitJob polls a job until it is no longer queued.
func (c *client) waitJob(id any) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j := c.must(200, "GET", fmt.Sprintf("%s/imports/%v", api, id), nil)
		if j["status"] != "queued" {
			return j
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("job %v still queued: %s", id, c.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func counts(t *testing.T, report any) map[string]float64 {
	t.Helper()
	m, ok := report.(map[string]any)
	if !ok {
		t.Fatalf("no report: %v", report)
	}
	out := map[string]float64{}
	for k, v := range m["counts"].(map[string]any) {
		out[k] = v.(float64)
	}
	return out
}

func rowsOf(report any) []map[string]any {
	var out []map[string]any
	for _, r := range report.(map[string]any)["rows"].([]any) {
		out = append(out, r.(map[string]any))
	}
	return out
}

const prospectsCSV = "email,first_name,last_name,phone\n" +
	"ann@example.com,Ann,Archer,555-0101\n" +
	"not-an-address,Bad,Row,\n" +
	"BEN@example.com,Ben,Baker,\n" +
	"cara@example.com,Cara,\"Cole, Jr.\",555-0103\n" +
	"member@example.com,Mem,Ber,\n" +
	"ann@example.com,Ann,Again,\n" +
	"dee@example.com,Dee,Dunn,555,extra\n" +
	"old@example.com,Olga,,\n"

// TestImportProspects: the dry run reports every row by line and writes
// nothing; applying creates the good rows, skips the bad, updates the
// existing prospect and refuses a member's address; applying again (the
// same job, or the same file as a new job) changes nothing.
func TestImportProspects(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	staff := f.signIn(hostA, f.addStaff(owner, "staff"), staffPassword)
	f.signUp(hostA, "Mem", "Ber", "member@example.com")
	f.exec(f.a, `INSERT INTO prospect (email, first_name, pr_cd) VALUES ('old@example.com', 'Old', 'PR-OLD')`)

	status, job := staff.uploadCSV("prospects", "leads.csv", []byte(prospectsCSV))
	if status != 201 || job["status"] != "uploaded" {
		t.Fatalf("upload = %d %s", status, staff.raw)
	}
	want := map[string]float64{"create": 3, "update": 1, "unchanged": 0, "refused": 4}
	if got := counts(t, job["dry_run"]); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dry run counts = %v, want %v: %s", got, want, staff.raw)
	}
	byLine := map[float64]map[string]any{}
	for _, r := range rowsOf(job["dry_run"]) {
		byLine[r["line"].(float64)] = r
	}
	for line, wantAction := range map[float64]string{2: "create", 3: "refused", 4: "create", 5: "create", 6: "refused", 7: "refused", 8: "refused", 9: "update"} {
		if byLine[line]["action"] != wantAction {
			t.Errorf("line %v = %v, want %s", line, byLine[line], wantAction)
		}
	}
	if !strings.Contains(byLine[6]["detail"].(string), "member") || !strings.Contains(byLine[7]["detail"].(string), "line 2") ||
		!strings.Contains(byLine[8]["detail"].(string), "5 cells") {
		t.Errorf("refusals do not say why: %v %v %v", byLine[6], byLine[7], byLine[8])
	}
	if n := f.count(f.a, `SELECT count(*) FROM prospect`); n != 1 {
		t.Fatalf("the dry run wrote: %d prospects", n)
	}

	id := job["id"]
	staff.must(202, "POST", fmt.Sprintf("%s/imports/%v/apply", api, id), nil)
	done := staff.waitJob(id)
	if done["status"] != "done" || fmt.Sprint(counts(t, done["result"])) != fmt.Sprint(want) {
		t.Fatalf("applied = %s", staff.raw)
	}
	if n := f.count(f.a, `SELECT count(*) FROM prospect`); n != 4 {
		t.Fatalf("prospects after apply = %d, want 4", n)
	}
	if n := f.count(f.a, `SELECT count(*) FROM prospect WHERE email = 'ben@example.com' AND last_name = 'Baker' AND pr_cd IS NOT NULL
AND email_unsubscribe_string_signed IS NOT NULL`); n != 1 {
		t.Fatal("Ben was not created with his codes, under his address in lower case")
	}
	if n := f.count(f.a, `SELECT count(*) FROM prospect WHERE email = 'old@example.com' AND first_name = 'Olga' AND pr_cd = 'PR-OLD'`); n != 1 {
		t.Fatal("the existing prospect was not updated, or lost its code")
	}

	// Again: the same job is left as it is.
	before := f.count(f.a, `SELECT count(*) FROM staff_audit_log`)
	if again := staff.must(200, "POST", fmt.Sprintf("%s/imports/%v/apply", api, id), nil); again["status"] != "done" || again["attempts"] != 1.0 {
		t.Fatalf("re-apply = %s", staff.raw)
	}
	// The same file as a new upload: nothing to create or update.
	_, job2 := staff.uploadCSV("prospects", "leads.csv", []byte(prospectsCSV))
	staff.must(202, "POST", fmt.Sprintf("%s/imports/%v/apply", api, job2["id"]), nil)
	done2 := staff.waitJob(job2["id"])
	if c := counts(t, done2["result"]); c["create"] != 0 || c["update"] != 0 || c["unchanged"] != 4 {
		t.Fatalf("second import = %v", c)
	}
	if n := f.count(f.a, `SELECT count(*) FROM prospect`); n != 4 {
		t.Fatalf("prospects after the second import = %d", n)
	}
	if f.count(f.a, `SELECT count(*) FROM staff_audit_log`) <= before ||
		f.count(f.a, `SELECT count(*) FROM staff_audit_log WHERE action = 'import.applied'`) != 2 {
		t.Fatal("imports are not audited")
	}
	if n := f.count(f.b, `SELECT count(*) FROM prospect`); n != 0 {
		t.Fatalf("tenant B got %d prospects", n)
	}
}

// TestImportRefusesBadFiles: an oversize upload, a file that is not
// UTF-8 (with its line), the wrong delimiter, unknown columns, and a
// quoting error are refused with a 4xx naming the problem, creating no
// job.
func TestImportRefusesBadFiles(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	staff := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	big := append([]byte("email\n"), bytes.Repeat([]byte("x"), 5<<20)...)
	if status, out := staff.uploadCSV("prospects", "big.csv", big); status != 413 || out["error"] != "payload-too-large" || !strings.Contains(out["detail"].(string), "5 MiB") {
		t.Fatalf("oversize = %d %s", status, staff.raw)
	}
	cases := []struct{ name, body, detail string }{
		{"latin-1", "email,first_name\nann@example.com,Ann\nbea@example.com,B\xe9a\n", "line 3 is not UTF-8"},
		{"semicolons", "email;first_name\nann@example.com;Ann\n", "commas"},
		{"unknown column", "email,password\nann@example.com,x\n", `unknown column "password"`},
		{"no email column", "first_name\nAnn\n", `"email" is required`},
		{"bad quotes", "email,first_name\nann@example.com,\"Ann\n", "line 2"},
		{"empty", "", "file is required"},
	}
	for _, tc := range cases {
		status, out := staff.uploadCSV("prospects", tc.name+".csv", []byte(tc.body))
		if status < 400 || status >= 500 || !strings.Contains(out["detail"].(string), tc.detail) {
			t.Errorf("%s = %d %s, want detail with %q", tc.name, status, staff.raw, tc.detail)
		}
	}
	if status, _ := staff.uploadCSV("passwords", "x.csv", []byte("email\na@example.com\n")); status != 400 {
		t.Errorf("unknown kind = %d", status)
	}
	if n := f.count(f.a, `SELECT count(*) FROM import_job`); n != 0 {
		t.Fatalf("%d jobs from refused files", n)
	}
	// A text/csv body works like the form.
	staff.doRaw("POST", api+"/imports?kind=prospects&filename=raw.csv", "text/csv", "email\nraw@example.com\n")
	if staff.last.StatusCode != 201 {
		t.Fatalf("raw upload = %d %s", staff.last.StatusCode, staff.raw)
	}
}

// TestImportCatalog: products, SKUs and prices: new ones are created, a
// changed price adds a price row (history), and the same file applied
// again changes nothing.
func TestImportCatalog(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	staff := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	file := "product_identifier,product_title,product_title_url,sku_color,sku_size,inventory,price\n" +
		"mug-01,Mug,mug,blue,large,in-stock,12.50\n" +
		"mug-01,,,red,large,back-ordered,12.50\n" +
		"mug-01,,,green,small,nowhere,1\n" +
		"cap-01,,,black,one,,3\n" +
		"mug-01,,,white,small,,1.005\n"
	apply := func(content string) map[string]float64 {
		t.Helper()
		status, job := staff.uploadCSV("catalog", "cat.csv", []byte(content))
		if status != 201 {
			t.Fatalf("upload = %d %s", status, staff.raw)
		}
		staff.must(202, "POST", fmt.Sprintf("%s/imports/%v/apply", api, job["id"]), nil)
		return counts(t, staff.waitJob(job["id"])["result"])
	}
	version := func() int { return f.count(f.a, `SELECT version FROM catalog_version`) }
	v0 := version()
	if status, _ := staff.uploadCSV("catalog", "cat.csv", []byte(file)); status != 201 || version() != v0 {
		t.Fatalf("a dry run = %d moved the catalogue version %d -> %d", status, v0, version())
	}
	if c := apply(file); c["create"] != 2 || c["refused"] != 3 {
		t.Fatalf("first catalog import = %v", c)
	}
	// The shop's in-memory catalogue follows catalog_version, which the
	// tenant database's triggers bump on these writes: the import shows on
	// GET /order/products with nothing more to do.
	if version() <= v0 {
		t.Fatal("applying the catalogue import did not bump catalog_version")
	}
	if n := f.count(f.a, `SELECT count(*) FROM sku s JOIN product_sku ps ON ps.sku_id = s.id JOIN product p ON p.id = ps.product_id
JOIN sku_price sp ON sp.sku_id = s.id WHERE p.identifier = 'mug-01' AND sp.price = 12.50`); n != 2 {
		t.Fatalf("mug SKUs with a price = %d", n)
	}
	if c := apply(file); c["create"] != 0 || c["update"] != 0 || c["unchanged"] != 2 {
		t.Fatalf("the same catalog again = %v", c)
	}
	if c := apply("product_identifier,sku_color,sku_size,price\nmug-01,blue,large,13.00\n"); c["update"] != 1 {
		t.Fatalf("price change = %v", c)
	}
	if n := f.count(f.a, `SELECT count(*) FROM sku_price sp JOIN sku s ON s.id = sp.sku_id WHERE s.color = 'blue' AND s.size = 'large'
AND sp.sku_id IN (SELECT sku_id FROM product_sku ps JOIN product p ON p.id = ps.product_id WHERE p.identifier = 'mug-01')`); n != 2 {
		t.Fatalf("the blue mug has %d prices, want its history of 2", n)
	}
}

// TestImportCutOffLeavesNothing: a job whose deadline passes mid-way
// commits nothing: it stays queued with no prospect written, or (on a
// machine fast enough to finish first) is done with every row.
func TestImportCutOffLeavesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{jobTimeout: 50 * time.Millisecond})
	staff := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	var b strings.Builder
	b.WriteString("email,first_name\n")
	const n = 3000
	for i := range n {
		fmt.Fprintf(&b, "bulk%d@example.com,Bulk\n", i)
	}
	status, job := staff.uploadCSV("prospects", "bulk.csv", []byte(b.String()))
	if status != 201 {
		t.Fatalf("upload = %d %s", status, staff.raw)
	}
	staff.must(202, "POST", fmt.Sprintf("%s/imports/%v/apply", api, job["id"]), nil)
	time.Sleep(500 * time.Millisecond) // well past the job's deadline
	var st string
	if err := f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT status FROM import_job WHERE id = $1`, job["id"]).Scan(&st); err != nil {
		t.Fatal(err)
	}
	got := f.count(f.a, `SELECT count(*) FROM prospect`)
	t.Logf("after the deadline: job %s, %d prospects", st, got)
	switch {
	case st == "queued" && got == 0:
	case st == "done" && got == n:
	default:
		t.Fatalf("job %s with %d of %d prospects written", st, got, n)
	}
}
