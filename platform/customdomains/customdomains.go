// Package customdomains holds what the back office, the control plane's
// checker and the TLS layer share about a tenant's own domains: the DNS
// TXT record that proves control of a domain, and the decision whether the
// platform may obtain a certificate for a hostname.
package customdomains

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/startupwebapp/platform/platform/directory"
)

// ChallengeLabel is the label the verification record sits under.
const ChallengeLabel = "_swa-challenge"

// ValuePrefix starts the TXT value of the verification record.
const ValuePrefix = "swa-verify="

// RecordName is the name of the TXT record that verifies hostname:
// _swa-challenge.<hostname>.
func RecordName(hostname string) string { return ChallengeLabel + "." + hostname }

// RecordValue is the TXT value that verifies a domain with token.
func RecordValue(token string) string { return ValuePrefix + token }

// NewToken returns a fresh verification token: 24 random bytes, URL-safe
// base64 (32 characters), as the registry's CHECK wants.
func NewToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Lookup is the part of the data plane's directory the decision reads.
type Lookup interface {
	Lookup(host string) (*directory.Tenant, directory.Result)
}

// ErrRefused is the reason for every refused certificate; the wrapped
// message says which rule refused it (for the log, not for the client).
var ErrRefused = errors.New("customdomains: no certificate for this host")

// Policy decides which hostnames the platform obtains certificates for on
// demand.
type Policy struct {
	// Directory holds only verified domains, each with its tenant's status.
	Directory Lookup
	// BaseDomain: {slug}.{BaseDomain} hosts, and the base domain itself,
	// are served with the platform's wildcard certificate, never one of
	// their own.
	BaseDomain string
}

// AllowCertificate returns nil only for a verified custom domain of a
// serving (active) tenant; every other host (unknown, pending, a suspended
// or deleted tenant's, the base domain and its subdomains, an IP address, a
// name that is not a DNS name) is refused with an error wrapping
// ErrRefused. It never does I/O: the directory's snapshot answers, so it is
// safe on the TLS handshake path. It is meant as certmagic's
// OnDemandConfig.DecisionFunc (see docs/design.md).
func (p Policy) AllowCertificate(_ context.Context, host string) error {
	h := strings.TrimSuffix(host, ".")
	if h == "" || len(h) > 253 || h != strings.ToLower(h) {
		// certmagic hands over the server name lower-cased; another
		// spelling is not worth a certificate.
		return fmt.Errorf("%w: %q is not a lower-case DNS name", ErrRefused, host)
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return fmt.Errorf("%w: %s is an IP address", ErrRefused, h)
	}
	if strings.ContainsAny(h, "*:/ []") || !strings.Contains(h, ".") {
		return fmt.Errorf("%w: %q is not a DNS name", ErrRefused, h)
	}
	base := strings.Trim(strings.ToLower(p.BaseDomain), ".")
	if base != "" && (h == base || strings.HasSuffix(h, "."+base)) {
		return fmt.Errorf("%w: %s is under the platform domain (wildcard certificate)", ErrRefused, h)
	}
	t, res := p.Directory.Lookup(h)
	switch {
	case res == directory.Unknown || t == nil:
		return fmt.Errorf("%w: %s is not a verified domain of any tenant", ErrRefused, h)
	case res != directory.Found:
		return fmt.Errorf("%w: %s belongs to tenant %s, which is %s", ErrRefused, h, t.Slug, t.Status)
	}
	// Lookup also answers {slug}.{base} hosts; only an exact domain counts.
	for _, d := range t.Hosts {
		if d == h {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is not one of tenant %s's domains", ErrRefused, h, t.Slug)
}
