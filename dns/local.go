package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// localTTL is the TTL of local answers: short, so a name that moves (a new
// lease) is picked up by clients soon.
const localTTL = 60

// zone answers the names the router knows itself: static records, the
// router's own name, reservations and DHCP lease hostnames, and the PTRs
// of all of them. It is authoritative for its domain and for the reverse
// zones of the LAN subnets: names there that it does not know do not exist,
// and are never asked upstream.
type zone struct {
	domain  string         // "lan." (lower case, fully qualified)
	reverse []netip.Prefix // LAN subnets

	mu     sync.RWMutex
	names  map[string]map[netip.Addr]string // fqdn -> address -> owner ("static" or a lease key)
	ptrs   map[netip.Addr]string            // address -> fqdn
	owners map[string][]nameAddr            // owner -> what it added
}

type nameAddr struct {
	name string
	addr netip.Addr
}

func newZone(domain string, reverse []netip.Prefix) *zone {
	z := &zone{reverse: reverse, names: map[string]map[netip.Addr]string{}, ptrs: map[netip.Addr]string{}, owners: map[string][]nameAddr{}}
	if domain != "" {
		z.domain = dns.Fqdn(strings.ToLower(domain))
	}
	return z
}

// qualify turns a host name into its name in the domain.
func (z *zone) qualify(host string) string {
	if z.domain == "" {
		return dns.Fqdn(strings.ToLower(host))
	}
	return strings.ToLower(host) + "." + z.domain
}

// add binds name to addrs for owner, replacing what owner had before.
func (z *zone) add(owner, name string, addrs ...netip.Addr) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.addLocked(owner, name, addrs...)
}

func (z *zone) addLocked(owner, name string, addrs ...netip.Addr) {
	z.removeLocked(owner)
	name = dns.Fqdn(strings.ToLower(name))
	for _, a := range addrs {
		if z.names[name] == nil {
			z.names[name] = map[netip.Addr]string{}
		}
		z.names[name][a] = owner
		z.ptrs[a] = name
		z.owners[owner] = append(z.owners[owner], nameAddr{name, a})
	}
}

// Names no client may claim, in any domain: browsers and Windows look them
// up to find a proxy (WPAD) or a tunnel (ISATAP), and localhost is the
// host itself.
var reservedHosts = map[string]bool{"wpad": true, "isatap": true, "localhost": true}

// claimant is the owner prefix of names clients claim (DHCP hostnames);
// every other owner (static records, the router, reservations) is the
// config's.
const claimant = "lease:"

