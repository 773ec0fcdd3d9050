package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stripe/stripe-go/v76"

	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/tenant/refunds"
)

// The sweeper finishes what a replica that went away left half done. A
// refund row is written pending before Stripe is asked; if the process
// dies (or Stripe does not answer) before Stripe's answer is recorded, and
// the charge.refunded webhook never records it either, the row would stay
// pending and its amount reserved for good. An import job is queued, then
// started in the process that queued it; if that process dies the job
// would stay queued until someone reads it. Every data-plane replica runs
// a sweeper: two replicas asking Stripe for the same row get the same
// refund (the row's idempotency key) and refunds.Record keeps one record;
// two replicas starting the same job are kept apart by its row lock.

// Sweeper defaults.
const (
	DefaultSweepInterval      = time.Minute
	DefaultRefundGrace        = 2 * time.Minute
	DefaultJobGrace           = 2 * time.Minute
	DefaultSweepTenantTimeout = time.Minute
	// stripeKeyWindow is how long a pending row is asked for again with its
	// idempotency key: Stripe keeps a key 24 hours, after which the same key
	// would make a second refund of one already made. An older row is looked
	// up instead among the payment's refunds (settleOld).
	stripeKeyWindow = 23 * time.Hour
	// sweepBatch is how many refunds and jobs one tenant's sweep takes at
	// most; the rest wait for the next sweep.
	sweepBatch = 20
)

// SweeperOptions configure a Sweeper. Tenants is required.
type SweeperOptions struct {
	// Tenants lists the tenants swept (the directory's serving tenants).
	Tenants func(ctx context.Context) []*directory.Tenant
	// Visits chooses the tenants of each sweep; nil sweeps every tenant
	// every time. With it, a sweep records when the tenant's next pending
	// refund or queued job falls due, so the tenant is swept again then.
	Visits *directory.Visits
	// Interval is the time between sweeps (default DefaultSweepInterval).
	Interval time.Duration
	// RefundGrace is how long a refund is pending before the sweeper asks
	// Stripe again (default DefaultRefundGrace); it should exceed the
	// payments timeout, so a request still waiting for Stripe is left to
	// record its own answer.
	RefundGrace time.Duration
	// JobGrace is how long an import job is queued before the sweeper runs
	// it (default DefaultJobGrace).
	JobGrace time.Duration
	// TenantTimeout bounds one tenant's refunds and the finding of its jobs
	// (default DefaultSweepTenantTimeout); each job it runs has the import
	// jobs' own deadline (Options.JobTimeout).
	TenantTimeout time.Duration
}

// Sweeper completes pending refunds and runs queued import jobs that their
// process left behind.
type Sweeper struct {
	a *App
	o SweeperOptions
}

// NewSweeper returns the back office's sweeper, its defaults filled.
func (a *App) NewSweeper(o SweeperOptions) (*Sweeper, error) {
	if o.Tenants == nil {
		return nil, errors.New("admin sweeper: Tenants is required")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultSweepInterval
	}
	if o.RefundGrace <= 0 {
		o.RefundGrace = DefaultRefundGrace
	}
	if o.JobGrace <= 0 {
		o.JobGrace = DefaultJobGrace
	}
	if o.TenantTimeout <= 0 {
		o.TenantTimeout = DefaultSweepTenantTimeout
	}
	return &Sweeper{a: a, o: o}, nil
}

// Swept is what one sweep did.
type Swept struct {
	Refunds int // pending refunds Stripe confirmed, now recorded
	Failed  int // pending refunds Stripe refused or never made, now failed
	Jobs    int // queued import jobs this sweep applied
}

func (s *Swept) add(o Swept) {
	s.Refunds += o.Refunds
	s.Failed += o.Failed
	s.Jobs += o.Jobs
}

