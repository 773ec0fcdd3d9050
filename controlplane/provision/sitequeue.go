package provision

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/sites"
)

// Site requests from the back office (tenant table site_deploy_request,
// registry table site_deploy_queue) report their crash point to
// Options.InStep as op OpSite, step StepSiteRequest.
const (
	StepSiteRequest = "request"
	// PointSiteApplied is after the deploy or rollback, before the outcome
	// is written to the tenant's request row.
	PointSiteApplied = "applied"
)

// Defaults of the site request worker.
const (
	// DefaultSiteRequestLease is how long a worker holds a queue row: the
	// deadline of one request, after which another worker may take it.
	DefaultSiteRequestLease = 5 * time.Minute
	// DefaultSiteRequestPoll is how often the worker looks at the queue
	// without a notification, so one missed is picked up.
	DefaultSiteRequestPoll = 30 * time.Second
	// siteRequestAttempts bounds the tries of one request; the last one
	// that fails records the failure.
	siteRequestAttempts = 5
)

// SiteRequestChannel is the registry's notification channel of the queue.
const SiteRequestChannel = "site_deploy_queue"

// siteClaim is a queue row a worker holds.
type siteClaim struct {
	tenantID, requestID int64
	slug                string
	attempts            int
}

// siteRequest is a request row of the tenant's database.
type siteRequest struct {
	kind, status, actor string
	bundle, sum         []byte
	version             *int
}

// claimSiteRequest takes the oldest queue row no live worker holds, for
// lease. Nothing is held open: the lease is the claim.
func (s *Service) claimSiteRequest(ctx context.Context, lease time.Duration) (*siteClaim, error) {
	var c siteClaim
	err := s.opts.Platform.QueryRow(ctx, `
		UPDATE site_deploy_queue q SET claimed_until = now() + $1 * interval '1 millisecond', attempts = q.attempts + 1
		  FROM tenants t
		 WHERE t.id = q.tenant_id AND (q.tenant_id, q.request_id) = (
		       SELECT tenant_id, request_id FROM site_deploy_queue
		        WHERE claimed_until IS NULL OR claimed_until < now()
		        ORDER BY queued_at, request_id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING q.tenant_id, q.request_id, t.slug, q.attempts`, lease.Milliseconds()).
		Scan(&c.tenantID, &c.requestID, &c.slug, &c.attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("site requests: claim: %w", err)
	}
	return &c, nil
}

// RunSiteRequests carries out the back office's site requests (RunSiteRequestsOnce)
// when the registry notifies the queue, and every poll anyway, until ctx ends.
// It listens before each look at the queue, so a request queued while it
// works wakes it at once.
func (s *Service) RunSiteRequests(ctx context.Context, poll time.Duration) error {
	if poll <= 0 {
		poll = DefaultSiteRequestPoll
	}
	for ctx.Err() == nil {
		if err := s.listenSiteRequests(ctx, poll); err != nil && ctx.Err() == nil {
			// No listening connection: look after poll anyway.
			s.log.Warn("site requests: listen", "err", err)
			s.runSiteRequests(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(poll):
			}
		}
	}
	return ctx.Err()
}

func (s *Service) runSiteRequests(ctx context.Context) {
	if _, err := s.RunSiteRequestsOnce(ctx, DefaultSiteRequestLease); err != nil && ctx.Err() == nil {
		s.log.Error("site requests", "err", err)
	}
}

