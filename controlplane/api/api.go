// Package api is the control plane's REST API for platform admins, under
// /v1: tenants and their domains, origins, secrets and migrations, admin
// tokens, the audit log, and the long-running operations behind them.
//
// Every route but GET /healthz needs a bearer token (Authorization: Bearer
// <token>), checked against the registry's hashed admin tokens; the OpenAPI
// document at /v1/openapi.json is served to authenticated callers too.
// Every request has a deadline (Options.RequestTimeout), past which it is
// answered 503. Long operations (create, fork, delete, retry,
// rotate-secrets, migrations) answer 202 with the URL of an operation to
// poll, and run on a bounded pool of workers with a queue (Options.Workers,
// Options.Queue), each with a deadline of its own; with the pool full a new
// one is refused with 503 and Retry-After before anything is recorded. An
// operation's record says what to run, so a new server on the same registry
// runs again every one left queued or running.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/google/uuid"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sites"
	"github.com/startupwebapp/platform/tenant/account"
)

// Options configures the admin API.
type Options struct {
	// Provision runs the tenant workflows. Required.
	Provision *provision.Service
	// Registry is read for tenants, tokens, operations and the audit log;
	// nil means Provision.Registry().
	Registry *registry.Registry
	// Log receives one line per request and the detail of internal errors.
	Log *slog.Logger
	// BootstrapToken (SWA_ADMIN_TOKEN) is registered, hashed, at start so
	// the first admin can call the API; empty registers nothing.
	BootstrapToken string
	// BodyLimit caps request bodies in bytes (default 1 MiB).
	BodyLimit int
	// MigrateConcurrency bounds POST /v1/migrations/run (default 4).
	MigrateConcurrency int
	// TrustedProxies are addresses or CIDRs of proxies in front of the API
	// whose X-Forwarded-For is believed when counting failed
	// authentications per client. Empty: the TCP peer is the client.
	TrustedProxies []string
	// Now is the clock of the failed-authentication windows and of the
	// last_used_at interval; nil means time.Now.
	Now func() time.Time
	// Workers run accepted operations, this many at a time (default 4).
	Workers int
	// Queue is how many accepted operations may wait for a worker (default
	// 64); with every worker busy and the queue full, requests that would
	// start one are answered 503 with Retry-After.
	Queue int
	// RequestTimeout is the deadline of every request (default 10 s); one
	// that passes it is answered 503.
	RequestTimeout time.Duration
	// OperationTimeout is the deadline of each operation (default 10 min);
	// one that passes it is recorded failed, and its tenant can be retried.
	OperationTimeout time.Duration
	// SiteLimits bound a tenant's site bundle (sites.Limits defaults);
	// SiteDeployTimeout is a site deploy's deadline, in place of
	// RequestTimeout (default 3 min).
	SiteLimits        sites.Limits
	SiteDeployTimeout time.Duration
	// Hasher hashes the passwords of owners created through the API (the
	// back office's own parameters when nil).
	Hasher *account.Hasher
	// MoveDropInterval is how often the server drops the copies moved
	// tenants left on their old servers once their grace period is over
	// (default 1 min; negative: never, for tests that drop them themselves).
	MoveDropInterval time.Duration
}

// Defaults of Options.
const (
	DefaultWorkers          = 4
	DefaultQueue            = 64
	DefaultRequestTimeout   = 10 * time.Second
	DefaultOperationTimeout = 10 * time.Minute
)

// Server is the admin API: a Fiber app plus the background operations it
// started.
type Server struct {
	app  *fiber.App
	prov *provision.Service
	reg  *registry.Registry
	log  *slog.Logger
	opts Options

	trusted  server.Proxies
	failures *failureLimiter
	usage    *usageNotes

	// ctx lives as long as the server: operations run on it.
	ctx    context.Context
	cancel context.CancelFunc
	work   *workers

	deploys chan struct{} // a slot per site deploy running
}

