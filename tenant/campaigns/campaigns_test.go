package campaigns_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/platform/mail/mailpit"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/campaigns"
)

const (
	key      = "session-key-of-campaign-tests-32"
	host     = "shop.campaigns.test"
	frontend = "http://localhost:8080"
)

type fixture struct {
	db     *pgxpool.Pool
	tenant *directory.Tenant
	dir    *directory.Directory
	mp     *mailpit.Client
	mail   *mail.Worker
	tag    string // in every seeded address, to count them in Mailpit
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	mp := mailpit.New(pgtest.Service(t, "SWA_MAILPIT_URL"))
	port, _ := strconv.Atoi(pgtest.Require(t, "SWA_SMTP_PORT"))
	relay := mail.SMTPSettings{Host: pgtest.Require(t, "SWA_SMTP_HOST"), Port: port}
	reg := pgtest.NewPool(t, migrations.Platform)
	directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: pgtest.RandomName("camp")[:12], Domains: []string{host},
		Origins: []string{frontend}, Settings: directory.Settings{FrontendOrigin: frontend}})
	dir := directory.New(directory.Options{DB: reg, BaseDomain: "example.invalid"})
	if err := dir.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: pgtest.NewPool(t, migrations.Tenant), dir: dir, mp: mp, tag: pgtest.RandomName("c")}
	f.tenant, _ = dir.Lookup(host)
	if f.tenant == nil {
		t.Fatal("tenant not in the directory")
	}
	w, err := mail.NewWorker(mail.Options{
		Tenants: func(context.Context) []*directory.Tenant { return []*directory.Tenant{f.tenant} },
		Conn:    f.do,
		Relay:   func(context.Context, *directory.Tenant) (mail.SMTPSettings, error) { return relay, nil },
		Batch:   200, Concurrency: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.mail = w
	return f
}

func (f *fixture) do(ctx context.Context, _ *directory.Tenant, fn func(*pgxpool.Conn) error) error {
	c, err := f.db.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return fn(c)
}

func (f *fixture) worker(t *testing.T, o campaigns.Options) *campaigns.Worker {
	t.Helper()
	o.Tenants = func(context.Context) []*directory.Tenant { return []*directory.Tenant{f.tenant} }
	o.Conn = f.do
	if o.Rate == 0 {
		o.Rate = 1000
	}
	w, err := campaigns.NewWorker(o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// addr is the address of seeded person i of a kind.
func (f *fixture) addr(kind string, i int) string {
	return fmt.Sprintf("%s-%s-%d@example.com", f.tag, kind, i)
}

// seed inserts n members (subscribed or not, unsubscribed or not) or n
// prospects, each with a valid unsubscribe token.
func (f *fixture) seed(t *testing.T, kind string, from, n int, subscribed, unsubscribed bool) {
	t.Helper()
	ctx := context.Background()
	signer := account.NewSigner([]byte(key))
	err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
		for i := from; i < from+n; i++ {
			str := pgtest.RandomName("u")
			tok := signer.UnsubscribeToken(str)
			code := pgtest.RandomName("cd")
			var err error
			if kind == "prospect" {
				_, err = tx.Exec(ctx, `INSERT INTO prospect (first_name, email, email_unsubscribed, email_unsubscribe_string,
email_unsubscribe_string_signed, pr_cd) VALUES ($1, $2, $3, $4, $5, $6)`, "P"+strconv.Itoa(i), f.addr(kind, i), unsubscribed, str, tok, code)
			} else {
				_, err = tx.Exec(ctx, `WITH a AS (INSERT INTO account (username, password_hash, first_name, email)
VALUES ($1, 'x', $2, $3) RETURNING id)
INSERT INTO member (account_id, newsletter_subscriber, email_unsubscribed, email_unsubscribe_string, email_unsubscribe_string_signed, mb_cd)
SELECT id, $4, $5, $6, $7, $8 FROM a`, f.addr(kind, i), "M"+strconv.Itoa(i), f.addr(kind, i), subscribed, unsubscribed, str, tok, code)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) tx(t *testing.T, fn func(pgx.Tx) error) error {
	t.Helper()
	return pgx.BeginFunc(context.Background(), f.db, fn)
}

// campaign creates and starts a campaign and returns its id and subject.
func (f *fixture) campaign(t *testing.T, typ campaigns.Type) (int64, string) {
	t.Helper()
	subject := "Campaign " + pgtest.RandomName("s")
	code := "mb_cd"
	if typ == campaigns.Prospect {
		code = "pr_cd"
	}
	var id int64
	err := f.tx(t, func(tx pgx.Tx) (err error) {
		id, err = campaigns.Create(context.Background(), tx, campaigns.Input{
			Subject: subject, From: "Shop <team@example.com>", Type: typ,
			Text: "Hi {recipient_first_name}, see {ENVIRONMENT_DOMAIN}/about?em_cd={em_cd}&" + code + "={" + code + "}",
			HTML: "<p>Hi {recipient_first_name}</p>",
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id, subject
}

func (f *fixture) send(t *testing.T, id int64) int {
	t.Helper()
	var n int
	if err := f.tx(t, func(tx pgx.Tx) (err error) { n, err = campaigns.Send(context.Background(), tx, id); return err }); err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := f.db.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// drain delivers the whole outbox to Mailpit.
func (f *fixture) drain(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for f.count(t, `SELECT count(*) FROM email_outbox WHERE status = 'queued'`) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("outbox not drained within 60s")
		}
		if _, err := f.mail.RunTenant(context.Background(), f.tenant); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.count(t, `SELECT count(*) FROM email_outbox WHERE status <> 'sent'`); n != 0 {
		t.Fatalf("%d outbox rows not sent", n)
	}
}

// exactlyOnce checks that each of want got campaign id exactly once, in
// email_sent and in Mailpit, and nobody else did.
func (f *fixture) exactlyOnce(t *testing.T, id int64, subject string, want []string) {
	t.Helper()
	f.drain(t)
	if n := f.count(t, `SELECT count(*) FROM email_sent WHERE email_id = $1`, id); n != len(want) {
		t.Errorf("email_sent has %d rows, want %d", n, len(want))
	}
	if n := f.count(t, `SELECT count(DISTINCT (member_id, prospect_id)) FROM email_sent WHERE email_id = $1`, id); n != len(want) {
		t.Errorf("email_sent names %d recipients, want %d", n, len(want))
	}
	q := `subject:"` + subject + `"`
	time.Sleep(300 * time.Millisecond)
	if n := f.mp.Total(t, q); n != len(want) {
		t.Fatalf("Mailpit has %d messages for the campaign, want %d", n, len(want))
	}
	got := map[string]int{}
	for _, m := range f.mp.Wait(t, q, len(want), 10*time.Second) {
		for _, to := range m.To {
			got[to.Address]++
		}
	}
	for _, a := range want {
		if got[a] != 1 {
			t.Errorf("%s got %d messages, want 1", a, got[a])
		}
		delete(got, a)
	}
	if len(got) > 0 {
		t.Errorf("unexpected recipients: %v", got)
	}
	var status int
	var state string
	if err := f.db.QueryRow(context.Background(), `SELECT email_status_id, send_state FROM email WHERE id = $1`, id).Scan(&status, &state); err != nil {
		t.Fatal(err)
	}
	if campaigns.Status(status) != campaigns.Sent || state != "done" {
		t.Errorf("campaign is %v/%s, want sent/done", campaigns.Status(status), state)
	}
}

func (f *fixture) addrs(kind string, from, n int) []string {
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, f.addr(kind, i))
	}
	return out
}

// A send killed in the middle of a batch resumes with nobody mailed twice
// and nobody skipped; people outside the segment get nothing.
func TestKilledSendResumesExactlyOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.seed(t, "member", 0, 500, true, false)
	f.seed(t, "member", 500, 5, false, false) // not subscribed to the newsletter
	f.seed(t, "member", 505, 5, true, true)   // unsubscribed
	id, subject := f.campaign(t, campaigns.Member)
	if n := f.send(t, id); n != 500 {
		t.Fatalf("segment = %d, want 500", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	w := f.worker(t, campaigns.Options{Batch: 25})
	var claims atomic.Int32
	campaigns.OnClaim(w, func() {
		if claims.Add(1) == 260 { // in the middle of the eleventh batch
			cancel()
		}
	})
	if _, err := w.RunTenant(ctx, f.tenant); !errors.Is(err, context.Canceled) {
		t.Fatalf("killed run = %v, want context.Canceled", err)
	}
	done := f.count(t, `SELECT count(*) FROM email_sent WHERE email_id = $1`, id)
	if done != 250 || f.count(t, `SELECT count(*) FROM campaign_recipient WHERE email_id = $1 AND status = 'sent'`, id) != 250 ||
		f.count(t, `SELECT count(*) FROM email_outbox WHERE kind = 'campaign'`) != 250 {
		t.Fatalf("after the kill: %d email_sent rows, want the 10 committed batches (250), with as many claims and mails", done)
	}
	t.Logf("killed after %d claims with %d recipients committed", claims.Load(), done)

	if _, err := f.worker(t, campaigns.Options{Batch: 25}).RunTenant(context.Background(), f.tenant); err != nil {
		t.Fatal(err)
	}
	f.exactlyOnce(t, id, subject, f.addrs("member", 0, 500))
}

// Two workers sending the same campaign at once never claim the same
// recipient: each holds its batch while the other claims its own.
func TestTwoWorkersRacingSendEachRecipientOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.seed(t, "prospect", 0, 200, false, false)
	f.seed(t, "prospect", 200, 3, false, true)
	id, subject := f.campaign(t, campaigns.Prospect)
	if n := f.send(t, id); n != 200 {
		t.Fatalf("segment = %d, want 200", n)
	}
	// Barrier: both workers' first claims meet before either commits, so
	// the second claimed while the first held its rows.
	var arrived sync.WaitGroup
	arrived.Add(2)
	met := make(chan struct{})
	go func() { arrived.Wait(); close(met) }()
	var wg sync.WaitGroup
	sent := make([]int, 2)
	errs := make([]error, 2)
	for i := range 2 {
		w := f.worker(t, campaigns.Options{Batch: 10})
		var once sync.Once
		campaigns.OnClaim(w, func() {
			once.Do(func() {
				arrived.Done()
				select {
				case <-met:
				case <-time.After(15 * time.Second):
					t.Error("the other worker never claimed while this one held its batch")
				}
			})
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent[i], errs[i] = w.RunTenant(context.Background(), f.tenant)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
	}
	if sent[0] == 0 || sent[1] == 0 || sent[0]+sent[1] != 200 {
		t.Fatalf("workers sent %v, want both some and 200 in all", sent)
	}
	t.Logf("workers sent %d and %d", sent[0], sent[1])
	f.exactlyOnce(t, id, subject, f.addrs("prospect", 0, 200))
}

// Stop pauses a send after the batch in flight; Send resumes it where it
// stopped.
func TestStopMidwayThenResume(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.seed(t, "member", 0, 200, true, false)
	id, subject := f.campaign(t, campaigns.Member)
	f.send(t, id)

	w := f.worker(t, campaigns.Options{Batch: 25, Rate: 250})
	var claims atomic.Int32
	stopped := make(chan error, 1)
	campaigns.OnClaim(w, func() {
		if claims.Add(1) == 51 {
			go func() {
				stopped <- f.tx(t, func(tx pgx.Tx) error { return campaigns.Stop(context.Background(), tx, id) })
			}()
		}
	})
	if _, err := w.RunTenant(context.Background(), f.tenant); err != nil {
		t.Fatal(err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	first := f.count(t, `SELECT count(*) FROM email_sent WHERE email_id = $1`, id)
	if first < 75 || first >= 200 {
		t.Fatalf("stopped after %d recipients, want the batch in flight finished and the rest left", first)
	}
	// Stopped stays stopped.
	if n, err := w.RunTenant(context.Background(), f.tenant); err != nil || n != 0 {
		t.Fatalf("run while stopped sent %d (%v)", n, err)
	}
	c, err := campaigns.Get(context.Background(), f.db, id)
	if err != nil || c.SendState != "stopped" || c.Status != campaigns.Ready || c.SentCount != first || c.Pending != 200-first {
		t.Fatalf("stopped campaign = %+v, %v", c, err)
	}
	t.Logf("stopped after %d of 200", first)

	f.send(t, id) // resume
	if _, err := w.RunTenant(context.Background(), f.tenant); err != nil {
		t.Fatal(err)
	}
	f.exactlyOnce(t, id, subject, f.addrs("member", 0, 200))
	if err := f.tx(t, func(tx pgx.Tx) error { _, err := campaigns.Send(context.Background(), tx, id); return err }); !errors.Is(err, campaigns.ErrState) {
		t.Fatalf("sending a sent campaign = %v, want ErrState", err)
	}
}

func TestPlaceholders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ        campaigns.Type
		text, html string
		bad        string // "" when valid
	}{
		{campaigns.Member, "Hi {recipient_first_name} {mb_cd} {token} {{literal}}", "<style>p {{color: red}}</style>{draft_html}", ""},
		{campaigns.Prospect, "Hi {recipient_first_name} {pr_cd} {pr_token}", "", ""},
		{campaigns.Member, "Hi {recipient_frist_name}", "", "{recipient_frist_name}"},
		{campaigns.Member, "Hi {pr_token}", "", "{pr_token}"},
		{campaigns.Prospect, "Hi", "<a>{token}</a>", "{token}"},
		{campaigns.Member, "Hi {recipient_first_name", "", "never closed"},
		{campaigns.Member, "Hi }", "", "lone }"},
	} {
		err := campaigns.Validate(tc.typ, tc.text, tc.html)
		if tc.bad == "" && err != nil {
			t.Errorf("Validate(%q, %q) = %v, want nil", tc.text, tc.html, err)
		}
		if tc.bad != "" && (!errors.Is(err, campaigns.ErrPlaceholder) || !strings.Contains(err.Error(), tc.bad)) {
			t.Errorf("Validate(%q, %q) = %v, want an error naming %s", tc.text, tc.html, err, tc.bad)
		}
	}
}

func TestUnknownPlaceholderRefusedAtSave(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	err := f.tx(t, func(tx pgx.Tx) error {
		_, err := campaigns.Create(context.Background(), tx, campaigns.Input{Subject: "S", From: "a@example.com", Type: campaigns.Member,
			Text: "Hi {first_name}"})
		return err
	})
	if !errors.Is(err, campaigns.ErrInvalid) || !strings.Contains(err.Error(), "{first_name}") {
		t.Fatalf("Create = %v, want ErrInvalid naming {first_name}", err)
	}
	if n := f.count(t, `SELECT count(*) FROM email WHERE subject = 'S'`); n != 0 {
		t.Fatalf("%d campaigns saved", n)
	}
	// The seed's example campaigns (3 and 4) use upstream's placeholders,
	// which are all known.
	for _, id := range []int64{3, 4} {
		c, err := campaigns.Get(context.Background(), f.db, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := campaigns.Validate(c.Type, c.Text, c.HTML); err != nil {
			t.Errorf("example campaign %d: %v", id, err)
		}
	}
}

var oneClickRE = regexp.MustCompile(`<(https?://[^>]+` + account.OneClickPath + `\?token=[^>]+)>`)

// The one-click POST of a campaign's List-Unsubscribe header unsubscribes
// without a CSRF token (as serve.go exempts it), other account POSTs still
// need one, and the next campaign skips the member.
func TestOneClickUnsubscribeSkipsNextCampaign(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.seed(t, "member", 0, 3, true, false)
	id, subject := f.campaign(t, campaigns.Member)
	f.send(t, id)
	if _, err := f.worker(t, campaigns.Options{}).RunTenant(context.Background(), f.tenant); err != nil {
		t.Fatal(err)
	}
	f.exactlyOnce(t, id, subject, f.addrs("member", 0, 3))
	msgs := f.mp.Wait(t, `subject:"`+subject+`" to:"`+f.addr("member", 0)+`"`, 1, 10*time.Second)
	h := msgs[0].Headers
	if p := h["List-Unsubscribe-Post"]; len(p) != 1 || p[0] != "List-Unsubscribe=One-Click" {
		t.Fatalf("List-Unsubscribe-Post = %q", p)
	}
	m := oneClickRE.FindStringSubmatch(strings.Join(h["List-Unsubscribe"], " "))
	if m == nil || !strings.Contains(h["List-Unsubscribe"][0], frontend+"/account/email-unsubscribe?em_cd=") {
		t.Fatalf("List-Unsubscribe = %q, want the one-click URL and the page", h["List-Unsubscribe"])
	}
	if !strings.Contains(msgs[0].Text, frontend+"/account/email-unsubscribe?em_cd=") {
		t.Fatalf("no unsubscribe link in the text: %q", msgs[0].Text)
	}
	oneClick := strings.Replace(m[1], "https://"+host, "", 1)

	rdb, prefix := pgtest.Redis(t)
	store := sessions.New(sessions.Options{Redis: rdb, Prefix: prefix})
	keyFn := func(context.Context, *directory.Tenant) ([]byte, error) { return []byte(key), nil }
	acct := account.New(account.Options{DB: dbs{f}, Key: keyFn, Sessions: store, Log: slog.New(slog.DiscardHandler)})
	app := server.New(server.Options{Directory: f.dir, Log: slog.New(slog.DiscardHandler),
		Middleware: []fiber.Handler{store.Handler(), csrf.New(csrf.Options{Key: csrf.KeyFunc(keyFn),
			Exempt: []string{account.OneClickPath}}).Handler()},
		Apps: []server.App{acct}})
	post := func(path, body string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, "http://"+host+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(raw)
	}
	tok := m[1][strings.Index(m[1], "token=")+len("token="):]
	if status, _ := post("/user/email-unsubscribe-confirm", "token="+tok); status != http.StatusForbidden {
		t.Fatalf("confirm without a CSRF token = %d, want 403", status)
	}
	getReq := httptest.NewRequest(http.MethodGet, "http://"+host+oneClick, nil)
	if res, err := app.Test(getReq, -1); err != nil {
		t.Fatal(err)
	} else if raw, _ := io.ReadAll(res.Body); !strings.Contains(string(raw), "post-required") {
		t.Fatalf("GET one-click = %d %s, want post-required (a link scanner must not unsubscribe)", res.StatusCode, raw)
	}
	if status, body := post(oneClick+"x", "List-Unsubscribe=One-Click"); status != http.StatusOK || !strings.Contains(body, "member-not-found") {
		t.Fatalf("one-click with an altered token = %d %s", status, body)
	}
	if status, body := post(oneClick, "List-Unsubscribe=One-Click"); status != http.StatusOK || !strings.Contains(body, `"email_unsubscribe_one_click":"success"`) {
		t.Fatalf("one-click = %d %s", status, body)
	}
	if n := f.count(t, `SELECT count(*) FROM member m JOIN account a ON a.id = m.account_id
WHERE a.email = $1 AND m.email_unsubscribed AND NOT m.newsletter_subscriber`, f.addr("member", 0)); n != 1 {
		t.Fatal("the member is not unsubscribed")
	}

	next, nextSubject := f.campaign(t, campaigns.Member)
	if n := f.send(t, next); n != 2 {
		t.Fatalf("next segment = %d, want 2", n)
	}
	if _, err := f.worker(t, campaigns.Options{}).RunTenant(context.Background(), f.tenant); err != nil {
		t.Fatal(err)
	}
	f.exactlyOnce(t, next, nextSubject, f.addrs("member", 1, 2))
}

type dbs struct{ f *fixture }

func (d dbs) Do(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn) error) error {
	return d.f.do(ctx, t, fn)
}
