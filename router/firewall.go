package router

import (
	"context"
	"errors"
	"github.com/routerd/routerd/router/portmap"
	"log/slog"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/hw"
	"github.com/routerd/routerd/internal/cgroup"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/internal/via"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/rules"
)

// firewallComp applies the nftables rulesets of the three namespaces and
// keeps them applied: a re-adopted WAN NIC gets its ingress hardening back
// and its place in the flowtable, so does a tunnel brought up after the
// firewall, a new WAN address updates NAT loopback. It owns the conntrack
// capacity, which every forwarded connection takes a slot of.
type firewallComp struct {
	withHealth
	cfg  *config.Config
	nics *hw.Manager
	log  *slog.Logger

	main  *rules.Main
	wan   *rules.WAN
	vpn   *rules.VPN
	facts facts

	applying   sync.Mutex // one apply at a time: NIC events and the delegated prefix both apply
	mu         sync.Mutex
	generation int
	applied    time.Time
	wanAddrs   []netip.Addr
	run        lifecycle.Group
	ct         *conntrackWatch
	offloadOff string // why flow offload is off ("" when it is on)
	// fullSets are the dynamic sets nearly full at the last look (watchSets),
	// for status: reading them is not work for every status request.
	fullSets []string
	// leases are the LAN's leases now (set once the LAN component is
	// made); hosts the addresses of the hosts rules name by MAC, as
	// last put in their sets.
	leases func() []dhcp.Lease
	hosts  map[string][]netip.Addr
}

// newFirewallComp: pubs is cfg.Publish with the containers' addresses.
func newFirewallComp(cfg *config.Config, pubs []config.Publish, nics *hw.Manager, log *slog.Logger) *firewallComp {
	c := &firewallComp{cfg: cfg, nics: nics, log: log}
	c.facts = facts{groups: lookupCgroups(cfg), pubs: pubs}
	c.main, c.wan, c.vpn = firewallSpecs(cfg, c.facts)
	capacity := cfg.Firewall.MaxConnections
	if capacity == 0 {
		mem, err := memTotal()
		if err != nil {
			log.Warn("machine memory unknown: conntrack capacity from the smallest default", "err", err)
		}
		capacity = config.MaxConnectionsFor(mem)
	}
	c.ct = &conntrackWatch{capacity: capacity, key: "firewall.max_connections", log: log,
		ns: map[string]string{"main": "", "wan": cfg.Netns.WAN, "vpn": cfg.Netns.VPN}}
	return c
}

