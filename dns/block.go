package dns

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/routerd/routerd/internal/domainset"
	"github.com/routerd/routerd/router/status"
)

// Blocking ([[dns.block]]): names the resolver answers itself, for the
// clients of the LANs a list is for. The lists are the router's (Blocker);
// here a question is checked before the cache and upstream, and an
// answer's CNAME targets after, so a tracker behind a harmless-looking
// alias is blocked too.

// Blocked is the verdict on a blocked name.
type Blocked struct {
	List string // the block list's name
	Null bool   // answer 0.0.0.0 and ::, not NXDOMAIN
}

// Blocklists are the block lists in force, replaced whole as they change
// (the router downloads and parses them). A concrete type, not an
// interface: the cache-hit path asks it with a name on the reader's stack,
// which a call through an interface would move to the heap.
type Blocklists struct {
	allow domainset.Set
	lists atomic.Pointer[[]BlockList]
}

// BlockList is one list: its names (with their subdomains) and its
// exceptions, for the clients of LANs (every LAN when empty).
type BlockList struct {
	Blocked
	LANs          []string
	Names, Except domainset.Set
}

// NewBlocklists returns empty lists that never block the names in allow
// (with their subdomains).
func NewBlocklists(allow []string) *Blocklists {
	var b domainset.Builder
	for _, a := range allow {
		b.Add(a)
	}
	bl := &Blocklists{allow: b.Set()}
	bl.lists.Store(&[]BlockList{})
	return bl
}

// Set replaces the lists.
func (bl *Blocklists) Set(lists []BlockList) { bl.lists.Store(&lists) }

// Block reports whether name (any case, trailing dot or not), asked by a
// client on LAN iface, is blocked: a list for that LAN names it or a
// parent, no such list has an exception ("@@") for it, and the allowed
// names do not hold it or a parent. (An exception is the household's as
// much as its list's: AdGuard Home and Pi-hole apply it across lists.)
// It allocates nothing.
func (bl *Blocklists) Block(name []byte, iface string) (Blocked, bool) {
	lists := *bl.lists.Load()
	if len(lists) == 0 {
		return Blocked{}, false
	}
	if _, ok := bl.allow.Match(name); ok {
		return Blocked{}, false
	}
	hit := -1
	for i := range lists {
		l := &lists[i]
		if len(l.LANs) > 0 && !slices.Contains(l.LANs, iface) {
			continue
		}
		if _, ok := l.Except.Match(name); ok {
			return Blocked{}, false
		}
		if _, ok := l.Names.Match(name); ok && hit < 0 {
			hit = i
		}
	}
	if hit < 0 {
		return Blocked{}, false
	}
	return lists[hit].Blocked, true
}

// Blocking reports whether any list applies on iface.
func (bl *Blocklists) Blocking(iface string) bool {
	for _, l := range *bl.lists.Load() {
		if len(l.LANs) == 0 || slices.Contains(l.LANs, iface) {
			return true
		}
	}
	return false
}

// blockedTTL is how long a client keeps a blocked answer: short, so that
// an allowed name works soon after the household allows it.
const blockedTTL = 10

// blockedAnswer is the resolver's own answer to a blocked question:
// NXDOMAIN, or the unspecified address for A and AAAA (NODATA for other
// types), with Extended DNS Error 15 (Blocked, RFC 8914) naming the list.
func blockedAnswer(q dns.Question, b Blocked) *dns.Msg {
	m := new(dns.Msg)
	if b.Null {
		h := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Rrtype: q.Qtype, Ttl: blockedTTL}
		switch q.Qtype {
		case dns.TypeA:
			m.Answer = []dns.RR{&dns.A{Hdr: h, A: net.IPv4zero}}
		case dns.TypeAAAA:
			m.Answer = []dns.RR{&dns.AAAA{Hdr: h, AAAA: net.IPv6zero}}
		}
	} else {
		m.Rcode = dns.RcodeNameError
	}
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	opt.Option = []dns.EDNS0{&dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: "blocked by list " + b.List}}
	m.Extra = []dns.RR{opt}
	return m
}

// block checks a question's name for a client on iface; name is lower case.
func (r *Resolver) block(name string, client netip.Addr, iface string) (Blocked, bool) {
	if r.cfg.Blocker == nil {
		return Blocked{}, false
	}
	b, ok := r.cfg.Blocker.Block([]byte(name), iface)
	if ok {
		r.blocks.count(client, strings.TrimSuffix(name, "."))
	}
	return b, ok
}

