package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// transition moves a tenant between statuses in one transaction with its
// audit entry; any other current status is ErrConflict. A reason, when
// given, is recorded with the state after.
func (s *Service) transition(ctx context.Context, slug, actor, action, reason string, from []tenancy.Status, to tenancy.Status) (registry.Tenant, error) {
	var after registry.Tenant
	err := registry.Transact(ctx, s.opts.Platform, func(tx pgx.Tx) error {
		rg := s.reg.With(tx)
		before, err := rg.Tenant(ctx, slug)
		if err != nil {
			return err
		}
		if after, err = rg.SetStatus(ctx, before.ID, from, to); err != nil {
			return err
		}
		var recorded any = after
		if reason != "" {
			recorded = withReason{Tenant: after, Reason: reason}
		}
		return rg.Audit(ctx, actor, action, before.ID, before, recorded)
	})
	if err != nil {
		return registry.Tenant{}, err
	}
	return after, nil
}

// withReason is a tenant's state in the audit log with why it changed.
type withReason struct {
	registry.Tenant
	Reason string `json:"reason"`
}

// MaxReasonLength bounds the reason given for a suspension.
const MaxReasonLength = 500

// Suspend stops routing an active tenant: the data plane answers 503.
func (s *Service) Suspend(ctx context.Context, slug, actor string) (registry.Tenant, error) {
	return s.SuspendFor(ctx, slug, actor, "")
}

// SuspendFor is Suspend with the reason (abuse, unpaid, ...) recorded in
// the audit entry; at most MaxReasonLength characters on one line.
func (s *Service) SuspendFor(ctx context.Context, slug, actor, reason string) (registry.Tenant, error) {
	reason = strings.TrimSpace(reason)
	if utf8.RuneCountInString(reason) > MaxReasonLength || strings.ContainsFunc(reason, unicode.IsControl) {
		return registry.Tenant{}, &registry.InvalidError{Field: "reason",
			Message: fmt.Sprintf("want at most %d characters on one line", MaxReasonLength)}
	}
	return s.transition(ctx, slug, actor, "tenant.suspend", reason, []tenancy.Status{registry.StatusActive}, registry.StatusSuspended)
}

// Resume routes a suspended tenant again.
func (s *Service) Resume(ctx context.Context, slug, actor string) (registry.Tenant, error) {
	return s.transition(ctx, slug, actor, "tenant.resume", "", []tenancy.Status{registry.StatusSuspended}, registry.StatusActive)
}

