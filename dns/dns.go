// Package dns is the LAN's resolver: a forwarding cache, the router's own
// names (static records, reservations, DHCP leases as they come and go, and
// their PTRs), and .local names and DNS-SD answered by asking the LAN over
// multicast DNS. It listens only on the LAN and loopback, refuses anyone
// else, and sends each client's questions upstream by that client's path,
// so a VPN client's lookups never leave by the WAN.
//
// It knows nothing of routing policy: the router tells it each client's
// path and the socket mark of each path.
package dns

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grandcat/zeroconf"
	"github.com/miekg/dns"
	"github.com/routerd/routerd/dns/dnssec"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/internal/via"
)

// Record is a static name.
type Record struct {
	Name  string
	Addrs []netip.Addr
}

// Config configures the resolver.
type Config struct {
	Domain   string // lease names answer as <host>.<Domain>
	Hostname string // the router's own name
	// ListenIfaces are the LAN interfaces whose addresses the resolver
	// listens on (loopback always). It follows their addresses.
	ListenIfaces []string
	// Clients are the networks allowed to ask (the LANs; loopback always).
	Clients     []netip.Prefix
	RouterAddrs []netip.Addr // answer for <Hostname>.<Domain>
	Records     []Record
	Upstreams   []Upstream
	// TLSRoots verify DNS-over-TLS upstreams (nil: the system's roots).
	TLSRoots   *x509.CertPool
	CacheSize  int
	MDNS       bool
	MDNSIfaces []string
	// Views are routing policies' own upstream servers (Route.View).
	Views []View
	// RouteOf says which path a client's traffic takes, and whose
	// servers it asks; its questions go upstream by the same path, with
	// that path's socket mark.
	RouteOf func(client netip.Addr, iface string) Route
	// MarkRoute, when set, is the route a question's packet mark says:
	// this host's own processes that a local policy selects have their
	// packets marked, and their questions go upstream by that route (over
	// TCP, the mark of the connection's SYN, which the listener's
	// accepted socket takes when net.ipv4.tcp_fwmark_accept is set). A
	// zero Route: no path in the mark. Nil: marks are not read.
	MarkRoute func(mark uint32) Route
	Port      int // 53
	// OnAnswer, when set, is called with every forwarded answer's names
	// (the question and its CNAME chain) and addresses before the client
	// gets it. Blocklists use it to route a blocked domain's addresses.
	OnAnswer func(path via.Path, names []string, addrs []netip.Addr, ttl time.Duration)
	// HookGeneration, when set, changes whenever OnAnswer would decide
	// differently (the domain lists changed): answers served from the
	// cache then go through OnAnswer again, once per change.
	HookGeneration func() uint64
	// Validator, when set, validates every upstream answer (DNSSEC):
	// bogus ones become SERVFAIL with an Extended DNS Error, secure ones
	// carry AD. Local names are not validated.
	Validator *dnssec.Validator
	// Blocker, when set, blocks names ([[dns.block]]).
	Blocker *Blocklists
	// QueryLog keeps every question this long in memory (0: no log).
	QueryLog time.Duration
	Log      *slog.Logger
}

// Resolver serves DNS to the LAN.
type Resolver struct {
	cfg   Config
	zone  *zone
	cache *cache
	fwd   *forwarder   // view 0's
	views []*forwarder // Config.Views'
	mdns  *mdnsForwarder

	mu        sync.Mutex
	listeners map[netip.Addr]*listener
	announcer *zeroconf.Server
	responder *hostResponder
	stopped   bool // by Stop: sync opens no listener again
	// run tracks every goroutine the resolver starts: the address watch,
	// the UDP readers and TCP servers of each listener, the mDNS
	// responder, the upstream sockets' readers and the questions that
	// wait for an upstream. Stop closes their sockets and waits for them.
	run lifecycle.Group

	flights flights // questions in flight upstream, by cache key

	extraClients atomic.Pointer[[]netip.Prefix]
	lastBogus    atomic.Pointer[string] // the last bogus answer and why, for status

	st     stats
	blocks clientCounts
	qlog   *queryLog // nil: off
}

