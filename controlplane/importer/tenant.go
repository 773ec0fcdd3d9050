package importer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/secrets"
)

// Audit actions of an import.
const (
	// ActionStart is recorded before an import writes anything: a tenant
	// with one has had an import begun, so a re-run may find it non-empty.
	ActionStart = "tenant.import-django.start"
	// ActionDone holds the report of a finished run (dry runs too), with
	// the operation it ran for.
	ActionDone = "tenant.import-django"
	// ActionKey records that the tenant now signs with the Django key.
	ActionKey = "secrets.django-key"
)

// Request is one import of a Django database into a tenant.
type Request struct {
	Slug    string   `json:"slug"`
	Name    string   `json:"display_name,omitempty"`
	Domains []string `json:"domains,omitempty"`
	Origins []string `json:"origins,omitempty"`
	// From is the source's connection string: a secret, never logged,
	// audited or put in an operation record.
	From   string `json:"from"`
	DryRun bool   `json:"dry_run,omitempty"`
	// DjangoSecretKey is the source installation's SECRET_KEY (a secret);
	// given, the tenant signs with it from now on, so every signed value in
	// the source (unsubscribe links, verification and reset codes in
	// flight, an_ct cookies) keeps working.
	DjangoSecretKey string `json:"django_secret_key,omitempty"`
}

// String keeps the secrets out of logs.
func (Request) String() string { return "importer.Request{***}" }

// GoString is String for %#v.
func (r Request) GoString() string { return r.String() }

// Validate checks a request before it is accepted; errors name the field.
func (r Request) Validate() error {
	if err := registry.ValidateSlug(r.Slug); err != nil {
		return err
	}
	if r.From == "" {
		return &registry.InvalidError{Field: "from", Message: "want the connection string of the Django database"}
	}
	if _, err := pgx.ParseConfig(r.From); err != nil {
		// The parser's message may quote the string.
		return &registry.InvalidError{Field: "from", Message: "the connection string does not parse"}
	}
	return nil
}

// Runner runs imports for the control plane.
type Runner struct {
	Provision *provision.Service
	Secrets   secrets.Store
	Log       *slog.Logger
	// AfterTable is Options.AfterTable of every import (tests).
	AfterTable func(table string) error
}

