package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/usage"
)

// Options configure a Worker. Tenants, Conn and Relay are required.
type Options struct {
	// Tenants lists the tenants whose outboxes are drained (the directory's
	// serving tenants).
	Tenants func(ctx context.Context) []*directory.Tenant
	// Conn runs fn with a connection to the tenant's database (pools.Do).
	Conn func(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn) error) error
	// Relay says which SMTP relay a tenant's mail goes through
	// (BundleRelay reads it from the tenant's secrets).
	Relay func(ctx context.Context, t *directory.Tenant) (SMTPSettings, error)
	// Sender delivers one message (default SMTP{}).
	Sender Sender

	Interval    time.Duration // between passes over all tenants (default 5s)
	Batch       int           // rows claimed at once per tenant (default 20)
	MaxAttempts int           // attempts before a row is marked failed (default 8)
	BaseBackoff time.Duration // wait after the first failure, doubled each time (default 30s)
	MaxBackoff  time.Duration // longest wait between attempts (default 1h)
	// Lease is how long a claimed row stays invisible to other workers; a
	// worker that dies mid-send leaves the row due again after it (default 5m).
	Lease       time.Duration
	Concurrency int // tenants drained in parallel (default 4)
	// Visits chooses the tenants of each pass; nil visits every tenant
	// every pass. With it, a pass records when a tenant's next retry is
	// due, so that tenant is visited again then.
	Visits *directory.Visits
	// Retention is how long a sent or failed mail keeps its bodies
	// (default DefaultRetention); a visit blanks those of older ones, at
	// most every CompactEvery per tenant (default DefaultCompactEvery).
	Retention    time.Duration
	CompactEvery time.Duration

	Log     *slog.Logger
	Metrics prometheus.Registerer // optional
	// Usage counts every message the relay accepted; nil counts nothing.
	Usage usage.Recorder
}

// queryTimeout bounds each claim and each recorded outcome.
const queryTimeout = 10 * time.Second

// Worker drains every tenant's outbox.
type Worker struct {
	o         Options
	results   *prometheus.CounterVec
	mu        sync.Mutex
	compacted map[int64]time.Time // when each tenant's outbox was last compacted
}

// Result counts what one pass over a tenant did.
type Result struct {
	Sent, Retried, Failed int
}

// NewWorker checks o and fills its defaults.
func NewWorker(o Options) (*Worker, error) {
	if o.Tenants == nil || o.Conn == nil || o.Relay == nil {
		return nil, errors.New("mail worker: Tenants, Conn and Relay are required")
	}
	if o.Sender == nil {
		o.Sender = SMTP{}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Interval, 5*time.Second)
	def(&o.BaseBackoff, 30*time.Second)
	def(&o.MaxBackoff, time.Hour)
	def(&o.Lease, 5*time.Minute)
	def(&o.Retention, DefaultRetention)
	def(&o.CompactEvery, DefaultCompactEvery)
	if o.Batch <= 0 {
		o.Batch = 20
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Usage = usage.Or(o.Usage)
	w := &Worker{o: o, compacted: map[int64]time.Time{}}
	if o.Metrics != nil {
		w.results = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swa_mail_deliveries_total",
			Help: "Outbox delivery attempts by result (sent, retry, failed); a tenant's mail sent is its usage (platform/usage).",
		}, []string{"result"})
		if err := o.Metrics.Register(w.results); err != nil {
			return nil, fmt.Errorf("mail worker: metrics: %w", err)
		}
	}
	return w, nil
}

// Run drains the outboxes every Interval until ctx ends.
func (w *Worker) Run(ctx context.Context) error { return directory.Every(ctx, w.o.Interval, w.RunOnce) }

// RunOnce makes one pass over the tenants Visits selects (every tenant
// without it), Concurrency at a time. A tenant whose database or relay is
// unavailable is logged and skipped.
func (w *Worker) RunOnce(ctx context.Context) {
	w.o.Visits.Pass(ctx, w.o.Tenants(ctx), w.o.Concurrency, w.o.Log, "mail outbox pass",
		func(ctx context.Context, t *directory.Tenant) error { _, err := w.RunTenant(ctx, t); return err },
		w.nextDue)
}