// Delete removes a tenant for good: status deleting (no longer routed), its
// sessions ended and its database and role dropped, its secrets deleted,
// its site's versions and blobs purged, its domains released, status
// deleted. The registry row and the audit trail
// stay (and so the slug stays taken). Deleting a deleted tenant returns it
// unchanged; a delete that crashed resumes where it stopped.
func (s *Service) Delete(ctx context.Context, slug, actor string) (registry.Tenant, error) {
	conn, unlock, err := s.lock(ctx, slug)
	if err != nil {
		return registry.Tenant{}, err
	}
	defer unlock()
	reg := s.reg.With(conn)
	t, err := reg.Tenant(ctx, slug)
	if err != nil {
		return registry.Tenant{}, err
	}
	if t.Status == registry.StatusDeleted {
		return t, nil
	}
	if t.Status != registry.StatusDeleting {
		// A new delete: forget the records of an earlier one.
		if err := reg.ClearSteps(ctx, t.ID, OpDelete); err != nil {
			return t, err
		}
	}
	w := &workflow{s: s, reg: reg, op: OpDelete, t: t, actor: actor}
	defer w.close()
	steps := []step{
		{StepMark, func(w *workflow, ctx context.Context) error {
			err := registry.Transact(ctx, w.reg.DB(), func(tx pgx.Tx) error {
				rg := w.reg.With(tx)
				before, err := rg.TenantByID(ctx, w.t.ID)
				if err != nil || before.Status == registry.StatusDeleting {
					return err
				}
				after, err := rg.SetStatus(ctx, w.t.ID, []tenancy.Status{registry.StatusProvisioning, registry.StatusActive,
					registry.StatusSuspended, registry.StatusFailed}, registry.StatusDeleting)
				if err != nil {
					return err
				}
				return rg.Audit(ctx, w.actor, "tenant.delete", w.t.ID, before, after)
			})
			if err != nil {
				return err
			}
			return w.at(ctx, StepMark, PointMarked)
		}},
		{StepDrop, func(w *workflow, ctx context.Context) error {
			sv, err := w.server(ctx)
			if err != nil {
				return err
			}
			return dropDatabase(ctx, sv.conn, w.t.DBName, w.t.DBRole, w.at)
		}},
		{StepForget, func(w *workflow, ctx context.Context) error {
			if err := w.s.opts.Secrets.Delete(ctx, w.t.SecretsRef); err != nil {
				return err
			}
			return w.at(ctx, StepForget, PointForgotten)
		}},
		// The site's versions and blobs (in S3 too) go while the tenant is
		// deleting, so no deploy can add to them; stopped at a blob, the
		// step runs again from the start, which repeats only deletions.
		{StepSite, func(w *workflow, ctx context.Context) error {
			return w.s.sites.Purge(ctx, w.t.ID, func(ctx context.Context, point string) error {
				return w.at(ctx, StepSite, point)
			})
		}},
		// The step's record commits with the status: a deleted tenant is
		// returned as it is by a later Delete, which must not find this step
		// unfinished.
		{StepRelease, func(w *workflow, ctx context.Context) error {
			return registry.Transact(ctx, w.reg.DB(), func(tx pgx.Tx) error {
				rg := w.reg.With(tx)
				if err := rg.ReleaseDomains(ctx, w.t.ID); err != nil {
					return err
				}
				before, err := rg.TenantByID(ctx, w.t.ID)
				if err != nil {
					return err
				}
				after, err := rg.SetStatus(ctx, w.t.ID, []tenancy.Status{registry.StatusDeleting}, registry.StatusDeleted)
				if err != nil {
					return err
				}
				if err := rg.StepDone(ctx, w.t.ID, w.op, StepRelease); err != nil {
					return err
				}
				if err := rg.Audit(ctx, w.actor, "tenant.deleted", w.t.ID, before, after); err != nil {
					return err
				}
				return w.at(ctx, StepRelease, PointInTx)
			})
		}},
	}
	if err := w.run(ctx, steps); err != nil {
		return registry.Tenant{}, err
	}
	return reg.TenantByID(ctx, t.ID)
}

// change runs fn on a tenant that still exists (not deleting or deleted) in
// one transaction, with an audit entry of what fn returns.
func (s *Service) change(ctx context.Context, slug, actor, action string, fn func(rg *registry.Registry, t registry.Tenant) (any, error)) error {
	return registry.Transact(ctx, s.opts.Platform, func(tx pgx.Tx) error {
		rg := s.reg.With(tx)
		t, err := rg.Tenant(ctx, slug)
		if err != nil {
			return err
		}
		if t.Status == registry.StatusDeleting || t.Status == registry.StatusDeleted {
			return fmt.Errorf("tenant %s is %s: %w", slug, t.Status, registry.ErrConflict)
		}
		detail, err := fn(rg, t)
		if err != nil {
			return err
		}
		return rg.Audit(ctx, actor, action, t.ID, nil, detail)
	})
}

// AddDomain routes hostname (lowercase DNS name or localhost, no port) to
// the tenant. One another tenant has is ErrConflict; adding one the tenant
// has already changes nothing.
func (s *Service) AddDomain(ctx context.Context, slug, hostname, actor string) error {
	return s.change(ctx, slug, actor, "domain.add", func(rg *registry.Registry, t registry.Tenant) (any, error) {
		h, err := rg.AddDomain(ctx, t.ID, hostname)
		return map[string]string{"hostname": h}, err
	})
}