// New returns a resolver for cfg.
func New(cfg Config) *Resolver {
	if cfg.Port == 0 {
		cfg.Port = 53
	}
	r := &Resolver{cfg: cfg, zone: newZone(cfg.Domain, cfg.Clients), cache: newCache(cfg.CacheSize),
		listeners: map[netip.Addr]*listener{}, qlog: newQueryLog(cfg.QueryLog)}
	r.fwd = newForwarder(cfg.Upstreams, cfg.TLSRoots, &r.run)
	for _, v := range cfg.Views {
		r.views = append(r.views, newForwarder(v.Upstreams, cfg.TLSRoots, &r.run))
	}
	if cfg.MDNS {
		r.mdns = &mdnsForwarder{ifaces: cfg.MDNSIfaces}
	}
	for i, rec := range cfg.Records {
		r.zone.add(fmt.Sprintf("static:%d", i), rec.Name, rec.Addrs...)
	}
	if cfg.Hostname != "" && len(cfg.RouterAddrs) > 0 {
		r.zone.add("router", r.zone.qualify(cfg.Hostname), cfg.RouterAddrs...)
		if cfg.MDNS {
			// Its own .local name the router knows without asking: its
			// mDNS announcer would answer over loopback, which a query
			// socket bound to a LAN interface never hears.
			r.zone.add("router.local", cfg.Hostname+".local", cfg.RouterAddrs...)
		}
	}
	r.st.start = time.Now()
	return r
}

// SetName binds <host>.<domain> to addrs for owner (a lease or a
// reservation), effective at once; an empty host removes owner's name.
func (r *Resolver) SetName(owner, host string, addrs ...netip.Addr) {
	if host == "" {
		r.zone.remove(owner)
		return
	}
	r.zone.add(owner, r.zone.qualify(host), addrs...)
}

// ClaimName binds <host>.<domain> to addrs for a client (owner, a DHCP
// lease), unless the name is reserved (wpad, isatap, localhost), the
// config's (the router's name, static records, reservations) or another
// client's: the first client to claim a name keeps it. A refused claim
// removes what owner had.
func (r *Resolver) ClaimName(owner, host string, addrs ...netip.Addr) error {
	err := r.zone.claim(claimant+owner, r.zone.qualify(host), addrs...)
	if err != nil {
		r.zone.remove(claimant + owner)
	}
	return err
}

// ClaimOwner is the owner under which ClaimName keeps a client's name
// (for RemoveName).
func ClaimOwner(owner string) string { return claimant + owner }

// RemoveName drops owner's name.
func (r *Resolver) RemoveName(owner string) { r.zone.remove(owner) }

// SetISPServers sets the fallback upstreams from the WAN lease.
func (r *Resolver) SetISPServers(addrs []netip.Addr) { r.fwd.setISP(addrs) }

// Answer is the whole query path without sockets: it returns the answer to
// req from client (asking over TCP or not), or nil to stay silent.
func (r *Resolver) Answer(req *dns.Msg, client netip.Addr, iface string, tcp bool) *dns.Msg {
	return r.answer(req, client, iface, Route{}, tcp)
}

// answer is Answer with the route the question's mark said (hint).
func (r *Resolver) answer(req *dns.Msg, client netip.Addr, iface string, hint Route, tcp bool) *dns.Msg {
	if resp, done := r.answerFast(req, client, iface, hint, tcp); done {
		return resp
	}
	return r.answerSlow(req, client, iface, hint, tcp)
}

// answerFast answers what needs no waiting: refusals, errors, local names
// and the cache. done is false when the question must go upstream or to
// mDNS (answerSlow).
func (r *Resolver) answerFast(req *dns.Msg, client netip.Addr, iface string, hint Route, tcp bool) (*dns.Msg, bool) {
	r.st.queries.Add(1)
	r.st.tick()
	if req.Response {
		r.st.dropped.Add(1)
		return nil, true // never answer an answer
	}
	if !r.allowed(client) {
		r.st.refused.Add(1)
		if len(req.Question) == 1 {
			r.logQuery(client, req.Question[0], dns.RcodeRefused, howRefused, "")
		}
		return reply(req, dns.RcodeRefused), true
	}
	r.blocks.of(client).queries.Add(1)
	if req.Opcode != dns.OpcodeQuery {
		return reply(req, dns.RcodeNotImplemented), true
	}
	if len(req.Question) != 1 {
		r.st.formerr.Add(1)
		return reply(req, dns.RcodeFormatError), true
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return reply(req, dns.RcodeNotImplemented), true
	}
	if _, ok := dns.IsDomainName(q.Name); !ok {
		r.st.formerr.Add(1)
		return reply(req, dns.RcodeFormatError), true
	}
	resp, how, list := r.resolveFast(req, q, client, iface, hint)
	if resp == nil {
		return nil, false
	}
	r.logQuery(client, q, resp.Rcode, how, list)
	return r.finish(req, resp, tcp), true
}

