// Package config reads the typed configuration of every swa subcommand from
// SWA_* environment variables.
//
// Each option has a default, a parser and a doc line; every secret can also be
// given as SWA_<NAME>_FILE, the path of a file holding it (Docker and
// Kubernetes secrets). Load fails fast with one line naming the bad option.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is everything the platform reads from its environment.
type Config struct {
	Env       string // dev | production
	LogFormat string // json | text | auto
	LogLevel  string // debug | info | warn | error

	HTTPAddr         string // data plane listener (StartupWebApp API and storefront)
	AdminAddr        string // data plane health, readiness and metrics
	HTTPSAddr        string // data plane TLS listener; empty: none
	TLSCertFile      string // PEM of the wildcard certificate of the base domain's subdomains
	TLSKeyFile       string
	ACMEDirectory    string // ACME directory of custom domains' certificates; empty: none obtained
	ACMEEmail        string
	ACMECARoot       string // PEM of roots trusted for the ACME server's HTTPS (a test CA)
	ControlPlaneAddr string // control-plane admin API listener
	ShutdownTimeout  time.Duration
	RequestTimeout   time.Duration // deadline of every data-plane and admin API request

	PlatformDatabaseURL      string        // read-write registry (control plane)
	PlatformReadDatabaseURL  string        // read-only registry (data plane); defaults to PlatformDatabaseURL
	TenantDBAdminURL         string        // superuser-ish DSN of the default database server (CREATEROLE, CREATEDB)
	TenantDBHost             string        // host:port data-plane replicas use to reach tenant databases; defaults to TenantDBAdminURL's
	TenantDBPrefix           string        // prefix of tenant database and role names
	TenantDBExecMode         string        // pgx default_query_exec_mode for tenant pools ("" = pgx's default)
	TenantDBParams           string        // extra libpq parameters of tenant connections, URL query form
	TenantDBStatementTimeout time.Duration // server-side backstop of tenant queries and open transactions
	RedisURL                 string
	RedisPrefix              string // starts every Redis key; the tenant id follows

	SecretsBackend   string // local | aws
	MasterKey        string // base64 32 bytes; local secrets backend
	AWSSecretsPrefix string
	AWSEndpoint      string // override for emulators; empty in production
	SecretsCacheTTL  time.Duration

	SitesBackend    string // db | s3: where tenants' site files are kept
	SitesS3Bucket   string
	SitesS3Prefix   string
	SitesS3Endpoint string // override for emulators; empty in production

	AdminToken      string // bootstrap token of the control-plane API
	ControlPlaneURL string // where `swa tenant ...` sends its calls

	BaseDomain     string   // tenants answer on {slug}.{BaseDomain}
	TrustedProxies []string // addresses or CIDRs whose X-Forwarded-* headers are believed
	PlatformHosts  []string // hostnames of the platform's own site (sign-up); empty: www.{BaseDomain} and {BaseDomain}
	// PlatformSiteURL is the control plane's internal base URL the data
	// plane forwards the platform hosts' requests to; empty: not forwarded.
	PlatformSiteURL string
	RateLimits      bool // false turns every rate limit off

	PoolMaxConns       int32         // per tenant
	PoolBudget         int32         // across all tenants of one data-plane replica
	PoolIdleTimeout    time.Duration // an unused tenant pool closes after this
	PoolAcquireTimeout time.Duration // waiting for a connection longer answers 503
	DirectoryResync    time.Duration // full registry reload period
	UsageFlush         time.Duration // how often a replica adds its usage counts to the registry
	UsageReplica       string        // name of the replica in its usage flush keys; empty: the host name
	TenantMoveGrace    time.Duration // a moved tenant's old database is dropped after this

	DNSResolver        string        // host:port the custom-domain checker asks; empty: /etc/resolv.conf's
	DomainRecheck      time.Duration // how often each owner-added domain's TXT record is checked
	DomainUnrouteAfter int32         // consecutive checks without the record that unroute a verified domain
	DomainClaimExpiry  time.Duration // how long an owner-added domain may stay pending without ever verifying

	StripeAPIBase string        // empty in production; stripe-mock locally
	StripeTimeout time.Duration // bound of one Stripe call, its retries included
	// The platform's own Stripe account, which bills founders for paid plans.
	PlatformStripeSecretKey     string
	PlatformStripeWebhookSecret string

	SMTPHost string // default SMTP relay for tenants without their own
	SMTPPort int
	// CampaignRate is how many campaign mails per second one replica queues
	// for one tenant.
	CampaignRate int

	DevDir string // state of `swa dev` (.dev in the checkout)
}