// RemoveDomain stops routing hostname to the tenant; the default domain
// cannot be removed (ErrConflict).
func (s *Service) RemoveDomain(ctx context.Context, slug, hostname, actor string) error {
	return s.change(ctx, slug, actor, "domain.remove", func(rg *registry.Registry, t registry.Tenant) (any, error) {
		h, err := rg.RemoveDomain(ctx, t.ID, hostname)
		return map[string]string{"hostname": h}, err
	})
}

// AddOrigin trusts a browser origin (scheme://host[:port]) for the tenant.
func (s *Service) AddOrigin(ctx context.Context, slug, origin, actor string) error {
	return s.change(ctx, slug, actor, "origin.add", func(rg *registry.Registry, t registry.Tenant) (any, error) {
		o, err := rg.AddOrigin(ctx, t.ID, origin)
		return map[string]string{"origin": o}, err
	})
}

// RemoveOrigin stops trusting a browser origin.
func (s *Service) RemoveOrigin(ctx context.Context, slug, origin, actor string) error {
	return s.change(ctx, slug, actor, "origin.remove", func(rg *registry.Registry, t registry.Tenant) (any, error) {
		o, err := rg.RemoveOrigin(ctx, t.ID, origin)
		return map[string]string{"origin": o}, err
	})
}

// UpdateSettings applies patch to the tenant's settings and returns the tenant.
func (s *Service) UpdateSettings(ctx context.Context, slug string, patch SettingsPatch, actor string) (registry.Tenant, error) {
	var out registry.Tenant
	err := registry.Transact(ctx, s.opts.Platform, func(tx pgx.Tx) error {
		rg := s.reg.With(tx)
		t, err := rg.Tenant(ctx, slug)
		if err != nil {
			return err
		}
		if t.Status == registry.StatusDeleting || t.Status == registry.StatusDeleted {
			return fmt.Errorf("tenant %s is %s: %w", slug, t.Status, registry.ErrConflict)
		}
		next := patch.apply(t.Settings)
		if err := rg.UpdateSettings(ctx, t.ID, next); err != nil {
			return err
		}
		if out, err = rg.TenantByID(ctx, t.ID); err != nil {
			return err
		}
		if err := rg.Audit(ctx, actor, "settings.update", t.ID, t.Settings, out.Settings); err != nil {
			return err
		}
		return s.inStep(ctx, OpUpdate, StepUpdate, PointInTx)
	})
	return out, err
}

// TenantPatch changes a tenant's display name, plan or settings; nil fields
// are left unchanged.
type TenantPatch struct {
	DisplayName *string        `json:"display_name,omitempty"`
	Plan        *string        `json:"plan,omitempty"`
	Settings    *SettingsPatch `json:"settings,omitempty"`
}

// Update applies patch to a tenant that still exists (not deleting or
// deleted) in one transaction, with one audit entry (tenant.update) holding
// the tenant before and after, and returns the tenant. A patch that changes
// nothing is invalid.
func (s *Service) Update(ctx context.Context, slug string, patch TenantPatch, actor string) (registry.Tenant, error) {
	if patch.DisplayName == nil && patch.Plan == nil && patch.Settings == nil {
		return registry.Tenant{}, &registry.InvalidError{Field: "", Message: "want display_name, plan or settings"}
	}
	var name, plan string
	if patch.DisplayName != nil {
		name = strings.TrimSpace(*patch.DisplayName)
		if err := validateDisplayName(name); err != nil {
			return registry.Tenant{}, err
		}
	}
	if patch.Plan != nil {
		plan = strings.TrimSpace(*patch.Plan)
		if err := validatePlan(plan); err != nil {
			return registry.Tenant{}, err
		}
	}
	var out registry.Tenant
	err := registry.Transact(ctx, s.opts.Platform, func(tx pgx.Tx) error {
		rg := s.reg.With(tx)
		before, err := rg.Tenant(ctx, slug)
		if err != nil {
			return err
		}
		if before.Status == registry.StatusDeleting || before.Status == registry.StatusDeleted {
			return fmt.Errorf("tenant %s is %s: %w", slug, before.Status, registry.ErrConflict)
		}
		if patch.DisplayName != nil || patch.Plan != nil {
			n, p := before.DisplayName, before.Plan
			if patch.DisplayName != nil {
				n = name
			}
			if patch.Plan != nil {
				p = plan
			}
			if err := rg.Rename(ctx, before.ID, n, p); err != nil {
				return err
			}
		}
		if patch.Settings != nil {
			if err := rg.UpdateSettings(ctx, before.ID, patch.Settings.apply(before.Settings)); err != nil {
				return err
			}
		}
		if out, err = rg.TenantByID(ctx, before.ID); err != nil {
			return err
		}
		if err := rg.Audit(ctx, actor, "tenant.update", before.ID, before, out); err != nil {
			return err
		}
		return s.inStep(ctx, OpUpdate, StepUpdate, PointInTx)
	})
	return out, err
}