// firewallSpecs translates the config and what the firewall learnt (the
// delegation, the local policies' cgroups, the published services with
// containers' addresses, the pinholes' addresses) into the three rulesets.
func firewallSpecs(cfg *config.Config, f facts) (*rules.Main, *rules.WAN, *rules.VPN) {
	d, groups, pubs := f.deleg, f.groups, f.pubs
	lan4, ifaces := cfg.LANNets.V4, cfg.LANNets.Ifaces
	lan6 := slices.Clone(cfg.LANNets.V6)
	var sources []rules.LANSource
	var segments []rules.Segment
	for _, l := range cfg.LAN {
		src := append(slices.Clone(l.Addresses), d.byLAN[l.Name]...)
		for _, r := range cfg.Routes {
			if r.LAN == l.Name {
				src = append(src, r.To) // the hosts behind its gateway
			}
		}
		sources = append(sources, rules.LANSource{Iface: l.Name, Prefixes: src})
		lan6 = append(lan6, d.byLAN[l.Name]...)
		segments = append(segments, rules.Segment{Iface: l.Name, Access: string(l.Access)})
	}
	var fwds []rules.Forward
	for _, f := range cfg.Firewall.PortForwards {
		fwds = append(fwds, rules.Forward{Proto: f.Proto, Port: f.Port, To: f.To})
	}
	m := &rules.Main{
		LANIfaces: ifaces, LAN4: lan4, LAN6: lan6, Transit: cfg.Netns.Bridge,
		Mask: via.Mask, MarkWAN: via.WAN.Mark(), MarkVPN: via.VPN.Mark(), Default: cfg.Routing.Default.Mark(),
		LANInput: ports(cfg.Firewall.LANInput), Forwards: fwds, Sources: sources,
		Publish: publish(pubs, cfg.Netns), VPNMAC: TransitMACVPN,
		Segments: segments, Rules: userRules(cfg.Firewall.Rules),
	}
	if a := cfg.Admin; a != nil {
		m.Admin, m.AdminPort = a.Listen, a.Port
	}
	if t := cfg.Time; t != nil && t.Serve {
		m.LANServices = append(m.LANServices, rules.Port{Proto: "udp", From: 123, To: 123})
	}
	if pm := cfg.PortMap; pm != nil {
		if pm.NATPMP || pm.PCP {
			m.LANServices = append(m.LANServices, rules.Port{Proto: "udp", From: 5351, To: 5351})
		}
		if pm.UPnP { // SSDP, and the description and control over HTTP
			m.LANServices = append(m.LANServices, rules.Port{Proto: "udp", From: 1900, To: 1900},
				rules.Port{Proto: "tcp", From: portmap.UPnPPort, To: portmap.UPnPPort})
		}
	}
	// The metrics endpoint, when it listens beyond loopback, is for the LAN.
	if ap, err := netip.ParseAddrPort(cfg.Status.Metrics); err == nil && !ap.Addr().IsLoopback() {
		m.LANInput = append(m.LANInput, rules.Port{Proto: "tcp", From: ap.Port(), To: ap.Port()})
	}
	for _, p := range cfg.Routing.Policies {
		if p.Local() {
			m.Local = append(m.Local, localPolicy(cfg, p, groups))
			continue
		}
		rp := rules.Policy{Name: p.Name, MACs: p.SourceMACs, Ifaces: p.SourceIfaces, Ports: ports(p.DestinationPorts), Mark: p.Via.Mark()}
		rp.Src4, rp.Src6 = byFamily(p.SourceAddrs, is4)
		rp.Dst4, rp.Dst6 = byFamily(p.Destinations, is4)
		m.Policies = append(m.Policies, rp)
	}
	var offMain, offWAN, offVPN rules.Offload
	if cfg.Firewall.FlowOffload {
		// The transit bridge's ports too: the kernel resolves a flow's
		// route through the bridge to the port, and then forwards straight
		// to and from the port, past the bridge, only if the port is in
		// the flowtable.
		offMain = rules.Offload{Devices: append(slices.Clone(ifaces), cfg.Netns.Bridge, config.TransitWANLink, config.TransitVPNLink)}
		for _, l := range cfg.LAN {
			for _, p := range l.Ports { // a LAN bridge's, likewise
				offMain.Devices = append(offMain.Devices, p.Name)
			}
		}
		offWAN = rules.Offload{Devices: append(uplinkIfaces(cfg), config.TransitPeerLink)}
		offVPN = rules.Offload{Devices: []string{config.TransitPeerLink}}
		if cfg.VPN != nil {
			offVPN.Devices = append(offVPN.Devices, cfg.VPN.Interface)
		}
	}
	m.Offload = offMain
	w := &rules.WAN{
		Uplinks: uplinkIfaces(cfg), Transit: config.TransitPeerLink, LAN4: lan4, LAN6: append(slices.Clone(lan6), d.prefixes...),
		Own4:   []netip.Prefix{cfg.Netns.Transit4.Masked(), netip.MustParsePrefix("127.0.0.0/8")},
		Own6:   []netip.Prefix{cfg.Netns.Transit6.Masked(), netip.MustParsePrefix("::1/128")},
		Harden: cfg.Firewall.Harden, ICMPRate: cfg.Firewall.ICMPRate.N, ICMPUnit: cfg.Firewall.ICMPRate.Unit,
		Forwards: fwds, Offload: offWAN,
	}
	if cfg.PortMap != nil {
		m.PortMap, m.PortMaps = true, f.portmaps
		w.PortMap, w.PortMaps = true, f.portmaps
	}
	for _, p := range cfg.Firewall.Pinholes {
		ph := rules.Pinhole{Name: p.Name, Ports: ports(p.Ports), Addrs: f.pins[p.Name]}
		m.Pinholes = append(m.Pinholes, ph)
		w.Pinholes = append(w.Pinholes, ph)
	}
	var v *rules.VPN
	if cfg.Admin != nil {
		w.ScanBan = cfg.Admin.BanTime
		w.Exempt = banExempt(cfg)
	}
	if cfg.Remote != nil {
		w.RemotePort = uint16(cfg.Remote.ListenPort)
		if remoteViaRelay(cfg) {
			w.RemoteTransit, w.MarkVPN = true, via.VPN.Mark()
		}
	}
	if cfg.VPN != nil {
		w.WGPort = uint16(cfg.VPN.ListenPort)
		mss4, mss6 := TunnelMSS(cfg)
		v = &rules.VPN{Iface: cfg.VPN.Interface, Transit: config.TransitPeerLink, MSS4: mss4, MSS6: mss6, Publish: m.Publish, Offload: offVPN}
	} else {
		// No tunnel: the vpn namespace still exists and must pass nothing.
		v = &rules.VPN{Iface: "", Transit: config.TransitPeerLink, MSS4: 1460, MSS6: 1440}
	}
	return m, w, v
}