// listenSiteRequests holds one connection listening on the queue's channel
// and runs the queue on each notification or poll, until ctx ends or the
// connection fails.
func (s *Service) listenSiteRequests(ctx context.Context, poll time.Duration) error {
	conn, err := s.opts.Platform.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection may hold a LISTEN or be broken: the pool gets neither back.
	defer func() { conn.Hijack().Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "LISTEN "+SiteRequestChannel); err != nil {
		return err
	}
	for ctx.Err() == nil {
		s.runSiteRequests(ctx)
		wctx, cancel := context.WithTimeout(ctx, poll)
		_, err := conn.Conn().WaitForNotification(wctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
	return nil
}

// RunSiteRequestsOnce carries out every queued site request no worker
// holds, each within lease, and returns how many it finished.
//
// Each step is safe to repeat after a crash anywhere. The queue row is
// deleted last, so a request whose worker died is taken again when its
// lease runs out. A request already finished (the worker died after
// writing the outcome) only has its queue row deleted. A deploy is
// idempotent by the bundle's digest (sites.Store.Deploy: the bundle
// already served answers its version, a pending one is resumed), so a
// worker that died after the deploy and before writing the outcome
// completes with the same version, not a second one; a rollback to a
// version served already changes nothing.
func (s *Service) RunSiteRequestsOnce(ctx context.Context, lease time.Duration) (int, error) {
	n := 0
	for {
		c, err := s.claimSiteRequest(ctx, lease)
		if err != nil || c == nil {
			return n, err
		}
		rctx, cancel := context.WithTimeout(ctx, lease)
		err = s.runSiteRequest(rctx, c)
		cancel()
		if err != nil {
			return n, err
		}
		n++
	}
}

func (s *Service) runSiteRequest(ctx context.Context, c *siteClaim) error {
	var req *siteRequest
	err := s.InTenant(ctx, c.slug, func(ctx context.Context, tx pgx.Tx) error {
		var r siteRequest
		err := tx.QueryRow(ctx, `SELECT r.kind, r.status, coalesce(r.bundle, ''), coalesce(r.sha256, ''), r.version,
			coalesce('staff:' || r.staff_id || ' ' || s.email, 'staff')
			FROM site_deploy_request r LEFT JOIN staff s ON s.id = r.staff_id WHERE r.id = $1`, c.requestID).
			Scan(&r.kind, &r.status, &r.bundle, &r.sum, &r.version, &r.actor)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		req = &r
		return err
	})
	if err != nil {
		return s.retrySiteRequest(ctx, c, err)
	}
	if req == nil || req.status != "queued" {
		return s.dequeueSiteRequest(ctx, c)
	}
	number, failure, err := s.applySiteRequest(ctx, c, req)
	if err != nil {
		return s.retrySiteRequest(ctx, c, err)
	}
	if s.opts.InStep != nil {
		if err := s.opts.InStep(ctx, OpSite, StepSiteRequest, PointSiteApplied); err != nil {
			return err
		}
	}
	if err := s.finishSiteRequest(ctx, c, number, failure); err != nil {
		return s.retrySiteRequest(ctx, c, err)
	}
	return s.dequeueSiteRequest(ctx, c)
}

// applySiteRequest deploys or rolls back. A refusal of the request itself
// (a bad bundle, a version not kept) is its failure, recorded; any other
// error is retried.
func (s *Service) applySiteRequest(ctx context.Context, c *siteClaim, req *siteRequest) (int, string, error) {
	actor := req.actor + " (back office)"
	if req.kind == "rollback" {
		if req.version == nil {
			return 0, "the request names no version", nil
		}
		site, err := s.RollbackSite(ctx, c.slug, *req.version, actor)
		if failure := siteRefusal(err); failure != "" {
			return 0, failure, nil
		}
		if err != nil {
			return 0, "", err
		}
		if site.CurrentVersion == nil {
			return 0, "", fmt.Errorf("site rollback of %s: no version served after it", c.slug)
		}
		return *site.CurrentVersion, "", nil
	}
	if sum := sha256.Sum256(req.bundle); !bytes.Equal(sum[:], req.sum) {
		return 0, "the stored bundle does not match its digest", nil
	}
	b, err := sites.ReadBundle(bytes.NewReader(req.bundle), sites.Limits{})
	var be *sites.BundleError
	if errors.As(err, &be) {
		return 0, be.Error(), nil
	}
	if err != nil {
		return 0, "", err
	}
	v, err := s.DeploySite(ctx, c.slug, b, actor)
	if failure := siteRefusal(err); failure != "" {
		return 0, failure, nil
	}
	if err != nil {
		return 0, "", err
	}
	return v.Number, "", nil
}

// siteRefusal is the reason of an error that trying again would not
// change (a version not kept, a tenant being deleted, a bad field), or "".
func siteRefusal(err error) string {
	var inv *registry.InvalidError
	if errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrConflict) || errors.As(err, &inv) {
		return err.Error()
	}
	return ""
}

// finishSiteRequest writes the outcome into the tenant's request row, only
// while it is still queued, and clears a finished deploy's bundle.
func (s *Service) finishSiteRequest(ctx context.Context, c *siteClaim, number int, failure string) error {
	status := "done"
	var result *int
	if failure != "" {
		status = "failed"
	} else {
		result = &number
	}
	return s.InTenant(ctx, c.slug, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE site_deploy_request SET status = $2, result = $3, error = $4, bundle = NULL,
			finished_at = now() WHERE id = $1 AND status = 'queued'`, c.requestID, status, result, failure)
		return err
	})
}

// retrySiteRequest leaves the row for another try after its lease, or on
// the last attempt records the failure.
func (s *Service) retrySiteRequest(ctx context.Context, c *siteClaim, cause error) error {
	if ctx.Err() != nil || c.attempts < siteRequestAttempts {
		s.log.Warn("site request: will retry", "tenant", c.slug, "request", c.requestID, "attempt", c.attempts, "err", cause)
		return nil
	}
	s.log.Error("site request failed", "tenant", c.slug, "request", c.requestID, "err", cause)
	if err := s.finishSiteRequest(ctx, c, 0, "the site could not be changed; try again later"); err != nil && c.attempts < 2*siteRequestAttempts {
		return nil // the lease runs out and the next try records it
	}
	// Recorded, or the tenant's database is out of reach for good: the
	// queue row goes (a request left queued there is queued again by the
	// back office's next look at the site).
	return s.dequeueSiteRequest(ctx, c)
}

func (s *Service) dequeueSiteRequest(ctx context.Context, c *siteClaim) error {
	_, err := s.opts.Platform.Exec(ctx, `DELETE FROM site_deploy_queue WHERE tenant_id = $1 AND request_id = $2`, c.tenantID, c.requestID)
	if err != nil {
		return fmt.Errorf("site requests: %w", err)
	}
	return nil
}
