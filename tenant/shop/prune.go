package shop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/startupwebapp/platform/platform/directory"
)

// Checkout records (checkout_session and its lines and discounts) of
// sessions that were never paid are of no use once Stripe can no longer
// complete them, and they keep the SKUs, shipping methods and discount codes
// they name from being deleted. Records of paid sessions are kept for good:
// they are the proof of what the order's session charged.

// MinCheckoutRecordAge is the youngest an unpaid checkout record may be
// pruned at. A Checkout Session can be paid until it expires, at most 24
// hours after it was created, and Stripe retries checkout.session.completed
// for up to 3 days after that; an order made then still needs the record,
// or it would be made from the cart as it is (or not at all, if the cart is
// gone) although the money was taken.
const MinCheckoutRecordAge = 96 * time.Hour

// DefaultCheckoutRecordAge is the age at which the Pruner removes unpaid
// checkout records: MinCheckoutRecordAge with room to spare.
const DefaultCheckoutRecordAge = 7 * 24 * time.Hour

// Beginner starts a transaction; *pgxpool.Pool and *pgxpool.Conn are ones.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// pruneBatch is how many records one transaction deletes, so that row
// locks are held briefly and an order maker never waits long.
const pruneBatch = 200

// pickStaleSQL locks a batch of unpaid records older than $1 seconds. An
// order maker holds its session's record locked (lockSnapshotSQL) until its
// order commits; such a record is skipped, never waited on.
const pickStaleSQL = `
SELECT s.id FROM checkout_session s
WHERE s.created_at < now() - make_interval(secs => $1)
  AND NOT EXISTS (SELECT 1 FROM customer_order o WHERE o.stripe_checkout_session_id = s.id)
ORDER BY s.created_at
LIMIT $2
FOR UPDATE OF s SKIP LOCKED`

// deleteStaleSQL runs as a second statement, so its snapshot is taken after
// the locks are held: an order committed by a maker that had the record
// locked before us is seen here, and that record stays. Lines and discounts
// go with their record (ON DELETE CASCADE).
const deleteStaleSQL = `
DELETE FROM checkout_session s
WHERE s.id = ANY($1)
  AND NOT EXISTS (SELECT 1 FROM customer_order o WHERE o.stripe_checkout_session_id = s.id)`

// PruneCheckoutRecords deletes at most limit checkout records older than
// olderThan whose session made no order, with their lines and discounts, in
// transactions of a few hundred, and returns how many it deleted. Records
// of paid sessions are never touched. olderThan under MinCheckoutRecordAge
// is refused, since a record that young may still become an order.
func PruneCheckoutRecords(ctx context.Context, db Beginner, olderThan time.Duration, limit int) (int64, error) {
	if olderThan < MinCheckoutRecordAge {
		return 0, fmt.Errorf("prune checkout records: age %s is under %s, while a session may still be paid", olderThan, MinCheckoutRecordAge)
	}
	if limit <= 0 {
		return 0, fmt.Errorf("prune checkout records: limit %d is not positive", limit)
	}
	var total int64
	for total < int64(limit) {
		n := min(pruneBatch, limit-int(total))
		var picked int
		var deleted int64
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, pickStaleSQL, olderThan.Seconds(), n)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil || len(ids) == 0 {
				return err
			}
			picked = len(ids)
			tag, err := tx.Exec(ctx, deleteStaleSQL, ids)
			if err != nil {
				return err
			}
			deleted = tag.RowsAffected()
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("prune checkout records: %w", err)
		}
		total += deleted
		// A short batch means nothing more is due (or the rest is locked by
		// order makers right now).
		if picked < n {
			break
		}
	}
	return total, nil
}

// PrunerOptions configure a Pruner. Tenants and DB are required.
type PrunerOptions struct {
	// Tenants lists the tenants whose records are pruned (the directory's
	// serving tenants).
	Tenants func(ctx context.Context) []*directory.Tenant
	// DB gives a connection to a tenant's database (*pools.Manager).
	DB DB
	// Visits chooses the tenants of each pass; nil prunes every tenant
	// every pass.
	Visits *directory.Visits

	Age         time.Duration // records older than this go (default DefaultCheckoutRecordAge)
	Interval    time.Duration // between passes (default 10m)
	Limit       int           // records deleted per tenant per pass (default 1000)
	Concurrency int           // tenants pruned in parallel (default 2)
	PassTimeout time.Duration // deadline of one tenant's pass (default 1m)
	Log         *slog.Logger
}

// Pruner removes the serving tenants' stale unpaid checkout records
// periodically. Replicas may each run one: a record one of them has locked
// is skipped by the others.
type Pruner struct {
	o PrunerOptions
}

// NewPruner checks o and fills its defaults.
func NewPruner(o PrunerOptions) (*Pruner, error) {
	if o.Tenants == nil || o.DB == nil {
		return nil, errors.New("checkout record pruner: Tenants and DB are required")
	}
	if o.Age == 0 {
		o.Age = DefaultCheckoutRecordAge
	}
	if o.Age < MinCheckoutRecordAge {
		return nil, fmt.Errorf("checkout record pruner: age %s is under %s, while a session may still be paid", o.Age, MinCheckoutRecordAge)
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Minute
	}
	if o.Limit <= 0 {
		o.Limit = 1000
	}
	if o.PassTimeout <= 0 {
		o.PassTimeout = time.Minute
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Pruner{o: o}, nil
}

// Run prunes every Interval, starting at once, until ctx ends; it returns
// only after the pass in progress has stopped, so the pools may then close.
func (p *Pruner) Run(ctx context.Context) error {
	return directory.Every(ctx, p.o.Interval, p.RunOnce)
}

// RunOnce makes one pass over the tenants Visits selects (every tenant
// without it), Concurrency at a time. A tenant whose database fails is
// logged and skipped; the others are still pruned.
func (p *Pruner) RunOnce(ctx context.Context) {
	p.o.Visits.Pass(ctx, p.o.Tenants(ctx), p.o.Concurrency, p.o.Log, "checkout record pruning",
		func(ctx context.Context, t *directory.Tenant) error {
			n, err := p.RunTenant(ctx, t)
			if n > 0 {
				p.o.Log.Info("unpaid checkout records pruned", "tenant", t.Slug, "pruned", n)
			}
			return err
		},
		// Nothing is due before the tenant's next sweep: records age by days.
		func(context.Context, *directory.Tenant) (time.Time, error) { return time.Time{}, nil })
}

// RunTenant prunes one tenant's records, at most Limit of them.
// A pass over one tenant ends after PassTimeout, like any request would.
func (p *Pruner) RunTenant(ctx context.Context, t *directory.Tenant) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, p.o.PassTimeout)
	defer cancel()
	var n int64
	err := p.o.DB.Do(ctx, t, func(c *pgxpool.Conn) error {
		var err error
		n, err = PruneCheckoutRecords(ctx, c, p.o.Age, p.o.Limit)
		return err
	})
	return n, err
}