// SecretsStatus says which of the tenant's secrets are set, and the newest
// version of its bundle; never a value.
func (s *Service) SecretsStatus(ctx context.Context, slug string) (SecretsStatus, error) {
	t, err := s.reg.Tenant(ctx, slug)
	if err != nil {
		return SecretsStatus{}, err
	}
	return s.secretsStatus(ctx, t)
}

func (s *Service) secretsStatus(ctx context.Context, t registry.Tenant) (SecretsStatus, error) {
	versions, err := s.opts.Secrets.Versions(ctx, t.SecretsRef)
	if err != nil {
		return SecretsStatus{}, fmt.Errorf("tenant %s: secrets: %w", t.Slug, err)
	}
	if len(versions) == 0 {
		return SecretsStatus{}, nil
	}
	b, err := secrets.LoadBundle(ctx, s.opts.Secrets, t.SecretsRef)
	if err != nil {
		return SecretsStatus{}, err
	}
	return statusOf(b, versions[len(versions)-1]), nil
}

// unfinished says whether a workflow of n steps that left these records
// stopped before its end.
func unfinished(recorded []registry.Step, n int) bool {
	if len(recorded) == 0 {
		return false
	}
	if len(recorded) < n {
		return true
	}
	for _, st := range recorded {
		if st.Status != "done" {
			return true
		}
	}
	return false
}

// SetSecrets merges the given values into the tenant's bundle (a new
// version when something changed) and says which are set. The audit entry
// names the changed fields, never their values, and a new generation tells
// the data plane. Both follow the new version in a step of their own, so an
// earlier call that stopped between the two is announced by the next one.
func (s *Service) SetSecrets(ctx context.Context, slug string, in SecretsInput, actor string) (SecretsStatus, error) {
	if err := in.Validate(); err != nil {
		return SecretsStatus{}, err
	}
	conn, unlock, err := s.lock(ctx, slug)
	if err != nil {
		return SecretsStatus{}, err
	}
	defer unlock()
	reg := s.reg.With(conn)
	t, err := reg.Tenant(ctx, slug)
	if err != nil {
		return SecretsStatus{}, err
	}
	if t.Status == registry.StatusDeleting || t.Status == registry.StatusDeleted {
		return SecretsStatus{}, fmt.Errorf("tenant %s is %s: %w", slug, t.Status, registry.ErrConflict)
	}
	if _, err := secrets.LoadBundle(ctx, s.opts.Secrets, t.SecretsRef); errors.Is(err, secrets.ErrNotFound) {
		return SecretsStatus{}, fmt.Errorf("tenant %s has no secrets yet (retry its creation first): %w", slug, registry.ErrConflict)
	} else if err != nil {
		return SecretsStatus{}, err
	}
	recorded, err := reg.Steps(ctx, t.ID, OpSecrets)
	if err != nil {
		return SecretsStatus{}, err
	}
	// A call that stopped may have stored a version it never announced.
	announce := unfinished(recorded, 2)
	if err := reg.ClearSteps(ctx, t.ID, OpSecrets); err != nil {
		return SecretsStatus{}, err
	}
	w := &workflow{s: s, reg: reg, op: OpSecrets, t: t, actor: actor}
	defer w.close()
	steps := []step{
		{StepStore, func(w *workflow, ctx context.Context) error {
			b, err := secrets.LoadBundle(ctx, s.opts.Secrets, t.SecretsRef)
			if err != nil {
				return err
			}
			if len(in.apply(&b)) == 0 {
				return nil
			}
			if _, err := secrets.SaveBundle(ctx, s.opts.Secrets, t.SecretsRef, b); err != nil {
				return err
			}
			announce = true
			return w.at(ctx, StepStore, PointStored)
		}},
		{StepAnnounce, func(w *workflow, ctx context.Context) error {
			if !announce {
				return nil
			}
			changed, version, err := s.newestChange(ctx, t.SecretsRef)
			if err != nil {
				return err
			}
			return w.announce(ctx, StepAnnounce, "secrets.set", map[string]any{"changed": changed, "version": version})
		}},
	}
	if err := w.run(ctx, steps); err != nil {
		return SecretsStatus{}, err
	}
	return s.secretsStatus(ctx, t)
}