// userRules translates [[firewall.rule]].
func userRules(rs []config.Rule) []rules.Rule {
	side := func(m config.Match, dst bool) rules.RuleMatch {
		rm := rules.RuleMatch{Ifaces: m.LANs, MACs: m.MACs, WAN: m.WAN}
		if dst {
			rm.MACs, rm.Hosts = nil, len(m.MACs) > 0
		}
		rm.Net4, rm.Net6 = byFamily(m.Prefixes, is4)
		return rm
	}
	var out []rules.Rule
	for _, r := range rs {
		out = append(out, rules.Rule{Name: r.Name, From: side(r.From, false), To: side(r.To, true), Ports: ports(r.Ports), Action: r.Action})
	}
	return out
}

// localPolicy is a policy for this host's own processes. When it sends
// them through a tunnel that has no IPv6, their IPv6 is refused rather than
// routed by another path.
func localPolicy(cfg *config.Config, p config.Policy, groups map[string]cgroup.Group) rules.LocalPolicy {
	lp := rules.LocalPolicy{Name: p.Name, UIDs: p.UIDs, Ports: ports(p.DestinationPorts), Mark: p.Mark()}
	for _, path := range p.Cgroups {
		if g, ok := groups[path]; ok {
			lp.Cgroups = append(lp.Cgroups, rules.Cgroup{Path: path, Level: g.Level, ID: g.ID})
		}
	}
	lp.Dst4, lp.Dst6 = byFamily(p.Destinations, is4)
	if p.Via == via.VPN && cfg.VPN != nil {
		lp.Refuse6 = true
		for _, a := range cfg.VPN.Addresses {
			if a.Addr().Is6() {
				lp.Refuse6 = false
			}
		}
	}
	return lp
}

// byFamily splits addresses or prefixes into IPv4 and IPv6.
func byFamily[T any](xs []T, is4 func(T) bool) (v4, v6 []T) {
	for _, x := range xs {
		if is4(x) {
			v4 = append(v4, x)
		} else {
			v6 = append(v6, x)
		}
	}
	return v4, v6
}

func is4(p netip.Prefix) bool { return p.Addr().Is4() }

// publish translates [[publish]]; a service on this host ("host:PORT") is
// reached at the main namespace's transit addresses.
func publish(ps []config.Publish, n config.Netns) []rules.Publish {
	var out []rules.Publish
	for _, p := range ps {
		rp := rules.Publish{Name: p.Name, Protos: p.Protos, Port: p.Port, To4: p.To, To6: p.To6, Host: p.HostPort != 0 && !p.Remote}
		if p.Remote {
			// [remote]'s socket, in the wan namespace: reached across
			// the transit bridge at wan's own transit address.
			rp.To4 = netip.AddrPortFrom(n.WANAddr4().Addr(), p.HostPort)
			rp.To6 = netip.AddrPortFrom(n.WANAddr6().Addr(), p.HostPort)
		}
		if rp.Host {
			rp.To4 = netip.AddrPortFrom(n.MainAddr4().Addr(), p.HostPort)
			rp.To6 = netip.AddrPortFrom(n.MainAddr6().Addr(), p.HostPort)
		}
		out = append(out, rp)
	}
	return out
}

func ports(prs []config.PortRange) []rules.Port {
	var out []rules.Port
	for _, p := range prs {
		out = append(out, rules.Port{Proto: p.Proto, From: p.From, To: p.To})
	}
	return out
}

