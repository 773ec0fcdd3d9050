package registry

import (
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/startupwebapp/platform/platform/tenancy"
)

// ValidateSlug checks a tenant slug: 2 to 40 characters, lowercase letters,
// digits and '-', starting with a letter and not ending with '-'.
func ValidateSlug(slug string) error {
	if !tenancy.ValidSlug(slug) {
		return invalid("slug", "want 2-40 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'")
	}
	return nil
}

// NormalizeHostname lowercases a hostname and checks that it is "localhost"
// or a DNS name of at least two labels, without a port.
func NormalizeHostname(host string) (string, error) {
	h := strings.ToLower(strings.TrimSpace(host))
	if h == "localhost" {
		return h, nil
	}
	if !validDNSName(h) {
		return "", invalid("hostname", "want a DNS name such as shop.example.com (or localhost), without scheme, port or path")
	}
	return h, nil
}

func validDNSName(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if !validLabel(l) {
			return false
		}
	}
	// An all-digit top label is an IP address, not a name.
	tld := labels[len(labels)-1]
	return strings.Trim(tld, "0123456789") != ""
}

// validLabel reports whether l is one lowercase DNS label.
func validLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, c := range l {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// NormalizeOrigin checks a trusted browser origin, exactly
// scheme://host[:port] with scheme http or https and host a DNS name,
// localhost or an IPv4 address, or the pattern scheme://*.domain[:port] that
// directory.OriginMatches reads as "any subdomain of domain"; it returns it
// lowercased.
func NormalizeOrigin(origin string) (string, error) {
	bad := invalid("origin", "want scheme://host[:port] (http or https, no path, no trailing slash)")
	o := strings.TrimSpace(origin)
	u, err := url.Parse(o)
	if err != nil || u.Opaque != "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" ||
		strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return "", bad
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", bad
	}
	host := strings.ToLower(u.Hostname())
	if domain, ok := strings.CutPrefix(host, "*."); ok {
		if domain != "localhost" && !validDNSName(domain) && !(validLabel(domain) && domain == strings.Trim(domain, "0123456789")) {
			return "", bad
		}
	} else if host != "localhost" && !validDNSName(host) {
		if ip := net.ParseIP(host); ip == nil || ip.To4() == nil {
			return "", bad
		}
	}
	out := scheme + "://" + host
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return "", bad
		}
		out += ":" + p
	} else if strings.HasSuffix(u.Host, ":") {
		return "", bad
	}
	if !strings.EqualFold(out, o) {
		return "", bad
	}
	return out, nil
}