// nextDue is when the tenant's next queued mail is due, zero when none is
// queued.
func (w *Worker) nextDue(ctx context.Context, t *directory.Tenant) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var due *time.Time
	err := w.o.Conn(ctx, t, func(c *pgxpool.Conn) error {
		return c.QueryRow(ctx, `SELECT min(next_attempt_at) FROM email_outbox WHERE status = 'queued'`).Scan(&due)
	})
	if err != nil || due == nil {
		return time.Time{}, err
	}
	return *due, nil
}

type outboxRow struct {
	id       int64
	attempts int
	msg      Message
}

// claimSQL takes due rows and hides them for the lease: the row lock is held
// only for this statement, never while talking to the relay.
const claimSQL = `
UPDATE email_outbox o
SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
FROM (
    SELECT id FROM email_outbox
    WHERE status = 'queued' AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
) due
WHERE o.id = due.id
RETURNING o.id, o.attempts, o.kind, o.from_address, o.to_addresses, o.bcc_addresses,
          o.subject, o.body_text, coalesce(o.body_html, ''), o.headers`

const (
	markSentSQL   = `UPDATE email_outbox SET status = 'sent', sent_at = now(), last_error = NULL WHERE id = $1 AND status = 'queued'`
	markRetrySQL  = `UPDATE email_outbox SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3 WHERE id = $1 AND status = 'queued'`
	markFailedSQL = `UPDATE email_outbox SET status = 'failed', last_error = $2, bounced = $3 WHERE id = $1 AND status = 'queued'`
)

// RunTenant sends the tenant's due mail until none is left (at most a few
// batches, so one busy tenant cannot hold a pass forever), then compacts
// the tenant's finished mail past the retention when that is due.
func (w *Worker) RunTenant(ctx context.Context, t *directory.Tenant) (Result, error) {
	var res Result
	relay, err := w.o.Relay(ctx, t)
	if err != nil {
		return res, fmt.Errorf("relay: %w", err)
	}
	for range 10 {
		rows, err := w.claim(ctx, t)
		if err != nil {
			return res, err
		}
		for _, r := range rows {
			if err := w.deliver(ctx, t, relay, r, &res); err != nil {
				return res, err
			}
		}
		if len(rows) < w.o.Batch {
			break
		}
	}
	return res, w.compact(ctx, t)
}

// compactLimit is how many finished mails one visit compacts at most; a
// backlog beyond it is taken up by the next visits.
const compactLimit = 20 * compactBatch

