package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/config"
	"github.com/startupwebapp/platform/platform/redisconn"
	"github.com/startupwebapp/platform/platform/secrets"
)

// openPool opens a pgx pool and checks that the database answers.
func openPool(ctx context.Context, what, dsn string, maxConns int32) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: bad connection string", what)
	}
	if maxConns > 0 {
		pc.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return pool, nil
}

// openRedis returns a client for SWA_REDIS_URL, checked to answer.
func openRedis(ctx context.Context, raw string) (*redis.Client, error) {
	rdb, err := redisconn.New(raw)
	if err != nil {
		return nil, fmt.Errorf("SWA_REDIS_URL: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis: %w", err)
	}
	return rdb, nil
}

// openSecrets builds the configured secrets store over the platform pool.
func openSecrets(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, log *slog.Logger) (secrets.Store, error) {
	return secrets.New(ctx, secrets.Options{
		Backend:     cfg.SecretsBackend,
		MasterKey:   cfg.MasterKey,
		Pool:        pool,
		AWSEndpoint: cfg.AWSEndpoint,
		AWSPrefix:   cfg.AWSSecretsPrefix,
		CacheTTL:    cfg.SecretsCacheTTL,
		Log:         log,
	})
}

// controlPlaneCore is what the control plane and the tenant tools share: the
// registry database, the secrets store and the provisioning service.
type controlPlaneCore struct {
	pool    *pgxpool.Pool
	secrets secrets.Store
	prov    *provision.Service
}

// defaultDBServer is the name the database server of SWA_TENANT_DB_ADMIN_URL
// is registered under.
const defaultDBServer = "default"

// openControlPlaneCore migrates the platform database, opens the secrets
// store, registers the default database server and builds the provisioner.
func openControlPlaneCore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*controlPlaneCore, error) {
	if _, err := migrations.UpDSN(ctx, cfg.PlatformDatabaseURL, migrations.Platform); err != nil {
		return nil, fmt.Errorf("platform database: %w", err)
	}
	pool, err := openPool(ctx, "platform database", cfg.PlatformDatabaseURL, 0)
	if err != nil {
		return nil, err
	}
	store, err := openSecrets(ctx, cfg, pool, log)
	if err != nil {
		pool.Close()
		return nil, err
	}
	siteBlobs, err := openSiteBlobs(ctx, cfg, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	prov, err := provision.New(provision.Options{
		Platform:         pool,
		Secrets:          store,
		Log:              log,
		BaseDomain:       cfg.BaseDomain,
		DBPrefix:         cfg.TenantDBPrefix,
		DevStripeAPIBase: devOnly(cfg, cfg.StripeAPIBase),
		SiteBlobs:        siteBlobs,
		MoveGrace:        cfg.TenantMoveGrace,
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	host, port, err := splitHostPort(cfg.TenantDBHost)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("config: SWA_TENANT_DB_HOST: %w", err)
	}
	if _, err := prov.Registry().EnsureDBServer(ctx, defaultDBServer, cfg.TenantDBAdminURL, host, port); err != nil {
		pool.Close()
		return nil, fmt.Errorf("register database server: %w", err)
	}
	return &controlPlaneCore{pool: pool, secrets: store, prov: prov}, nil
}

func (c *controlPlaneCore) Close() { c.pool.Close() }

// devOnly returns v in the dev environment and "" elsewhere.
func devOnly(cfg *config.Config, v string) string {
	if cfg.Env == "dev" {
		return v
	}
	return ""
}
