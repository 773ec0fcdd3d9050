package campaigns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/platform/directory"
	outbox "github.com/startupwebapp/platform/platform/mail"
)

// Options configure a Worker. Tenants and Conn are required.
type Options struct {
	// Tenants lists the tenants whose campaigns are sent (the directory's
	// serving tenants).
	Tenants func(ctx context.Context) []*directory.Tenant
	// Conn runs fn with a connection to the tenant's database (pools.Do).
	Conn func(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn) error) error

	// Rate is how many campaign mails a tenant's campaigns queue per second
	// (default 10): on this replica alone, or across every replica when
	// Throttle is set.
	Rate float64
	// Throttle, when set, shares Rate among the replicas. When it fails
	// (Redis unreachable), each replica keeps Rate on its own.
	Throttle Throttle
	// Batch is the most recipients claimed in one transaction (default 50,
	// and never more than one second's worth of Rate).
	Batch int
	// Interval is the pause between passes over the tenants (default 5s).
	Interval time.Duration
	// BatchTimeout bounds each batch's transaction (default 30s).
	BatchTimeout time.Duration
	// Concurrency is how many tenants are served in parallel (default 4).
	Concurrency int
	// Visits chooses the tenants of each pass; nil visits every tenant
	// every pass. With it, a pass records when a tenant's next scheduled
	// campaign starts, so that tenant is visited again then.
	Visits *directory.Visits

	Log *slog.Logger
}

// Worker sends every tenant's campaigns.
type Worker struct {
	o Options
	// claimed, when set, runs after each recipient is claimed and before
	// its batch commits (tests cancel a context there).
	claimed func()
}

// NewWorker checks o and fills its defaults.
func NewWorker(o Options) (*Worker, error) {
	if o.Tenants == nil || o.Conn == nil {
		return nil, errors.New("campaign worker: Tenants and Conn are required")
	}
	if o.Rate <= 0 {
		o.Rate = 10
	}
	if o.Batch <= 0 {
		o.Batch = 50
	}
	o.Batch = max(1, min(o.Batch, int(o.Rate)))
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = 30 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Worker{o: o}, nil
}

// Run sends campaigns every Interval until ctx ends.
func (w *Worker) Run(ctx context.Context) error { return directory.Every(ctx, w.o.Interval, w.RunOnce) }

// RunOnce serves the tenants Visits selects (every tenant without it) once,
// Concurrency at a time.
func (w *Worker) RunOnce(ctx context.Context) {
	w.o.Visits.Pass(ctx, w.o.Tenants(ctx), w.o.Concurrency, w.o.Log, "campaign pass",
		func(ctx context.Context, t *directory.Tenant) error { _, err := w.RunTenant(ctx, t); return err },
		w.nextDue)
}

// nextDue is when the tenant's next campaign being sent may start, zero
// when none is.
func (w *Worker) nextDue(ctx context.Context, t *directory.Tenant) (time.Time, error) {
	var due *time.Time
	err := w.with(ctx, t, func(c *pgxpool.Conn, ctx context.Context) error {
		return c.QueryRow(ctx, `SELECT min(coalesce(send_after, now())) FROM email WHERE send_state = 'sending'`).Scan(&due)
	})
	if err != nil || due == nil {
		return time.Time{}, err
	}
	return *due, nil
}

// RunTenant sends the tenant's campaigns being sent until each is done or
// stopped (or ctx ends) and returns how many mails it queued.
func (w *Worker) RunTenant(ctx context.Context, t *directory.Tenant) (int, error) {
	var ids []int64
	err := w.with(ctx, t, func(c *pgxpool.Conn, ctx context.Context) error {
		rows, err := c.Query(ctx, `SELECT id FROM email WHERE send_state = 'sending' AND coalesce(send_after, now()) <= now() ORDER BY id`)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("campaigns of %s: %w", t.Slug, err)
	}
	links := TenantLinks(t)
	total := 0
	for _, id := range ids {
		for ctx.Err() == nil {
			start := time.Now()
			limit, shared := w.grant(ctx, t)
			if limit == 0 {
				_, span := window(w.o.Rate)
				sleep(ctx, untilNext(time.Now(), span))
				continue
			}
			n, more, err := w.batch(ctx, t, id, links, limit)
			total += n
			if err != nil {
				return total, fmt.Errorf("campaign %d of %s: %w", id, t.Slug, err)
			}
			if !more {
				break
			}
			if !shared {
				// The replica's own throttle: n mails take n/Rate seconds.
				sleep(ctx, time.Duration(float64(n)/w.o.Rate*float64(time.Second))-time.Since(start))
			}
		}
	}
	return total, ctx.Err()
}

// grant is how many recipients the next batch may claim, and whether the
// shared throttle granted them (else the replica throttles on its own).
func (w *Worker) grant(ctx context.Context, t *directory.Tenant) (int, bool) {
	if w.o.Throttle == nil {
		return w.o.Batch, false
	}
	budget, span := window(w.o.Rate)
	tctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	n, err := w.o.Throttle.Take(tctx, t, budget, w.o.Batch, span)
	if err != nil {
		if ctx.Err() == nil {
			w.o.Log.Warn("campaign throttle unavailable; this replica keeps the rate on its own", "tenant", t.Slug, "err", err)
		}
		return w.o.Batch, false
	}
	return n, true
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-tm.C:
	}
}