// WireGuard's overhead, by the numbers: an outer IPv4 (20) or IPv6 (40)
// header, UDP (8) and WireGuard's own 32 (type, index, counter, tag).
const (
	ipv4Header      = 20
	ipv6Header      = 40
	udpHeader       = 8
	wireguardHeader = 32
	tcpHeader       = 20
)

// TunnelMSS returns the TCP MSS for IPv4 and IPv6 connections through the
// tunnel. The inner MTU is the smaller of the tunnel's MTU and what the WAN
// path leaves after the outer headers; the MSS is that less the inner IP
// and TCP headers. An endpoint given by name may resolve to IPv6, so it is
// assumed to (the conservative choice). With the defaults (WAN 1500, IPv4
// endpoint, vpn.mtu 1420): 1420 - 20 - 20 = 1380 and 1420 - 40 - 20 = 1360.
func TunnelMSS(cfg *config.Config) (mss4, mss6 uint16) {
	path := cfg.WAN.MTU
	if path == 0 {
		path = 1500
	}
	outer := ipv4Header
	for _, p := range cfg.VPN.Peers {
		if p.Endpoint.OuterIPv6() {
			outer = ipv6Header
		}
	}
	inner := min(cfg.VPN.MTU, path-outer-udpHeader-wireguardHeader)
	return uint16(inner - ipv4Header - tcpHeader), uint16(inner - ipv6Header - tcpHeader)
}

func (c *firewallComp) Name() string { return "firewall" }

func (c *firewallComp) Start(ctx context.Context) error {
	switch err := rules.FlowOffloadSupported(""); {
	case !c.cfg.Firewall.FlowOffload:
		c.offloadOff = "firewall.flow_offload is false"
	case err != nil:
		c.offloadOff = err.Error()
		c.log.Info("flow offload off", "reason", err)
	}
	c.ct.offload = c.offloadOff == ""
	c.ct.provision()
	rules.SetDropLog(c.cfg.Firewall.Log == "rate")
	events := c.nics.Subscribe()
	err := c.apply()
	c.run.Start(ctx)
	c.run.Every(10*time.Second, c.ct.watch)
	c.run.Every(10*time.Second, c.watchSets)
	c.run.Go(func(ctx context.Context) { reapplyOnAdoption(ctx, events, c.apply, c.health) })
	if hasCgroups(c.cfg) {
		c.run.Every(3*time.Second, c.watchCgroups)
	}
	if len(hostRules(c.cfg)) > 0 || len(c.cfg.Firewall.Pinholes) > 0 {
		c.syncHosts(ctx)
		c.run.Every(5*time.Second, c.syncHosts)
	}
	return err
}

// apply replaces every ruleset; each is one transaction of its own.
func (c *firewallComp) apply() error {
	c.applying.Lock()
	defer c.applying.Unlock()
	c.mu.Lock()
	m, w, v := c.main, c.wan, c.vpn
	if c.hosts != nil {
		withH := *m
		withH.Rules = withHosts(m.Rules, c.hosts)
		m = &withH
	}
	c.mu.Unlock()
	var errs []error
	if err := rules.ApplyMain("", m); err != nil {
		errs = append(errs, err)
	}
	if err := rules.ApplyWAN(c.cfg.Netns.WAN, w); err != nil {
		errs = append(errs, err)
	}
	if err := rules.ApplyVPN(c.cfg.Netns.VPN, v); err != nil {
		errs = append(errs, err)
	}
	var li *rules.LANIngress
	if c.cfg.Firewall.HardenLAN {
		li = &rules.LANIngress{}
		for _, l := range c.cfg.LAN {
			if !l.Remote { // a tunnel: WireGuard's own checks, and a netdev hook it may not take
				li.Ifaces = append(li.Ifaces, l.Name)
			}
		}
	}
	if err := rules.ApplyLANIngress("", li); err != nil {
		errs = append(errs, err)
	}
	c.mu.Lock()
	c.generation++
	c.applied = time.Now()
	addrs := c.wanAddrs
	c.mu.Unlock()
	if addrs != nil {
		if err := rules.SetWANAddrs("", addrs); err != nil {
			errs = append(errs, err)
		}
	}
	c.log.Info("firewall applied", "generation", c.generation, "err", errors.Join(errs...))
	return errors.Join(errs...)
}

