package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// Workflow and step names, as recorded in provisioning_steps and passed to
// Options.AfterStep and Options.InStep.
const (
	OpCreate  = "create"
	OpFork    = "fork"
	OpDelete  = "delete"
	OpRotate  = "rotate"  // RotateSecrets
	OpSecrets = "secrets" // SetSecrets
	OpUpdate  = "update"  // Update and UpdateSettings: one transaction, no step records

	StepReserve  = "reserve"  // tenant row (provisioning), domains, origins
	StepSecrets  = "secrets"  // db password, session key, Stripe/SMTP
	StepDatabase = "database" // role and database from the template
	StepMigrate  = "migrate"  // tenant migrations (a no-op on a fresh clone)
	StepCopy     = "copy"     // fork only: the source's catalog and reference rows
	StepActivate = "activate" // status active: the data plane routes it

	StepMark    = "mark"    // delete: status deleting
	StepDrop    = "drop"    // delete: sessions ended, database and role dropped
	StepForget  = "forget"  // delete: secrets deleted
	StepSite    = "site"    // delete: site versions and their blobs purged
	StepRelease = "release" // delete: domains released, status deleted

	StepStore    = "store"    // rotate, secrets: a new bundle version
	StepApply    = "apply"    // rotate: the role's password set to the stored one
	StepAnnounce = "announce" // rotate, secrets: audit entry and a new generation for the data plane
	StepUpdate   = "update"   // update: the tenant row changed
)

// Points inside steps where Options.InStep runs: each after a side effect
// that the step's record does not yet show, or, for a step that commits its
// change and its record together, inside that transaction (PointInTx).
const (
	PointInTx            = "in-tx"            // inside the step's transaction, before it commits
	PointStored          = "stored"           // a new secret version written
	PointRole            = "role"             // role created or its password reset
	PointTemplate        = "template"         // template database ready
	PointCreated         = "created"          // tenant database created
	PointOwned           = "owned"            // database and its objects handed to the role
	PointMigrated        = "migrated"         // tenant migrations applied, not yet recorded
	PointRecorded        = "recorded"         // migration result recorded
	PointCopied          = "copied"           // fork: source rows committed into the new database
	PointMarked          = "marked"           // delete: status deleting committed
	PointSessionsEnded   = "sessions-ended"   // delete: sessions on the database terminated
	PointDatabaseDropped = "database-dropped" // delete: database dropped, role still there
	PointRoleDropped     = "role-dropped"     // delete: role dropped
	PointForgotten       = "forgotten"        // delete: secrets deleted
	PointApplied         = "applied"          // rotate: role password changed
)

// stopped is an error of a test hook: the workflow stops as a crash would,
// without recording the step failed.
type stopped struct{ err error }

func (e *stopped) Error() string { return e.err.Error() }
func (e *stopped) Unwrap() error { return e.err }

// inStep runs Options.InStep at a point of a step of op.
func (s *Service) inStep(ctx context.Context, op, step, point string) error {
	if s.opts.InStep == nil {
		return nil
	}
	if err := s.opts.InStep(ctx, op, step, point); err != nil {
		return &stopped{err}
	}
	return nil
}

// at runs Options.InStep at a point of a step of the workflow.
func (w *workflow) at(ctx context.Context, step, point string) error {
	return w.s.inStep(ctx, w.op, step, point)
}

// CreateSteps lists the steps of a create (fork: with the copy step).
func CreateSteps(fork bool) []string {
	if fork {
		return []string{StepReserve, StepSecrets, StepDatabase, StepMigrate, StepCopy, StepActivate}
	}
	return []string{StepReserve, StepSecrets, StepDatabase, StepMigrate, StepActivate}
}

// DeleteSteps lists the steps of a delete.
func DeleteSteps() []string { return []string{StepMark, StepDrop, StepForget, StepSite, StepRelease} }

