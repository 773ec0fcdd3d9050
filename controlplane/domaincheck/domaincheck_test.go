package domaincheck_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/miekg/dns"

	"github.com/startupwebapp/platform/controlplane/domaincheck"
	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/customdomains"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/tenancy"
)

// zone is a DNS server on a loopback UDP port, run with miekg/dns, that
// answers TXT questions from records the test sets; every other name is
// NXDOMAIN. fail makes it answer SERVFAIL.
type zone struct {
	mu      sync.Mutex
	txt     map[string][]string
	fail    bool
	queries int
	addr    string
}

func newZone(t *testing.T) *zone {
	t.Helper()
	z := &zone{txt: map[string][]string{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z.addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(z.serve)}
	go srv.ActivateAndServe() //nolint:errcheck // ends at Shutdown
	t.Cleanup(func() { _ = srv.Shutdown() })
	return z
}

func (z *zone) serve(w dns.ResponseWriter, req *dns.Msg) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.queries++
	m := new(dns.Msg)
	m.SetReply(req)
	q := req.Question[0]
	vals, ok := z.txt[q.Name]
	switch {
	case z.fail:
		m.Rcode = dns.RcodeServerFailure
	case !ok:
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeTXT:
		for _, v := range vals {
			// Split long values as zone files do, in 10-byte strings.
			var parts []string
			for len(v) > 10 {
				parts, v = append(parts, v[:10]), v[10:]
			}
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1},
				Txt: append(parts, v)})
		}
	}
	_ = w.WriteMsg(m)
}

func (z *zone) set(host string, values ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	name := dns.Fqdn(customdomains.RecordName(host))
	if values == nil {
		delete(z.txt, name)
		return
	}
	z.txt[name] = values
}

func (z *zone) setFail(v bool) { z.mu.Lock(); z.fail = v; z.mu.Unlock() }

type fixture struct {
	db     *pgxpool.Pool
	reg    *registry.Registry
	zone   *zone
	tenant int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := pgtest.NewPool(t, migrations.Platform)
	f := &fixture{db: db, reg: registry.New(db, nil), zone: newZone(t)}
	f.tenant = directorytest.AddTenant(t, db, directorytest.Tenant{Slug: "acme", Domains: []string{"acme.example.test"}})
	return f
}

