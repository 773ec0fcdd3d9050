package tlsserve_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/startupwebapp/platform/migrations"
	"github.com/startupwebapp/platform/platform/customdomains"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/directory/directorytest"
	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/tenancy"
	"github.com/startupwebapp/platform/platform/tlsserve"
)

// pebble is Let's Encrypt's test ACME server, run in-process from its own
// packages (the wfe, ca, va and db of cmd/pebble). Its validation authority
// really validates: it resolves each name through resolver and performs
// TLS-ALPN-01 on tlsPort, so the data plane's listener must answer the
// challenge. orders counts the orders it created.
type pebble struct {
	dir    string // ACME directory URL
	caRoot string // PEM file of the root of its HTTPS certificate
	root   *x509.Certificate
	orders atomic.Int32
}

func startPebble(t *testing.T, tlsPort int, resolver string) *pebble {
	t.Helper()
	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, 0, tlsPort, false, resolver, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	p := &pebble{}
	h := front.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/order-plz" {
			h.ServeHTTP(w, r)
			return
		}
		rec := &status{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.code == http.StatusCreated {
			p.orders.Add(1) // not the requests pebble refused (a bad nonce)
		}
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.dir = srv.URL + wfe.DirectoryPath
	p.caRoot = filepath.Join(t.TempDir(), "acme-ca.pem")
	writePEM(t, p.caRoot, "CERTIFICATE", srv.Certificate().Raw)
	p.root = authority.GetRootCert(0).Cert
	return p
}

// status keeps the status code of a response.
type status struct {
	http.ResponseWriter
	code int
}

func (s *status) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

// startDNS answers every A question with 127.0.0.1, as the custom domains'
// records would point them at the load balancer.
func startDNS(t *testing.T) string {
	t.Helper()
	// pebble's resolver asks over TCP: the same handler on both, on one
	// port. The UDP port the system picks may be taken on TCP by another
	// process; then another is picked.
	var pc net.PacketConn
	var tl net.Listener
	for attempt := 0; tl == nil; attempt++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if tl, err = net.Listen("tcp", pc.LocalAddr().String()); err != nil {
			pc.Close()
			if attempt == 20 {
				t.Fatalf("no port free on both UDP and TCP: %v", err)
			}
		}
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: tl, Handler: h}} {
		go srv.ActivateAndServe() //nolint:errcheck // ends at Shutdown
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// wildcard writes a self-signed *.{base} certificate and its key.
func wildcard(t *testing.T, base string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "*." + base},
		DNSNames:  []string{"*." + base},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "wildcard.crt"), filepath.Join(dir, "wildcard.key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", kder)
	cert, _ = x509.ParseCertificate(der)
	return certFile, keyFile, cert
}

// replica is one data plane's HTTPS listener: the TLS of tlsserve in front
// of a Fiber app that answers with the slug of the tenant the directory
// routes the request's host to (the routing the data plane does).
type replica struct {
	addr string
	srv  *tlsserve.Server
}

func startReplica(t *testing.T, ln net.Listener, o tlsserve.Options, dir *directory.Directory) *replica {
	t.Helper()
	srv, err := tlsserve.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(func(c *fiber.Ctx) error {
		tn, res := dir.Lookup(c.Hostname())
		if res != directory.Found || c.Protocol() != "https" {
			return c.SendStatus(fiber.StatusNotFound)
		}
		return c.SendString("tenant " + tn.Slug)
	})
	go app.Listener(tls.NewListener(ln, srv.TLSConfig())) //nolint:errcheck // ends at Shutdown
	t.Cleanup(func() { _ = app.Shutdown() })
	return &replica{addr: ln.Addr().String(), srv: srv}
}

// get makes an HTTPS request to host on r, trusting only roots, and
// returns the body and the certificate the server showed.
func (r *replica) get(host string, roots *x509.CertPool) (string, *x509.Certificate, error) {
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: host},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, r.addr)
		},
	}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + host + "/")
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, b), resp.TLS.PeerCertificates[0], nil
}