// Run sweeps every Interval, starting at once, until ctx ends; it returns
// after the sweep in progress has stopped (a job cut off by it commits
// nothing and stays queued), so the pools may then close.
func (s *Sweeper) Run(ctx context.Context) error {
	return directory.Every(ctx, s.o.Interval, func(ctx context.Context) { s.Sweep(ctx, s.o.Tenants(ctx)) })
}

// Sweep sweeps those of the tenants Visits selects (all of them without
// it) once, one after the other. A tenant whose sweep fails is logged and
// the others are still swept.
func (s *Sweeper) Sweep(ctx context.Context, tenants []*directory.Tenant) Swept {
	var total Swept
	var mu sync.Mutex
	s.o.Visits.Pass(ctx, tenants, 1, s.a.log, "back office sweep",
		func(ctx context.Context, t *directory.Tenant) error {
			n, err := s.SweepTenant(ctx, t)
			mu.Lock()
			total.add(n)
			mu.Unlock()
			if n != (Swept{}) {
				s.a.log.Info("back office sweep", "tenant", t.Slug, "refunds_recorded", n.Refunds, "refunds_failed", n.Failed, "jobs_applied", n.Jobs)
			}
			return err
		}, s.nextDue)
	return total
}

// nextDueSQL finds when the tenant's earliest pending refund ($1: the
// refund grace in seconds) or queued import job ($2: the job grace) left
// now falls due.
const nextDueSQL = `
SELECT least(
  (SELECT min(created_date_time) FROM refund
   WHERE status = 'pending' AND stripe_refund_id IS NULL AND idempotency_key IS NOT NULL) + make_interval(secs => $1),
  (SELECT min(coalesce(queued_at, created_at)) FROM import_job WHERE status = 'queued') + make_interval(secs => $2))`

// nextDue says when the tenant's next sweep has work: a refund or a job
// whose grace ends then (zero: none). One that is due already, a batch
// that did not fit in this sweep, is due at once.
func (s *Sweeper) nextDue(ctx context.Context, t *directory.Tenant) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, s.o.TenantTimeout)
	defer cancel()
	var due *time.Time
	err := s.a.db.Do(ctx, t, func(c *pgxpool.Conn) error {
		return c.QueryRow(ctx, nextDueSQL, s.o.RefundGrace.Seconds(), s.o.JobGrace.Seconds()).Scan(&due)
	})
	if err != nil || due == nil {
		return time.Time{}, err
	}
	return *due, nil
}

// dueRefund is a pending row old enough to ask Stripe about again.
type dueRefund struct {
	pendingRefund
	Old bool // past stripeKeyWindow: looked up, not asked again
}

// dueRefundsSQL finds the pending refunds past the grace ($1 seconds)
// that Stripe has not reported, each saying whether it is past Stripe's
// idempotency window ($2 seconds); dueJobsSQL the import jobs queued past
// their grace ($1 seconds).
const (
	dueRefundsSQL = `
SELECT r.id, p.stripe_payment_intent_id, r.amount, r.idempotency_key, r.created_date_time < now() - make_interval(secs => $2)
FROM refund r JOIN customer_order o ON o.id = r.order_id JOIN order_payment p ON p.id = o.payment_id
WHERE r.status = 'pending' AND r.stripe_refund_id IS NULL AND r.idempotency_key IS NOT NULL
  AND p.stripe_payment_intent_id IS NOT NULL AND r.created_date_time < now() - make_interval(secs => $1)
ORDER BY r.id LIMIT $3`
	dueJobsSQL = `
SELECT id FROM import_job WHERE status = 'queued' AND coalesce(queued_at, created_at) < now() - make_interval(secs => $1)
ORDER BY id LIMIT $2`
)

