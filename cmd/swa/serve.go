package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/startupwebapp/platform/platform/config"
	"github.com/startupwebapp/platform/platform/csrf"
	"github.com/startupwebapp/platform/platform/customdomains"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/platform/obs"
	"github.com/startupwebapp/platform/platform/payments"
	"github.com/startupwebapp/platform/platform/pools"
	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/platform/server"
	"github.com/startupwebapp/platform/platform/sessions"
	"github.com/startupwebapp/platform/platform/siteproxy"
	"github.com/startupwebapp/platform/platform/sites"
	"github.com/startupwebapp/platform/platform/tlsserve"
	"github.com/startupwebapp/platform/platform/usage"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/admin"
	"github.com/startupwebapp/platform/tenant/analytics"
	"github.com/startupwebapp/platform/tenant/campaigns"
	"github.com/startupwebapp/platform/tenant/shop"
	"github.com/startupwebapp/platform/tenant/storefront"
)

func serveCommand(e env) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the data plane: the StartupWebApp API of every tenant, routed by hostname",
		Long: `Run the data plane. It reads the tenant registry (SWA_PLATFORM_READ_DATABASE_URL),
serves every active tenant on SWA_HTTP_ADDR, and /healthz, /readyz and /metrics on
SWA_ADMIN_ADDR. Replicas are identical and share nothing but Postgres and Redis.
With SWA_PLATFORM_SITE_URL, requests for the platform hosts (SWA_PLATFORM_HOSTS) are
forwarded to the control plane, where the platform site runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := e.loadConfig()
			if err != nil {
				return err
			}
			log.Info("data plane starting", "version", version, "config", cfg.Dump())
			reg := obs.NewRegistry()
			dp, err := newDataPlane(cmd.Context(), cfg, log, reg)
			if err != nil {
				return err
			}
			if err := dp.listen(); err != nil {
				dp.close(context.Background())
				return err
			}
			return dp.serve(cmd.Context())
		},
	}
}

// dataPlane is one replica of `swa serve`: everything a request needs.
type dataPlane struct {
	cfg       *config.Config
	log       *slog.Logger
	readPool  *pgxpool.Pool
	rdb       *redis.Client
	store     secrets.Store
	dir       *directory.Directory
	pools     *pools.Manager
	limiter   *ratelimit.Limiter
	analytics *analytics.App
	mail      *mail.Worker
	campaigns *campaigns.Worker
	pruner    *shop.Pruner
	sweeper   *admin.Sweeper
	meter     *usage.Meter
	app       *fiber.App
	health    *obs.Health
	tls       *tlsserve.Server // nil without SWA_HTTPS_ADDR
	site      *siteproxy.Proxy // nil without SWA_PLATFORM_SITE_URL

	ln, adminLn, tlsLn net.Listener
}

func newDataPlane(ctx context.Context, cfg *config.Config, log *slog.Logger, reg *prometheus.Registry) (dp *dataPlane, err error) {
	dp = &dataPlane{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			dp.close(context.Background())
		}
	}()
	if dp.readPool, err = openPool(ctx, "platform database (read)", cfg.PlatformReadDatabaseURL, 4); err != nil {
		return nil, err
	}
	if dp.store, err = openSecrets(ctx, cfg, dp.readPool, log); err != nil {
		return nil, err
	}
	if dp.rdb, err = openRedis(ctx, cfg.RedisURL); err != nil {
		return nil, err
	}
	dp.dir = directory.New(directory.Options{DB: dp.readPool, BaseDomain: cfg.BaseDomain, Resync: cfg.DirectoryResync, Log: log})
	if err = dp.dir.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("load tenant directory: %w", err)
	}
	dp.pools, err = pools.New(pools.Options{
		Secrets:        dp.store,
		MaxConns:       cfg.PoolMaxConns,
		Budget:         cfg.PoolBudget,
		IdleTimeout:    cfg.PoolIdleTimeout,
		AcquireTimeout: cfg.PoolAcquireTimeout,
		QueryExecMode:  cfg.TenantDBExecMode,
		ConnParams:     cfg.TenantDBParams,
		// 0 in the configuration leaves the database server's own timeouts.
		StatementTimeout: cmp.Or(cfg.TenantDBStatementTimeout, -1),
		Metrics:          reg,
		Log:              log,
	})
	if err != nil {
		return nil, err
	}
	dp.dir.OnChange(func(old, new *directory.Tenant) {
		// A changed tenant may have new secrets (rotation bumps its
		// generation): read them afresh, then let the pools follow.
		if cache, ok := dp.store.(*secrets.Cache); ok && old != nil {
			cache.Invalidate(old.SecretsRef)
		}
		dp.pools.OnTenantChange(old, new)
	})
	dp.limiter = ratelimit.New(ratelimit.Options{
		Redis: dp.rdb, Prefix: cfg.RedisPrefix, Disabled: !cfg.RateLimits, Log: log, Metrics: reg,
	})
	// Usage is counted in memory and added to the registry every
	// SWA_USAGE_FLUSH_INTERVAL and at shutdown.
	dp.meter, err = usage.NewMeter(usage.Options{
		DB: dp.readPool, Replica: cfg.UsageReplica, Interval: cfg.UsageFlush, Metrics: reg, Log: log,
	})
	if err != nil {
		return nil, err
	}
	dp.analytics = analytics.New(analytics.Options{Pools: dp.pools, Log: log, Metrics: reg, Usage: dp.meter})
	// The mail and campaign workers pass every few seconds; they visit the
	// tenants that are being used, that asked for a visit, or whose sweep
	// is due, rather than logging in to every tenant's database each pass.
	dp.mail, err = mail.NewWorker(mail.Options{
		Tenants: func(context.Context) []*directory.Tenant { return servingTenants(dp.dir) },
		Conn:    dp.pools.Do,
		Visits:  dp.visits(directory.DefaultSweep),
		Relay:   mail.BundleRelay(dp.store, mail.SMTPSettings{Host: cfg.SMTPHost, Port: cfg.SMTPPort}),
		Log:     log,
		Metrics: reg,
		Usage:   dp.meter,
	})
	if err != nil {
		return nil, err
	}
	// Every replica sends campaigns; a recipient one claims is skipped by
	// the others.
	dp.campaigns, err = campaigns.NewWorker(campaigns.Options{
		Tenants: func(context.Context) []*directory.Tenant { return servingTenants(dp.dir) },
		Conn:    dp.pools.Do,
		Visits:  dp.visits(directory.DefaultSweep),
		Rate:    float64(cfg.CampaignRate),
		// The rate is the tenant's across replicas, counted in Redis.
		Throttle: &campaigns.RedisThrottle{Redis: dp.rdb, Prefix: cfg.RedisPrefix},
		Log:      log,
	})
	if err != nil {
		return nil, err
	}
	// Unpaid checkout records are pruned on every replica; a record one
	// is deleting is skipped by the others.
	// Pruning is never urgent (the records are a week old): a tenant not in
	// use is visited once an hour.
	dp.pruner, err = shop.NewPruner(shop.PrunerOptions{
		Tenants: func(context.Context) []*directory.Tenant { return servingTenants(dp.dir) },
		DB:      dp.pools,
		Visits:  dp.visits(time.Hour),
		Log:     log,
	})
	if err != nil {
		return nil, err
	}
	// One key per tenant (its secrets' session key) signs its CSRF tokens,
	// cookies and email codes; the keys rotations replaced still verify
	// mailed links and open sealed TOTP secrets.
	tenantKeys := csrf.BundleKeyring(dp.store, 0)
	tenantKey := tenantKeys.Current()
	sess := sessions.New(sessions.Options{Redis: dp.rdb, Prefix: cfg.RedisPrefix, Log: log})
	accountApp := account.New(account.Options{
		DB:          dp.pools,
		Keyring:     account.KeyringFunc(tenantKeys),
		Sessions:    sess,
		Limiter:     dp.limiter,
		DefaultFrom: "StartupWebApp <no-reply@" + cfg.BaseDomain + ">",
		Log:         log,
	})
	// One set of Stripe clients for the shop's checkouts and the back
	// office's refunds.
	pay := payments.New(payments.Options{Secrets: dp.store, APIBase: cfg.StripeAPIBase, Timeout: cfg.StripeTimeout, Log: log})
	shopApp := shop.New(shop.Options{
		Pools:    dp.pools,
		Payments: pay,
		Keyring:  tenantKeys,
		Account:  accountApp.SessionClaim,
		Metrics:  reg,
		Log:      log,
		Registry: dp.readPool,
		Usage:    dp.meter,
	})
	// The back office checks its own token, bound to the staff session.
	backOffice := admin.New(admin.Options{
		DB:       dp.pools,
		Keyring:  account.KeyringFunc(tenantKeys),
		Redis:    dp.rdb,
		Payments: pay,
		Prefix:   cfg.RedisPrefix,
		Limiter: ratelimit.New(ratelimit.Options{
			Redis: dp.rdb, Prefix: cfg.RedisPrefix, Defaults: admin.RateDefaults(), Disabled: !cfg.RateLimits, Log: log, Metrics: reg,
		}),
		DefaultFrom: "StartupWebApp <no-reply@" + cfg.BaseDomain + ">",
		Log:         log,
		Sessions:    sess,
		Registry:    dp.readPool,
		BaseDomain:  cfg.BaseDomain,
	})
	// Every replica finishes the refunds and import jobs a replica that went
	// away left half done; the grace leaves a request still waiting for
	// Stripe to record its own answer.
	dp.sweeper, err = backOffice.NewSweeper(admin.SweeperOptions{
		Tenants:     func(context.Context) []*directory.Tenant { return servingTenants(dp.dir) },
		Visits:      dp.visits(directory.DefaultSweep),
		RefundGrace: max(admin.DefaultRefundGrace, 2*(cfg.RequestTimeout+cfg.StripeTimeout)),
	})
	if err != nil {
		return nil, err
	}
	site, err := storefront.New(storefront.Options{Account: accountApp, Shop: shopApp, Analytics: dp.analytics, Log: log})
	if err != nil {
		return nil, err
	}
	// Tenants' own frontends, after the API apps and the back office so
	// /user, /order, /clientevent and /admin never reach them.
	siteBlobs, err := openSiteBlobs(ctx, cfg, dp.readPool)
	if err != nil {
		return nil, err
	}
	siteApp := sites.NewHandler(sites.HandlerOptions{DB: dp.readPool, Blobs: siteBlobs, Log: log})
	prot := csrf.New(csrf.Options{
		Key: tenantKey,
		// The one-click unsubscribe is posted by mail clients, without a
		// CSRF token; the signed token in its URL authenticates it.
		Exempt:         []string{"/order/stripe-webhook", account.OneClickPath},
		ExemptPrefixes: []string{"/admin/"},
		Log:            log,
	})
	dp.app = server.New(server.Options{
		Directory:      dp.dir,
		Pools:          dp.pools,
		Log:            log,
		Metrics:        reg,
		Usage:          dp.meter,
		TrustedProxies: cfg.TrustedProxies,
		Env:            cfg.Env,
		RequestTimeout: cfg.RequestTimeout,
		// Every form and call of the API fits in the default 64 KiB. The
		// back office's CSV uploads get room for their file, which the back
		// office limits itself with an answer naming the limit; Stripe's
		// webhook events, the contract's 1 MiB.
		RouteBodyLimits: routeBodyLimits(),
		Middleware:      []fiber.Handler{sess.Handler(), prot.Handler()},
		// Tenants' own sites answer before the storefront on the hosts where
		// they apply; the storefront comes last: its pages are the paths no
		// API prefix claims.
		Apps: []server.App{dp.analytics, accountApp, shopApp, backOffice, siteApp, site},
	})
	if cfg.PlatformSiteURL != "" {
		// The platform hosts are forwarded to the control plane's site
		// before tenant routing; /v1 is not reachable that way, as the
		// control plane answers the platform hosts with the site alone.
		if dp.site, err = siteproxy.New(siteproxy.Options{
			Target: cfg.PlatformSiteURL, Hosts: platformHosts(cfg), Timeout: cfg.RequestTimeout,
			TrustedProxies: cfg.TrustedProxies, Metrics: reg, Log: log,
		}); err != nil {
			return nil, err
		}
		srv := dp.app.Server()
		srv.Handler = dp.site.Front(srv.Handler)
	}
	dp.health = obs.NewHealth(reg,
		obs.Check{Name: "platform_db", Fn: func(ctx context.Context) error { return dp.readPool.Ping(ctx) }},
		obs.Check{Name: "redis", Fn: func(ctx context.Context) error { return dp.rdb.Ping(ctx).Err() }},
	)
	if cfg.HTTPSAddr != "" {
		// The only gate of certificate issuance: a verified custom domain of
		// an active tenant (docs/design.md, custom domains and TLS).
		policy := customdomains.Policy{Directory: dp.dir, BaseDomain: cfg.BaseDomain}
		if dp.tls, err = tlsserve.New(ctx, tlsserve.Options{
			CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile,
			ACMEDirectory: cfg.ACMEDirectory, ACMEEmail: cfg.ACMEEmail, ACMECARoot: cfg.ACMECARoot,
			Allow:   policy.AllowCertificate,
			Storage: &tlsserve.RedisStorage{Redis: dp.rdb, Prefix: cfg.RedisPrefix},
			Log:     log,
		}); err != nil {
			return nil, err
		}
	}
	return dp, nil
}

// routeBodyLimits are the request paths of the data plane that take bodies
// larger than server.DefaultBodyLimit.
func routeBodyLimits() map[string]int {
	limits := admin.UploadBodyLimits()
	limits["/order/stripe-webhook"] = 1 << 20
	return limits
}

// listen binds the API and admin listeners, so a caller knows the ports
// before serving starts.
func (dp *dataPlane) listen() error {
	var err error
	if dp.ln, err = net.Listen("tcp", dp.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("data plane: %w", err)
	}
	if dp.adminLn, err = net.Listen("tcp", dp.cfg.AdminAddr); err != nil {
		dp.ln.Close()
		return fmt.Errorf("data plane admin: %w", err)
	}
	if dp.tls != nil {
		ln, err := net.Listen("tcp", dp.cfg.HTTPSAddr)
		if err != nil {
			dp.ln.Close()
			dp.adminLn.Close()
			return fmt.Errorf("data plane https: %w", err)
		}
		dp.tlsLn = tls.NewListener(ln, dp.tls.TLSConfig())
	}
	return nil
}

// serve answers requests until ctx ends, then shuts down gracefully: no new
// requests, in-flight ones finish within SWA_SHUTDOWN_TIMEOUT, buffered
// analytics rows and usage counts are flushed, pools closed.
func (dp *dataPlane) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if err := dp.dir.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			dp.log.Error("directory stopped", "err", err)
		}
	}()
	mailDone := make(chan struct{})
	go func() {
		defer close(mailDone)
		if err := dp.mail.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			dp.log.Error("mail worker stopped", "err", err)
		}
	}()
	campaignDone := make(chan struct{})
	go func() {
		defer close(campaignDone)
		if err := dp.campaigns.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			dp.log.Error("campaign worker stopped", "err", err)
		}
	}()
	pruneDone := make(chan struct{})
	go func() {
		defer close(pruneDone)
		if err := dp.pruner.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			dp.log.Error("checkout record pruner stopped", "err", err)
		}
	}()
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		if err := dp.sweeper.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			dp.log.Error("back office sweeper stopped", "err", err)
		}
	}()
	meterDone := make(chan struct{})
	go func() {
		defer close(meterDone)
		if err := dp.meter.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			dp.log.Error("usage meter stopped", "err", err)
		}
	}()
	admin := &http.Server{Handler: dp.health.Handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 3)
	go func() { errc <- dp.app.Listener(dp.ln) }()
	if dp.tlsLn != nil {
		// The same app: fasthttp serves several listeners and its shutdown
		// closes them all.
		go func() { errc <- dp.app.Listener(dp.tlsLn) }()
		dp.log.Info("data plane serving TLS", "addr", dp.tlsLn.Addr().String(), "on_demand", dp.cfg.ACMEDirectory != "")
	}
	go func() {
		if err := admin.Serve(dp.adminLn); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	dp.log.Info("data plane serving", "addr", dp.ln.Addr().String(), "admin_addr", dp.adminLn.Addr().String(), "tenants", dp.dir.Len())
	if isLoopback(dp.adminLn.Addr()) {
		dp.log.Info("health and metrics answer on loopback only; set SWA_ADMIN_ADDR (e.g. :9100) for probes or a scraper on another host", "admin_addr", dp.adminLn.Addr().String())
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("data plane: %w", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), dp.cfg.ShutdownTimeout)
	defer scancel()
	if serr := dp.app.ShutdownWithContext(sctx); serr != nil {
		dp.log.Warn("data plane shutdown", "err", serr)
	}
	_ = admin.Shutdown(sctx)
	cancel()
	<-mailDone
	<-campaignDone
	<-pruneDone
	<-sweepDone
	<-meterDone
	dp.close(sctx)
	dp.log.Info("data plane stopped")
	return err
}

func (dp *dataPlane) close(ctx context.Context) {
	if dp.site != nil {
		dp.site.Close()
	}
	if dp.tls != nil {
		dp.tls.Close()
	}
	if dp.analytics != nil {
		if err := dp.analytics.Close(ctx); err != nil {
			dp.log.Warn("analytics flush at shutdown", "err", err)
		}
	}
	// After the requests and the mail worker stopped counting, before the
	// registry pool closes.
	if dp.meter != nil {
		if err := dp.meter.Close(ctx); err != nil {
			dp.log.Warn("usage flush at shutdown", "err", err)
		}
	}
	if dp.pools != nil {
		dp.pools.CloseAll()
	}
	if dp.rdb != nil {
		dp.rdb.Close()
	}
	if dp.readPool != nil {
		dp.readPool.Close()
	}
}

// splitHostPort parses "host:port".
func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	return host, port, nil
}

// isLoopback reports whether a listener accepts loopback connections only.
func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// servingTenants lists the tenants the data plane answers for.
// activeWithin is how recently a tenant must have served a request for the
// background workers to visit it every pass: longer than any request that
// may have queued work (a mail, a campaign) takes to commit.
const activeWithin = time.Minute

// visits returns the choice of tenants for one background worker's passes
// (directory.Visits): those with an idle connection or a request lately,
// and every tenant once per sweep.
func (dp *dataPlane) visits(sweep time.Duration) *directory.Visits {
	return directory.NewVisits(func(id int64) bool {
		return dp.pools.Warm(id) || dp.pools.RequestedWithin(id, activeWithin)
	}, sweep)
}

func servingTenants(dir *directory.Directory) []*directory.Tenant {
	all := dir.All()
	out := all[:0:0]
	for _, t := range all {
		if t.Serving() {
			out = append(out, t)
		}
	}
	return out
}