// Run imports req.From into the tenant req.Slug, creating the tenant first
// when there is none (a dry run needs one). operation names the control
// plane's operation in the report's audit entry ("" for none).
func (r *Runner) Run(ctx context.Context, req Request, actor, operation string) (*Report, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := r.Provision.Registry()
	t, err := reg.Tenant(ctx, req.Slug)
	switch {
	case errors.Is(err, registry.ErrNotFound) && req.DryRun:
		return nil, fmt.Errorf("import %s: a dry run needs the tenant to exist; create it first (swa tenant create) or import without --dry-run: %w",
			req.Slug, registry.ErrConflict)
	case errors.Is(err, registry.ErrNotFound) || (err == nil && !req.DryRun):
		t, err = r.Provision.Ensure(ctx, provision.CreateRequest{
			Slug: req.Slug, DisplayName: req.Name, Domains: req.Domains, Origins: req.Origins,
		}, actor)
		if err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	if t.Status != registry.StatusActive && t.Status != registry.StatusSuspended {
		return nil, fmt.Errorf("import %s: tenant is %s: %w", t.Slug, t.Status, registry.ErrConflict)
	}
	begun, err := importBegun(ctx, reg, t.Slug)
	if err != nil {
		return nil, err
	}

	bundle, err := secrets.LoadBundle(ctx, r.Secrets, t.SecretsRef)
	if err != nil {
		return nil, err
	}
	tenantKey, err := base64.StdEncoding.DecodeString(bundle.SessionKey)
	if err != nil || len(tenantKey) == 0 {
		return nil, fmt.Errorf("import %s: the tenant's session key is missing or not base64", t.Slug)
	}
	var djangoKey []byte
	if req.DjangoSecretKey != "" {
		djangoKey = []byte(req.DjangoSecretKey)
	}

	dst, err := r.tenantConn(ctx, t, bundle)
	if err != nil {
		return nil, err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	// One import at a time into a tenant: the lock is the connection's.
	var locked bool
	if err := dst.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext('swa:import-django'))`).Scan(&locked); err != nil {
		return nil, fmt.Errorf("import %s: lock: %w", t.Slug, err)
	}
	if !locked {
		return nil, fmt.Errorf("import %s: another import into this tenant is running: %w", t.Slug, registry.ErrConflict)
	}
	srcCfg, err := pgx.ParseConfig(req.From)
	if err != nil {
		return nil, &registry.InvalidError{Field: "from", Message: "the connection string does not parse"}
	}
	src, err := pgx.ConnectConfig(ctx, srcCfg)
	if err != nil {
		return nil, fmt.Errorf("import %s: connect to the source %s/%s: %s", t.Slug, srcCfg.Host, srcCfg.Database, pgMessage(err))
	}
	defer src.Close(context.WithoutCancel(ctx))

	rep, err := Import(ctx, src, dst, Options{
		TenantKey: tenantKey, DjangoSecretKey: djangoKey, DryRun: req.DryRun, RequireEmpty: !begun,
		AfterTable: r.AfterTable,
		// Recorded once the tenant passed the emptiness check, so a re-run
		// after a stop may find it half full.
		BeforeWrite: func() error {
			if begun {
				return nil
			}
			return reg.Audit(ctx, actor, ActionStart, t.ID, nil, map[string]any{"operation": operation})
		},
		Progress: func(tr TableReport) {
			log.Info("import: table done", "tenant", t.Slug, "table", tr.Table, "read", tr.Read, "inserted", tr.Inserted,
				"updated", tr.Updated, "unchanged", tr.Unchanged, "deleted", tr.Deleted, "refused", len(tr.Refused),
				"duration", time.Duration(tr.Duration).String())
		},
	})
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", t.Slug, err)
	}
	if djangoKey != nil && !req.DryRun {
		if err := r.adoptKey(ctx, reg, t, actor, djangoKey); err != nil {
			return nil, err
		}
	}
	if err := reg.Audit(ctx, actor, ActionDone, t.ID, nil, map[string]any{"operation": operation, "report": rep}); err != nil {
		return nil, err
	}
	return rep, nil
}

// importBegun reports whether an import into the tenant was ever started.
func importBegun(ctx context.Context, reg *registry.Registry, slug string) (bool, error) {
	var before int64
	for {
		page, err := reg.ListAudit(ctx, registry.AuditFilter{TenantSlug: slug, BeforeID: before, Limit: 500})
		if err != nil {
			return false, err
		}
		for _, e := range page {
			if e.Action == ActionStart {
				return true, nil
			}
		}
		if len(page) < 500 {
			return false, nil
		}
		before = page[len(page)-1].ID
	}
}

// LastReport finds the report an operation's import recorded: nil when it
// has none (yet).
func LastReport(ctx context.Context, reg *registry.Registry, slug, operation string) (*Report, error) {
	var before int64
	for {
		page, err := reg.ListAudit(ctx, registry.AuditFilter{TenantSlug: slug, BeforeID: before, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			if e.Action != ActionDone {
				continue
			}
			var v struct {
				Operation string  `json:"operation"`
				Report    *Report `json:"report"`
			}
			if err := json.Unmarshal(e.After, &v); err != nil {
				return nil, fmt.Errorf("import report of %s: %w", slug, err)
			}
			if v.Operation == operation {
				return v.Report, nil
			}
		}
		if len(page) < 500 {
			return nil, nil
		}
		before = page[len(page)-1].ID
	}
}

// tenantConn connects to the tenant's database as its own role.
func (r *Runner) tenantConn(ctx context.Context, t registry.Tenant, b secrets.TenantBundle) (*pgx.Conn, error) {
	if t.DBServerID == nil {
		return nil, fmt.Errorf("import %s: tenant has no database server", t.Slug)
	}
	reg := r.Provision.Registry()
	sv, err := reg.DBServerByID(ctx, *t.DBServerID)
	if err != nil {
		return nil, err
	}
	dsn, err := reg.AdminDSN(ctx, sv)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("db server %s: admin connection string does not parse", sv.Name)
	}
	cfg.Database, cfg.User, cfg.Password = t.DBName, t.DBRole, b.DBPassword
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("import %s: connect to the tenant database: %w", t.Slug, err)
	}
	return conn, nil
}

// adoptKey makes the Django SECRET_KEY the tenant's session key, so what
// the source signed keeps verifying; the data plane picks it up with the
// tenant's next generation. A later rotate-secrets replaces it (and those
// links stop working then, as for any rotation).
func (r *Runner) adoptKey(ctx context.Context, reg *registry.Registry, t registry.Tenant, actor string, key []byte) error {
	b, err := secrets.LoadBundle(ctx, r.Secrets, t.SecretsRef)
	if err != nil {
		return err
	}
	enc := base64.StdEncoding.EncodeToString(key)
	if b.SessionKey == enc {
		return nil
	}
	b.SessionKey = enc
	version, err := secrets.SaveBundle(ctx, r.Secrets, t.SecretsRef, b)
	if err != nil {
		return err
	}
	return registry.Transact(ctx, reg.DB(), func(tx pgx.Tx) error {
		rg := reg.With(tx)
		if err := rg.Touch(ctx, t.ID); err != nil {
			return fmt.Errorf("import %s: announce the new key: %w", t.Slug, err)
		}
		return rg.Audit(ctx, actor, ActionKey, t.ID, nil, map[string]any{"changed": []string{"session_key"}, "version": version})
	})
}
