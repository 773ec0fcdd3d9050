package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/tenant/admin"
)

// flakyStripe stands in front of a refundDouble: while down, Stripe is
// never reached (a 500 for every attempt); while lossy, Stripe makes the
// refund but every answer is lost on the way back.
type flakyStripe struct {
	d            *refundDouble
	down, lossy  atomic.Bool
	srv          *httptest.Server
	refundsAsked atomic.Int64
}

func newFlakyStripe(t *testing.T) *flakyStripe {
	s := &flakyStripe{d: newRefundDouble(t)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/refunds" {
			s.refundsAsked.Add(1)
		}
		lost := s.lossy.Load()
		switch {
		case s.down.Load():
		case lost:
			s.d.serve(httptest.NewRecorder(), r)
		default:
			s.d.serve(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Stripe-Should-Retry", "false")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"type":"api_error","message":"unavailable"}}`))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *flakyStripe) made(pi string) int {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	n := 0
	for _, re := range s.d.refunds {
		if re["payment_intent"] == pi {
			n++
		}
	}
	return n
}

// unconfirmedRefund asks the API for a refund Stripe does not confirm and
// dates its pending row back by ago: what a crash after the row leaves
// (lossy: Stripe made the refund, its answer was lost).
func (f *fixture) unconfirmedRefund(s *flakyStripe, owner *client, ident, amount string, lossy bool, ago string) {
	f.t.Helper()
	s.down.Store(!lossy)
	s.lossy.Store(lossy)
	owner.refused(502, "refund-unconfirmed", "", "POST", api+"/orders/"+ident+"/refunds", map[string]any{"amount": amount, "reason": "damaged"})
	s.down.Store(false)
	s.lossy.Store(false)
	if _, err := f.dbs[f.a.ID].Exec(context.Background(), `UPDATE refund SET created_date_time = now() - $2::interval
WHERE order_id = (SELECT id FROM customer_order WHERE identifier = $1)`, ident, ago); err != nil {
		f.t.Fatal(err)
	}
}

// refundRows is an order's refund rows: how many, their sum and
// "stripe id:status" of each.
func (f *fixture) refundRows(ident string) (int, string, string) {
	f.t.Helper()
	var n int
	var sum, rows string
	if err := f.dbs[f.a.ID].QueryRow(context.Background(), `SELECT count(*), coalesce(sum(r.amount), 0)::text,
coalesce(string_agg(coalesce(r.stripe_refund_id, '-') || ':' || r.status, ',' ORDER BY r.id), '')
FROM refund r JOIN customer_order o ON o.id = r.order_id WHERE o.identifier = $1`, ident).Scan(&n, &sum, &rows); err != nil {
		f.t.Fatal(err)
	}
	return n, sum, rows
}

// checkOrder checks the order's status and what it says is refunded and
// left to refund.
func checkOrder(t *testing.T, owner *client, ident, status, refunded, refundable string) {
	t.Helper()
	d := owner.must(200, "GET", api+"/orders/"+ident, nil)
	eq := func(v any, want string) bool {
		s, _ := v.(string)
		got, err := decimal.NewFromString(s)
		return err == nil && got.Equal(decimal.RequireFromString(want))
	}
	if d["status"] != status || !eq(d["refunded"], refunded) || !eq(d["refundable"], refundable) {
		t.Fatalf("order %s: %s; want %s, refunded %s, refundable %s", ident, owner.raw, status, refunded, refundable)
	}
}

func (f *fixture) sweeper(a *admin.App) *admin.Sweeper {
	f.t.Helper()
	s, err := a.NewSweeper(admin.SweeperOptions{Tenants: func(context.Context) []*directory.Tenant { return []*directory.Tenant{f.a, f.b} }})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// TestSweepCompletesPendingRefunds: refunds left pending past the grace
// period, by a crash before Stripe was reached and by a crash after Stripe
// made the refund, are asked again with their idempotency key and
// recorded once, the order's state right; Stripe makes one refund each. A
// refund Stripe now refuses is failed and its amount freed; one younger
// than the grace is left alone. Rows older than Stripe keeps an
// idempotency key are looked up among the payment's refunds, not asked
// for again: the one Stripe made is recorded, one it never made failed.
// Sweeping again changes nothing.
func TestSweepCompletesPendingRefunds(t *testing.T) {
	t.Parallel()
	s := newFlakyStripe(t)
	f := newFixture(t, fixtureOptions{stripeBase: s.srv.URL})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	db := f.dbs[f.a.ID]
	orders := map[string]string{} // identifier → payment intent
	for _, ident := range []string{"Never1", "Lost1", "Refused1", "Young1", "OldNever1", "OldLost1"} {
		orders[ident] = seedOrder(t, db, ident, "buyer@example.com", "30.00")
		s.d.mu.Lock()
		s.d.charged[orders[ident]] = 3000
		s.d.mu.Unlock()
	}
	f.unconfirmedRefund(s, owner, "Never1", "30.00", false, "10 minutes")
	f.unconfirmedRefund(s, owner, "Lost1", "12.25", true, "10 minutes")
	f.unconfirmedRefund(s, owner, "Refused1", "5.00", false, "10 minutes")
	f.unconfirmedRefund(s, owner, "Young1", "7.00", false, "10 seconds")
	// Past Stripe's 24 hours of idempotency: looked up, never asked again.
	f.unconfirmedRefund(s, owner, "OldNever1", "8.00", false, "25 hours")
	f.unconfirmedRefund(s, owner, "OldLost1", "9.00", true, "25 hours")
	if s.made(orders["Never1"]) != 0 || s.made(orders["Lost1"]) != 1 {
		t.Fatalf("before the sweep Stripe made %d and %d refunds, want 0 and 1", s.made(orders["Never1"]), s.made(orders["Lost1"]))
	}
	// Stripe will refuse the third: the charge was refunded elsewhere.
	s.d.mu.Lock()
	s.d.charged[orders["Refused1"]] = 0
	s.d.mu.Unlock()
	checkOrder(t, owner, "Never1", "accepted", "0", "0") // reserved while pending

	asked := s.refundsAsked.Load()
	got := f.sweeper(f.back).Sweep(context.Background(), []*directory.Tenant{f.a, f.b})
	if got != (admin.Swept{Refunds: 3, Failed: 2}) {
		t.Fatalf("sweep = %+v, want 3 recorded and 2 failed", got)
	}
	if n := s.refundsAsked.Load() - asked; n != 3 {
		t.Fatalf("the sweep asked Stripe for %d refunds, want 3 (the young one is left alone, the old ones looked up)", n)
	}
	for _, c := range []struct{ ident, amount, status, refunded, refundable, row string }{
		{"Never1", "30.00", "refunded", "30", "0", "succeeded"},
		{"Lost1", "12.25", "accepted", "12.25", "17.75", "succeeded"},
		{"Refused1", "5.00", "accepted", "0", "30", "failed"},
		{"Young1", "7.00", "accepted", "0", "23", "pending"},
		{"OldNever1", "8.00", "accepted", "0", "30", "failed"},
		{"OldLost1", "9.00", "accepted", "9", "21", "succeeded"},
	} {
		n, sum, rows := f.refundRows(c.ident)
		if n != 1 || sum != c.amount || !strings.HasSuffix(rows, ":"+c.row) || (c.row == "succeeded") != strings.HasPrefix(rows, "re_double_") {
			t.Fatalf("%s: %d rows, sum %s, %s; want one of %s, %s", c.ident, n, sum, rows, c.amount, c.row)
		}
		checkOrder(t, owner, c.ident, c.status, c.refunded, c.refundable)
	}
	for ident, want := range map[string]int{"Never1": 1, "Lost1": 1, "Refused1": 0, "Young1": 0, "OldNever1": 0, "OldLost1": 1} {
		if n := s.made(orders[ident]); n != want {
			t.Fatalf("%s: Stripe made %d refunds, want %d", ident, n, want)
		}
	}
	if again := f.sweeper(f.back).Sweep(context.Background(), []*directory.Tenant{f.a, f.b}); again != (admin.Swept{}) {
		t.Fatalf("a second sweep = %+v, want nothing", again)
	}
	if strings.Contains(f.logs.String(), "sk_test_") {
		t.Fatal("a Stripe secret key reached the log")
	}
	if !strings.Contains(f.logs.String(), "pending refund refused by Stripe") || !strings.Contains(f.logs.String(), `"tenant":"`+f.a.Slug+`"`) {
		t.Fatalf("the refusal is not logged with the tenant: %s", f.logs.String())
	}
}

// TestSweepRacesWebhook: the sweeper asks Stripe about a pending refund
// while Stripe's charge.refunded webhook for it arrives, the webhook
// handled before the sweeper's answer and at the same time: both run, and
// there is one refund record, the order's state right.
func TestSweepRacesWebhook(t *testing.T) {
	t.Parallel()
	s := newFlakyStripe(t)
	f := newFixture(t, fixtureOptions{stripeBase: s.srv.URL})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	sw := f.sweeper(f.back)
	for round, order := range []string{"webhook-first", "together", "webhook-first", "together"} {
		ident := fmt.Sprintf("SwRace%d%s", round, pgtest.RandomName("")[:4])
		pi := seedOrder(t, f.dbs[f.a.ID], ident, "buyer@example.com", "30.00")
		s.d.mu.Lock()
		s.d.charged[pi] = 3000
		s.d.mu.Unlock()
		amount, status := "30.00", "refunded"
		if round%2 == 1 {
			amount, status = "12.25", "accepted"
		}
		f.unconfirmedRefund(s, owner, ident, amount, false, "10 minutes")

		start := make(chan struct{})
		made := make(chan struct{})
		hooked := make(chan hookResult, 1)
		var once sync.Once
		s.d.mu.Lock()
		s.d.onRefund = func(map[string]any) {
			once.Do(func() { close(made) })
			if order == "webhook-first" {
				// Stripe's answer to the sweeper waits for the webhook.
				r := <-hooked
				hooked <- r
			}
		}
		s.d.mu.Unlock()
		var swept admin.Swept
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			swept = sw.Sweep(context.Background(), []*directory.Tenant{f.a})
		}()
		go func() {
			defer wg.Done()
			<-start
			<-made
			hooked <- f.chargeRefunded(s.d, hostA, pi)
		}()
		close(start)
		wg.Wait()
		s.d.mu.Lock()
		s.d.onRefund = nil
		s.d.mu.Unlock()
		if hook := <-hooked; hook.status != 200 || swept != (admin.Swept{Refunds: 1}) {
			t.Fatalf("round %d (%s): webhook %+v, sweep %+v", round, order, hook, swept)
		}
		n, sum, rows := f.refundRows(ident)
		if n != 1 || sum != amount || !strings.HasPrefix(rows, "re_double_") || !strings.HasSuffix(rows, ":succeeded") {
			t.Fatalf("round %d (%s): %d rows, sum %s, %s; want one of %s, succeeded", round, order, n, sum, rows, amount)
		}
		if s.made(pi) != 1 {
			t.Fatalf("round %d: Stripe made %d refunds", round, s.made(pi))
		}
		checkOrder(t, owner, ident, status, amount, decimal.RequireFromString("30").Sub(decimal.RequireFromString(amount)).String())
	}
}

// TestSweepRunsQueuedJobOnce: an import job queued by a process that died
// before it started the job is applied by the sweepers of two replicas
// let go at once, exactly once; a job queued within the grace period is
// left to its own process; a job another worker holds is skipped, and
// applied by a later sweep.
func TestSweepRunsQueuedJobOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	db := f.dbs[f.a.ID]
	ctx := context.Background()
	upload := func(content string) any {
		t.Helper()
		status, job := owner.uploadCSV("prospects", "p.csv", []byte(content))
		if status != 201 {
			t.Fatalf("upload = %d %s", status, owner.raw)
		}
		return job["id"]
	}
	// Queued as POST /apply queues it, with no process left to start it.
	queue := func(id any, ago string) {
		t.Helper()
		if _, err := db.Exec(ctx, `UPDATE import_job SET status = 'queued', queued_at = now() - $2::interval WHERE id = $1`, id, ago); err != nil {
			t.Fatal(err)
		}
	}
	old := upload("email,first_name\nswept1@example.com,Ann\nswept2@example.com,Bob\nswept3@example.com,Cy\n")
	young := upload("email\nyoung@example.com\n")
	queue(old, "10 minutes")
	queue(young, "5 seconds")

	replicas := []*admin.Sweeper{f.sweeper(f.back), f.sweeper(admin.New(f.backOpts))}
	start := make(chan struct{})
	results := make([]admin.Swept, len(replicas))
	var wg sync.WaitGroup
	for i, sw := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = sw.Sweep(ctx, []*directory.Tenant{f.a, f.b})
		}()
	}
	close(start)
	wg.Wait()
	if results[0].Jobs+results[1].Jobs != 1 {
		t.Fatalf("the replicas applied %+v, want one job in all", results)
	}
	job := func(id any) (status string, attempts int) {
		t.Helper()
		if err := db.QueryRow(ctx, `SELECT status, attempts FROM import_job WHERE id = $1`, id).Scan(&status, &attempts); err != nil {
			t.Fatal(err)
		}
		return status, attempts
	}
	if st, n := job(old); st != "done" || n != 1 {
		t.Fatalf("old job: %s after %d attempts, want done after 1", st, n)
	}
	if n := f.count(f.a, `SELECT count(*) FROM staff_audit_log WHERE action = 'import.applied' AND target_id = $1::bigint::text`, old); n != 1 {
		t.Fatalf("old job applied %d times", n)
	}
	if n := f.count(f.a, `SELECT count(*) FROM prospect WHERE email LIKE 'swept%'`); n != 3 {
		t.Fatalf("%d prospects, want 3", n)
	}
	if st, n := job(young); st != "queued" || n != 0 {
		t.Fatalf("young job: %s after %d attempts, want left queued", st, n)
	}

	// A job another worker holds is skipped, not waited for.
	queue(young, "10 minutes")
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM import_job WHERE id = $1 FOR UPDATE`, young); err != nil {
		t.Fatal(err)
	}
	if got := replicas[1].Sweep(ctx, []*directory.Tenant{f.a}); got.Jobs != 0 {
		t.Fatalf("a held job was applied: %+v", got)
	}
	if err := tx.Rollback(ctx); err != nil && err != pgx.ErrTxClosed {
		t.Fatal(err)
	}
	if got := replicas[1].Sweep(ctx, []*directory.Tenant{f.a}); got.Jobs != 1 {
		t.Fatalf("the released job: %+v, want applied", got)
	}
	if st, n := job(young); st != "done" || n != 1 {
		t.Fatalf("young job: %s after %d attempts", st, n)
	}
}

// TestSweepEndsJobPastDeadline: a queued job that cannot finish within the
// import jobs' deadline (here it waits on a prospect another transaction
// holds) is counted an attempt at each sweep and failed after three, with
// the reason, instead of being run again for ever; nothing of it is
// written.
func TestSweepEndsJobPastDeadline(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{jobTimeout: 300 * time.Millisecond})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	db := f.dbs[f.a.ID]
	ctx := context.Background()
	status, first := owner.uploadCSV("prospects", "p.csv", []byte("email,first_name\nheld@example.com,Ann\n"))
	if status != 201 {
		t.Fatalf("upload = %d %s", status, owner.raw)
	}
	owner.must(202, "POST", fmt.Sprintf("%s/imports/%v/apply", api, first["id"]), nil)
	if j := owner.waitJob(first["id"]); j["status"] != "done" {
		t.Fatalf("first job: %s", owner.raw)
	}
	status, job := owner.uploadCSV("prospects", "p.csv", []byte("email,first_name\nheld@example.com,Bea\nother@example.com,Cy\n"))
	if status != 201 {
		t.Fatalf("upload = %d %s", status, owner.raw)
	}
	if _, err := db.Exec(ctx, `UPDATE import_job SET status = 'queued', queued_at = now() - interval '10 minutes' WHERE id = $1`, job["id"]); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // only the lock matters
	if _, err := tx.Exec(ctx, `SELECT 1 FROM prospect WHERE email = 'held@example.com' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	sw := f.sweeper(f.back)
	for i := 1; i <= 3; i++ {
		if got := sw.Sweep(ctx, []*directory.Tenant{f.a}); got.Jobs != 0 {
			t.Fatalf("sweep %d applied %+v", i, got)
		}
		var st, why string
		var attempts int
		if err := db.QueryRow(ctx, `SELECT status, attempts, coalesce(error, '') FROM import_job WHERE id = $1`, job["id"]).Scan(&st, &attempts, &why); err != nil {
			t.Fatal(err)
		}
		want := "queued"
		if i == 3 {
			want = "failed"
		}
		if st != want || attempts != i || !strings.Contains(why, "deadline of 300ms") {
			t.Fatalf("after sweep %d: %s, %d attempts, %q; want %s after %d", i, st, attempts, why, want, i)
		}
	}
	if n := f.count(f.a, `SELECT count(*) FROM prospect WHERE email = 'other@example.com' OR first_name = 'Bea'`); n != 0 {
		t.Fatalf("%d prospects written by a job that never finished", n)
	}
}

