package dns

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// An upstream's answer on its way into the cache and to the client.

// accept takes an upstream's answer to q (a hostile upstream's, perhaps:
// FuzzUpstreamResponse) into the cache and returns it for the client.
func (r *Resolver) accept(key cacheKey, q dns.Question, resp *dns.Msg, now time.Time) *dns.Msg {
	resp, _ = r.acceptWire(key, q, resp, now, false)
	return resp
}

// acceptWire is accept that also returns the answer's packed form as the
// cache keeps it (nil if it was not cached, or cannot be served packed).
// With give, the cache keeps resp itself rather than a copy, and the
// caller must not change it.
func (r *Resolver) acceptWire(key cacheKey, q dns.Question, resp *dns.Msg, now time.Time, give bool) (*dns.Msg, *wireAnswer) {
	resp.Id = 0
	stripOPT(resp)
	clampTTLs(resp)
	// The hook runs before the answer is cached, so no client, not even
	// one asking concurrently, gets the addresses before they are routed.
	var gen uint64
	if r.cfg.HookGeneration != nil {
		gen = r.cfg.HookGeneration()
	}
	if r.cfg.OnAnswer != nil {
		r.hook(key.route.Path, q, resp)
	}
	if give {
		return resp, r.cache.putOwned(key, resp, now, gen)
	}
	return resp, r.cache.putFor(key, resp, now, gen, 0) // stores its own copy
}

// chain returns the names an answer covers (the question and each CNAME
// target) and its addresses, with the smallest TTL among them.
func chain(qname string, m *dns.Msg) ([]string, []netip.Addr, time.Duration) {
	names := []string{strings.ToLower(strings.TrimSuffix(qname, "."))}
	var addrs []netip.Addr
	ttl := uint32(maxTTL / time.Second)
	for _, rr := range m.Answer {
		h := rr.Header()
		ttl = min32(ttl, h.Ttl)
		switch v := rr.(type) {
		case *dns.CNAME:
			names = append(names, strings.ToLower(strings.TrimSuffix(v.Target, ".")))
		case *dns.A:
			if a, ok := netip.AddrFromSlice(v.A.To4()); ok {
				addrs = append(addrs, a)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(v.AAAA); ok {
				addrs = append(addrs, a)
			}
		}
	}
	return slices.Compact(names), addrs, time.Duration(ttl) * time.Second
}