// lock serialises workflows on one tenant across control-plane replicas: it
// holds a session advisory lock on a connection of its own (outside the
// pool, so any number of workflows waiting for locks never starve the pool
// that the secrets store and the other queries need), on which the workflow
// then runs its registry queries.
func (s *Service) lock(ctx context.Context, slug string) (*pgx.Conn, func(), error) {
	conn, err := pgx.ConnectConfig(ctx, s.opts.Platform.Config().ConnConfig.Copy())
	if err != nil {
		return nil, nil, fmt.Errorf("tenant %s: lock: %w", slug, err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext($1))`, "swa:tenant:"+slug); err != nil {
		conn.Close(context.Background())
		return nil, nil, fmt.Errorf("tenant %s: lock: %w", slug, err)
	}
	// Closing the session releases the lock.
	return conn, func() { conn.Close(context.Background()) }, nil
}

// normalized is a validated CreateRequest.
type normalized struct {
	CreateRequest
	defaultDomain string
}

func (s *Service) normalize(req CreateRequest) (normalized, error) {
	n := normalized{CreateRequest: req}
	n.Slug = strings.TrimSpace(req.Slug)
	if err := registry.ValidateSlug(n.Slug); err != nil {
		return n, err
	}
	n.DisplayName = strings.TrimSpace(req.DisplayName)
	if n.DisplayName == "" {
		n.DisplayName = n.Slug
	}
	if err := validateDisplayName(n.DisplayName); err != nil {
		return n, err
	}
	n.Plan = strings.TrimSpace(req.Plan)
	if n.Plan == "" {
		n.Plan = "standard"
	}
	if err := validatePlan(n.Plan); err != nil {
		return n, err
	}
	if req.ForkOf != "" {
		if err := registry.ValidateSlug(req.ForkOf); err != nil {
			return n, &registry.InvalidError{Field: "fork_of", Message: "want the slug of an existing tenant"}
		}
		if req.ForkOf == n.Slug {
			return n, &registry.InvalidError{Field: "fork_of", Message: "a tenant cannot fork itself"}
		}
	}
	n.defaultDomain = n.Slug + "." + s.opts.BaseDomain
	if _, err := registry.NormalizeHostname(n.defaultDomain); err != nil {
		return n, &registry.InvalidError{Field: "slug", Message: "does not make a valid hostname with the base domain"}
	}
	n.Domains = nil
	seen := map[string]bool{n.defaultDomain: true}
	for _, d := range req.Domains {
		h, err := registry.NormalizeHostname(d)
		if err != nil {
			return n, &registry.InvalidError{Field: "domains", Message: err.(*registry.InvalidError).Message}
		}
		if !seen[h] {
			seen[h] = true
			n.Domains = append(n.Domains, h)
		}
	}
	n.Origins = nil
	seenO := map[string]bool{}
	for _, o := range req.Origins {
		v, err := registry.NormalizeOrigin(o)
		if err != nil {
			return n, &registry.InvalidError{Field: "origins", Message: err.(*registry.InvalidError).Message}
		}
		if !seenO[v] {
			seenO[v] = true
			n.Origins = append(n.Origins, v)
		}
	}
	if err := registry.ValidateSettings(req.Settings); err != nil {
		return n, err
	}
	if err := req.Secrets.Validate(); err != nil {
		return n, err
	}
	return n, nil
}

func validateDisplayName(name string) error {
	if name == "" || len(name) > 200 || strings.ContainsAny(name, "\r\n") {
		return &registry.InvalidError{Field: "display_name", Message: "want one line of 1-200 characters"}
	}
	return nil
}

func validatePlan(plan string) error {
	if !tenancy.ValidPlan(plan) {
		return &registry.InvalidError{Field: "plan", Message: "want 1-40 characters of a-z, 0-9 and '-'"}
	}
	return nil
}

// Create makes a new tenant and runs every step; it returns the tenant once
// active. A slug already in the registry is ErrConflict (see Ensure). With
// req.ForkOf set, the new tenant starts with a copy of that tenant's catalog,
// reference rows and settings, but only the request's origins: the source's
// belong to its own frontend.
func (s *Service) Create(ctx context.Context, req CreateRequest, actor string) (registry.Tenant, error) {
	return s.create(ctx, req, actor, false)
}

// Ensure is Create made idempotent: a tenant that exists and is active or
// suspended is returned as it is; one left provisioning or failed resumes at
// its first unfinished step (with req's secrets, if its secrets step has not
// run); a deleting or deleted one is ErrConflict.
func (s *Service) Ensure(ctx context.Context, req CreateRequest, actor string) (registry.Tenant, error) {
	return s.create(ctx, req, actor, true)
}

func (s *Service) create(ctx context.Context, req CreateRequest, actor string, ensure bool) (registry.Tenant, error) {
	n, err := s.normalize(req)
	if err != nil {
		return registry.Tenant{}, err
	}
	conn, unlock, err := s.lock(ctx, n.Slug)
	if err != nil {
		return registry.Tenant{}, err
	}
	defer unlock()
	reg := s.reg.With(conn)
	t, err := reg.Tenant(ctx, n.Slug)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		t, err = s.reserve(ctx, reg, n, actor)
		if err != nil {
			return registry.Tenant{}, err
		}
	case err != nil:
		return registry.Tenant{}, err
	case !ensure:
		return registry.Tenant{}, fmt.Errorf("tenant %s: slug is taken: %w", n.Slug, registry.ErrConflict)
	case t.Status == registry.StatusActive || t.Status == registry.StatusSuspended:
		return t, nil
	case t.Status != registry.StatusProvisioning && t.Status != registry.StatusFailed:
		return t, fmt.Errorf("tenant %s is %s: %w", n.Slug, t.Status, registry.ErrConflict)
	}
	return s.resumeCreate(ctx, reg, t, &n.Secrets, actor)
}

// Reserve runs the first steps of a create or fork, the reservation (tenant
// row, domains, origins) and the secrets, and returns the tenant, still
// provisioning. Bad input and a taken slug or hostname are refused before
// anything is written, as by Create. Retry then runs the remaining steps,
// typically in the background. Should the secrets step fail, the tenant is
// returned failed with the error, and Retry resumes it.
func (s *Service) Reserve(ctx context.Context, req CreateRequest, actor string) (registry.Tenant, error) {
	n, err := s.normalize(req)
	if err != nil {
		return registry.Tenant{}, err
	}
	conn, unlock, err := s.lock(ctx, n.Slug)
	if err != nil {
		return registry.Tenant{}, err
	}
	defer unlock()
	reg := s.reg.With(conn)
	if _, err := reg.Tenant(ctx, n.Slug); err == nil {
		return registry.Tenant{}, fmt.Errorf("tenant %s: slug is taken: %w", n.Slug, registry.ErrConflict)
	} else if !errors.Is(err, registry.ErrNotFound) {
		return registry.Tenant{}, err
	}
	t, err := s.reserve(ctx, reg, n, actor)
	if err != nil {
		return t, err
	}
	w := s.createWorkflow(reg, t, &n.Secrets, actor)
	defer w.close()
	steps := w.createSteps()
	if err := w.run(ctx, steps[:2]); err != nil { // reserve (recorded) and secrets
		if cur, rerr := reg.TenantByID(context.WithoutCancel(ctx), t.ID); rerr == nil {
			t = cur
		}
		return t, err
	}
	return reg.TenantByID(ctx, t.ID)
}

// Retry resumes a create or fork that crashed or failed, at its first
// unfinished step. Secrets given to the original request are lost if its
// secrets step never ran: set them afterwards with SetSecrets, or resume with
// Ensure and the same request instead.
func (s *Service) Retry(ctx context.Context, slug, actor string) (registry.Tenant, error) {
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
	if t.Status != registry.StatusProvisioning && t.Status != registry.StatusFailed {
		return t, fmt.Errorf("tenant %s is %s, nothing to retry: %w", slug, t.Status, registry.ErrConflict)
	}
	return s.resumeCreate(ctx, reg, t, nil, actor)
}

// reserve is step 1: the tenant row, its domains and origins, in one
// transaction with the step's record and an audit entry.
func (s *Service) reserve(ctx context.Context, reg *registry.Registry, n normalized, actor string) (registry.Tenant, error) {
	op := OpCreate
	if n.ForkOf != "" {
		op = OpFork
	}
	var t registry.Tenant
	err := registry.Transact(ctx, reg.DB(), func(tx pgx.Tx) error {
		rg := reg.With(tx)
		var server registry.DBServer
		var err error
		if s.opts.DBServer != "" {
			server, err = rg.DBServerByName(ctx, s.opts.DBServer)
		} else {
			server, err = rg.PickDBServer(ctx)
		}
		if err != nil {
			return err
		}
		nt := registry.NewTenant{
			Slug: n.Slug, DisplayName: n.DisplayName, Plan: n.Plan,
			DBServerID: server.ID, DBName: s.DBName(n.Slug), DBRole: s.DBName(n.Slug),
			Settings: n.Settings, SecretsRef: secrets.TenantSecretName(n.Slug),
			DefaultDomain: n.defaultDomain, Domains: n.Domains, Origins: n.Origins,
		}
		if n.ForkOf != "" {
			src, err := rg.Tenant(ctx, n.ForkOf)
			if errors.Is(err, registry.ErrNotFound) {
				return &registry.InvalidError{Field: "fork_of", Message: "no tenant " + n.ForkOf}
			}
			if err != nil {
				return err
			}
			if src.Status != registry.StatusActive && src.Status != registry.StatusSuspended {
				return fmt.Errorf("tenant %s is %s and cannot be forked: %w", src.Slug, src.Status, registry.ErrConflict)
			}
			nt.ForkOfID = &src.ID
			// The source's origins are not copied: they belong to its
			// frontend, which must not call the fork with credentials.
			nt.Settings = mergeSettings(src.Settings, n.Settings)
		}
		t, err = rg.InsertTenant(ctx, nt)
		if err != nil {
			return err
		}
		if err := rg.StepDone(ctx, t.ID, op, StepReserve); err != nil {
			return err
		}
		if err := rg.Audit(ctx, actor, "tenant."+op, t.ID, nil, t); err != nil {
			return err
		}
		return s.inStep(ctx, op, StepReserve, PointInTx)
	})
	if err != nil {
		return registry.Tenant{}, fmt.Errorf("provision %s: %s: %w", n.Slug, StepReserve, err)
	}
	if s.opts.AfterStep != nil {
		if err := s.opts.AfterStep(op, StepReserve); err != nil {
			return t, err
		}
	}
	return t, nil
}

// workflow is one run of a multi-step operation on one tenant.
type workflow struct {
	s     *Service
	reg   *registry.Registry // on the locked connection
	op    string
	t     registry.Tenant
	actor string
	in    *SecretsInput // the request's secrets, nil on Retry
	sv    *server       // admin connection to the tenant's server, opened on first use
	// onFail, when set, runs after a step failed (not after a crash).
	onFail func(err error)
}

type step struct {
	name string
	run  func(w *workflow, ctx context.Context) error
}

func (w *workflow) server(ctx context.Context) (*server, error) {
	if w.sv == nil {
		sv, err := w.s.connect(ctx, w.t.DBServerID)
		if err != nil {
			return nil, err
		}
		w.sv = sv
	}
	return w.sv, nil
}

func (w *workflow) close() {
	if w.sv != nil {
		w.sv.close()
	}
}

// run executes the steps not yet recorded done, in order.
func (w *workflow) run(ctx context.Context, steps []step) error {
	recorded, err := w.reg.Steps(ctx, w.t.ID, w.op)
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, r := range recorded {
		done[r.Step] = r.Status == "done"
	}
	for _, st := range steps {
		if done[st.name] {
			continue
		}
		if err := w.reg.StepStarted(ctx, w.t.ID, w.op, st.name); err != nil {
			return err
		}
		if err := st.run(w, ctx); err != nil {
			var crash *stopped
			if !errors.As(err, &crash) {
				w.fail(st.name, err)
			}
			return fmt.Errorf("provision %s: %s %s: %w", w.t.Slug, w.op, st.name, err)
		}
		if err := w.reg.StepDone(ctx, w.t.ID, w.op, st.name); err != nil {
			return err
		}
		if w.s.opts.AfterStep != nil {
			if err := w.s.opts.AfterStep(w.op, st.name); err != nil {
				return err
			}
		}
	}
	return nil
}

// fail records a failed step; a failed create leaves the tenant failed (not
// routed) until Retry.
func (w *workflow) fail(stepName string, err error) {
	ctx := context.Background()
	if e := w.reg.StepFailed(ctx, w.t.ID, w.op, stepName, err.Error()); e != nil {
		w.s.log.Error("recording failed step", "tenant", w.t.Slug, "op", w.op, "step", stepName, "err", e)
	}
	if w.op == OpCreate || w.op == OpFork {
		if _, e := w.reg.SetStatus(ctx, w.t.ID, []tenancy.Status{registry.StatusProvisioning}, registry.StatusFailed); e != nil {
			w.s.log.Error("marking tenant failed", "tenant", w.t.Slug, "err", e)
		}
	}
	w.s.log.Error("provisioning step failed", "tenant", w.t.Slug, "op", w.op, "step", stepName, "err", err)
	if w.onFail != nil {
		w.onFail(err)
	}
}

func (s *Service) resumeCreate(ctx context.Context, reg *registry.Registry, t registry.Tenant, in *SecretsInput, actor string) (registry.Tenant, error) {
	if t.Status == registry.StatusFailed {
		var err error
		if t, err = reg.SetStatus(ctx, t.ID, []tenancy.Status{registry.StatusFailed}, registry.StatusProvisioning); err != nil {
			return t, err
		}
	}
	w := s.createWorkflow(reg, t, in, actor)
	defer w.close()
	if err := w.run(ctx, w.createSteps()); err != nil {
		return registry.Tenant{}, err
	}
	return reg.TenantByID(ctx, t.ID)
}

// createWorkflow is the create (or, for a tenant with a source, fork)
// workflow of t on the locked registry connection.
func (s *Service) createWorkflow(reg *registry.Registry, t registry.Tenant, in *SecretsInput, actor string) *workflow {
	w := &workflow{s: s, reg: reg, op: OpCreate, t: t, actor: actor, in: in}
	if t.ForkOfID != nil {
		w.op = OpFork
	}
	return w
}

// createSteps are the steps of CreateSteps with what each runs.
func (w *workflow) createSteps() []step {
	steps := []step{
		{StepReserve, func(*workflow, context.Context) error { return nil }}, // the row exists
		{StepSecrets, (*workflow).ensureSecrets},
		{StepDatabase, (*workflow).ensureDatabase},
		{StepMigrate, (*workflow).migrate},
	}
	if w.op == OpFork {
		steps = append(steps, step{StepCopy, (*workflow).copyFromSource})
	}
	return append(steps, step{StepActivate, (*workflow).activate})
}

// ensureSecrets is step 2. An existing bundle keeps its password and session
// key; a new version is stored only when something changed.
func (w *workflow) ensureSecrets(ctx context.Context) error {
	b, err := secrets.LoadBundle(ctx, w.s.opts.Secrets, w.t.SecretsRef)
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return err
	}
	changed := false
	if b.DBPassword == "" {
		b.DBPassword = randomHex(32)
		changed = true
	}
	if b.SessionKey == "" {
		b.SessionKey = randomBase64(32)
		changed = true
	}
	if w.in != nil && len(w.in.apply(&b)) > 0 {
		changed = true
	}
	if w.s.opts.DevStripeAPIBase != "" && b.StripeSecretKey == "" {
		b.StripeSecretKey = w.s.opts.DevStripeSecretKey
		if b.StripePublishableKey == "" {
			b.StripePublishableKey = w.s.opts.DevStripePublishableKey
		}
		changed = true
	}
	if !changed {
		return nil
	}
	if _, err := secrets.SaveBundle(ctx, w.s.opts.Secrets, w.t.SecretsRef, b); err != nil {
		return err
	}
	return w.at(ctx, StepSecrets, PointStored)
}

// ensureDatabase is step 3: the role with the stored password, then the
// database cloned from the template and owned by that role.
func (w *workflow) ensureDatabase(ctx context.Context) error {
	sv, err := w.server(ctx)
	if err != nil {
		return err
	}
	b, err := secrets.LoadBundle(ctx, w.s.opts.Secrets, w.t.SecretsRef)
	if err != nil {
		return err
	}
	if err := ensureRole(ctx, sv.conn, w.t.DBRole, b.DBPassword); err != nil {
		return err
	}
	if err := w.at(ctx, StepDatabase, PointRole); err != nil {
		return err
	}
	if err := w.s.ensureDatabase(ctx, sv, w.t.DBName, w.t.DBRole, w.at); err != nil {
		return err
	}
	return w.at(ctx, StepDatabase, PointOwned)
}

// migrate is step 4: the tenant migrations, run as the tenant's role so
// whatever they create belongs to it. On a fresh clone there is nothing to do.
func (w *workflow) migrate(ctx context.Context) error {
	sv, err := w.server(ctx)
	if err != nil {
		return err
	}
	res, err := w.s.migrateTenant(ctx, sv, w.t)
	if err == nil {
		if err := w.at(ctx, StepMigrate, PointMigrated); err != nil {
			return err
		}
	}
	if rerr := w.reg.RecordMigration(ctx, w.t.ID, res.To, err); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	return w.at(ctx, StepMigrate, PointRecorded)
}

// activate is the last step: status active (the trigger NOTIFYs the data
// plane on commit), the step's record and the audit entry in one transaction.
func (w *workflow) activate(ctx context.Context) error {
	return registry.Transact(ctx, w.reg.DB(), func(tx pgx.Tx) error {
		rg := w.reg.With(tx)
		before, err := rg.TenantByID(ctx, w.t.ID)
		if err != nil {
			return err
		}
		after, err := rg.SetStatus(ctx, w.t.ID, []tenancy.Status{registry.StatusProvisioning}, registry.StatusActive)
		if err != nil {
			return err
		}
		if err := rg.StepDone(ctx, w.t.ID, w.op, StepActivate); err != nil {
			return err
		}
		if err := rg.Audit(ctx, w.actor, "tenant.activate", w.t.ID, before, after); err != nil {
			return err
		}
		return w.at(ctx, StepActivate, PointInTx)
	})
}
