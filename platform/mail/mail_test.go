package mail_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/platform/mail/mailpit"
	"github.com/startupwebapp/platform/platform/pgtest"
)

func valid() mail.Message {
	return mail.Message{
		Kind:    "welcome",
		From:    "StartUpWebApp <team@example.com>",
		To:      []string{"jane@example.com"},
		Subject: "Welcome",
		Text:    "Hello",
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*mail.Message)
		ok   bool
	}{
		{"valid", func(*mail.Message) {}, true},
		{"with html, bcc and headers", func(m *mail.Message) {
			m.HTML = "<p>Hello</p>"
			m.Bcc = []string{"audit@example.com"}
			m.Headers = map[string]string{"Reply-To": "team@example.com", "List-Unsubscribe": "<https://x.example/u>"}
		}, true},
		{"no kind", func(m *mail.Message) { m.Kind = " " }, false},
		{"no recipient", func(m *mail.Message) { m.To = nil }, false},
		{"bad recipient", func(m *mail.Message) { m.To = []string{"not an address"} }, false},
		{"bad bcc", func(m *mail.Message) { m.Bcc = []string{"@"} }, false},
		{"bad from", func(m *mail.Message) { m.From = "" }, false},
		{"subject with line break", func(m *mail.Message) { m.Subject = "Hi\r\nBcc: victim@example.com" }, false},
		{"empty text", func(m *mail.Message) { m.Text = "" }, false},
		{"header value with line break", func(m *mail.Message) { m.Headers = map[string]string{"X-A": "a\nb"} }, false},
		{"header name with colon", func(m *mail.Message) { m.Headers = map[string]string{"X:A": "a"} }, false},
		{"reserved header", func(m *mail.Message) { m.Headers = map[string]string{"bcc": "x@example.com"} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := valid()
			tt.edit(&m)
			err := m.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tt.ok && !errors.Is(err, mail.ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestBuildMultipartWithoutBccHeader(t *testing.T) {
	t.Parallel()
	m := valid()
	m.HTML = "<p>Hello</p>"
	m.Bcc = []string{"hidden@example.com"}
	m.Headers = map[string]string{"Reply-To": "team@example.com", "List-Unsubscribe": "<https://shop.example/u?t=1>"}
	msg, err := mail.Build(m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	raw := buf.String()
	for _, want := range []string{"multipart/alternative", "text/plain", "text/html", "Reply-To: <team@example.com>",
		"List-Unsubscribe: <https://shop.example/u?t=1>", "Subject: Welcome"} {
		if !strings.Contains(raw, want) {
			t.Errorf("message lacks %q:\n%s", want, raw)
		}
	}
	if strings.Contains(strings.ToLower(raw), "hidden@example.com") {
		t.Errorf("Bcc recipient visible in the message:\n%s", raw)
	}
	rcpts, err := msg.GetRecipients()
	if err != nil || len(rcpts) != 2 {
		t.Errorf("envelope recipients = %v, %v; want To and Bcc", rcpts, err)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	base, max := time.Second, 10*time.Second
	tests := []struct {
		attempts int
		full     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second}, {5, 10 * time.Second}, {40, 10 * time.Second}}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.attempts), func(t *testing.T) {
			t.Parallel()
			for range 50 {
				got := mail.Backoff(tt.attempts, base, max)
				if got > tt.full || got < tt.full*4/5 {
					t.Fatalf("Backoff(%d) = %s, want within [%s, %s]", tt.attempts, got, tt.full*4/5, tt.full)
				}
			}
		})
	}
}

// stack is one tenant database plus a worker wired to it.
type stack struct {
	pool   *pgxpool.Pool
	tenant *directory.Tenant
	relay  mail.SMTPSettings
	mp     *mailpit.Client
}

func newStack(t *testing.T) *stack {
	t.Helper()
	mp := mailpit.New(pgtest.Service(t, "SWA_MAILPIT_URL"))
	host := pgtest.Require(t, "SWA_SMTP_HOST")
	port, err := strconv.Atoi(pgtest.Require(t, "SWA_SMTP_PORT"))
	if err != nil {
		t.Fatalf("SWA_SMTP_PORT: %v", err)
	}
	return &stack{
		pool:   pgtest.NewPool(t, migrations.Tenant),
		tenant: &directory.Tenant{ID: 1, Slug: pgtest.RandomName("mailtest")},
		relay:  mail.SMTPSettings{Host: host, Port: port},
		mp:     mp,
	}
}

func (s *stack) worker(t *testing.T, o mail.Options) *mail.Worker {
	t.Helper()
	o.Tenants = func(context.Context) []*directory.Tenant { return []*directory.Tenant{s.tenant} }
	o.Conn = func(ctx context.Context, _ *directory.Tenant, fn func(*pgxpool.Conn) error) error {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer c.Release()
		return fn(c)
	}
	if o.Relay == nil {
		o.Relay = func(context.Context, *directory.Tenant) (mail.SMTPSettings, error) { return s.relay, nil }
	}
	w, err := mail.NewWorker(o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (s *stack) enqueue(t *testing.T, m mail.Message, commit bool) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if err := mail.Enqueue(ctx, tx, m); err != nil {
		t.Fatal(err)
	}
	if commit {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

type row struct {
	status   string
	attempts int
	lastErr  *string
	sentAt   *time.Time
	next     time.Time
}

func (s *stack) rows(t *testing.T) []row {
	t.Helper()
	rs, err := s.pool.Query(context.Background(),
		`SELECT status, attempts, last_error, sent_at, next_attempt_at FROM email_outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.status, &r.attempts, &r.lastErr, &r.sentAt, &r.next); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func unique(t *testing.T) (subject, rcpt string) {
	id := pgtest.RandomName("m")
	return "Outbox test " + id, id + "@example.com"
}

func TestRolledBackMailIsNeverSent(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	subject, rcpt := unique(t)
	m := valid()
	m.To, m.Subject = []string{rcpt}, subject
	s.enqueue(t, m, false)

	res, err := s.worker(t, mail.Options{}).RunTenant(context.Background(), s.tenant)
	if err != nil {
		t.Fatal(err)
	}
	if res != (mail.Result{}) {
		t.Fatalf("RunTenant = %+v, want nothing done", res)
	}
	if n := len(s.rows(t)); n != 0 {
		t.Fatalf("%d outbox rows after rollback", n)
	}
	time.Sleep(200 * time.Millisecond)
	if n := s.mp.Count(t, `to:"`+rcpt+`"`); n != 0 {
		t.Fatalf("%d messages delivered for a rolled-back transaction", n)
	}
}

func TestCommittedMailIsSentOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	subject, rcpt := unique(t)
	m := valid()
	m.To, m.Subject = []string{rcpt}, subject
	m.Text = "Line one\r\nLine two: https://shop.example/account/?email_verification_code=abc:1x:sig"
	m.HTML = "<p>Line one</p>"
	m.Headers = map[string]string{"Reply-To": "team@example.com", "List-Unsubscribe": "<https://shop.example/account/email-unsubscribe?token=t>"}
	m.DedupeKey = "welcome:" + rcpt
	s.enqueue(t, m, true)
	s.enqueue(t, m, true) // same dedupe key: skipped

	w := s.worker(t, mail.Options{})
	res, err := w.RunTenant(context.Background(), s.tenant)
	if err != nil {
		t.Fatal(err)
	}
	if res != (mail.Result{Sent: 1}) {
		t.Fatalf("first pass = %+v, want one sent", res)
	}
	res, err = w.RunTenant(context.Background(), s.tenant)
	if err != nil || res != (mail.Result{}) {
		t.Fatalf("second pass = %+v, %v; want nothing", res, err)
	}
	rows := s.rows(t)
	if len(rows) != 1 || rows[0].status != "sent" || rows[0].sentAt == nil || rows[0].attempts != 1 || rows[0].lastErr != nil {
		t.Fatalf("outbox = %+v, want one sent row", rows)
	}

	got := s.mp.Wait(t, `to:"`+rcpt+`"`, 1, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	if n := s.mp.Count(t, `to:"`+rcpt+`"`); n != 1 {
		t.Fatalf("%d messages delivered, want 1", n)
	}
	msg := got[0]
	if msg.Subject != subject || !strings.Contains(msg.Text, "Line two: https://shop.example/account/?email_verification_code=abc:1x:sig") ||
		!strings.Contains(msg.HTML, "<p>Line one</p>") {
		t.Fatalf("delivered message = %+v", msg)
	}
	if lu := msg.Headers["List-Unsubscribe"]; len(lu) != 1 || lu[0] != "<https://shop.example/account/email-unsubscribe?token=t>" {
		t.Fatalf("List-Unsubscribe = %q", lu)
	}
	if len(msg.ReplyTo) != 1 || msg.ReplyTo[0].Address != "team@example.com" {
		t.Fatalf("Reply-To = %+v", msg.ReplyTo)
	}
}

// closedPort returns a local TCP address nobody listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestRelayDownRetriesWithBackoffThenFails(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.relay = mail.SMTPSettings{Host: "127.0.0.1", Port: closedPort(t), Username: "u", Password: "relay-secret-value"}
	subject, rcpt := unique(t)
	m := valid()
	m.To, m.Subject = []string{rcpt}, subject
	s.enqueue(t, m, true)

	base := 300 * time.Millisecond
	w := s.worker(t, mail.Options{MaxAttempts: 3, BaseBackoff: base, MaxBackoff: 10 * time.Second})
	ctx := context.Background()
	for attempt := 1; attempt <= 3; attempt++ {
		before := time.Now()
		res, err := w.RunTenant(ctx, s.tenant)
		if err != nil {
			t.Fatal(err)
		}
		rows := s.rows(t)
		if len(rows) != 1 {
			t.Fatalf("%d rows, want the row kept", len(rows))
		}
		r := rows[0]
		if r.attempts != attempt || r.lastErr == nil || *r.lastErr == "" {
			t.Fatalf("attempt %d: row %+v", attempt, r)
		}
		if strings.Contains(*r.lastErr, "relay-secret-value") {
			t.Fatalf("last_error leaks the relay password: %s", *r.lastErr)
		}
		if attempt < 3 {
			if res != (mail.Result{Retried: 1}) || r.status != "queued" {
				t.Fatalf("attempt %d: %+v, row %+v; want a retry", attempt, res, r)
			}
			// Exponential: the wait doubles (less at most a fifth of jitter).
			full := base << (attempt - 1)
			wait := r.next.Sub(before)
			if wait < full*4/5-100*time.Millisecond || wait > full+time.Second {
				t.Fatalf("attempt %d: next attempt in %s, want about %s", attempt, wait, full)
			}
			// Not due yet: a pass now does nothing.
			if res, err := w.RunTenant(ctx, s.tenant); err != nil || res != (mail.Result{}) {
				t.Fatalf("early pass = %+v, %v; want nothing", res, err)
			}
			time.Sleep(time.Until(r.next) + 50*time.Millisecond)
			continue
		}
		if res != (mail.Result{Failed: 1}) || r.status != "failed" || r.sentAt != nil {
			t.Fatalf("last attempt: %+v, row %+v; want failed", res, r)
		}
	}
	// Failed rows stay failed.
	if res, err := w.RunTenant(ctx, s.tenant); err != nil || res != (mail.Result{}) {
		t.Fatalf("pass after failure = %+v, %v", res, err)
	}
}

// permanent rejects every message as an SMTP 5xx would.
type permanent struct{}

func (permanent) Send(context.Context, mail.SMTPSettings, mail.Message) error {
	return &mail.PermanentError{Err: errors.New("550 mailbox unavailable")}
}

func TestPermanentRejectionFailsAtOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	m := valid()
	s.enqueue(t, m, true)
	res, err := s.worker(t, mail.Options{Sender: permanent{}, MaxAttempts: 5}).RunTenant(context.Background(), s.tenant)
	if err != nil || res != (mail.Result{Failed: 1}) {
		t.Fatalf("RunTenant = %+v, %v; want failed", res, err)
	}
	r := s.rows(t)[0]
	if r.status != "failed" || r.attempts != 1 || r.lastErr == nil || *r.lastErr != "550 mailbox unavailable" {
		t.Fatalf("row = %+v", r)
	}
}

func TestRelayUnavailableSkipsTenantWithoutSpendingAttempts(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.enqueue(t, valid(), true)
	w := s.worker(t, mail.Options{Relay: func(context.Context, *directory.Tenant) (mail.SMTPSettings, error) {
		return mail.SMTPSettings{}, errors.New("secrets unavailable")
	}})
	if _, err := w.RunTenant(context.Background(), s.tenant); err == nil {
		t.Fatal("RunTenant succeeded without a relay")
	}
	if r := s.rows(t)[0]; r.attempts != 0 || r.status != "queued" {
		t.Fatalf("row = %+v, want untouched", r)
	}
}

// holdFirst is a Sender for one of several workers: it delivers through
// real SMTP, but the worker's first message waits until every worker has
// reached its first send. A worker sends only what it claimed, so while the
// first sends wait, every worker holds a claim of its own at the same time:
// the overlap the claim query must survive is forced, not hoped for.
type holdFirst struct {
	next    mail.Sender
	arrived *sync.WaitGroup // Done once per worker, at its first send
	all     <-chan struct{} // closed once every worker arrived
	once    sync.Once

	mu   sync.Mutex
	sent []string // subjects this worker delivered
}

func (h *holdFirst) Send(ctx context.Context, relay mail.SMTPSettings, m mail.Message) error {
	h.once.Do(h.arrived.Done)
	select {
	case <-h.all:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Second):
		return errors.New("not every worker claimed mail while this one held its first claim")
	}
	if err := h.next.Send(ctx, relay, m); err != nil {
		return err
	}
	h.mu.Lock()
	h.sent = append(h.sent, m.Subject)
	h.mu.Unlock()
	return nil
}

func TestWorkersShareAnOutboxWithoutDoubleSending(t *testing.T) {
	t.Parallel()
	const workers, messages = 3, 12
	s := newStack(t)
	_, rcpt := unique(t)
	for i := range messages {
		m := valid()
		m.To = []string{rcpt}
		m.Subject = rcpt + " parallel " + strconv.Itoa(i)
		s.enqueue(t, m, true)
	}

	var arrived sync.WaitGroup
	arrived.Add(workers)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	senders := make([]*holdFirst, workers)
	ws := make([]*mail.Worker, workers)
	for i := range workers {
		senders[i] = &holdFirst{next: mail.SMTP{}, arrived: &arrived, all: all}
		ws[i] = s.worker(t, mail.Options{Batch: 2, Sender: senders[i]})
	}

	type outcome struct {
		res mail.Result
		err error
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := make(chan struct{})
	done := make(chan outcome, workers)
	for _, w := range ws {
		go func() {
			<-start
			res, err := w.RunTenant(ctx, s.tenant)
			done <- outcome{res, err}
		}()
	}
	close(start)
	var total mail.Result
	for range workers {
		o := <-done
		if o.err != nil {
			t.Errorf("RunTenant: %v", o.err)
		}
		total.Sent, total.Retried, total.Failed = total.Sent+o.res.Sent, total.Retried+o.res.Retried, total.Failed+o.res.Failed
	}
	if total != (mail.Result{Sent: messages}) {
		t.Fatalf("workers did %+v in all, want %d sent and nothing retried or failed", total, messages)
	}

	seen := map[string]int{}
	for i, h := range senders {
		if len(h.sent) == 0 {
			t.Errorf("worker %d sent nothing: the work was not shared", i)
		}
		for _, subj := range h.sent {
			seen[subj]++
		}
	}
	for i := range messages {
		if subj := rcpt + " parallel " + strconv.Itoa(i); seen[subj] != 1 {
			t.Errorf("%q handed to SMTP %d times, want once", subj, seen[subj])
		}
	}
	for i, r := range s.rows(t) {
		if r.status != "sent" || r.attempts != 1 {
			t.Errorf("outbox row %d: %s after %d attempts, want sent after one", i, r.status, r.attempts)
		}
	}
	got := s.mp.Wait(t, `to:"`+rcpt+`"`, messages, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	if n := s.mp.Count(t, `to:"`+rcpt+`"`); n != messages {
		t.Fatalf("%d messages delivered, want %d", n, messages)
	}
	delivered := map[string]int{}
	for _, m := range got {
		delivered[m.Subject]++
	}
	for subj, n := range delivered {
		if n != 1 {
			t.Errorf("Mailpit holds %q %d times", subj, n)
		}
	}
}
