package directory

import "strings"

// OriginMatches reports whether origin, as a browser sends it in an Origin
// header, matches pattern, one of a tenant's trusted origins.
//
// A pattern scheme://host[:port] matches that origin exactly (scheme and host
// ignore ASCII case; an explicit default port equals none). A pattern
// scheme://*.domain[:port] (contract §1.7) matches an origin of the same
// scheme and port whose host is a subdomain of domain, one or more labels
// deep. It never matches domain itself, nor a host that merely ends in the
// same letters (https://*.example.com does not match https://evilexample.com),
// and a host must be made of DNS labels for a wildcard to match it.
func OriginMatches(pattern, origin string) bool {
	wildcard := strings.Contains(pattern, "*")
	if !wildcard && asciiEqualFold(pattern, origin) {
		return true // the common case, without parsing
	}
	ps, ph, pp, ok := splitOrigin(pattern)
	if !ok {
		return false
	}
	os, oh, op, ok := splitOrigin(origin)
	if !ok || !asciiEqualFold(ps, os) || !samePort(ps, pp, op) {
		return false
	}
	if !wildcard {
		return asciiEqualFold(ph, oh)
	}
	domain, ok := strings.CutPrefix(ph, "*.")
	if !ok {
		return false // a '*' anywhere else is no pattern we know
	}
	if !validLabels(domain) || len(oh) < len(domain)+2 {
		return false
	}
	sub, tail := oh[:len(oh)-len(domain)-1], oh[len(oh)-len(domain)-1:]
	return tail[0] == '.' && asciiEqualFold(tail[1:], domain) && validLabels(sub)
}

// splitOrigin cuts scheme://host[:port] into its parts. It accepts only http
// and https, and no path, query, fragment or user information; a host in
// brackets (IPv6) is kept whole.
func splitOrigin(s string) (scheme, host, port string, ok bool) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !(asciiEqualFold(scheme, "http") || asciiEqualFold(scheme, "https")) || rest == "" ||
		strings.ContainsAny(rest, "/?#@\\ ") {
		return "", "", "", false
	}
	host = rest
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i:], "]") {
		host, port = rest[:i], rest[i+1:]
		if !validPort(port) {
			return "", "", "", false
		}
	}
	if host == "" {
		return "", "", "", false
	}
	return scheme, host, port, true
}

// validPort accepts 1-65535 written without leading zeros.
func validPort(p string) bool {
	if p == "" || len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}

// samePort compares two ports of the given scheme, an absent port being the
// scheme's default.
func samePort(scheme, a, b string) bool {
	def := "80"
	if asciiEqualFold(scheme, "https") {
		def = "443"
	}
	if a == "" {
		a = def
	}
	if b == "" {
		b = def
	}
	return a == b
}

// validLabels reports whether s is one or more dot-separated DNS labels of
// letters, digits and inner hyphens, each 1-63 characters.
func validLabels(s string) bool {
	if s == "" {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// asciiEqualFold is strings.EqualFold limited to ASCII, so no Unicode
// folding (the Kelvin sign and k) can make two origins equal.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