// newestChange names the fields the newest version of a bundle changed from
// the one before it, and that version.
func (s *Service) newestChange(ctx context.Context, ref string) ([]string, int, error) {
	versions, err := s.opts.Secrets.Versions(ctx, ref)
	if err != nil {
		return nil, 0, err
	}
	if len(versions) == 0 {
		return nil, 0, fmt.Errorf("secret %s: %w", ref, secrets.ErrNotFound)
	}
	newest := versions[len(versions)-1]
	cur, err := loadVersion(ctx, s.opts.Secrets, ref, newest)
	if err != nil {
		return nil, 0, err
	}
	var prev secrets.TenantBundle
	if len(versions) > 1 {
		if prev, err = loadVersion(ctx, s.opts.Secrets, ref, versions[len(versions)-2]); err != nil {
			return nil, 0, err
		}
	}
	changed := inputOf(cur).apply(&prev)
	if prev.DBPassword != cur.DBPassword {
		changed = append(changed, "db_password")
	}
	if prev.SessionKey != cur.SessionKey {
		changed = append(changed, "session_key")
	}
	return changed, newest, nil
}

func loadVersion(ctx context.Context, store secrets.Store, ref string, version int) (secrets.TenantBundle, error) {
	raw, err := store.GetVersion(ctx, ref, version)
	if err != nil {
		return secrets.TenantBundle{}, fmt.Errorf("load secret %s version %d: %w", ref, version, err)
	}
	var b secrets.TenantBundle
	if err := json.Unmarshal(raw, &b); err != nil {
		// The decoder's message could quote the value: do not wrap it.
		return secrets.TenantBundle{}, fmt.Errorf("load secret %s version %d: malformed bundle", ref, version)
	}
	return b, nil
}

// inputOf is every settable field of b as an input.
func inputOf(b secrets.TenantBundle) SecretsInput {
	return SecretsInput{
		StripeSecretKey: &b.StripeSecretKey, StripePublishableKey: &b.StripePublishableKey,
		StripeWebhookSecret: &b.StripeWebhookSecret, SMTPHost: &b.SMTPHost, SMTPPort: &b.SMTPPort,
		SMTPUsername: &b.SMTPUsername, SMTPPassword: &b.SMTPPassword,
	}
}

// announce is the last step of a secrets change: a new generation, which
// tells every data-plane replica to drop the old values at once, not when
// their caches expire, the audit entry and the step's record, in one
// transaction.
func (w *workflow) announce(ctx context.Context, stepName, action string, detail any) error {
	return registry.Transact(ctx, w.reg.DB(), func(tx pgx.Tx) error {
		rg := w.reg.With(tx)
		if err := rg.Touch(ctx, w.t.ID); err != nil {
			return err
		}
		if err := rg.Audit(ctx, w.actor, action, w.t.ID, nil, detail); err != nil {
			return err
		}
		if err := rg.StepDone(ctx, w.t.ID, w.op, stepName); err != nil {
			return err
		}
		return w.at(ctx, stepName, PointInTx)
	})
}

