package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/startupwebapp/platform/controlplane/api"
	"github.com/startupwebapp/platform/controlplane/domaincheck"
	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/controlplane/signup"
	"github.com/startupwebapp/platform/platform/config"
	"github.com/startupwebapp/platform/platform/mail"
	"github.com/startupwebapp/platform/platform/ratelimit"
	"github.com/startupwebapp/platform/platform/usage"
)

func controlplaneCommand(e env) *cobra.Command {
	return &cobra.Command{
		Use:   "controlplane",
		Short: "Run the control plane: the admin API that provisions and manages tenants",
		Long: `Run the control plane. It migrates the platform database, registers the tenant database
server of SWA_TENANT_DB_ADMIN_URL, and serves the admin API under /v1 on
SWA_CONTROLPLANE_ADDR (bearer tokens; SWA_ADMIN_TOKEN is the bootstrap token).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := e.loadConfig()
			if err != nil {
				return err
			}
			log.Info("control plane starting", "version", version, "config", cfg.Dump())
			cp, err := newControlPlane(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			if err := cp.listen(); err != nil {
				cp.close()
				return err
			}
			if err := cp.startSite(cmd.Context(), "https://"+platformHosts(cfg)[0], nil, true); err != nil {
				cp.ln.Close()
				cp.close()
				return err
			}
			return cp.serve(cmd.Context())
		},
	}
}

// controlPlane is `swa controlplane`: the admin API over the provisioner.
type controlPlane struct {
	cfg  *config.Config
	log  *slog.Logger
	core *controlPlaneCore
	api  *api.Server
	ln   net.Listener
	// site is the platform's own site (sign-up) on the platform hosts,
	// answered on the control-plane listener; rdb is its Redis.
	site *signup.Site
	rdb  *redis.Client
}

// platformHosts are the hostnames of the platform site.
func platformHosts(cfg *config.Config) []string {
	if len(cfg.PlatformHosts) > 0 {
		return cfg.PlatformHosts
	}
	return []string{"www." + cfg.BaseDomain, cfg.BaseDomain}
}

// startSite builds the platform site and puts it in front of the admin API
// for the platform hosts. siteURL is its base URL in mails; tenantURL, when
// set, is a shop's base URL (default https://{slug}.{base}).
func (cp *controlPlane) startSite(ctx context.Context, siteURL string, tenantURL func(string) string, secure bool) error {
	rdb, err := openRedis(ctx, cp.cfg.RedisURL)
	if err != nil {
		return err
	}
	site, err := signup.New(ctx, signup.Options{
		Provision:       cp.core.prov,
		DB:              cp.core.pool,
		Redis:           rdb,
		RedisPrefix:     cp.cfg.RedisPrefix,
		Hosts:           platformHosts(cp.cfg),
		SiteURL:         siteURL,
		BaseDomain:      cp.cfg.BaseDomain,
		TenantURL:       tenantURL,
		SMTP:            mail.SMTPSettings{Host: cp.cfg.SMTPHost, Port: cp.cfg.SMTPPort},
		Secure:          secure,
		RateLimit:       signupRate(cp.cfg, signup.DefaultRateLimit),
		ResendRate:      signupRate(cp.cfg, signup.DefaultResendRate),
		ResendEmailRate: signupRate(cp.cfg, signup.DefaultResendEmailRate),
		RequestTimeout:  cp.cfg.RequestTimeout,
		TrustedProxies:  cp.cfg.TrustedProxies,
		Billing: signup.Billing{SecretKey: cp.cfg.PlatformStripeSecretKey, WebhookSecret: cp.cfg.PlatformStripeWebhookSecret,
			APIBase: cp.cfg.StripeAPIBase, Timeout: cp.cfg.StripeTimeout},
		Log: cp.log,
	})
	if err != nil {
		rdb.Close()
		return err
	}
	cp.site, cp.rdb = site, rdb
	srv := cp.api.App().Server()
	srv.Handler = site.Front(srv.Handler)
	return nil
}

// signupRate is one of the sign-up site's rates; SWA_RATE_LIMITS=off turns
// it off with the others (a Rate with a window and no count: the zero Rate
// would mean the default).
func signupRate(cfg *config.Config, r ratelimit.Rate) ratelimit.Rate {
	if !cfg.RateLimits {
		return ratelimit.Rate{Window: time.Hour}
	}
	return r
}

func newControlPlane(ctx context.Context, cfg *config.Config, log *slog.Logger) (*controlPlane, error) {
	core, err := openControlPlaneCore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	srv, err := api.New(ctx, api.Options{
		Provision:      core.prov,
		Log:            log,
		BootstrapToken: cfg.AdminToken,
		TrustedProxies: cfg.TrustedProxies,
		RequestTimeout: cfg.RequestTimeout,
	})
	if err != nil {
		core.Close()
		return nil, err
	}
	return &controlPlane{cfg: cfg, log: log, core: core, api: srv}, nil
}

func (cp *controlPlane) listen() (err error) {
	if cp.ln, err = net.Listen("tcp", cp.cfg.ControlPlaneAddr); err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	return nil
}

// serve answers until ctx ends, then lets in-flight requests and running
// operations finish within SWA_SHUTDOWN_TIMEOUT.
func (cp *controlPlane) serve(ctx context.Context) error {
	// Each tenant's database size and site storage, sampled into its usage
	// hours; old usage flush keys are pruned.
	sampler, err := usage.NewSampler(usage.SamplerOptions{DB: cp.core.pool, DatabaseSizes: cp.core.prov.DatabaseSizes, Log: cp.log})
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- cp.api.App().Listener(cp.ln) }()
	// The back office's site deploys and rollbacks (provision.RunSiteRequests);
	// one cut off by the shutdown is taken again when its lease runs out.
	wctx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		cp.core.prov.RunSiteRequests(wctx, provision.DefaultSiteRequestPoll) //nolint:errcheck // it ends with wctx
	}()
	// Custom domains' DNS verification and re-checks (domaincheck): each
	// claim is a lease in the registry, so every replica may run it.
	checkerDone := make(chan struct{})
	go func() {
		defer close(checkerDone)
		domaincheck.New(domaincheck.Options{Registry: cp.core.prov.Registry(), Resolver: cp.cfg.DNSResolver,
			Interval: cp.cfg.DomainRecheck, UnrouteAfter: int(cp.cfg.DomainUnrouteAfter),
			ClaimExpiry: cp.cfg.DomainClaimExpiry, Log: cp.log}).Run(wctx) //nolint:errcheck // it ends with wctx
	}()
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		sampler.Run(wctx) //nolint:errcheck // it ends with wctx
	}()
	cp.log.Info("control plane serving", "addr", cp.ln.Addr().String())
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("control plane: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cp.cfg.ShutdownTimeout)
	defer cancel()
	if serr := cp.api.Shutdown(sctx); serr != nil {
		cp.log.Warn("control plane shutdown", "err", serr)
	}
	if cp.site != nil {
		cp.site.Close(sctx)
	}
	stopWorker()
	<-workerDone
	<-checkerDone
	<-samplerDone
	cp.close()
	cp.log.Info("control plane stopped")
	return err
}

func (cp *controlPlane) close() {
	if cp.rdb != nil {
		cp.rdb.Close()
	}
	cp.core.Close()
}