// SweepTenant sweeps one tenant: its pending refunds (asked again of
// Stripe, with no connection held during the calls) and its queued jobs.
func (s *Sweeper) SweepTenant(ctx context.Context, t *directory.Tenant) (Swept, error) {
	var n Swept
	tctx, cancel := context.WithTimeout(ctx, s.o.TenantTimeout)
	defer cancel()
	var due []dueRefund
	var jobs []int64
	err := s.a.db.Do(tctx, t, func(c *pgxpool.Conn) error {
		if s.a.payments != nil {
			rows, err := c.Query(tctx, dueRefundsSQL, s.o.RefundGrace.Seconds(), stripeKeyWindow.Seconds(), sweepBatch)
			if err != nil {
				return fmt.Errorf("pending refunds: %w", err)
			}
			due, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (dueRefund, error) {
				var d dueRefund
				err := row.Scan(&d.ID, &d.Intent, &d.Amount, &d.Key, &d.Old)
				return d, err
			})
			if err != nil {
				return fmt.Errorf("pending refunds: %w", err)
			}
		}
		rows, err := c.Query(tctx, dueJobsSQL, s.o.JobGrace.Seconds(), sweepBatch)
		if err != nil {
			return fmt.Errorf("queued import jobs: %w", err)
		}
		jobs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("queued import jobs: %w", err)
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	var errs []error
	for _, d := range due {
		if tctx.Err() != nil {
			errs = append(errs, fmt.Errorf("pending refunds: %w", tctx.Err()))
			break
		}
		if d.Old {
			made, err := s.settleOld(tctx, t, d.pendingRefund)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("refund %d: %w", d.ID, err))
			case made:
				n.Refunds++
			default:
				n.Failed++
				s.a.log.Warn("pending refund Stripe never made; marked failed", "tenant", t.Slug, "refund", d.ID)
			}
			continue
		}
		err := s.a.completeRefund(tctx, t, d.pendingRefund)
		var refused *refundRefused
		switch {
		case errors.As(err, &refused):
			n.Failed++
			s.a.log.Warn("pending refund refused by Stripe; marked failed", "tenant", t.Slug, "refund", d.ID, "stripe", refused.se.Msg)
		case err != nil:
			errs = append(errs, fmt.Errorf("refund %d: %w", d.ID, err))
		default:
			n.Refunds++
		}
	}
	if len(jobs) > 0 {
		keys, err := s.a.keyring(tctx, t)
		if err == nil && (len(keys) == 0 || len(keys[0]) == 0) {
			err = errors.New("empty")
		}
		if err != nil {
			return n, errors.Join(append(errs, fmt.Errorf("tenant key: %w", err))...)
		}
		for _, id := range jobs {
			release, ok := s.a.claimJob(t, id)
			if !ok {
				continue // this process runs it already
			}
			applied, err := s.a.runClaimed(ctx, t, keys[0], id)
			release()
			if err != nil {
				errs = append(errs, fmt.Errorf("import job %d: %w", id, err))
			}
			if applied {
				n.Jobs++
			}
		}
	}
	return n, errors.Join(errs...)
}

// settleOld settles a row pending past Stripe's idempotency window without
// asking for a refund again: the refund Stripe made for the row (its
// metadata names the row) is recorded; when there is none, Stripe never
// made it and the row is failed, its amount freed. It reports whether
// Stripe had made it.
func (s *Sweeper) settleOld(ctx context.Context, t *directory.Tenant, p pendingRefund) (bool, error) {
	acct, err := s.a.payments.For(ctx, t)
	if err != nil {
		return false, fmt.Errorf("stripe account: %w", err)
	}
	lctx, cancel := s.a.payments.Bound(ctx)
	defer cancel()
	params := &stripe.RefundListParams{PaymentIntent: stripe.String(p.Intent)}
	params.Context = lctx
	var made *stripe.Refund
	it := acct.API.Refunds.List(params)
	for made == nil && it.Next() {
		if re := it.Refund(); re.Metadata[refunds.MetadataKey] == strconv.FormatInt(p.ID, 10) {
			made = re
		}
	}
	if err := it.Err(); err != nil {
		return false, fmt.Errorf("list refunds: %w", err)
	}
	if made == nil {
		return false, s.a.failRefund(ctx, t, p.ID)
	}
	return true, s.a.recordRefund(ctx, t, p, made)
}