// answerSlow answers a question that must wait for upstream or mDNS.
func (r *Resolver) answerSlow(req *dns.Msg, client netip.Addr, iface string, hint Route, tcp bool) *dns.Msg {
	q := req.Question[0]
	var resp *dns.Msg
	how := howMDNS
	if isLocalName(q.Name) {
		resp = r.viaMDNS(q)
	} else {
		how = howUpstream
		resp = r.forward(req, q, client, iface, hint)
		if m, ok := r.blockAnswer(q, resp, client, iface); ok {
			return r.finish(req, m, tcp)
		}
	}
	r.logQuery(client, q, resp.Rcode, how, "")
	return r.finish(req, resp, tcp)
}

func (r *Resolver) finish(req, resp *dns.Msg, tcp bool) *dns.Msg {
	rcode := resp.Rcode
	ad := resp.AuthenticatedData
	resp.SetReply(req) // which resets the rcode
	resp.Rcode = rcode
	resp.RecursionAvailable = true
	// RFC 6840 §5.8: AD only for a client that asked with DO or AD.
	resp.AuthenticatedData = ad && (req.AuthenticatedData || doBit(req))
	return fit(req, resp, tcp)
}

func isLocalName(name string) bool {
	name = strings.ToLower(name)
	return name == "local." || strings.HasSuffix(name, ".local.")
}

// resolveFast answers from the local zone or the cache, or returns nil
// when the question must be asked (mDNS or upstream); how and list say
// how it answered, for the query log.
func (r *Resolver) resolveFast(req *dns.Msg, q dns.Question, client netip.Addr, iface string, hint Route) (m *dns.Msg, how, list string) {
	name := strings.ToLower(q.Name)
	if m, ok := r.zone.answer(q); ok {
		r.st.local.Add(1)
		return m, howLocal, ""
	}
	if isLocalName(name) {
		// RFC 6762: .local is never sent to unicast DNS servers.
		if r.mdns == nil {
			return nxdomain(), howLocal, ""
		}
		if m := r.cache.get(keyOf(routeMDNS, q, false), time.Now()); m != nil {
			r.st.hits.Add(1)
			return m, howCache, ""
		}
		return nil, "", ""
	}
	if privateReverse(name) {
		return nxdomain(), howLocal, "" // RFC 6303: private reverse zones stay home
	}
	if b, ok := r.block(name, client, iface); ok {
		r.st.blocked.Add(1)
		return blockedAnswer(q, b), howBlocked, b.List
	}
	key := r.key(req, q, client, iface, hint)
	var gen uint64
	if r.cfg.HookGeneration != nil {
		gen = r.cfg.HookGeneration()
	}
	if m, stale := r.cache.getGen(key, time.Now(), gen); m != nil {
		r.st.hits.Add(1)
		if stale && r.cfg.OnAnswer != nil {
			r.hook(key.route.Path, q, m)
		}
		if b, ok := r.blockChain(m, client, iface); ok {
			r.st.blocked.Add(1)
			return blockedAnswer(q, b), howBlocked, b.List
		}
		return m, howCache, ""
	}
	return nil, "", ""
}

// hook tells OnAnswer of an answer's names and addresses.
func (r *Resolver) hook(path via.Path, q dns.Question, m *dns.Msg) {
	names, addrs, ttl := chain(q.Name, m)
	if len(addrs) > 0 {
		r.cfg.OnAnswer(path, names, addrs, ttl)
	}
}

// route is the route a client's questions go upstream by: hint, the one
// its packet was marked with (a local policy's process), or its traffic's.
func (r *Resolver) route(client netip.Addr, iface string, hint Route) Route {
	if hint.Path != 0 {
		return hint
	}
	if r.cfg.RouteOf != nil {
		return r.cfg.RouteOf(client, iface)
	}
	return Route{Path: via.WAN}
}