// compact runs CompactOutbox on the tenant once per CompactEvery, on the
// connection of the visit's pass.
func (w *Worker) compact(ctx context.Context, t *directory.Tenant) error {
	now := time.Now()
	w.mu.Lock()
	last, ok := w.compacted[t.ID]
	w.mu.Unlock()
	if (ok && now.Sub(last) < w.o.CompactEvery) || ctx.Err() != nil {
		return nil // not due, or shutting down: another visit compacts
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var n int64
	err := w.o.Conn(ctx, t, func(c *pgxpool.Conn) error {
		var err error
		n, err = CompactOutbox(ctx, c, w.o.Retention, compactLimit)
		return err
	})
	if err != nil {
		return err
	}
	if n > 0 {
		w.o.Log.Info("outbox compacted", "tenant", t.Slug, "mails", n)
	}
	if n < compactLimit { // done for now; a backlog goes on next visit
		w.mu.Lock()
		w.compacted[t.ID] = now
		w.mu.Unlock()
	}
	return nil
}

func (w *Worker) claim(ctx context.Context, t *directory.Tenant) ([]outboxRow, error) {
	var out []outboxRow
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	err := w.o.Conn(ctx, t, func(c *pgxpool.Conn) error {
		rows, err := c.Query(ctx, claimSQL, w.o.Batch, w.o.Lease.Seconds())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r outboxRow
			var to, bcc, headers []byte
			if err := rows.Scan(&r.id, &r.attempts, &r.msg.Kind, &r.msg.From, &to, &bcc,
				&r.msg.Subject, &r.msg.Text, &r.msg.HTML, &headers); err != nil {
				return err
			}
			if err := errors.Join(json.Unmarshal(to, &r.msg.To), json.Unmarshal(bcc, &r.msg.Bcc),
				json.Unmarshal(headers, &r.msg.Headers)); err != nil {
				return fmt.Errorf("outbox row %d: %w", r.id, err)
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return out, nil
}

func (w *Worker) deliver(ctx context.Context, t *directory.Tenant, relay SMTPSettings, r outboxRow, res *Result) error {
	sendErr := w.o.Sender.Send(ctx, relay, r.msg)
	if sendErr != nil && ctx.Err() != nil {
		// Shutting down: the lease brings the row back later.
		return ctx.Err()
	}
	var (
		q    string
		args []any
		kind string
	)
	var perm *PermanentError
	switch {
	case sendErr == nil:
		q, args, kind = markSentSQL, []any{r.id}, "sent"
		res.Sent++
		w.o.Usage.EmailSent(t.ID)
	case errors.As(sendErr, &perm) || r.attempts >= w.o.MaxAttempts:
		// A permanent refusal is the relay bouncing the message.
		q, args, kind = markFailedSQL, []any{r.id, describe(sendErr, relay), perm != nil}, "failed"
		res.Failed++
		w.o.Log.Error("mail not delivered", "tenant", t.Slug, "outbox_id", r.id, "kind", r.msg.Kind,
			"attempts", r.attempts, "err", describe(sendErr, relay))
	default:
		wait := Backoff(r.attempts, w.o.BaseBackoff, w.o.MaxBackoff)
		q, args, kind = markRetrySQL, []any{r.id, wait.Seconds(), describe(sendErr, relay)}, "retry"
		res.Retried++
		w.o.Log.Warn("mail delivery will be retried", "tenant", t.Slug, "outbox_id", r.id, "kind", r.msg.Kind,
			"attempts", r.attempts, "wait", wait, "err", describe(sendErr, relay))
	}
	if w.results != nil {
		w.results.WithLabelValues(kind).Inc()
	}
	// The outcome is recorded even when shutdown has begun: a message the
	// relay accepted but left unrecorded would be sent again after its lease.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), queryTimeout)
	defer cancel()
	err := w.o.Conn(rctx, t, func(c *pgxpool.Conn) error {
		_, err := c.Exec(rctx, q, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("record outcome of outbox row %d: %w", r.id, err)
	}
	return nil
}

// Backoff is the wait after the attempts-th failure: base doubled per
// attempt, capped at max, less up to a fifth of random jitter so that rows
// failing together do not retry together.
func Backoff(attempts int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < attempts && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// describe renders a delivery error for the row and the log: one line,
// bounded, and without the relay's password even if a library echoed it.
func describe(err error, relay SMTPSettings) string {
	s := err.Error()
	if relay.Password != "" {
		s = strings.ReplaceAll(s, relay.Password, "***")
	}
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > 1000 {
		s = string([]rune(s)[:1000]) + "..."
	}
	return s
}

// BundleRelay reads a tenant's relay from its secrets bundle
// (smtp_host/port/username/password) and falls back to def (the platform's
// SWA_SMTP_HOST/PORT) when the bundle names no host.
func BundleRelay(store secrets.Store, def SMTPSettings) func(context.Context, *directory.Tenant) (SMTPSettings, error) {
	return func(ctx context.Context, t *directory.Tenant) (SMTPSettings, error) {
		name := t.SecretsRef
		if name == "" {
			name = secrets.TenantSecretName(t.Slug)
		}
		b, err := secrets.LoadBundle(ctx, store, name)
		if err != nil {
			return SMTPSettings{}, err
		}
		if b.SMTPHost == "" {
			return def, nil
		}
		s := SMTPSettings{Host: b.SMTPHost, Port: b.SMTPPort, Username: b.SMTPUsername, Password: b.SMTPPassword}
		if s.Port == 0 {
			s.Port = 587
		}
		return s, nil
	}
}