// RotateSecrets gives the tenant a new database password and session key, in
// three recorded steps: the new bundle version is stored, the role's password
// set to the stored one, and the change announced. The data plane re-reads
// the secret when the database refuses a password, so between the first two
// it never holds a rejected one for long. A rotation that stopped part way
// is finished by the next call (which rotates no further); should the ALTER
// fail, the previous values are stored again as the newest version and the
// rotation is abandoned.
func (s *Service) RotateSecrets(ctx context.Context, slug, actor string) error {
	conn, unlock, err := s.lock(ctx, slug)
	if err != nil {
		return err
	}
	defer unlock()
	reg := s.reg.With(conn)
	t, err := reg.Tenant(ctx, slug)
	if err != nil {
		return err
	}
	if t.Status != registry.StatusActive && t.Status != registry.StatusSuspended {
		return fmt.Errorf("tenant %s is %s: %w", slug, t.Status, registry.ErrConflict)
	}
	recorded, err := reg.Steps(ctx, t.ID, OpRotate)
	if err != nil {
		return err
	}
	if !unfinished(recorded, 3) {
		if err := reg.ClearSteps(ctx, t.ID, OpRotate); err != nil {
			return err
		}
	}
	w := &workflow{s: s, reg: reg, op: OpRotate, t: t, actor: actor}
	defer w.close()
	var prev *secrets.TenantBundle // the values this call replaced, if it stored the new ones
	steps := []step{
		{StepStore, func(w *workflow, ctx context.Context) error {
			old, err := secrets.LoadBundle(ctx, s.opts.Secrets, t.SecretsRef)
			if err != nil {
				return err
			}
			next := old.RotateSessionKey(randomBase64(32))
			next.DBPassword = randomHex(32)
			if _, err := secrets.SaveBundle(ctx, s.opts.Secrets, t.SecretsRef, next); err != nil {
				return err
			}
			prev = &old
			return w.at(ctx, StepStore, PointStored)
		}},
		{StepApply, func(w *workflow, ctx context.Context) error {
			cur, err := secrets.LoadBundle(ctx, s.opts.Secrets, t.SecretsRef)
			if err != nil {
				return err
			}
			sv, err := w.server(ctx)
			if err != nil {
				return err
			}
			if err := setPassword(ctx, sv.conn, t.DBRole, cur.DBPassword); err != nil {
				if prev != nil {
					s.abandonRotation(reg, t, *prev)
				}
				return err
			}
			return w.at(ctx, StepApply, PointApplied)
		}},
		{StepAnnounce, func(w *workflow, ctx context.Context) error {
			_, version, err := s.newestChange(ctx, t.SecretsRef)
			if err != nil {
				return err
			}
			return w.announce(ctx, StepAnnounce, "secrets.rotate", map[string]any{
				"rotated": []string{"db_password", "session_key"}, "version": version})
		}},
	}
	if err := w.run(ctx, steps); err != nil {
		return fmt.Errorf("rotate %s: %w", slug, err)
	}
	return nil
}

// abandonRotation stores the values before a rotation again as the newest
// version (the role's password is still the old one) and forgets the
// rotation's records, so the next call starts a new one. A rotation resumed
// after a stop does not know those values: its apply step stays failed, and
// the next call sets the role's password again.
func (s *Service) abandonRotation(reg *registry.Registry, t registry.Tenant, old secrets.TenantBundle) {
	ctx := context.Background()
	_, err := secrets.SaveBundle(ctx, s.opts.Secrets, t.SecretsRef, old)
	if err == nil {
		err = reg.ClearSteps(ctx, t.ID, OpRotate)
	}
	if err != nil {
		s.log.Error("restoring secrets after a failed rotation", "tenant", t.Slug, "err", err)
	}
}