// claim is add for a name a client asked for (its DHCP hostname). It is
// refused when the name is reserved, belongs to the config (the router's
// name, a static record, a reservation), or is held by another client for
// the same address family: the first client keeps it. (A dual-stack client
// asks for its name twice, by DHCPv4 and DHCPv6, under two owners.)
func (z *zone) claim(owner, name string, addrs ...netip.Addr) error {
	name = dns.Fqdn(strings.ToLower(name))
	host, _, _ := strings.Cut(name, ".")
	if reservedHosts[host] {
		return fmt.Errorf("%s is reserved", strings.TrimSuffix(name, "."))
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	for a, o := range z.names[name] {
		switch {
		case o == owner:
		case !strings.HasPrefix(o, claimant):
			return fmt.Errorf("%s is the config's (%s)", strings.TrimSuffix(name, "."), o)
		case len(addrs) > 0 && a.Is4() == addrs[0].Is4():
			return fmt.Errorf("%s is held by another client (%s)", strings.TrimSuffix(name, "."), strings.TrimPrefix(o, claimant))
		}
	}
	z.addLocked(owner, name, addrs...)
	return nil
}

// remove drops everything owner added.
func (z *zone) remove(owner string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.removeLocked(owner)
}

func (z *zone) removeLocked(owner string) {
	for _, na := range z.owners[owner] {
		if z.names[na.name][na.addr] == owner {
			delete(z.names[na.name], na.addr)
			if len(z.names[na.name]) == 0 {
				delete(z.names, na.name)
			}
		}
		if z.ptrs[na.addr] == na.name {
			delete(z.ptrs, na.addr)
			// Another owner may still have a name for the address.
			for n, m := range z.names {
				if _, ok := m[na.addr]; ok {
					z.ptrs[na.addr] = n
					break
				}
			}
		}
	}
	delete(z.owners, owner)
}

// answer returns a local answer to q and true, or false when q is not the
// zone's to answer.
func (z *zone) answer(q dns.Question) (*dns.Msg, bool) {
	name := strings.ToLower(q.Name)
	z.mu.RLock()
	defer z.mu.RUnlock()
	// Most questions are not the zone's: they cost it no allocation.
	auth := func() *dns.Msg { return &dns.Msg{MsgHdr: dns.MsgHdr{Authoritative: true}} }
	if q.Qtype == dns.TypePTR {
		if a, ok := reverseAddr(name); ok {
			if target, ok := z.ptrs[a]; ok {
				m := auth()
				m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr(q.Name, dns.TypePTR), Ptr: target})
				return m, true
			}
			for _, p := range z.reverse {
				if p.Contains(a) {
					return z.negative(auth(), q, dns.RcodeNameError), true
				}
			}
			return nil, false
		}
	}
	if addrs, ok := z.names[name]; ok {
		m := auth()
		var sorted []netip.Addr
		for a := range addrs {
			sorted = append(sorted, a)
		}
		slices.SortFunc(sorted, func(a, b netip.Addr) int { return a.Compare(b) })
		for _, a := range sorted {
			switch {
			case q.Qtype == dns.TypeA && a.Is4():
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr(q.Name, dns.TypeA), A: a.AsSlice()})
			case q.Qtype == dns.TypeAAAA && a.Is6():
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(q.Name, dns.TypeAAAA), AAAA: a.AsSlice()})
			}
		}
		if len(m.Answer) == 0 {
			return z.negative(m, q, dns.RcodeSuccess), true // NODATA
		}
		return m, true
	}
	if z.domain != "" && hasSuffixLabel(name, z.domain) {
		m := auth()
		if name == z.domain && q.Qtype == dns.TypeSOA {
			m.Answer = append(m.Answer, z.soa())
			return m, true
		}
		return z.negative(m, q, dns.RcodeNameError), true
	}
	return nil, false
}

func (z *zone) negative(m *dns.Msg, q dns.Question, rcode int) *dns.Msg {
	m.Rcode = rcode
	m.Ns = append(m.Ns, z.soa())
	return m
}

// soa is the zone's SOA: its minimum is the negative-cache time clients
// keep a "no such name" for.
func (z *zone) soa() *dns.SOA {
	origin := z.domain
	if origin == "" {
		origin = "."
	}
	return &dns.SOA{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: localTTL},
		Ns: "router." + origin, Mbox: "hostmaster." + origin, Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: localTTL}
}

func hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: localTTL}
}

// reverseAddr parses an in-addr.arpa or ip6.arpa name.
func reverseAddr(name string) (netip.Addr, bool) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	switch {
	case strings.HasSuffix(name, ".in-addr.arpa"):
		parts := strings.Split(strings.TrimSuffix(name, ".in-addr.arpa"), ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		slices.Reverse(parts)
		a, err := netip.ParseAddr(strings.Join(parts, "."))
		return a, err == nil
	case strings.HasSuffix(name, ".ip6.arpa"):
		nibbles := strings.Split(strings.TrimSuffix(name, ".ip6.arpa"), ".")
		if len(nibbles) != 32 {
			return netip.Addr{}, false
		}
		var b strings.Builder
		for i := 31; i >= 0; i-- {
			b.WriteString(nibbles[i])
			if i%4 == 0 && i > 0 {
				b.WriteByte(':')
			}
		}
		a, err := netip.ParseAddr(b.String())
		return a, err == nil
	}
	return netip.Addr{}, false
}

// privateReverse reports whether name is a reverse name in private address
// space (RFC 1918, ULA, link-local): such questions never leave the LAN
// (RFC 6303).
func privateReverse(name string) bool {
	a, ok := reverseAddr(name)
	if !ok {
		return false
	}
	return a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLoopback()
}