// addPending adds a domain as the back office does: the registry's
// backoffice_add_domain, with a fresh token.
func (f *fixture) addPending(t *testing.T, host string) string {
	t.Helper()
	token, err := f.claim(f.tenant, host)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// claim adds host to tenant as the back office does and answers its token.
func (f *fixture) claim(tenant int64, host string) (string, error) {
	token := customdomains.NewToken()
	_, err := f.db.Exec(context.Background(), `SELECT backoffice_add_domain($1, 'staff:1 owner@shop.test', $2, $3)`,
		tenant, host, token)
	return token, err
}

func (f *fixture) checker(interval time.Duration) *domaincheck.Checker {
	return domaincheck.New(domaincheck.Options{Registry: f.reg, Resolver: f.zone.addr, Interval: interval,
		Timeout: 2 * time.Second, UnrouteAfter: 2})
}

func (f *fixture) domain(t *testing.T, host string) registry.Domain {
	t.Helper()
	return f.domainOf(t, f.tenant, host)
}

func (f *fixture) domainOf(t *testing.T, tenant int64, host string) registry.Domain {
	t.Helper()
	ds, err := f.reg.Domains(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Hostname == host {
			return d
		}
	}
	t.Fatalf("no domain %s of tenant %d in %+v", host, tenant, ds)
	return registry.Domain{}
}

// runDirectory starts a data-plane directory that follows NOTIFY.
func runDirectory(t *testing.T, db *pgxpool.Pool) *directory.Directory {
	t.Helper()
	d := directory.New(directory.Options{DB: db, BaseDomain: "example.test", Resync: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }() //nolint:errcheck // ends with ctx
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for d.LoadedAt().IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("directory never loaded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d
}

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPendingDomainRoutesOnceVerified: a pending domain is unknown to the
// directory (the platform's 404), and routes on every replica within the
// re-check interval of its TXT record being served; its removal unroutes
// it at once on every replica.
func TestPendingDomainRoutesOnceVerified(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	replicas := []*directory.Directory{runDirectory(t, f.db), runDirectory(t, f.db)}
	const host = "shop.acme-widgets.test"
	token := f.addPending(t, host)

	const interval = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.checker(interval).Run(ctx) }() //nolint:errcheck // ends with ctx
	defer func() { cancel(); <-done }()

	waitFor(t, "first check recorded", 5*time.Second, func() bool { return f.domain(t, host).CheckedAt != nil })
	d := f.domain(t, host)
	if d.Status != tenancy.DomainPending || d.CheckError == nil || d.Challenge == nil ||
		d.Challenge.Name != "_swa-challenge."+host || d.Challenge.Value != "swa-verify="+token {
		t.Fatalf("before the record: %+v %+v", d, d.Challenge)
	}
	for i, r := range replicas {
		if tn, res := r.Lookup(host); res != directory.Unknown {
			t.Fatalf("replica %d routes a pending domain: %v %v", i, tn, res)
		}
		if tn, res := r.Lookup("acme.example.test"); res != directory.Found || tn.ID != f.tenant {
			t.Fatalf("replica %d: the default domain: %v %v", i, tn, res)
		}
	}

	// The record appears (among another TXT value): within about one
	// interval the domain is verified and every replica routes it.
	served := time.Now()
	f.zone.set(host, "v=spf1 -all", customdomains.RecordValue(token))
	for i, r := range replicas {
		waitFor(t, "replica routes the verified domain", 3*interval+2*time.Second, func() bool {
			tn, res := r.Lookup(host)
			return res == directory.Found && tn.ID == f.tenant
		})
		t.Logf("replica %d routes %s %v after the record was served", i, host, time.Since(served).Round(time.Millisecond))
	}
	d = f.domain(t, host)
	if d.Status != tenancy.DomainVerified || d.VerifiedAt == nil || d.CheckError != nil || d.Misses != 0 {
		t.Fatalf("after the record: %+v", d)
	}
	var audited int
	if err := f.db.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'domain.verified'
		AND after->>'hostname' = $2`, f.tenant, host).Scan(&audited); err != nil || audited != 1 {
		t.Errorf("domain.verified audit entries: %d %v", audited, err)
	}

	// The owner removes it: every replica stops routing it at once.
	cancel()
	<-done
	var removed bool
	if err := f.db.QueryRow(context.Background(), `SELECT backoffice_remove_domain($1, 'staff:1 owner@acme.test', $2)`,
		f.tenant, host).Scan(&removed); err != nil || !removed {
		t.Fatalf("remove: %v %v", removed, err)
	}
	for _, r := range replicas {
		waitFor(t, "replica unroutes the removed domain", 5*time.Second, func() bool {
			_, res := r.Lookup(host)
			return res == directory.Unknown
		})
	}
}

// TestWrongTokenNeverVerifies: a record with another token, a SERVFAIL and
// an empty zone all leave the domain pending, each with its reason.
func TestWrongTokenNeverVerifies(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const host = "www.acme-widgets.test"
	f.addPending(t, host)
	other := customdomains.NewToken()
	c := f.checker(time.Millisecond)
	ctx := context.Background()
	for i, step := range []struct {
		setup func()
		want  string
	}{
		{func() {}, "NXDOMAIN"},
		{func() { f.zone.set(host, customdomains.RecordValue(other)) }, "does not hold"},
		{func() { f.zone.set(host, "swa-verify=") }, "does not hold"},
		{func() { f.zone.setFail(true) }, "SERVFAIL"},
	} {
		step.setup()
		time.Sleep(5 * time.Millisecond) // past next_check_at
		if n, err := c.CheckDue(ctx); err != nil || n != 1 {
			t.Fatalf("step %d: checked %d: %v", i, n, err)
		}
		d := f.domain(t, host)
		if d.Status != tenancy.DomainPending || d.CheckError == nil || !strings.Contains(*d.CheckError, step.want) {
			t.Errorf("step %d: %+v (error %v), want pending with %q", i, d, deref(d.CheckError), step.want)
		}
	}
}

// TestVerifiedDomainUnroutedWhenRecordGoes: a verified domain whose record
// is missing on UnrouteAfter (2) consecutive conclusive checks goes back to
// pending; a resolver failure in between does not count, and a record seen
// again resets the count.
func TestVerifiedDomainUnroutedWhenRecordGoes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const host = "acme-widgets.test"
	token := f.addPending(t, host)
	c := f.checker(time.Millisecond)
	ctx := context.Background()
	step := func(want tenancy.DomainStatus, misses int) {
		t.Helper()
		time.Sleep(5 * time.Millisecond)
		if _, err := c.CheckDue(ctx); err != nil {
			t.Fatal(err)
		}
		if d := f.domain(t, host); d.Status != want || d.Misses != misses {
			t.Fatalf("got %s with %d misses, want %s with %d", d.Status, d.Misses, want, misses)
		}
	}
	f.zone.set(host, customdomains.RecordValue(token))
	step(tenancy.DomainVerified, 0)
	f.zone.set(host)
	step(tenancy.DomainVerified, 1)
	f.zone.setFail(true)
	step(tenancy.DomainVerified, 1) // inconclusive
	f.zone.setFail(false)
	f.zone.set(host, customdomains.RecordValue(token))
	step(tenancy.DomainVerified, 0)
	f.zone.set(host)
	step(tenancy.DomainVerified, 1)
	step(tenancy.DomainPending, 2)
	d := directory.New(directory.Options{DB: f.db, BaseDomain: "example.test"})
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, res := d.Lookup(host); res != directory.Unknown {
		t.Errorf("an unrouted domain still routes: %v", res)
	}
	var audited int
	if err := f.db.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = 'domain.unrouted'`).Scan(&audited); err != nil || audited != 1 {
		t.Errorf("domain.unrouted audit entries: %d %v", audited, err)
	}
}

// TestOperatorDomainsAreNotChecked: the default domain and one an operator
// adds route at once and are never claimed; an operator adding a pending
// domain vouches for it.
func TestOperatorDomainsAreNotChecked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.reg.AddDomain(ctx, f.tenant, "ops.acme-widgets.test"); err != nil {
		t.Fatal(err)
	}
	f.addPending(t, "pending.acme-widgets.test")
	if _, err := f.reg.AddDomain(ctx, f.tenant, "pending.acme-widgets.test"); err != nil {
		t.Fatal(err)
	}
	if n, err := f.checker(time.Minute).CheckDue(ctx); err != nil || n != 0 {
		t.Errorf("checked %d domains (%v), want none", n, err)
	}
	for _, h := range []string{"acme.example.test", "ops.acme-widgets.test", "pending.acme-widgets.test"} {
		if d := f.domain(t, h); d.Status != tenancy.DomainVerified || d.Challenge != nil {
			t.Errorf("%s: %+v", h, d)
		}
	}
	f.zone.mu.Lock()
	defer f.zone.mu.Unlock()
	if f.zone.queries != 0 {
		t.Errorf("%d DNS queries", f.zone.queries)
	}
}