// blockChain checks an answer's CNAME targets (the question's own name
// was checked before it was asked).
func (r *Resolver) blockChain(m *dns.Msg, client netip.Addr, iface string) (Blocked, bool) {
	if r.cfg.Blocker == nil {
		return Blocked{}, false
	}
	for _, rr := range m.Answer {
		if c, ok := rr.(*dns.CNAME); ok {
			if b, ok := r.block(strings.ToLower(c.Target), client, iface); ok {
				return b, true
			}
		}
	}
	return Blocked{}, false
}

// blockAnswer is the answer to q when an upstream answer's CNAME chain
// leads to a blocked name (counted and logged), or false.
func (r *Resolver) blockAnswer(q dns.Question, resp *dns.Msg, client netip.Addr, iface string) (*dns.Msg, bool) {
	b, ok := r.blockChain(resp, client, iface)
	if !ok {
		return nil, false
	}
	r.st.blocked.Add(1)
	m := blockedAnswer(q, b)
	r.logQuery(client, q, m.Rcode, howBlocked, b.List)
	return m, true
}

// hasCNAME says whether an answer holds a CNAME: the cache-hit fast path
// leaves those to the ordinary path when blocking applies, which checks
// their targets.
func hasCNAME(m *dns.Msg) bool {
	return slices.ContainsFunc(m.Answer, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeCNAME })
}

// maxClients and maxBlockedNames bound the per-client and per-name counts:
// a LAN of forged source addresses or a list of random names cannot grow
// them without end (what comes after counts under "other").
const (
	maxClients      = 1024
	maxBlockedNames = 4096
)

// clientCounts are the resolver's per-client counts of questions and
// blocked answers, and the blocked names' counts.
type clientCounts struct {
	mu      sync.RWMutex
	clients map[netip.Addr]*clientCount
	other   clientCount
	names   map[string]uint64
}

type clientCount struct {
	queries, blocked atomic.Uint64
}

// of returns a client's counters; it allocates only for a new client.
func (c *clientCounts) of(a netip.Addr) *clientCount {
	c.mu.RLock()
	cc := c.clients[a]
	c.mu.RUnlock()
	if cc != nil {
		return cc
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc = c.clients[a]; cc != nil {
		return cc
	}
	if c.clients == nil {
		c.clients = map[netip.Addr]*clientCount{}
	}
	if len(c.clients) >= maxClients {
		return &c.other
	}
	cc = &clientCount{}
	c.clients[a] = cc
	return cc
}

func (c *clientCounts) count(client netip.Addr, name string) {
	c.of(client).blocked.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.names == nil {
		c.names = map[string]uint64{}
	}
	if _, ok := c.names[name]; ok || len(c.names) < maxBlockedNames {
		c.names[name]++
	} else {
		c.names["(other)"]++
	}
}

// Top is the resolver's per-client counts and most blocked names, most
// first, n of each (0: all).
func (r *Resolver) Top(n int) status.DNSTop {
	c := &r.blocks
	var t status.DNSTop
	c.mu.RLock()
	for a, cc := range c.clients {
		t.Clients = append(t.Clients, status.DNSClient{Address: a.String(), Queries: cc.queries.Load(), Blocked: cc.blocked.Load()})
	}
	if q := c.other.queries.Load(); q > 0 {
		t.Clients = append(t.Clients, status.DNSClient{Address: "(other)", Queries: q, Blocked: c.other.blocked.Load()})
	}
	for name, k := range c.names {
		t.Blocked = append(t.Blocked, status.DNSCount{Name: name, Count: k})
	}
	c.mu.RUnlock()
	slices.SortFunc(t.Clients, func(a, b status.DNSClient) int {
		if a.Queries != b.Queries {
			return cmp.Compare(b.Queries, a.Queries)
		}
		return strings.Compare(a.Address, b.Address)
	})
	slices.SortFunc(t.Blocked, func(a, b status.DNSCount) int {
		if a.Count != b.Count {
			return cmp.Compare(b.Count, a.Count)
		}
		return strings.Compare(a.Name, b.Name)
	})
	if n > 0 {
		t.Clients = t.Clients[:min(n, len(t.Clients))]
		t.Blocked = t.Blocked[:min(n, len(t.Blocked))]
	}
	return t
}