// TestOnDemandCertificates runs two data-plane replicas sharing one Redis
// storage against pebble. A verified custom domain of an active tenant gets
// a certificate from pebble on its first handshake, and the request reaches
// the tenant; both replicas handshaking for a second domain at once (a
// barrier) make one order, the other replica loading the certificate from
// the storage. A pending domain, a suspended tenant's and an unknown name
// fail the handshake and order nothing; tenant subdomains get the wildcard
// certificate and order nothing.
func TestOnDemandCertificates(t *testing.T) {
	// pebble's validation authority reads these when it is created; it
	// sleeps up to 15 s before validating unless told not to.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	ctx := context.Background()
	reg := pgtest.NewPool(t, migrations.Platform)
	rdb, prefix := pgtest.Redis(t)
	acme := directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: "acme",
		Domains: []string{"acme.shops.test", "www.acme.test", "shop.acme.test"}})
	directorytest.AddTenant(t, reg, directorytest.Tenant{Slug: "paused", Status: tenancy.Suspended,
		Domains: []string{"paused.shops.test", "www.paused.test"}})
	if _, err := reg.Exec(ctx, `SELECT backoffice_add_domain($1, 'staff:1 o@acme.test', 'pending.acme.test', $2)`,
		acme, customdomains.NewToken()); err != nil {
		t.Fatal(err)
	}
	dir := directory.New(directory.Options{DB: reg, BaseDomain: "shops.test"})
	if err := dir.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	policy := customdomains.Policy{Directory: dir, BaseDomain: "shops.test"}

	lnA, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnB, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The validation authority dials replica A, as a load balancer would
	// send it to any one replica.
	pb := startPebble(t, lnA.Addr().(*net.TCPAddr).Port, startDNS(t))
	certFile, keyFile, wild := wildcard(t, "shops.test")
	opts := func() tlsserve.Options {
		return tlsserve.Options{
			CertFile: certFile, KeyFile: keyFile,
			ACMEDirectory: pb.dir, ACMEEmail: "ops@shops.test", ACMECARoot: pb.caRoot,
			Allow:   policy.AllowCertificate,
			Storage: &tlsserve.RedisStorage{Redis: rdb, Prefix: prefix},
		}
	}
	a := startReplica(t, lnA, opts(), dir)
	b := startReplica(t, lnB, opts(), dir)

	acmeRoots := x509.NewCertPool()
	acmeRoots.AddCert(pb.root)
	wildRoots := x509.NewCertPool()
	wildRoots.AddCert(wild)

	// A verified custom domain: pebble issues, the tenant answers.
	body, cert, err := a.get("www.acme.test", acmeRoots)
	if err != nil {
		t.Fatalf("handshake for a verified domain: %v", err)
	}
	if body != "200 tenant acme" || !strings.Contains(cert.Issuer.CommonName, "Pebble") || cert.VerifyHostname("www.acme.test") != nil {
		t.Fatalf("verified domain: %q, certificate for %v from %q", body, cert.DNSNames, cert.Issuer.CommonName)
	}
	if n := pb.orders.Load(); n != 1 {
		t.Fatalf("%d orders for one domain, want 1", n)
	}
	// Replica B serves the same certificate from the storage.
	_, certB, err := b.get("www.acme.test", acmeRoots)
	if err != nil || !certB.Equal(cert) {
		t.Fatalf("replica B for the issued domain: %v (same certificate: %v)", err, err == nil && certB.Equal(cert))
	}
	if n := pb.orders.Load(); n != 1 {
		t.Fatalf("replica B ordered again: %d orders", n)
	}

	// Both replicas at once for a new domain: one order.
	start := make(chan struct{})
	var wg, ready sync.WaitGroup
	certs := make([]*x509.Certificate, 2)
	for i, r := range []*replica{a, b} {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-start
			body, c, err := r.get("shop.acme.test", acmeRoots)
			if err != nil || body != "200 tenant acme" {
				t.Errorf("replica %d for shop.acme.test: %q, %v", i, body, err)
				return
			}
			certs[i] = c
		}()
	}
	ready.Wait()
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if !certs[0].Equal(certs[1]) {
		t.Error("the two replicas serve different certificates for one domain")
	}
	if n := pb.orders.Load(); n != 2 {
		t.Fatalf("%d orders after a second domain asked of two replicas at once, want 2", n)
	}

	// Tenant subdomains: the wildcard certificate, no order.
	body, cert, err = b.get("acme.shops.test", wildRoots)
	if err != nil || body != "200 tenant acme" || !cert.Equal(wild) {
		t.Fatalf("tenant subdomain: %q, %v", body, err)
	}

	// Refused names fail the handshake and order nothing.
	for _, host := range []string{"pending.acme.test", "www.paused.test", "unknown.example.com", "a.b.shops.test"} {
		for _, r := range []*replica{a, b} {
			_, _, err := r.get(host, acmeRoots)
			var alert tls.AlertError
			var recErr *tls.RecordHeaderError
			if err == nil || !(errors.As(err, &alert) || errors.As(err, &recErr) || strings.Contains(err.Error(), "tls")) {
				t.Errorf("handshake for %s: %v, want a TLS failure", host, err)
			}
		}
	}
	if n := pb.orders.Load(); n != 2 {
		t.Errorf("%d orders after refused names, want 2", n)
	}
}