// New builds the API. It registers the bootstrap token and queues again the
// operations a previous process left queued or running: their workflows
// resume at their first unfinished step.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Provision == nil {
		return nil, errors.New("api: Options.Provision is required")
	}
	if o.Registry == nil {
		o.Registry = o.Provision.Registry()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.BodyLimit <= 0 {
		o.BodyLimit = 1 << 20
	}
	if o.MigrateConcurrency <= 0 {
		o.MigrateConcurrency = 4
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.OperationTimeout <= 0 {
		o.OperationTimeout = DefaultOperationTimeout
	}
	if o.Hasher == nil {
		o.Hasher = account.NewHasher(account.DefaultArgon2)
	}
	if o.SiteLimits.BundleBytes <= 0 {
		o.SiteLimits.BundleBytes = sites.DefaultBundleBytes
	}
	if o.SiteDeployTimeout <= 0 {
		o.SiteDeployTimeout = DefaultSiteDeployTimeout
	}
	trusted, err := server.ParseProxies(o.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s := &Server{prov: o.Provision, reg: o.Registry, log: o.Log, opts: o, trusted: trusted,
		deploys: make(chan struct{}, DefaultSiteDeploys)}
	if o.BootstrapToken != "" {
		if err := s.reg.EnsureBootstrapToken(ctx, o.BootstrapToken); err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.work = startWorkers(o.Workers, o.Queue, s.execute)
	if err := s.resumeOperations(ctx); err != nil {
		s.work.close()
		s.cancel()
		s.work.wait()
		return nil, fmt.Errorf("api: %w", err)
	}
	s.mount()
	if o.MoveDropInterval == 0 {
		o.MoveDropInterval = time.Minute
	}
	if o.MoveDropInterval > 0 {
		go s.dropMovedCopies(o.MoveDropInterval)
	}
	return s, nil
}

// dropMovedCopies drops the old copies of moved tenants every interval
// until the server shuts down; a failure is logged and tried again.
func (s *Server) dropMovedCopies(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.OperationTimeout)
		n, err := s.prov.DropMovedCopies(ctx)
		cancel()
		if err != nil && s.ctx.Err() == nil {
			s.log.Error("dropping moved tenants' old copies", "err", publicMessage(err))
		} else if n > 0 {
			s.log.Info("dropped moved tenants' old copies", "count", n)
		}
	}
}

// mount builds the Fiber app and its routes.
func (s *Server) mount() {
	now := s.opts.Now
	if now == nil {
		now = time.Now
	}
	s.failures = newFailureLimiter(authFailureLimit, authFailureWindow, authFailureClients, now)
	s.usage = newUsageNotes(lastUsedInterval, usageNotesMax, now)
	s.app = fiber.New(fiber.Config{
		AppName: "swa controlplane",
		// The largest body of any route; requestConfig gives every other
		// route BodyLimit as soon as its header is read.
		BodyLimit:    max(s.opts.BodyLimit, int(s.opts.SiteLimits.BundleBytes)+1),
		ErrorHandler: s.handleError,
		// As in the data plane: X-Forwarded-For counts only from a trusted
		// proxy (clientAddr reads it), never from any caller.
		EnableTrustedProxyCheck: true,
		TrustedProxies:          s.opts.TrustedProxies,
		ProxyHeader:             fiber.HeaderXForwardedFor,
		DisableStartupMessage:   true,
		ReadTimeout:             30 * time.Second,
		WriteTimeout:            30 * time.Second,
		IdleTimeout:             2 * time.Minute,
	})
	s.app.Server().HeaderReceived = s.requestConfig
	s.routes()
}

// App returns the Fiber app to listen with.
func (s *Server) App() *fiber.App { return s.app }

// Shutdown stops taking requests and operations, waits for in-flight
// requests and running operations until ctx ends, then cancels the
// operations still running and waits for them to stop. Operations cut off,
// and those still queued, stay so in the registry: the next start runs them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.work.close()
	err := s.app.ShutdownWithContext(ctx)
	done := make(chan struct{})
	go func() { s.work.wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
	}
	s.cancel()
	return err
}