// tunnelUp applies the rulesets again when the tunnel's interface was made
// after them: the vpn namespace's flowtable spans it only once it is there.
func (c *firewallComp) tunnelUp() {
	if c.offloadOff != "" {
		return
	}
	devs, err := rules.FlowtableDevices(c.cfg.Netns.VPN)
	if err == nil && slices.Contains(devs, c.cfg.VPN.Interface) {
		return
	}
	if err := c.apply(); err != nil {
		c.health.Failed(err)
	}
}

// uplinkIfaces are the interfaces the uplinks' traffic leaves by.
func uplinkIfaces(cfg *config.Config) []string {
	var out []string
	for _, w := range cfg.WAN.Uplinks() {
		out = append(out, w.Iface())
	}
	return out
}

// uplinkIface applies the rulesets again for an uplink's new interface
// (each PPPoE session makes its own): the WAN ingress chains and the
// flowtable are bound to it.
func (c *firewallComp) uplinkIface() {
	if err := c.apply(); err != nil {
		c.health.Failed(err)
	}
}

// wanLease updates the NAT loopback addresses when the WAN lease changes.
func (c *firewallComp) wanLease(l *dhcp.WANLease) {
	var addrs []netip.Addr
	if l != nil {
		addrs = []netip.Addr{l.Address.Addr()}
	}
	c.mu.Lock()
	c.wanAddrs = addrs
	c.mu.Unlock()
	if err := rules.SetWANAddrs("", addrs); err != nil {
		c.log.Warn("update NAT loopback addresses", "err", err)
	}
}

func (c *firewallComp) Stop(ctx context.Context) error { return c.run.Stop(ctx) }

// firewallTable is one of the tables the firewall owns, or shows.
type firewallTable struct {
	label, ns string
	fam       nftables.TableFamily
	table     string
}

// tables are the firewall's tables; with lists, also the blocklists' (which
// the blocklist component owns and tears down, and status shows here).
func (c *firewallComp) tables(lists bool) []firewallTable {
	ts := []firewallTable{
		{"main", "", nftables.TableFamilyINet, rules.Table},
		{"wan", c.cfg.Netns.WAN, nftables.TableFamilyINet, rules.Table},
		{"wan-ingress", c.cfg.Netns.WAN, nftables.TableFamilyNetdev, rules.IngressTable},
		{"vpn", c.cfg.Netns.VPN, nftables.TableFamilyINet, rules.Table},
		{"lan-ingress", "", nftables.TableFamilyNetdev, rules.LANIngressTable},
	}
	if lists {
		ts = append(ts, firewallTable{"lists", "", nftables.TableFamilyINet, rules.ListsTable})
	}
	return ts
}

func (c *firewallComp) Teardown(ctx context.Context) error {
	var errs []error
	for _, t := range c.tables(false) {
		errs = append(errs, rules.Remove(t.ns, t.fam, t.table))
	}
	return errors.Join(errs...)
}

// banExempt are the configured servers the household depends on, where
// given as addresses: a port scan forged in their name must not ban them.
// Those given as names are learnt by the wan ruleset as the router talks
// to them (its peers).
func banExempt(cfg *config.Config) []netip.Prefix {
	var out []netip.Prefix
	add := func(a netip.Addr) {
		if a.IsValid() {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	host := func(hostport string) netip.Addr {
		if ap, err := netip.ParseAddrPort(hostport); err == nil {
			return ap.Addr()
		}
		a, _ := netip.ParseAddr(strings.Trim(hostport, "[]"))
		return a
	}
	for _, u := range cfg.DNS.Upstream {
		add(u.Addr.Addr())
	}
	if cfg.VPN != nil {
		for _, p := range cfg.VPN.Peers {
			add(p.Endpoint.Addr)
		}
	}
	if cfg.Time != nil {
		for _, s := range cfg.Time.Servers {
			add(host(s))
		}
	}
	for _, b := range cfg.Blocklists {
		if u, err := url.Parse(b.URL); err == nil && b.URL != "" {
			add(host(u.Host))
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return slices.Compact(out)
}
