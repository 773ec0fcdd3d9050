package server

import (
	"fmt"
	"net/netip"
	"strings"
)

// Proxies are the addresses whose X-Forwarded-* headers are believed. Both
// planes use them to find the real client address.
type Proxies []netip.Prefix

// ParseProxies reads trusted proxy entries: addresses or CIDRs.
func ParseProxies(list []string) (Proxies, error) {
	var out Proxies
	for _, p := range list {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if strings.Contains(p, "/") {
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %v", p, err)
			}
			out = append(out, pfx.Masked())
			continue
		}
		a, err := netip.ParseAddr(p)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %v", p, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Trusts reports whether a is a trusted proxy.
func (p Proxies) Trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, pfx := range p {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the caller's address: the TCP peer, or, when the peer is a
// trusted proxy, the nearest X-Forwarded-For hop that is not itself one.
// Hops further left are whatever the client wrote, so the leftmost one
// (Fiber's c.IP()) would let a client choose its address per request.
func (p Proxies) ClientAddr(peer netip.Addr, xff []byte) netip.Addr {
	client := peer.Unmap()
	if !p.Trusts(client) {
		return client
	}
	for len(xff) > 0 {
		var hop []byte
		if i := lastIndexByte(xff, ','); i >= 0 {
			hop, xff = xff[i+1:], xff[:i]
		} else {
			hop, xff = xff, nil
		}
		a, err := netip.ParseAddr(strings.TrimSpace(string(hop)))
		if err != nil {
			break // a garbled hop: trust nothing to its left
		}
		client = a.Unmap()
		if !p.Trusts(client) {
			break
		}
	}
	return client
}