// routes mounts every endpoint. openapi.json lists the same routes; a test
// keeps the two in step.
func (s *Server) routes() {
	app := s.app
	app.Use(s.requestLog)
	app.Use(recover.New())
	app.Use(s.deadline)
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })

	v1 := app.Group("/v1", s.authenticate)
	v1.Get("/openapi.json", s.openAPI)

	v1.Get("/tokens", s.listTokens)
	v1.Post("/tokens", s.createToken)
	v1.Delete("/tokens/:id", s.revokeToken)

	v1.Get("/tenants", s.listTenants)
	v1.Post("/tenants", s.createTenant)
	v1.Get("/tenants/:slug", s.getTenant)
	v1.Patch("/tenants/:slug", s.updateTenant)
	v1.Delete("/tenants/:slug", s.deleteTenant)
	v1.Post("/tenants/:slug/suspend", s.suspendTenant)
	v1.Post("/tenants/:slug/resume", s.resumeTenant)
	v1.Post("/tenants/:slug/retry", s.retryTenant)
	v1.Post("/tenants/:slug/rotate-secrets", s.rotateSecrets)
	v1.Post("/tenants/:slug/migrate", s.migrateTenant)
	v1.Post("/tenants/:slug/fork", s.forkTenant)
	v1.Get("/tenants/:slug/quota", s.getQuota)
	v1.Get("/plans", s.listPlans)

	v1.Get("/tenants/:slug/domains", s.listDomains)
	v1.Post("/tenants/:slug/domains", s.addDomain)
	v1.Delete("/tenants/:slug/domains/:hostname", s.removeDomain)
	v1.Get("/tenants/:slug/origins", s.listOrigins)
	v1.Post("/tenants/:slug/origins", s.addOrigin)
	v1.Delete("/tenants/:slug/origins/:origin", s.removeOrigin)

	v1.Get("/tenants/:slug/site", s.getSite)
	v1.Post("/tenants/:slug/site/versions", s.deploySite)
	v1.Delete("/tenants/:slug/site/versions/:number", s.deleteSiteVersion)
	v1.Post("/tenants/:slug/site/rollback", s.rollbackSite)
	v1.Put("/tenants/:slug/site/mode", s.setSiteMode)

	v1.Get("/tenants/:slug/usage", s.getUsage)

	v1.Get("/tenants/:slug/secrets", s.getSecrets)
	v1.Put("/tenants/:slug/secrets", s.putSecrets)

	v1.Get("/migrations", s.migrationStatus)
	v1.Post("/migrations/run", s.runMigrations)
	v1.Get("/audit", s.listAudit)
	v1.Get("/signups", s.listSignups)
	v1.Get("/operations/:id", s.getOperation)
	s.importRoutes(v1)
	s.ownerRoutes(v1)
	s.serverRoutes(v1)
}

// requestLog writes one line per request: id, method, route, client
// address, status and duration. It never logs headers (Authorization) or
// bodies (secrets).
func (s *Server) requestLog(c *fiber.Ctx) error {
	start := time.Now()
	id := uuid.NewString()
	c.Locals(requestIDKey{}, id)
	c.Set("X-Request-ID", id)
	if err := c.Next(); err != nil {
		if herr := s.handleError(c, err); herr != nil {
			return herr
		}
	}
	status := c.Response().StatusCode()
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	s.log.LogAttrs(c.UserContext(), level, "request",
		slog.String("request_id", id),
		slog.String("method", c.Method()),
		slog.String("route", c.Route().Path),
		slog.String("client", s.clientAddr(c).String()),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
	)
	return nil
}

type requestIDKey struct{}

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(requestIDKey{}).(string)
	return id
}

// deadline gives the request's context the request timeout; a request
// that fails once past it is answered 503.
func (s *Server) deadline(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), s.timeoutOf(c))
	defer cancel()
	c.SetUserContext(ctx)
	err := c.Next()
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errTimedOut
	}
	return err
}

var errTimedOut = &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
	Message: "the request took too long and was stopped; try again"}

// resumeOperations queues again the operations a previous process left
// queued or running, oldest first. It assumes one control-plane process
// owns the operations table (the workflows themselves take a lock per
// tenant, so one run twice only finds its steps done).
func (s *Server) resumeOperations(ctx context.Context) error {
	ops, err := s.reg.PendingOperations(ctx)
	if err != nil {
		return fmt.Errorf("resume operations: %w", err)
	}
	for _, op := range ops {
		slug := ""
		if op.TenantSlug != nil {
			slug = *op.TenantSlug
		}
		who := op.Actor
		if who == "" {
			who = "controlplane" // recorded before operations named their actor
		}
		run, err := s.runner(op.Kind, slug, who)
		if err != nil {
			s.finish(op.ID, op.Kind, fmt.Errorf("cannot resume after a restart: %w", err))
			continue
		}
		s.work.resume(job{id: op.ID, kind: op.Kind, run: run})
	}
	if len(ops) > 0 {
		s.log.Info("operations left by a previous stop queued again", "count", len(ops))
	}
	return nil
}