// with runs fn on a tenant connection under BatchTimeout.
func (w *Worker) with(ctx context.Context, t *directory.Tenant, fn func(*pgxpool.Conn, context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, w.o.BatchTimeout)
	defer cancel()
	return w.o.Conn(ctx, t, func(c *pgxpool.Conn) error { return fn(c, ctx) })
}

// claimSQL takes the next pending recipients nobody else holds, with what
// their mail needs and whether they still want it.
const claimSQL = `
SELECT r.id, coalesce(r.member_id, 0), coalesce(r.prospect_id, 0),
       coalesce(a.email, p.email, ''), coalesce(a.first_name, p.first_name, ''), coalesce(a.last_name, p.last_name, ''),
       coalesce(m.mb_cd, p.pr_cd, ''), coalesce(m.email_unsubscribe_string_signed, p.email_unsubscribe_string_signed, ''),
       CASE WHEN r.member_id IS NOT NULL THEN m.newsletter_subscriber AND NOT m.email_unsubscribed AND a.is_active
            ELSE NOT p.email_unsubscribed END
FROM campaign_recipient r
LEFT JOIN member m ON m.id = r.member_id LEFT JOIN account a ON a.id = m.account_id
LEFT JOIN prospect p ON p.id = r.prospect_id
WHERE r.email_id = $1 AND r.status = 'pending'
ORDER BY r.id LIMIT $2
FOR UPDATE OF r SKIP LOCKED`

// finishSQL marks a campaign sent once no recipient is pending; a
// recipient another worker holds is still pending until it commits.
const finishSQL = `
UPDATE email SET send_state = 'done', email_status_id = 3, send_finished_at = now()
WHERE id = $1 AND send_state = 'sending'
  AND NOT EXISTS (SELECT 1 FROM campaign_recipient WHERE email_id = $1 AND status = 'pending')`

type claim struct {
	id int64
	Recipient
	wants bool
}

// batch sends one batch of campaign id in one transaction: each claimed
// recipient's mail is queued, its email_sent row written and its row
// marked, or none of it is. more is false when the campaign is stopped or
// has nobody left to claim.
func (w *Worker) batch(ctx context.Context, t *directory.Tenant, id int64, l Links, limit int) (sent int, more bool, err error) {
	err = w.with(ctx, t, func(conn *pgxpool.Conn, ctx context.Context) error {
		sent, more = 0, false
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// FOR SHARE: Stop waits for this batch; batches run side by side.
			c, err := scanCampaign(tx.QueryRow(ctx, `SELECT `+campaignColumns+`, 0, 0, 0 FROM email e WHERE e.id = $1 FOR SHARE`, id))
			if err != nil {
				return err
			}
			if c.SendState != "sending" {
				return nil
			}
			rows, err := tx.Query(ctx, claimSQL, id, limit)
			if err != nil {
				return err
			}
			claims, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (claim, error) {
				var k claim
				err := row.Scan(&k.id, &k.MemberID, &k.ProspectID, &k.Email, &k.FirstName, &k.LastName, &k.Code, &k.Token, &k.wants)
				return k, err
			})
			if err != nil {
				return err
			}
			for _, k := range claims {
				if w.claimed != nil {
					w.claimed()
				}
				if err := w.deliver(ctx, tx, c, k, l); err != nil {
					return err
				}
				if k.wants {
					sent++
				}
			}
			more = len(claims) > 0
			return nil
		})
	})
	if err != nil {
		return 0, false, err
	}
	if !more {
		err = w.with(ctx, t, func(conn *pgxpool.Conn, ctx context.Context) error {
			_, err := conn.Exec(ctx, finishSQL, id)
			return err
		})
	}
	return sent, more, err
}

// deliver queues one claimed recipient's mail and records it, or skips a
// recipient who unsubscribed since the segment was taken.
func (w *Worker) deliver(ctx context.Context, tx pgx.Tx, c *Campaign, k claim, l Links) error {
	status := "skipped"
	if k.wants && k.Email != "" && k.Token != "" {
		m, err := Compose(c, k.Recipient, l, nil)
		if err != nil {
			return err
		}
		// The dedupe key is a second guard: the claim already makes the
		// mail once-only.
		m.DedupeKey = "campaign:" + strconv.FormatInt(c.ID, 10) + ":" + strconv.FormatInt(k.id, 10)
		if err := outbox.Enqueue(ctx, tx, m); err != nil {
			if !errors.Is(err, outbox.ErrInvalid) {
				return err
			}
			w.o.Log.Warn("campaign mail skipped", "campaign", c.ID, "recipient", k.id, "err", err)
		} else {
			var mid, pid *int64
			if k.MemberID > 0 {
				mid = &k.MemberID
			} else {
				pid = &k.ProspectID
			}
			if _, err := tx.Exec(ctx, `INSERT INTO email_sent (member_id, prospect_id, email_id) VALUES ($1, $2, $3)`, mid, pid, c.ID); err != nil {
				return err
			}
			status = "sent"
		}
	}
	_, err := tx.Exec(ctx, `UPDATE campaign_recipient SET status = $2, done_at = now() WHERE id = $1`, k.id, status)
	return err
}
