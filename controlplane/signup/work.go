package signup

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/tenant/admin"
)

// The shop of a verified sign-up is made in three idempotent steps, each
// safe to run again after a crash: the tenant, through the provisioning
// workflow (which resumes at its first unfinished step); the founder as its
// owner; the founder's account on the platform site and the record marked
// active, in one transaction. A restarted control plane runs them for
// every verified sign-up not yet active.

func actorOf(id int64) string { return "signup:" + strconv.FormatInt(id, 10) }

// The points between the steps of finishing a sign-up where a crash is
// tested (the provisioning workflow's own are its Options' hooks).
const (
	pointTenant = "tenant" // the tenant is live, the owner not yet made
	pointOwner  = "owner"  // the owner is made, the sign-up not yet active
)

func (s *Site) crash(point string) error {
	if s.crashAt == nil {
		return nil
	}
	return s.crashAt(point)
}

// start hands sign-up id to a worker, or leaves it for the next start when
// the site is closing.
func (s *Site) start(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Go(func() {
		select {
		case s.slots <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		defer func() { <-s.slots }()
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.OperationTimeout)
		defer cancel()
		if err := s.finish(ctx, id); err != nil && s.ctx.Err() == nil {
			s.log.Error("sign-up: creating the shop failed", "signup", id, "err", err)
		}
	})
}

// resume starts every verified sign-up whose shop is not finished.
func (s *Site) resume(ctx context.Context) error {
	rows, err := s.db.Query(ctx, `SELECT id FROM signups WHERE status = 'verified' ORDER BY verified_at`)
	if err != nil {
		return fmt.Errorf("sign-up: resume: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("sign-up: resume: %w", err)
	}
	for _, id := range ids {
		s.start(id)
	}
	return nil
}

// errNotOurs: the subdomain went to a tenant this sign-up did not create.
var errNotOurs = errors.New("the subdomain was taken by another shop meanwhile")

// finish creates the shop of verified sign-up id and makes the founder its
// owner. A failure that retrying cannot fix marks the record failed.
func (s *Site) finish(ctx context.Context, id int64) error {
	r, err := scanRecord(s.db.QueryRow(ctx, `SELECT `+recordColumns+` WHERE id = $1`, id))
	if err != nil || r == nil || r.Status != statusVerified {
		return err
	}
	t, err := s.ensureTenant(ctx, r)
	var invalid *registry.InvalidError
	if errors.Is(err, errNotOurs) || errors.Is(err, registry.ErrConflict) || errors.As(err, &invalid) {
		return s.fail(ctx, r.ID, err)
	}
	if err != nil {
		return err
	}
	if err := s.crash(pointTenant); err != nil {
		return err
	}
	name, _, _ := strings.Cut(r.Email, "@")
	err = s.prov.InTenant(ctx, t.Slug, func(ctx context.Context, tx pgx.Tx) error {
		_, err := admin.CreateOwnerHash(ctx, tx, r.Email, name, r.PasswordHash, actorOf(r.ID))
		return err
	})
	if err != nil {
		return fmt.Errorf("owner: %w", err)
	}
	if err := s.crash(pointOwner); err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := linkFounder(ctx, tx, r.Email, r.PasswordHash, t.ID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE signups SET status = 'active', activated_at = now(), tenant_id = $2
WHERE id = $1 AND status = 'verified'`, r.ID, t.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("sign-up %d: mark active: %w", r.ID, err)
	}
	s.log.Info("sign-up: shop created", "signup", r.ID, "tenant", t.Slug)
	return nil
}

// ensureTenant creates (or resumes creating) the sign-up's tenant: a fork of
// the starter tenant's catalogue when that one is live, else an empty shop.
// A tenant under the slug that this sign-up did not create is errNotOurs:
// its audit trail names who created it.
func (s *Site) ensureTenant(ctx context.Context, r *record) (registry.Tenant, error) {
	if existing, err := s.reg.Tenant(ctx, r.Slug); err == nil {
		if ok, err := s.createdBy(ctx, existing.ID, actorOf(r.ID)); err != nil || !ok {
			return registry.Tenant{}, cmpErr(err, errNotOurs)
		}
	} else if !errors.Is(err, registry.ErrNotFound) {
		return registry.Tenant{}, err
	}
	req := provision.CreateRequest{
		Slug:        r.Slug,
		DisplayName: r.ShopName,
		Plan:        planForSignUps,
		Settings: directory.Settings{
			FromAddress: r.ShopName + " <hello@" + r.Slug + "." + s.opts.BaseDomain + ">",
			// The founder's address stays private: the shop has no
			// contact address until they give one.
			Branding: &directory.Branding{ShopName: r.ShopName},
		},
	}
	if st := s.opts.StarterTenant; st != "" {
		if src, err := s.reg.Tenant(ctx, st); err == nil && src.Status == registry.StatusActive {
			req.ForkOf = st
		}
	}
	t, err := s.prov.Ensure(ctx, req, actorOf(r.ID))
	if err != nil {
		return t, err
	}
	// Ensure returns a live tenant as it is: one created under the slug by
	// someone else between the check above and Ensure's lock is not ours.
	if ok, err := s.createdBy(ctx, t.ID, actorOf(r.ID)); err != nil || !ok {
		return registry.Tenant{}, cmpErr(err, errNotOurs)
	}
	return t, nil
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// createdBy reports whether the registry's audit log has tenant id created
// (or forked) by actor.
func (s *Site) createdBy(ctx context.Context, tenantID int64, actor string) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_log WHERE tenant_id = $1 AND actor = $2
AND action IN ('tenant.create', 'tenant.fork'))`, tenantID, actor).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("who created tenant %d: %w", tenantID, err)
	}
	return ok, nil
}

// fail records why sign-up id cannot be finished; its subdomain is free
// again.
func (s *Site) fail(ctx context.Context, id int64, why error) error {
	msg := why.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err := s.db.Exec(ctx, `UPDATE signups SET status = 'failed', error = $2 WHERE id = $1 AND status = 'verified'`, id, msg)
	if err != nil {
		return fmt.Errorf("sign-up %d: mark failed: %w", id, err)
	}
	s.log.Warn("sign-up failed", "signup", id, "err", msg)
	return nil
}
