package tlsserve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Options configure the data plane's TLS.
type Options struct {
	// CertFile and KeyFile are the PEM files of the platform's wildcard
	// certificate (*.{base}, and the base domain if it lists it); both or
	// neither.
	CertFile, KeyFile string
	// ACMEDirectory is the ACME directory URL certificates for custom
	// domains are obtained from; empty: no certificate is ever obtained
	// and only the wildcard certificate is served.
	ACMEDirectory string
	// ACMEEmail is the ACME account's contact.
	ACMEEmail string
	// ACMECARoot is a PEM file of roots trusted for the ACME server's own
	// HTTPS (a test CA); empty: the system roots.
	ACMECARoot string
	// Allow is the only gate of on-demand issuance: it must return nil
	// for a host before a certificate is obtained for it
	// (customdomains.Policy.AllowCertificate). Required with ACMEDirectory.
	Allow func(ctx context.Context, host string) error
	// Storage holds certificates, the ACME account and locks, shared by
	// every replica (a *RedisStorage). Required with ACMEDirectory.
	Storage certmagic.Storage
	Log     *slog.Logger
}

// Server holds the certificates of one data-plane replica.
type Server struct {
	cache *certmagic.Cache
	magic *certmagic.Config
}

// New loads the wildcard certificate and sets up on-demand issuance. The
// challenge is TLS-ALPN-01, answered on the HTTPS listener itself (port
// 443 behind the load balancer), by whichever replica the validation lands
// on: a challenge one replica started is found in the shared storage.
func New(ctx context.Context, o Options) (*Server, error) {
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("tlsserve: the wildcard certificate needs both a certificate and a key file")
	}
	if o.CertFile == "" && o.ACMEDirectory == "" {
		return nil, errors.New("tlsserve: neither a wildcard certificate nor an ACME directory is configured")
	}
	if o.ACMEDirectory != "" && (o.Allow == nil || o.Storage == nil) {
		return nil, errors.New("tlsserve: on-demand issuance needs a decision function and shared storage")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	storage := o.Storage
	if storage == nil {
		// Only the wildcard certificate: nothing is ever written.
		storage = noStorage{}
	}
	var magic *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		Logger:           zap.NewNop(),
	})
	magic = certmagic.New(cache, certmagic.Config{
		Storage: storage,
		Logger:  zap.NewNop(),
		OnEvent: func(_ context.Context, event string, data map[string]any) error {
			switch event {
			case "cert_obtained", "cert_failed", "cert_ocsp_revoked":
				log.Info("tls: "+event, "identifier", data["identifier"], "renewal", data["renewal"], "err", data["error"])
			}
			return nil
		},
	})
	s := &Server{cache: cache, magic: magic}
	if o.ACMEDirectory != "" {
		var roots *x509.CertPool
		if o.ACMECARoot != "" {
			pem, err := os.ReadFile(o.ACMECARoot)
			if err != nil {
				cache.Stop()
				return nil, fmt.Errorf("tlsserve: ACME CA root: %w", err)
			}
			roots = x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				cache.Stop()
				return nil, fmt.Errorf("tlsserve: ACME CA root %s holds no PEM certificate", o.ACMECARoot)
			}
		}
		allow := o.Allow
		magic.OnDemand = &certmagic.OnDemandConfig{DecisionFunc: func(ctx context.Context, name string) error {
			err := allow(ctx, name)
			if err != nil {
				log.Debug("tls: no certificate", "host", name, "err", err)
			}
			return err
		}}
		magic.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
			CA:                   o.ACMEDirectory,
			TestCA:               o.ACMEDirectory,
			Email:                o.ACMEEmail,
			Agreed:               true,
			DisableHTTPChallenge: true,
			TrustedRoots:         roots,
			Logger:               zap.NewNop(),
		})}
	} else {
		magic.Issuers = []certmagic.Issuer{noIssuer{}}
	}
	if o.CertFile != "" {
		if _, err := magic.CacheUnmanagedCertificatePEMFile(ctx, o.CertFile, o.KeyFile, []string{"wildcard"}); err != nil {
			cache.Stop()
			return nil, fmt.Errorf("tlsserve: wildcard certificate: %w", err)
		}
	}
	return s, nil
}

// TLSConfig is the listener's configuration: certificates by SNI, and the
// acme-tls/1 protocol for the TLS-ALPN-01 challenge.
func (s *Server) TLSConfig() *tls.Config {
	c := s.magic.TLSConfig()
	c.MinVersion = tls.VersionTLS12
	// Fiber (fasthttp) speaks HTTP/1.1 only.
	c.NextProtos = slices.DeleteFunc(c.NextProtos, func(p string) bool { return p == "h2" })
	return c
}

// Close stops the certificate cache's maintenance (renewals).
func (s *Server) Close() { s.cache.Stop() }

// noIssuer refuses every certificate: without an ACME directory no host
// is ever issued one.
type noIssuer struct{}

func (noIssuer) Issue(context.Context, *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	return nil, errors.New("tlsserve: no ACME directory is configured")
}
func (noIssuer) IssuerKey() string { return "none" }

// noStorage is the storage of a server without on-demand issuance: empty,
// and refusing writes.
type noStorage struct{}

var errNoStorage = errors.New("tlsserve: no certificate storage without an ACME directory")

func (noStorage) Lock(context.Context, string) error                   { return errNoStorage }
func (noStorage) Unlock(context.Context, string) error                 { return nil }
func (noStorage) Store(context.Context, string, []byte) error          { return errNoStorage }
func (noStorage) Load(context.Context, string) ([]byte, error)         { return nil, os.ErrNotExist }
func (noStorage) Delete(context.Context, string) error                 { return os.ErrNotExist }
func (noStorage) Exists(context.Context, string) bool                  { return false }
func (noStorage) List(context.Context, string, bool) ([]string, error) { return nil, os.ErrNotExist }
func (noStorage) Stat(context.Context, string) (certmagic.KeyInfo, error) {
	return certmagic.KeyInfo{}, os.ErrNotExist
}