// option describes one environment variable.
type option struct {
	name   string // without the SWA_ prefix
	def    string
	doc    string
	secret bool
	set    func(c *Config, v string) error
}

func str(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(c) = v; return nil }
}

func oneOf(dst func(*Config) *string, allowed ...string) func(*Config, string) error {
	return func(c *Config, v string) error {
		for _, a := range allowed {
			if v == a {
				*dst(c) = v
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}
}

func addr(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("want host:port: %v", err)
		}
		*dst(c) = v
		return nil
	}
}

func dsn(dst func(*Config) *string, schemes ...string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" {
			*dst(c) = v
			return nil
		}
		u, err := url.Parse(v)
		if err != nil {
			return errors.New("not a URL")
		}
		ok := false
		for _, s := range schemes {
			ok = ok || u.Scheme == s
		}
		if !ok || u.Host == "" {
			return fmt.Errorf("want a %s:// URL with a host", schemes[0])
		}
		*dst(c) = v
		return nil
	}
}

func duration(dst func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return errors.New("want a positive duration such as 30s or 5m")
		}
		*dst(c) = d
		return nil
	}
}

func positive32(dst func(*Config) *int32) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n <= 0 {
			return errors.New("want a positive integer")
		}
		*dst(c) = int32(n)
		return nil
	}
}

