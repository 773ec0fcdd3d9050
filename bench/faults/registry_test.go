package faults

import (
	"context"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/server"
)

// TestRegistryAndSecretsDown cuts the platform database, where the
// registry (the control plane's state) and the local secrets backend live,
// from the data plane. The directory keeps the tenants it last read (a
// refresh fails and changes nothing), and the secrets cache, its entries
// expired, serves the last good bundle: a tenant whose pool is closed and
// must log in again still gets its database password. Every request of
// the known tenants is answered 200 meanwhile; when the platform database
// returns the directory refreshes again.
func TestRegistryAndSecretsDown(t *testing.T) {
	t.Parallel()
	const ttl = 200 * time.Millisecond
	p := newPlane(t, planeOptions{
		Tenants: []string{"alpha", "beta"}, Apps: []server.App{dbApp{}},
		RegistryProxied: true, SecretsTTL: ttl,
	})
	for _, slug := range []string{"alpha", "beta"} {
		if r := p.call("GET", slug, "/faults/read", nil, nil); r.status != 200 {
			t.Fatalf("%s before the outage: %d %s %v", slug, r.status, r.code, r.err)
		}
	}
	p.registryProxy.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.dir.Refresh(ctx); err == nil {
		t.Fatal("the directory refreshed with the platform database cut off")
	}
	if n := p.dir.Len(); n != 2 {
		t.Fatalf("the directory holds %d tenants after a failed refresh, want the 2 it knew", n)
	}
	time.Sleep(2 * ttl) // every cached bundle is now past its TTL
	beta, _ := p.dir.Lookup(host("beta"))
	p.pools.Close(beta.ID) // beta must log in again: its password comes from the cache
	opened := p.pools.Stats().Opened
	rs := loadFor(time.Second, 4, func(c, _ int) reply {
		return p.call("GET", []string{"alpha", "beta"}[c%2], "/faults/read", nil, nil)
	})
	t.Logf("with the platform database down: %d requests, statuses %v, p99 %v", len(rs), statuses(rs), quantile(rs, 0.99))
	for _, r := range rs {
		if r.status != 200 {
			t.Fatalf("a known tenant answered %d %q %v with the platform database down", r.status, r.code, r.err)
		}
	}
	if p.pools.Stats().Opened == opened {
		t.Fatal("beta's closed pool did not log in again during the outage")
	}
	if err := p.registryProxy.Start(); err != nil {
		t.Fatal(err)
	}
	var refreshed time.Duration
	back := time.Now()
	for time.Since(back) < 5*time.Second {
		if err := p.dir.Refresh(ctx); err == nil {
			refreshed = time.Since(back)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if refreshed == 0 {
		t.Fatal("the directory did not refresh within 5s of the platform database's return")
	}
	t.Logf("directory refreshed %v after the platform database came back", refreshed.Round(time.Millisecond))
}
