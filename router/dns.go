package router

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/dns"
	"github.com/routerd/routerd/dns/dnssec"
	"github.com/routerd/routerd/internal/via"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
)

// dnsComp runs the LAN's resolver.
type dnsComp struct {
	cfg *config.Config
	r   *dns.Resolver
	log *slog.Logger
	// macOf finds a client's MAC from its lease, for MAC-based policies.
	macOf func(netip.Addr) string
	// leases are the LAN's leases now, to name clients in dns top.
	leases func() []dhcp.Lease

	mu sync.Mutex
	// global maps a LAN to its subnets of the delegated prefix: a DHCPv6
	// lease's name also answers with its twin there.
	global func(iface string) []netip.Prefix

	routesMu sync.RWMutex
	routes   map[routeKey]dns.Route // routeOf's answers so far
}

// newDNSComp builds the resolver. synced, if not nil, is closed once the
// clock is set: DNSSEC validation checks signatures' dates from then on.
func newDNSComp(cfg *config.Config, macOf func(netip.Addr) string,
	onAnswer func(path via.Path, names []string, addrs []netip.Addr, ttl time.Duration), hookGen func() uint64,
	synced <-chan struct{}, blocks *dns.Blocklists, log *slog.Logger) *dnsComp {
	c := &dnsComp{cfg: cfg, macOf: macOf, log: log}
	dc, names := dnsConfig(cfg)
	var validator *dnssec.Validator
	if cfg.DNS.DNSSEC {
		anchors := cfg.DNS.TrustAnchors
		if anchors == nil {
			anchors = dnssec.RootAnchors()
		}
		v, err := dnssec.New(anchors)
		if err != nil {
			log.Error("DNSSEC validation off", "err", err) // Load checked the anchors: not reached
		}
		if v != nil && synced != nil {
			// Until the clock is set, signatures' dates are not checked:
			// the time servers' names must resolve.
			v.TrustClock(func() bool {
				select {
				case <-synced:
					return true
				default:
					return false
				}
			})
		}
		validator = v
	}
	dc.RouteOf, dc.OnAnswer, dc.HookGeneration = c.routeOf, onAnswer, hookGen
	dc.Validator, dc.Blocker, dc.Log = validator, blocks, log
	c.r = dns.New(dc)
	for _, n := range names {
		c.r.SetName(n.key, n.name, n.addr)
	}
	return c
}

// routeOfMark is the route a local policy's mark says (Policy.Mark).
func routeOfMark(mark uint32) dns.Route {
	return dns.Route{Path: via.FromMark(mark), View: uint8(mark >> config.ViewShift)}
}

// routeOf is the path a client's traffic takes to the internet, by the
// firewall's own decision, and its policy's own DNS servers if it has
// some; its destination is unknown, so policies about destinations or
// ports (other traffic than DNS) do not match. The router itself
// (loopback) takes routing.router.
func (c *dnsComp) routeOf(client netip.Addr, iface string) dns.Route {
	// The router's own processes ask from loopback, or from the LAN
	// address they asked (the host's processes when routerd runs on a
	// host); a local policy's process is told apart by its mark.
	if client.IsLoopback() || slices.Contains(c.cfg.LANNets.RouterAddr, client) {
		return dns.Route{Path: c.cfg.Routing.Router}
	}
	// Asked for every question, cache hits included: remembered per
	// client until a lease changes which MAC an address has.
	k := routeKey{client, iface}
	c.routesMu.RLock()
	rt, ok := c.routes[k]
	c.routesMu.RUnlock()
	if ok {
		return rt
	}
	f := config.Flow{Src: client, Iface: iface}
	if c.macOf != nil {
		if mac, err := net.ParseMAC(c.macOf(client)); err == nil {
			f.MAC = mac
		}
	}
	rt = dns.Route{Path: c.cfg.Routing.Default}
	if p := c.cfg.Routing.PolicyOf(f); p != nil {
		rt = dns.Route{Path: p.Via, View: p.View}
	}
	c.routesMu.Lock()
	if c.routes == nil || len(c.routes) > 4096 {
		c.routes = map[routeKey]dns.Route{}
	}
	c.routes[k] = rt
	c.routesMu.Unlock()
	return rt
}

type routeKey struct {
	client netip.Addr
	iface  string
}

// forgetRoutes drops the remembered routes: a lease moved an address.
func (c *dnsComp) forgetRoutes() {
	c.routesMu.Lock()
	c.routes = nil
	c.routesMu.Unlock()
}

// lease keeps lease hostnames in the zone as leases come and go.
func (c *dnsComp) lease(e dhcp.Event) {
	c.forgetRoutes()
	owner := e.Lease.Key()
	if e.Removed || e.Lease.Hostname == "" {
		c.r.RemoveName(dns.ClaimOwner(owner))
		return
	}
	addrs := []netip.Addr{e.Lease.Addr}
	c.mu.Lock()
	global := c.global
	c.mu.Unlock()
	if global != nil && e.Lease.Addr.Is6() {
		for _, p := range global(e.Lease.Iface) {
			addrs = append(addrs, dhcp.InPrefix(p, e.Lease.Addr))
		}
	}
	if err := c.r.ClaimName(owner, e.Lease.Hostname, addrs...); err != nil {
		c.log.Info("a client's hostname not published", "client", owner, "addr", e.Lease.Addr, "reason", err)
	}
}

// setGlobal follows the delegated prefix: its LAN subnets may ask, the
// router answers with its addresses there too, and each lease's name with
// its twin in its LAN's subnet.
func (c *dnsComp) setGlobal(clients []netip.Prefix, routerAddrs []netip.Addr, global func(string) []netip.Prefix, leases []dhcp.Lease) {
	c.r.SetExtraClients(clients)
	if c.cfg.Hostname != "" {
		c.r.SetName("router", c.cfg.Hostname, append(slices.Clone(c.cfg.LANNets.RouterAddr), routerAddrs...)...)
	}
	c.mu.Lock()
	c.global = global
	c.mu.Unlock()
	for _, l := range leases {
		c.lease(dhcp.Event{Lease: l})
	}
}

func (c *dnsComp) wanLease(l *dhcp.WANLease) {
	if l == nil {
		c.r.SetISPServers(nil)
		return
	}
	c.r.SetISPServers(l.DNS)
}

func (c *dnsComp) Name() string                    { return "dns" }
func (c *dnsComp) Start(ctx context.Context) error { return c.r.Start(ctx) }
func (c *dnsComp) Stop(ctx context.Context) error  { return c.r.Stop(ctx) }

func (c *dnsComp) fillStatus(st *status.Status) {
	s := c.r.Status()
	st.DNS = &s
}