// TestClaimsOfOneHostname: a pending claim holds no name. A squatter's
// claim does not keep the owner of the domain from claiming it; the claim
// whose record the domain serves verifies, and from then the name is held:
// the other claim stays pending (saying why, even once its record is
// served too), new claims and operators are refused, until the holder
// removes it and the waiting claim verifies. Each tenant sees only its
// own claim.
func TestClaimsOfOneHostname(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	squatter := directorytest.AddTenant(t, f.db, directorytest.Tenant{Slug: "squat", Domains: []string{"squat.example.test"}})
	third := directorytest.AddTenant(t, f.db, directorytest.Tenant{Slug: "third", Domains: []string{"third.example.test"}})
	const host = "www.acme-widgets.test"
	squatToken, err := f.claim(squatter, host)
	if err != nil {
		t.Fatal(err)
	}
	token, err := f.claim(f.tenant, host)
	if err != nil {
		t.Fatalf("the squatter's pending claim refused the owner's: %v", err)
	}
	c := f.checker(time.Millisecond)
	dir := directory.New(directory.Options{DB: f.db, BaseDomain: "example.test"})
	check := func(want int) {
		t.Helper()
		time.Sleep(5 * time.Millisecond)
		if n, err := c.CheckDue(ctx); err != nil || n != want {
			t.Fatalf("checked %d (%v), want %d", n, err, want)
		}
		if err := dir.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	routes := func(want int64) {
		t.Helper()
		if tn, res := dir.Lookup(host); res != directory.Found || tn.ID != want {
			t.Fatalf("%s routes to %v (%v), want tenant %d", host, tn, res, want)
		}
	}

	f.zone.set(host, customdomains.RecordValue(token))
	check(2)
	routes(f.tenant)
	if d := f.domainOf(t, squatter, host); d.Status != tenancy.DomainPending || !strings.Contains(deref(d.CheckError), "does not hold") {
		t.Fatalf("the squatter's claim: %+v (%s)", d, deref(d.CheckError))
	}
	// The squatter's record served too: its claim still cannot verify.
	f.zone.set(host, customdomains.RecordValue(token), customdomains.RecordValue(squatToken))
	check(2)
	routes(f.tenant)
	if d := f.domainOf(t, squatter, host); d.Status != tenancy.DomainPending || !strings.Contains(deref(d.CheckError), "verified by another shop") {
		t.Fatalf("the squatter's claim with its record served: %+v (%s)", d, deref(d.CheckError))
	}
	// A verified name is held: a new claim and an operator are refused.
	if _, err := f.claim(third, host); err == nil || !strings.Contains(err.Error(), "23505") {
		t.Errorf("a third shop's claim of a verified name: %v, want a unique violation", err)
	}
	if _, err := f.reg.AddDomain(ctx, squatter, host); !errors.Is(err, registry.ErrConflict) {
		t.Errorf("an operator adding a name another shop verified: %v, want ErrConflict", err)
	}
	// The holder removes it; the waiting claim, its record served, verifies.
	var removed bool
	if err := f.db.QueryRow(ctx, `SELECT backoffice_remove_domain($1, 'staff:1 owner@acme.test', $2)`, f.tenant, host).
		Scan(&removed); err != nil || !removed {
		t.Fatalf("remove: %v %v", removed, err)
	}
	check(1)
	routes(squatter)
	var audited int
	if err := f.db.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = 'domain.verified' AND after->>'hostname' = $1`, host).
		Scan(&audited); err != nil || audited != 2 {
		t.Errorf("domain.verified audit entries: %d %v", audited, err)
	}
}

// TestUnverifiedClaimExpires: a claim never verified, older than the
// expiry, is removed by a check that does not find its record (audited);
// one whose record is found verifies instead, an inconclusive check keeps
// it, and a younger claim is kept.
func TestUnverifiedClaimExpires(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	c := domaincheck.New(domaincheck.Options{Registry: f.reg, Resolver: f.zone.addr, Interval: time.Millisecond,
		Timeout: 2 * time.Second, ClaimExpiry: 24 * time.Hour})
	const (
		old    = "old.acme-widgets.test"
		young  = "young.acme-widgets.test"
		proven = "proven.acme-widgets.test"
	)
	f.addPending(t, old)
	f.addPending(t, young)
	token := f.addPending(t, proven)
	if _, err := f.db.Exec(ctx, `UPDATE domains SET created_at = now() - interval '25 hours' WHERE hostname IN ($1, $2)`, old, proven); err != nil {
		t.Fatal(err)
	}
	f.zone.set(proven, customdomains.RecordValue(token))
	f.zone.setFail(true)
	time.Sleep(5 * time.Millisecond)
	if n, err := c.CheckDue(ctx); err != nil || n != 3 {
		t.Fatalf("checked %d: %v", n, err)
	}
	f.domain(t, old) // an inconclusive check removes nothing
	// Each check stores when the claim expires, the time the page shows:
	// created_at plus the checker's expiry while it has never verified.
	ds, err := f.reg.Domains(ctx, f.tenant)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Default {
			if d.ExpiresAt != nil {
				t.Errorf("the default domain expires %v", d.ExpiresAt)
			}
			continue
		}
		if d.ExpiresAt == nil || !d.ExpiresAt.Equal(d.CreatedAt.Add(24*time.Hour)) {
			t.Errorf("%s added %v expires %v, want a day later", d.Hostname, d.CreatedAt, d.ExpiresAt)
		}
	}
	f.zone.setFail(false)
	time.Sleep(5 * time.Millisecond)
	if n, err := c.CheckDue(ctx); err != nil || n != 3 {
		t.Fatalf("checked %d: %v", n, err)
	}
	if ds, err = f.reg.Domains(ctx, f.tenant); err != nil {
		t.Fatal(err)
	}
	got := map[string]tenancy.DomainStatus{}
	for _, d := range ds {
		got[d.Hostname] = d.Status
		if d.Hostname == proven && d.ExpiresAt != nil {
			t.Errorf("a verified domain still expires %v", d.ExpiresAt)
		}
	}
	if _, kept := got[old]; kept || got[young] != tenancy.DomainPending || got[proven] != tenancy.DomainVerified {
		t.Fatalf("after the expiry: %v", got)
	}
	var audited int
	if err := f.db.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = 'domain.expired' AND before->>'hostname' = $1`, old).
		Scan(&audited); err != nil || audited != 1 {
		t.Errorf("domain.expired audit entries: %d %v", audited, err)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