var options = []option{
	{name: "ENV", def: "production", doc: "dev or production; dev relaxes cookie security for plain-HTTP localhost",
		set: oneOf(func(c *Config) *string { return &c.Env }, "dev", "production")},
	{name: "LOG_FORMAT", def: "auto", doc: "json, text, or auto (text on a terminal, JSON otherwise)",
		set: oneOf(func(c *Config) *string { return &c.LogFormat }, "auto", "json", "text")},
	{name: "LOG_LEVEL", def: "info", doc: "debug, info, warn or error",
		set: oneOf(func(c *Config) *string { return &c.LogLevel }, "debug", "info", "warn", "error")},
	{name: "HTTP_ADDR", def: ":8000", doc: "data-plane listener: the StartupWebApp API of every tenant",
		set: addr(func(c *Config) *string { return &c.HTTPAddr })},
	{name: "ADMIN_ADDR", def: "127.0.0.1:9100", doc: "data-plane /healthz, /readyz and /metrics listener; loopback only unless set (e.g. :9100 for a scraper or probes from outside)",
		set: addr(func(c *Config) *string { return &c.AdminAddr })},
	{name: "HTTPS_ADDR", def: "", doc: "data-plane TLS listener (host:port, e.g. :8443 behind a TCP load balancer passing TLS through), the same API as HTTP_ADDR; empty: no TLS listener",
		set: func(c *Config, v string) error {
			if v == "" {
				c.HTTPSAddr = ""
				return nil
			}
			return addr(func(c *Config) *string { return &c.HTTPSAddr })(c, v)
		}},
	{name: "TLS_CERT_FILE", def: "", doc: "PEM file of the platform's wildcard certificate (*.{BASE_DOMAIN}, chain included), served on HTTPS_ADDR to tenant subdomains",
		set: str(func(c *Config) *string { return &c.TLSCertFile })},
	{name: "TLS_KEY_FILE", def: "", doc: "PEM file of the private key of TLS_CERT_FILE",
		set: str(func(c *Config) *string { return &c.TLSKeyFile })},
	{name: "ACME_DIRECTORY", def: "", doc: "ACME directory URL certificates of verified custom domains are obtained from on demand (e.g. https://acme-v02.api.letsencrypt.org/directory); empty: none are obtained",
		set: dsn(func(c *Config) *string { return &c.ACMEDirectory }, "https")},
	{name: "ACME_EMAIL", def: "", doc: "contact address of the platform's ACME account",
		set: str(func(c *Config) *string { return &c.ACMEEmail })},
	{name: "ACME_CA_ROOT", def: "", doc: "PEM file of the roots trusted for the ACME server's own HTTPS (a test ACME server); empty: the system roots",
		set: str(func(c *Config) *string { return &c.ACMECARoot })},
	{name: "CONTROLPLANE_ADDR", def: ":8001", doc: "control-plane admin API listener",
		set: addr(func(c *Config) *string { return &c.ControlPlaneAddr })},
	{name: "SHUTDOWN_TIMEOUT", def: "15s", doc: "grace period for in-flight requests on SIGINT/SIGTERM",
		set: duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
	{name: "REQUEST_TIMEOUT", def: "10s", doc: "deadline of every data-plane and admin API request: its queries and outbound calls end there and it answers 503",
		set: duration(func(c *Config) *time.Duration { return &c.RequestTimeout })},
	{name: "PLATFORM_DATABASE_URL", def: "postgres://swa@127.0.0.1:5433/swa_platform?sslmode=disable", secret: true,
		doc: "platform registry database (read-write, control plane)",
		set: dsn(func(c *Config) *string { return &c.PlatformDatabaseURL }, "postgres", "postgresql")},
	{name: "PLATFORM_READ_DATABASE_URL", def: "", secret: true,
		doc: "read-only registry connection of the data plane; empty means PLATFORM_DATABASE_URL",
		set: dsn(func(c *Config) *string { return &c.PlatformReadDatabaseURL }, "postgres", "postgresql")},
	{name: "TENANT_DB_ADMIN_URL", def: "", secret: true,
		doc: "admin connection (CREATEROLE, CREATEDB) of the default tenant database server; empty means PLATFORM_DATABASE_URL",
		set: dsn(func(c *Config) *string { return &c.TenantDBAdminURL }, "postgres", "postgresql")},
	{name: "TENANT_DB_HOST", def: "",
		doc: "host:port data-plane replicas use for tenant databases; empty means the host of TENANT_DB_ADMIN_URL",
		set: func(c *Config, v string) error {
			if v == "" {
				return nil
			}
			return addr(func(c *Config) *string { return &c.TenantDBHost })(c, v)
		}},
	{name: "TENANT_DB_PREFIX", def: "t_", doc: "prefix of every tenant database and role name (t_startupwebapp, ...)",
		set: func(c *Config, v string) error {
			for _, r := range v {
				if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
					return errors.New("want lowercase letters, digits and _")
				}
			}
			if v == "" || v[0] < 'a' || v[0] > 'z' || len(v) > 20 {
				return errors.New("want 1-20 characters starting with a letter")
			}
			c.TenantDBPrefix = v
			return nil
		}},
	{name: "TENANT_DB_QUERY_EXEC_MODE", def: "",
		doc: "pgx query mode of tenant pools; behind PgBouncer in transaction mode use exec or simple_protocol",
		set: func(c *Config, v string) error {
			switch v {
			case "", "cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol":
				c.TenantDBExecMode = v
				return nil
			}
			return errors.New("want cache_statement, cache_describe, describe_exec, exec or simple_protocol")
		}},
	{name: "TENANT_DB_PARAMS", def: "",
		doc: "extra connection parameters of the data plane's tenant connections, e.g. sslmode=require (local stack: sslmode=disable)",
		set: func(c *Config, v string) error {
			if _, err := url.ParseQuery(v); err != nil {
				return errors.New("want URL query form, e.g. sslmode=require&connect_timeout=5")
			}
			c.TenantDBParams = v
			return nil
		}},
	{name: "TENANT_DB_STATEMENT_TIMEOUT", def: "15s",
		doc: "statement_timeout and idle_in_transaction_session_timeout of the data plane's tenant connections, the database's own backstop behind request deadlines; 0 leaves the server's (e.g. behind a PgBouncer that refuses startup parameters)",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return errors.New("want a duration such as 15s, or 0")
			}
			c.TenantDBStatementTimeout = d
			return nil
		}},
	{name: "REDIS_URL", def: "redis://127.0.0.1:6380/0", secret: true, doc: "Redis for sessions, rate limits and caches",
		set: dsn(func(c *Config) *string { return &c.RedisURL }, "redis", "rediss")},
	{name: "REDIS_PREFIX", def: "swa:", doc: "starts every Redis key (the tenant id follows), so several platforms can share one Redis",
		set: func(c *Config, v string) error {
			if v == "" || len(v) > 64 || strings.ContainsAny(v, " \t\r\n*?[]") {
				return errors.New("want 1-64 characters without spaces or glob characters")
			}
			c.RedisPrefix = v
			return nil
		}},
	{name: "SECRETS_BACKEND", def: "local", doc: "local (AES-256-GCM in the platform database) or aws (Secrets Manager)",
		set: oneOf(func(c *Config) *string { return &c.SecretsBackend }, "local", "aws")},
	{name: "MASTER_KEY", def: "", secret: true, doc: "base64 of 32 random bytes; the key of the local secrets backend",
		set: str(func(c *Config) *string { return &c.MasterKey })},
	{name: "AWS_SECRETS_PREFIX", def: "swa/tenants/", doc: "name prefix of tenant secrets in AWS Secrets Manager",
		set: str(func(c *Config) *string { return &c.AWSSecretsPrefix })},
	{name: "AWS_ENDPOINT", def: "", doc: "Secrets Manager endpoint override (emulators only); empty in production",
		set: dsn(func(c *Config) *string { return &c.AWSEndpoint }, "http", "https")},
	{name: "SECRETS_CACHE_TTL", def: "1m", doc: "how long a read secret is served from memory",
		set: duration(func(c *Config) *time.Duration { return &c.SecretsCacheTTL })},
	{name: "SITES_BACKEND", def: "db", doc: "where tenants' own site files are kept: db (the platform database) or s3",
		set: oneOf(func(c *Config) *string { return &c.SitesBackend }, "db", "s3")},
	{name: "SITES_S3_BUCKET", def: "", doc: "S3 bucket of site files when SITES_BACKEND is s3 (region and credentials from the AWS environment)",
		set: str(func(c *Config) *string { return &c.SitesS3Bucket })},
	{name: "SITES_S3_PREFIX", def: "sites/", doc: "starts the name of every site file object in SITES_S3_BUCKET",
		set: str(func(c *Config) *string { return &c.SitesS3Prefix })},
	{name: "SITES_S3_ENDPOINT", def: "", doc: "S3 endpoint override (emulators only); empty in production",
		set: dsn(func(c *Config) *string { return &c.SitesS3Endpoint }, "http", "https")},
	{name: "ADMIN_TOKEN", def: "", secret: true, doc: "bootstrap bearer token of the control-plane API",
		set: str(func(c *Config) *string { return &c.AdminToken })},
	{name: "CONTROLPLANE_URL", def: "http://127.0.0.1:8001", doc: "control-plane API base URL used by `swa tenant`",
		set: dsn(func(c *Config) *string { return &c.ControlPlaneURL }, "http", "https")},
	{name: "BASE_DOMAIN", def: "localhost", doc: "every tenant answers on {slug}.{BASE_DOMAIN}",
		set: func(c *Config, v string) error {
			v = strings.ToLower(strings.TrimSpace(v))
			if v == "" || strings.ContainsAny(v, "/: ") {
				return errors.New("want a bare domain such as example.com")
			}
			c.BaseDomain = v
			return nil
		}},
	{name: "TRUSTED_PROXIES", def: "", doc: "comma-separated IPs or CIDRs whose X-Forwarded-* headers are trusted",
		set: func(c *Config, v string) error {
			c.TrustedProxies = nil
			for _, p := range strings.Split(v, ",") {
				p = strings.TrimSpace(p)
				if p == "" {
					continue
				}
				if net.ParseIP(p) == nil {
					if _, _, err := net.ParseCIDR(p); err != nil {
						return fmt.Errorf("%q is neither an IP nor a CIDR", p)
					}
				}
				c.TrustedProxies = append(c.TrustedProxies, p)
			}
			return nil
		}},
	{name: "PLATFORM_HOSTS", def: "", doc: "comma-separated hostnames of the platform's own site (landing page, sign-up), served by the control plane; empty means www.{BASE_DOMAIN} and {BASE_DOMAIN}",
		set: func(c *Config, v string) error {
			c.PlatformHosts = nil
			for _, h := range strings.Split(v, ",") {
				h = strings.ToLower(strings.TrimSpace(h))
				if h == "" {
					continue
				}
				if strings.ContainsAny(h, ":/ ") {
					return fmt.Errorf("%q: want a hostname without scheme, port or path", h)
				}
				c.PlatformHosts = append(c.PlatformHosts, h)
			}
			return nil
		}},
	{name: "PLATFORM_SITE_URL", def: "", doc: "internal base URL of the control plane (e.g. http://swa-controlplane:8080) to which the data plane forwards requests for the PLATFORM_HOSTS; empty: the data plane serves no platform site and answers those hosts 404 like any unknown host",
		set: func(c *Config, v string) error {
			if v == "" {
				c.PlatformSiteURL = ""
				return nil
			}
			u, err := url.Parse(v)
			if err != nil {
				return errors.New("not a URL")
			}
			if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
				return errors.New("want an http:// or https:// URL with a host, e.g. http://swa-controlplane:8080")
			}
			if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
				return errors.New("want a base URL without a path, query or fragment")
			}
			c.PlatformSiteURL = u.Scheme + "://" + u.Host
			return nil
		}},
	{name: "RATE_LIMITS", def: "on", doc: "on, or off to disable every rate limit (load tests only)",
		set: func(c *Config, v string) error {
			switch v {
			case "on":
				c.RateLimits = true
			case "off":
				c.RateLimits = false
			default:
				return errors.New("must be on or off")
			}
			return nil
		}},
	{name: "POOL_MAX_CONNS", def: "4", doc: "connections per tenant pool",
		set: positive32(func(c *Config) *int32 { return &c.PoolMaxConns })},
	{name: "POOL_BUDGET", def: "50", doc: "connections across all tenant pools of one data-plane replica",
		set: positive32(func(c *Config) *int32 { return &c.PoolBudget })},
	{name: "POOL_IDLE_TIMEOUT", def: "5m", doc: "an unused tenant pool is closed after this",
		set: duration(func(c *Config) *time.Duration { return &c.PoolIdleTimeout })},
	{name: "POOL_ACQUIRE_TIMEOUT", def: "2s", doc: "longest wait for a tenant connection before answering 503",
		set: duration(func(c *Config) *time.Duration { return &c.PoolAcquireTimeout })},
	{name: "DIRECTORY_RESYNC", def: "30s", doc: "period of the data plane's full registry reload",
		set: duration(func(c *Config) *time.Duration { return &c.DirectoryResync })},
	{name: "DNS_RESOLVER", def: "", doc: "host:port of the DNS resolver the control plane asks for custom domains' verification records; empty: the first nameserver of /etc/resolv.conf",
		set: func(c *Config, v string) error {
			if v == "" {
				c.DNSResolver = ""
				return nil
			}
			if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
				return errors.New("want host:port, e.g. 127.0.0.1:53")
			}
			c.DNSResolver = v
			return nil
		}},
	{name: "DOMAIN_RECHECK", def: "1m", doc: "how often the control plane checks each owner-added custom domain's DNS TXT record, pending or verified",
		set: duration(func(c *Config) *time.Duration { return &c.DomainRecheck })},
	{name: "DOMAIN_UNROUTE_AFTER", def: "3", doc: "consecutive checks that find a verified custom domain's TXT record missing before it stops routing",
		set: positive32(func(c *Config) *int32 { return &c.DomainUnrouteAfter })},
	{name: "DOMAIN_CLAIM_EXPIRY", def: "336h", doc: "how long an owner-added custom domain may stay pending without ever verifying before the control plane removes the claim (several shops may claim one hostname; the one whose TXT record it serves verifies it)",
		set: duration(func(c *Config) *time.Duration { return &c.DomainClaimExpiry })},
	{name: "USAGE_FLUSH_INTERVAL", def: "15s", doc: "how often a data-plane replica adds its usage counts (platform/usage) to the registry; a killed replica loses at most this much of its counts",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second || d > 10*time.Minute {
				return errors.New("want a duration from 1s to 10m")
			}
			c.UsageFlush = d
			return nil
		}},
	{name: "USAGE_REPLICA", def: "", doc: "name of the data-plane replica in its usage flush keys (a random suffix is added at every start); empty: the host name",
		set: str(func(c *Config) *string { return &c.UsageReplica })},
	{name: "TENANT_MOVE_GRACE", def: "24h", doc: "how long a tenant moved to another database server keeps its old database on the old server before the control plane drops it",
		set: duration(func(c *Config) *time.Duration { return &c.TenantMoveGrace })},
	{name: "STRIPE_API_BASE", def: "", doc: "Stripe API base URL override (stripe-mock locally); empty in production",
		set: dsn(func(c *Config) *string { return &c.StripeAPIBase }, "http", "https")},
	{name: "STRIPE_TIMEOUT", def: "8s", doc: "bound of one Stripe call, its retries included; a checkout or refund past it answers a clear error",
		set: duration(func(c *Config) *time.Duration { return &c.StripeTimeout })},
	{name: "PLATFORM_STRIPE_SECRET_KEY", def: "", secret: true, doc: "secret key of the platform's own Stripe account, which bills founders for their shops' paid plans; empty: paid plans cannot be bought",
		set: str(func(c *Config) *string { return &c.PlatformStripeSecretKey })},
	{name: "PLATFORM_STRIPE_WEBHOOK_SECRET", def: "", secret: true, doc: "signing secret of the platform account's webhook endpoint, POST /billing/webhook on the platform site",
		set: str(func(c *Config) *string { return &c.PlatformStripeWebhookSecret })},
	{name: "SMTP_HOST", def: "127.0.0.1", doc: "default SMTP relay for tenants without SMTP settings of their own",
		set: str(func(c *Config) *string { return &c.SMTPHost })},
	{name: "SMTP_PORT", def: "1025", doc: "port of SMTP_HOST",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				return errors.New("want a port number")
			}
			c.SMTPPort = n
			return nil
		}},
	{name: "CAMPAIGN_RATE", def: "10", doc: "campaign mails per second one replica queues for one tenant (the throttle of tenant/campaigns)",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000 {
				return errors.New("want a whole number of mails per second, 1 to 10000")
			}
			c.CampaignRate = n
			return nil
		}},
	{name: "DEV_DIR", def: ".dev", doc: "where `swa dev` keeps its generated master key, admin token and state",
		set: str(func(c *Config) *string { return &c.DevDir })},
}

