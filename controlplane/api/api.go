// Package api is the control plane's REST API for platform admins, under
// /v1: tenants and their domains, origins, secrets and migrations, admin
// tokens, the audit log, and the long-running operations behind them.
//
// Every route but GET /healthz needs a bearer token (Authorization: Bearer
// <token>), checked against the registry's hashed admin tokens; the OpenAPI
// document at /v1/openapi.json is served to authenticated callers too.
// Long operations (create, fork, delete, retry, rotate-secrets, migrations)
// answer 202 with the URL of an operation to poll, and run in a goroutine
// tied to the server's lifetime, not to the request.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/google/uuid"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/tenancy"
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
}

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

	// ctx lives as long as the server: background operations run on it.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex // guards closing and ops.Add against Shutdown's Wait
	closing bool
	ops     sync.WaitGroup
}

// New builds the API. It registers the bootstrap token and marks operations
// that a previous process left running as failed (their goroutine died with
// it; the tenant can be retried with POST /v1/tenants/{slug}/retry).
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
	trusted, err := server.ParseProxies(o.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s := &Server{prov: o.Provision, reg: o.Registry, log: o.Log, opts: o, trusted: trusted}
	if o.BootstrapToken != "" {
		if err := s.reg.EnsureBootstrapToken(ctx, o.BootstrapToken); err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
	}
	if err := s.recoverOperations(ctx); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.mount()
	return s, nil
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
		AppName:      "swa controlplane",
		BodyLimit:    s.opts.BodyLimit,
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
	s.routes()
}

// App returns the Fiber app to listen with.
func (s *Server) App() *fiber.App { return s.app }

// Shutdown stops taking requests, waits for in-flight requests and running
// operations until ctx ends, then cancels the operations still running (their
// tenants stay resumable) and waits for them to record their failure.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	err := s.app.ShutdownWithContext(ctx)
	done := make(chan struct{})
	go func() { s.ops.Wait(); close(done) }()
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

	v1.Get("/tenants/:slug/domains", s.listDomains)
	v1.Post("/tenants/:slug/domains", s.addDomain)
	v1.Delete("/tenants/:slug/domains/:hostname", s.removeDomain)
	v1.Get("/tenants/:slug/origins", s.listOrigins)
	v1.Post("/tenants/:slug/origins", s.addOrigin)
	v1.Delete("/tenants/:slug/origins/:origin", s.removeOrigin)

	v1.Get("/tenants/:slug/secrets", s.getSecrets)
	v1.Put("/tenants/:slug/secrets", s.putSecrets)

	v1.Get("/migrations", s.migrationStatus)
	v1.Post("/migrations/run", s.runMigrations)
	v1.Get("/audit", s.listAudit)
	v1.Get("/operations/:id", s.getOperation)
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

// recoverOperations marks operations left running by a dead process as
// failed. It assumes one control-plane process owns the operations table.
func (s *Server) recoverOperations(ctx context.Context) error {
	n, err := s.reg.FailRunningOperations(ctx, "interrupted: the control plane stopped while it ran; retry the tenant")
	if err != nil {
		return fmt.Errorf("recover operations: %w", err)
	}
	if n > 0 {
		s.log.Warn("operations interrupted by a previous stop marked failed", "count", n)
	}
	stuck, err := s.reg.Tenants(ctx, registry.TenantFilter{Statuses: []tenancy.Status{registry.StatusProvisioning}})
	if err != nil {
		return fmt.Errorf("recover operations: %w", err)
	}
	for _, t := range stuck {
		s.log.Warn("tenant left provisioning; POST /v1/tenants/{slug}/retry resumes it", "tenant", t.Slug)
	}
	return nil
}