func (r *Resolver) key(req *dns.Msg, q dns.Question, client netip.Addr, iface string, hint Route) cacheKey {
	k := keyOf(r.route(client, iface, hint), q, doBit(req))
	// A validating resolver answers CD questions with what it would
	// refuse others (bogus data), so they are cached apart.
	k.cd = r.cfg.Validator != nil && req.CheckingDisabled
	return k
}

func doBit(m *dns.Msg) bool {
	opt := m.IsEdns0()
	return opt != nil && opt.Do()
}

// forward asks upstream by the client's path, caches and returns the answer.
func (r *Resolver) forward(req *dns.Msg, q dns.Question, client netip.Addr, iface string, hint Route) *dns.Msg {
	key := r.key(req, q, client, iface, hint)
	if r.cfg.Validator != nil {
		return r.forwardValidated(key, q)
	}
	now := time.Now()
	up := upstreamQuery(q, req.CheckingDisabled, key.do)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp := r.exchange(ctx, up, key.route)
	if resp.Rcode == dns.RcodeServerFailure {
		return resp
	}
	return r.accept(key, q, resp, now)
}

// exchange asks the route's upstreams by its path and counts the outcome:
// their answer, or SERVFAIL when none answered.
func (r *Resolver) exchange(ctx context.Context, up *dns.Msg, rt Route) *dns.Msg {
	resp, err := r.forwarder(rt.View).exchange(ctx, up, rt.Path)
	if err != nil {
		r.st.servfail.Add(1)
		r.cfg.Log.Debug("upstream failed", "q", up.Question[0].Name, "err", err)
		return &dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeServerFailure}}
	}
	r.st.forwarded.Add(1)
	return resp
}

// upstreamQuery is the question the resolver asks upstream for q: with RD,
// CD and DO as given, and a 1232-byte EDNS buffer (DNS flag day 2020).
func upstreamQuery(q dns.Question, cd, do bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(q.Name, q.Qtype)
	m.Question[0].Qclass = q.Qclass
	m.RecursionDesired = true
	m.CheckingDisabled = cd
	m.SetEdns0(1232, do)
	return m
}

func (r *Resolver) allowed(a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	for _, p := range r.cfg.Clients {
		if p.Contains(a) {
			return true
		}
	}
	if extra := r.extraClients.Load(); extra != nil {
		for _, p := range *extra {
			if p.Contains(a) {
				return true
			}
		}
	}
	return false
}

// SetExtraClients allows networks besides Clients to ask: the LANs'
// subnets of the WAN's delegated prefix, which come and go with it.
func (r *Resolver) SetExtraClients(ps []netip.Prefix) { r.extraClients.Store(&ps) }

func reply(req *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true
	return m
}

func nxdomain() *dns.Msg { return &dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeNameError}} }

// stripOPT removes the upstream's EDNS record, which is not the client's
// (fit adds the client's own), and any OPT a broken or hostile upstream put
// in another section, where it has no meaning (RFC 6891 §6.1.1) but would
// be served on as a record.
func stripOPT(m *dns.Msg) {
	isOPT := func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeOPT }
	m.Answer = slices.DeleteFunc(m.Answer, isOPT)
	m.Ns = slices.DeleteFunc(m.Ns, isOPT)
	m.Extra = slices.DeleteFunc(m.Extra, isOPT)
}

// fit fits the answer to the client: its EDNS0 buffer size over UDP (or
// 512 bytes without EDNS0), truncating with TC set when too big.
func fit(req, resp *dns.Msg, tcp bool) *dns.Msg {
	size := dns.MinMsgSize
	// The answer's own options (an Extended DNS Error) go in the client's
	// OPT record, if it sent one.
	var options []dns.EDNS0
	if o := resp.IsEdns0(); o != nil {
		options = o.Option
		stripOPT(resp)
	}
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(max(opt.UDPSize(), dns.MinMsgSize), opt.Do())
		resp.IsEdns0().Option = options
		size = int(max(opt.UDPSize(), dns.MinMsgSize))
	}
	if tcp {
		size = dns.MaxMsgSize
	}
	resp.Truncate(size)
	return resp
}
