// Package domaincheck verifies tenants' custom domains: it resolves each
// owner-added domain's TXT record (_swa-challenge.<hostname>) through a
// DNS resolver and records the outcome in the registry, which routes a
// domain once its record is seen and stops routing a verified one whose
// record has gone for several consecutive checks.
package domaincheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/platform/customdomains"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// Defaults of Options.
const (
	DefaultInterval     = time.Minute
	DefaultTimeout      = 5 * time.Second
	DefaultUnrouteAfter = 3
	DefaultClaimExpiry  = 14 * 24 * time.Hour
	batch               = 50
)

// Options configures a Checker.
type Options struct {
	Registry *registry.Registry
	// Resolver is the host:port of the recursive resolver asked; empty:
	// the first nameserver of /etc/resolv.conf (127.0.0.1:53 without one).
	Resolver string
	// Interval is how often each domain is checked (DefaultInterval).
	Interval time.Duration
	// Timeout is the deadline of one check (DefaultTimeout).
	Timeout time.Duration
	// UnrouteAfter consecutive checks without the record send a verified
	// domain back to pending (DefaultUnrouteAfter).
	UnrouteAfter int
	// ClaimExpiry: a domain pending for this long since it was added,
	// never verified, is removed on its next check that does not find the
	// record (DefaultClaimExpiry).
	ClaimExpiry time.Duration
	Log         *slog.Logger
}

// Checker runs the checks.
type Checker struct {
	reg      *registry.Registry
	resolver string
	interval time.Duration
	timeout  time.Duration
	unroute  int
	expiry   time.Duration
	log      *slog.Logger
	client   *dns.Client
}

// New returns a Checker with o's defaults filled in.
func New(o Options) *Checker {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.UnrouteAfter <= 0 {
		o.UnrouteAfter = DefaultUnrouteAfter
	}
	if o.ClaimExpiry <= 0 {
		o.ClaimExpiry = DefaultClaimExpiry
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Resolver == "" {
		o.Resolver = SystemResolver()
	}
	return &Checker{reg: o.Registry, resolver: o.Resolver, interval: o.Interval, timeout: o.Timeout,
		unroute: o.UnrouteAfter, expiry: o.ClaimExpiry, log: o.Log, client: &dns.Client{Net: "udp"}}
}

// SystemResolver is the first nameserver of /etc/resolv.conf, or
// 127.0.0.1:53.
func SystemResolver() string {
	cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(cc.Servers) == 0 {
		return "127.0.0.1:53"
	}
	return net.JoinHostPort(cc.Servers[0], cc.Port)
}

// Run checks due domains until ctx ends, waking every tenth of the
// interval (at least every second, at most every ten) to claim those due.
// It returns ctx.Err().
func (c *Checker) Run(ctx context.Context) error {
	tick := min(max(c.interval/10, 100*time.Millisecond), 10*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if _, err := c.CheckDue(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("domain check", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// CheckDue claims the domains whose check is due and checks each, one at a
// time, each under its own deadline and outside any transaction. It
// returns how many it checked.
func (c *Checker) CheckDue(ctx context.Context) (int, error) {
	n := 0
	for {
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		due, err := c.reg.ClaimDomainChecks(cctx, batch, c.interval)
		cancel()
		if err != nil {
			return n, err
		}
		for _, d := range due {
			if err := c.check(ctx, d); err != nil && ctx.Err() == nil {
				c.log.Warn("domain check: record", "hostname", d.Hostname, "err", err)
			}
			n++
		}
		if len(due) < batch {
			return n, nil
		}
	}
}

func (c *Checker) check(ctx context.Context, d registry.DomainCheck) error {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	o := c.Lookup(cctx, d.Hostname, d.Token)
	cancel()
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	status, err := c.reg.RecordDomainCheck(rctx, d, o, registry.CheckRules{UnrouteAfter: c.unroute, ClaimExpiry: c.expiry})
	if errors.Is(err, registry.ErrNotFound) {
		return nil // removed since the claim
	}
	if err != nil {
		return err
	}
	if status == registry.DomainExpired {
		c.log.Info("domain claim expired", "hostname", d.Hostname, "tenant_id", d.TenantID)
	} else if status != d.Status {
		c.log.Info("domain status changed", "hostname", d.Hostname, "tenant_id", d.TenantID, "from", d.Status, "to", status)
	} else if status == tenancy.DomainVerified && !o.Found {
		c.log.Warn("verified domain's record missing", "hostname", d.Hostname, "tenant_id", d.TenantID, "err", o.Error)
	}
	return nil
}

// Lookup asks the resolver for hostname's verification record and says
// whether one of its TXT values is the token's. A timeout, a network error
// or a SERVFAIL is inconclusive; NXDOMAIN or an answer without the value
// is a miss.
func (c *Checker) Lookup(ctx context.Context, hostname, token string) registry.CheckOutcome {
	name := dns.Fqdn(customdomains.RecordName(hostname))
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	m.RecursionDesired = true
	m.SetEdns0(4096, false)
	resp, _, err := c.client.ExchangeContext(ctx, m, c.resolver)
	if err == nil && resp.Truncated {
		tcp := &dns.Client{Net: "tcp"}
		resp, _, err = tcp.ExchangeContext(ctx, m, c.resolver)
	}
	if err != nil {
		return registry.CheckOutcome{Inconclusive: true, Error: "the DNS resolver did not answer: " + shortErr(err)}
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return registry.CheckOutcome{Error: fmt.Sprintf("no DNS record %s (NXDOMAIN)", strings.TrimSuffix(name, "."))}
	default:
		return registry.CheckOutcome{Inconclusive: true, Error: "the DNS resolver answered " + dns.RcodeToString[resp.Rcode]}
	}
	want := customdomains.RecordValue(token)
	seen := 0
	for _, rr := range resp.Answer {
		txt, ok := rr.(*dns.TXT)
		if !ok || !strings.EqualFold(txt.Hdr.Name, name) {
			continue
		}
		seen++
		// A long value may come split in several strings; they are one.
		if strings.Join(txt.Txt, "") == want {
			return registry.CheckOutcome{Found: true}
		}
	}
	if seen > 0 {
		return registry.CheckOutcome{Error: fmt.Sprintf("the TXT record %s does not hold %q", strings.TrimSuffix(name, "."), want)}
	}
	return registry.CheckOutcome{Error: fmt.Sprintf("no TXT record %s", strings.TrimSuffix(name, "."))}
}

// shortErr drops the resolver's address details a client needs not see.
func shortErr(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "network error"
}