// TestSweepVisitsFollowDueWork: with Visits, a sweep visits a tenant in use
// and learns when its queued job falls due; a tenant no longer in use is
// not swept before then, and is swept once the job is due, which then runs.
// The sweeps' own connections do not make the tenant look in use.
func TestSweepVisitsFollowDueWork(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	owner := f.signIn(hostA, f.owner[f.a.ID], ownerPassword)
	ctx := context.Background()
	status, job := owner.uploadCSV("prospects", "p.csv", []byte("email\ndue@example.com\n"))
	if status != 201 {
		t.Fatalf("upload = %d %s", status, owner.raw)
	}
	const grace = 2 * time.Second
	if _, err := f.dbs[f.a.ID].Exec(ctx, `UPDATE import_job SET status = 'queued', queued_at = now() WHERE id = $1`, job["id"]); err != nil {
		t.Fatal(err)
	}
	var inUse atomic.Bool
	inUse.Store(true) // the upload's request
	visits := directory.NewVisits(func(int64) bool { return inUse.Load() }, time.Hour)
	// A replica whose connections come from the pools, as the data plane's.
	opts := f.backOpts
	opts.DB = f.pools
	sw, err := admin.New(opts).NewSweeper(admin.SweeperOptions{
		Tenants: func(context.Context) []*directory.Tenant { return []*directory.Tenant{f.a} },
		Visits:  visits, JobGrace: grace,
	})
	if err != nil {
		t.Fatal(err)
	}
	jobStatus := func() string {
		t.Helper()
		var st string
		if err := f.dbs[f.a.ID].QueryRow(ctx, `SELECT status FROM import_job WHERE id = $1`, job["id"]).Scan(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	sweep := func() admin.Swept {
		t.Helper()
		before := time.Now()
		got := sw.Sweep(ctx, []*directory.Tenant{f.a})
		if f.pools.RequestedWithin(f.a.ID, time.Since(before)) {
			t.Fatal("a sweep's connection counted as the tenant being used")
		}
		return got
	}
	start := time.Now()
	if got := sweep(); got.Jobs != 0 || jobStatus() != "queued" {
		t.Fatalf("the first sweep applied %+v (job %s), want the job left within its grace", got, jobStatus())
	}
	inUse.Store(false)
	if got := visits.Select([]*directory.Tenant{f.a}, time.Now()); len(got) != 0 && time.Since(start) < grace-500*time.Millisecond {
		t.Fatalf("tenant selected %v before its job is due", got)
	}
	if visits.Select([]*directory.Tenant{f.a}, start.Add(grace+time.Second)) == nil {
		t.Fatal("tenant not selected once its job is due")
	}
	deadline := time.Now().Add(10 * time.Second)
	for jobStatus() != "done" {
		if time.Now().After(deadline) {
			t.Fatalf("job %s 10 s after it was due", jobStatus())
		}
		sweep()
		time.Sleep(100 * time.Millisecond)
	}
	if time.Since(start) < grace {
		t.Fatalf("job applied %s after it was queued, before its grace of %s", time.Since(start), grace)
	}
}
