package tlsserve_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/startupwebapp/platform/platform/tlsserve"
)

// TestWildcardOnly: without an ACME directory, tenant subdomains get the
// wildcard certificate and every other name fails the handshake.
func TestWildcardOnly(t *testing.T) {
	t.Parallel()
	certFile, keyFile, wild := wildcard(t, "shops.test")
	srv, err := tlsserve.New(context.Background(), tlsserve.Options{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(wild)
	handshake := func(host string) (*x509.Certificate, error) {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: host, RootCAs: roots})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0], nil
	}
	if cert, err := handshake("acme.shops.test"); err != nil || !cert.Equal(wild) {
		t.Fatalf("tenant subdomain: %v", err)
	}
	for _, host := range []string{"www.acme.test", "a.b.shops.test"} {
		if _, err := handshake(host); err == nil {
			t.Errorf("handshake for %s succeeded without a certificate for it", host)
		}
	}
}

// TestNewRefusesIncompleteOptions: a listener with no certificate source,
// half a key pair, or on-demand issuance without its gate or storage.
func TestNewRefusesIncompleteOptions(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _ := wildcard(t, "shops.test")
	allow := func(context.Context, string) error { return nil }
	for name, o := range map[string]tlsserve.Options{
		"nothing":          {},
		"cert without key": {CertFile: certFile},
		"no decision":      {ACMEDirectory: "https://acme.test/dir", Storage: &tlsserve.RedisStorage{}},
		"no storage":       {ACMEDirectory: "https://acme.test/dir", Allow: allow},
		"bad key file":     {CertFile: certFile, KeyFile: certFile},
		"missing CA root":  {CertFile: certFile, KeyFile: keyFile, ACMEDirectory: "https://acme.test/dir", Allow: allow, Storage: &tlsserve.RedisStorage{}, ACMECARoot: "/nonexistent/ca.pem"},
	} {
		if srv, err := tlsserve.New(context.Background(), o); err == nil {
			srv.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}