// Load reads the configuration from getenv (os.Getenv in production).
func Load(getenv func(string) string) (*Config, error) {
	c := &Config{}
	for _, o := range options {
		v, err := lookup(getenv, o)
		if err != nil {
			return nil, err
		}
		if err := o.set(c, v); err != nil {
			return nil, fmt.Errorf("config: SWA_%s: %v", o.name, err)
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return nil, errors.New("config: SWA_TLS_CERT_FILE and SWA_TLS_KEY_FILE: set both or neither")
	}
	if c.HTTPSAddr != "" && c.TLSCertFile == "" && c.ACMEDirectory == "" {
		return nil, errors.New("config: SWA_HTTPS_ADDR: needs SWA_TLS_CERT_FILE or SWA_ACME_DIRECTORY")
	}
	if c.PlatformReadDatabaseURL == "" {
		c.PlatformReadDatabaseURL = c.PlatformDatabaseURL
	}
	if c.TenantDBAdminURL == "" {
		c.TenantDBAdminURL = c.PlatformDatabaseURL
	}
	if c.TenantDBHost == "" {
		u, _ := url.Parse(c.TenantDBAdminURL)
		c.TenantDBHost = u.Host
		if u.Port() == "" {
			c.TenantDBHost = net.JoinHostPort(u.Hostname(), "5432")
		}
	}
	return c, nil
}

// lookup returns SWA_<name>, or the contents of SWA_<name>_FILE for a secret,
// or the default.
func lookup(getenv func(string) string, o option) (string, error) {
	key := "SWA_" + o.name
	v := getenv(key)
	if o.secret {
		if path := getenv(key + "_FILE"); path != "" {
			if v != "" {
				return "", fmt.Errorf("config: %s and %s_FILE are both set; keep one", key, key)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return "", fmt.Errorf("config: %s_FILE: %v", key, err)
			}
			return strings.TrimRight(string(b), "\r\n"), nil
		}
	}
	if v == "" {
		return o.def, nil
	}
	return v, nil
}

// Dump returns the resolved configuration by variable name, with secrets
// masked, for the start-up log.
func (c *Config) Dump() map[string]string {
	out := make(map[string]string, len(options))
	env := c.environ()
	for _, o := range options {
		v := env["SWA_"+o.name]
		if o.secret {
			v = Mask(v)
		}
		out["SWA_"+o.name] = v
	}
	return out
}

// environ renders c back into SWA_* values, so a dump shows what is in force.
func (c *Config) environ() map[string]string {
	rl := "on"
	if !c.RateLimits {
		rl = "off"
	}
	return map[string]string{
		"SWA_ENV": c.Env, "SWA_LOG_FORMAT": c.LogFormat, "SWA_LOG_LEVEL": c.LogLevel,
		"SWA_HTTP_ADDR": c.HTTPAddr, "SWA_ADMIN_ADDR": c.AdminAddr, "SWA_CONTROLPLANE_ADDR": c.ControlPlaneAddr,
		"SWA_HTTPS_ADDR": c.HTTPSAddr, "SWA_TLS_CERT_FILE": c.TLSCertFile, "SWA_TLS_KEY_FILE": c.TLSKeyFile,
		"SWA_ACME_DIRECTORY": c.ACMEDirectory, "SWA_ACME_EMAIL": c.ACMEEmail, "SWA_ACME_CA_ROOT": c.ACMECARoot,
		"SWA_SHUTDOWN_TIMEOUT":            c.ShutdownTimeout.String(),
		"SWA_REQUEST_TIMEOUT":             c.RequestTimeout.String(),
		"SWA_TENANT_DB_STATEMENT_TIMEOUT": c.TenantDBStatementTimeout.String(),
		"SWA_PLATFORM_DATABASE_URL":       c.PlatformDatabaseURL,
		"SWA_PLATFORM_READ_DATABASE_URL":  c.PlatformReadDatabaseURL,
		"SWA_TENANT_DB_ADMIN_URL":         c.TenantDBAdminURL,
		"SWA_TENANT_DB_HOST":              c.TenantDBHost,
		"SWA_REDIS_URL":                   c.RedisURL,
		"SWA_SECRETS_BACKEND":             c.SecretsBackend,
		"SWA_MASTER_KEY":                  c.MasterKey,
		"SWA_AWS_SECRETS_PREFIX":          c.AWSSecretsPrefix,
		"SWA_AWS_ENDPOINT":                c.AWSEndpoint,
		"SWA_SECRETS_CACHE_TTL":           c.SecretsCacheTTL.String(),
		"SWA_SITES_BACKEND":               c.SitesBackend,
		"SWA_SITES_S3_BUCKET":             c.SitesS3Bucket,
		"SWA_SITES_S3_PREFIX":             c.SitesS3Prefix,
		"SWA_SITES_S3_ENDPOINT":           c.SitesS3Endpoint,
		"SWA_ADMIN_TOKEN":                 c.AdminToken,
		"SWA_CONTROLPLANE_URL":            c.ControlPlaneURL,
		"SWA_BASE_DOMAIN":                 c.BaseDomain,
		"SWA_TRUSTED_PROXIES":             strings.Join(c.TrustedProxies, ","),
		"SWA_PLATFORM_HOSTS":              strings.Join(c.PlatformHosts, ","),
		"SWA_PLATFORM_SITE_URL":           c.PlatformSiteURL,
		"SWA_RATE_LIMITS":                 rl,
		"SWA_POOL_MAX_CONNS":              strconv.Itoa(int(c.PoolMaxConns)),
		"SWA_POOL_BUDGET":                 strconv.Itoa(int(c.PoolBudget)),
		"SWA_POOL_IDLE_TIMEOUT":           c.PoolIdleTimeout.String(),
		"SWA_POOL_ACQUIRE_TIMEOUT":        c.PoolAcquireTimeout.String(),
		"SWA_DIRECTORY_RESYNC":            c.DirectoryResync.String(),
		"SWA_TENANT_MOVE_GRACE":           c.TenantMoveGrace.String(),
		"SWA_DNS_RESOLVER":                c.DNSResolver,
		"SWA_DOMAIN_RECHECK":              c.DomainRecheck.String(),
		"SWA_DOMAIN_UNROUTE_AFTER":        strconv.Itoa(int(c.DomainUnrouteAfter)),
		"SWA_DOMAIN_CLAIM_EXPIRY":         c.DomainClaimExpiry.String(),
		"SWA_USAGE_FLUSH_INTERVAL":        c.UsageFlush.String(),
		"SWA_USAGE_REPLICA":               c.UsageReplica,
		"SWA_STRIPE_API_BASE":             c.StripeAPIBase,
		"SWA_STRIPE_TIMEOUT":              c.StripeTimeout.String(),
		"SWA_SMTP_HOST":                   c.SMTPHost,
		"SWA_SMTP_PORT":                   strconv.Itoa(c.SMTPPort),
		"SWA_CAMPAIGN_RATE":               strconv.Itoa(c.CampaignRate),
		"SWA_DEV_DIR":                     c.DevDir,

		"SWA_PLATFORM_STRIPE_SECRET_KEY":     c.PlatformStripeSecretKey,
		"SWA_PLATFORM_STRIPE_WEBHOOK_SECRET": c.PlatformStripeWebhookSecret,
	}
}

// Mask hides a secret for logs: a URL keeps its scheme and host but loses
// its password, in the user info or as a query parameter (password=,
// sslpassword=, ...); anything else becomes "***" (or "" when unset).
func Mask(v string) string {
	if v == "" {
		return ""
	}
	if u, err := url.Parse(v); err == nil && u.Scheme != "" && u.Host != "" {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "***")
		}
		if u.RawQuery != "" {
			q, err := url.ParseQuery(u.RawQuery)
			if err != nil {
				return "***"
			}
			for name := range q {
				if credentialParam(name) {
					q[name] = []string{"***"}
				}
			}
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return "***"
}

// credentialParam reports whether a connection-string parameter may carry a
// credential.
func credentialParam(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"pass", "secret", "token", "key"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// WriteReference writes the Markdown table of every option, for the README.
func WriteReference(w io.Writer) error {
	if _, err := fmt.Fprintln(w, "| variable | default | meaning |\n| --- | --- | --- |"); err != nil {
		return err
	}
	for _, o := range options {
		def := "`" + o.def + "`"
		if o.def == "" {
			def = "(empty)"
		}
		name := "`SWA_" + o.name + "`"
		if o.secret {
			name += " (or `_FILE`)"
		}
		if _, err := fmt.Fprintf(w, "| %s | %s | %s |\n", name, def, o.doc); err != nil {
			return err
		}
	}
	return nil
}

// WriteDump writes Dump as sorted NAME=value lines.
func (c *Config) WriteDump(w io.Writer) error {
	d := c.Dump()
	for _, o := range options {
		if _, err := fmt.Fprintf(w, "SWA_%s=%s\n", o.name, d["SWA_"+o.name]); err != nil {
			return err
		}
	}
	return nil
}
