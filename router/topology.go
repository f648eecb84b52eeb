package router

import (
	"net"
	"net/netip"
	"slices"

	"github.com/routerd/routerd/hw"
	"github.com/routerd/routerd/internal/via"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/config"
	"golang.org/x/sys/unix"
)

// Packet marks and routing tables. prerouting in the main namespace marks
// each new LAN connection with its path and saves the mark in conntrack;
// these rules send marked packets to the path's table.
const (
	TableWAN = 101 // default via the wan namespace's transit address
	TableVPN = 102 // default via the vpn namespace's transit address

	RulePrioWAN = 1001
	RulePrioVPN = 1002

	// Metric of the kill switch in the vpn namespace: an unreachable
	// default that takes over whenever the tunnel's own default is gone.
	killSwitchMetric = 4096
)

func sysctl(ns, key, value string) netns.Sysctl { return netns.Sysctl{NS: ns, Key: key, Value: value} }

// forwarding returns the sysctls that make a namespace a router with strict
// reverse-path filtering. src_valid_mark makes the filter look the source up
// with the packet's mark, so fwmark-routed replies pass it.
func forwarding(ns string) []netns.Sysctl {
	return []netns.Sysctl{
		sysctl(ns, "net/ipv4/ip_forward", "1"),
		sysctl(ns, "net/ipv6/conf/all/forwarding", "1"),
		sysctl(ns, "net/ipv4/conf/all/rp_filter", "1"),
		sysctl(ns, "net/ipv4/conf/default/rp_filter", "1"),
		sysctl(ns, "net/ipv4/conf/all/src_valid_mark", "1"),
	}
}

// transitLink returns the sysctls of a transit link: no DAD (the addresses
// are routerd's own, and DAD would delay IPv6 at every start), no RAs.
func transitLink(ns, link string) []netns.Sysctl {
	return []netns.Sysctl{
		sysctl(ns, "net/ipv6/conf/"+link+"/accept_dad", "0"),
		sysctl(ns, "net/ipv6/conf/"+link+"/accept_ra", "0"),
		sysctl(ns, "net/ipv4/conf/"+link+"/rp_filter", "1"),
	}
}

// Transit MACs of the wan and vpn namespaces' veth ends: fixed, so that
// the main namespace's firewall knows a connection arriving through the
// tunnel (a published service) from one arriving from the WAN.
var (
	TransitMACWAN = net.HardwareAddr{0x02, 0x72, 0x64, 0, 0, 3}
	TransitMACVPN = net.HardwareAddr{0x02, 0x72, 0x64, 0, 0, 2}
)

// netnsPlan is the namespaces, the transit bridge and veths, and the
// namespace-wide sysctls.
func netnsPlan(cfg *config.Config) *netns.Plan {
	n := cfg.Netns
	p := &netns.Plan{Namespaces: []string{n.WAN, n.VPN}}
	for _, ns := range []string{"", n.WAN, n.VPN} {
		p.Sysctls = append(p.Sysctls, forwarding(ns)...)
	}
	if cfg.WAN.Backup != nil {
		// The kernel filters by the stricter of conf/all and the
		// interface's: with all at 0 each interface's decides (strict on
		// the transit, loose on the uplinks: uplinkSysctls).
		for i, s := range p.Sysctls {
			if s.NS == n.WAN && (s.Key == "net/ipv4/conf/all/rp_filter" || s.Key == "net/ipv4/conf/default/rp_filter") {
				p.Sysctls[i].Value = "0"
			}
		}
	}
	p.Sysctls = append(p.Sysctls, transitLink("", n.Bridge)...)
	// A local policy's process asking the resolver over TCP: the accepted
	// socket takes the mark its SYN got in the firewall's output chain,
	// which tells the resolver the policy (UDP carries it per packet).
	// Nothing else in main is marked on its way to the router itself but
	// published services' connections, whose replies carry that mark anyway.
	if slices.ContainsFunc(cfg.Routing.Policies, func(p config.Policy) bool { return p.Local() }) {
		p.Sysctls = append(p.Sysctls, sysctl("", "net/ipv4/tcp_fwmark_accept", "1"))
	}
	// The bridge's ports carry no addresses of their own.
	for _, port := range []string{config.TransitWANLink, config.TransitVPNLink} {
		p.Sysctls = append(p.Sysctls, sysctl("", "net/ipv6/conf/"+port+"/disable_ipv6", "1"))
	}
	p.Sysctls = append(p.Sysctls, transitLink(n.WAN, config.TransitPeerLink)...)
	p.Sysctls = append(p.Sysctls, transitLink(n.VPN, config.TransitPeerLink)...)
	p.Bridges = []netns.Bridge{{Name: n.Bridge, Addrs: []netip.Prefix{n.MainAddr4(), n.MainAddr6()}}}
	// LANs of several ports are bridges, VLANs sub-interfaces of them:
	// both made here, before hw makes the NICs their ports.
	for _, l := range cfg.LAN {
		switch {
		case l.IsBridge():
			p.Bridges = append(p.Bridges, netns.Bridge{Name: l.Name, Addrs: l.Addresses, MTU: l.MTU})
		case l.VLAN != 0:
			p.VLANs = append(p.VLANs, netns.VLAN{Name: l.Name, Parent: l.Parent, ID: l.VLAN, Addrs: l.Addresses, MTU: l.MTU})
		default:
			continue
		}
		p.Sysctls = append(p.Sysctls, lanSysctls(l.Name)...)
	}
	p.Veths = []netns.Veth{
		{Name: config.TransitWANLink, Master: n.Bridge, PeerNS: n.WAN, PeerName: config.TransitPeerLink,
			PeerAddrs: []netip.Prefix{n.WANAddr4(), n.WANAddr6()}, PeerMAC: TransitMACWAN},
		{Name: config.TransitVPNLink, Master: n.Bridge, PeerNS: n.VPN, PeerName: config.TransitPeerLink,
			PeerAddrs: []netip.Prefix{n.VPNAddr4(), n.VPNAddr6()}, PeerMAC: TransitMACVPN},
	}
	return p
}

// nicSpecs is what each NIC must look like: the WAN NIC in the wan
// namespace (its addresses are the DHCP client's), the LAN NICs in main
// with their static addresses.
func nicSpecs(cfg *config.Config) []hw.Spec {
	var specs []hw.Spec
	for i, w := range cfg.WAN.Uplinks() {
		sys := uplinkSysctls(cfg.Netns.WAN, w, w.Name, cfg.WAN.Backup != nil)
		if w.Iface() != w.Name {
			// A VLAN or PPPoE carries the addresses; the NIC carries frames.
			sys = []netns.Sysctl{sysctl(cfg.Netns.WAN, "net/ipv6/conf/"+w.Name+"/disable_ipv6", "1")}
		}
		role := "wan"
		if i > 0 {
			role = "wan-backup"
		}
		specs = append(specs, hw.Spec{Role: role, Name: w.Name, MatchMAC: w.MatchMAC, SetMAC: w.SetMAC, MTU: w.MTU,
			NS: cfg.Netns.WAN, Sysctls: sys})
	}
	for _, l := range cfg.LAN {
		switch {
		case l.MatchMAC != nil:
			specs = append(specs, hw.Spec{Role: "lan", Name: l.Name, MatchMAC: l.MatchMAC, MTU: l.MTU,
				Addrs: l.Addresses, Sysctls: lanSysctls(l.Name)})
		case l.IsBridge():
			// The bridge (the namespace plan's) carries the addresses;
			// its ports carry nothing of their own.
			for _, p := range l.Ports {
				specs = append(specs, hw.Spec{Role: "lan", Name: p.Name, MatchMAC: p.MatchMAC, MTU: l.MTU, Master: l.Name,
					Sysctls: []netns.Sysctl{sysctl("", "net/ipv6/conf/"+p.Name+"/disable_ipv6", "1")}})
			}
		}
	}
	return specs
}

// uplinkSysctls are the settings of the interface that carries an
// uplink's addresses (the NIC, its VLAN or the PPP interface). loose:
// with a backup, reverse-path filtering is loose there (the standby
// uplink's answers come in where no default route points).
func uplinkSysctls(ns string, w *config.WAN, iface string, loose bool) []netns.Sysctl {
	rp := "1"
	if loose {
		rp = "2"
	}
	sys := []netns.Sysctl{sysctl(ns, "net/ipv4/conf/"+iface+"/rp_filter", rp)}
	if w.IPv6 == "off" || w.IPv6 == "static" {
		// Static: the configured gateway is the default route, not one an
		// RA adds beside it.
		return append(sys, sysctl(ns, "net/ipv6/conf/"+iface+"/accept_ra", "0"))
	}
	// A forwarding namespace ignores RAs unless accept_ra is 2; the ISP's
	// RA gives the WAN its IPv6 default route.
	autoconf := "0"
	if w.IPv6 == "slaac" {
		autoconf = "1"
	}
	return append(sys, sysctl(ns, "net/ipv6/conf/"+iface+"/accept_ra", "2"),
		sysctl(ns, "net/ipv6/conf/"+iface+"/autoconf", autoconf))
}

// lanSysctls are the settings of a LAN's interface (a NIC, a bridge or a
// VLAN).
func lanSysctls(name string) []netns.Sysctl {
	return []netns.Sysctl{
		sysctl("", "net/ipv4/conf/"+name+"/rp_filter", "1"),
		sysctl("", "net/ipv6/conf/"+name+"/accept_ra", "0"),
		// Without it, removing a LAN's old primary address (a config
		// moved it) takes the new one, a secondary in the same subnet,
		// with it.
		sysctl("", "net/ipv4/conf/"+name+"/promote_secondaries", "1"),
	}
}

// routingPlan is the tables, rules and routes of every namespace:
//
//	main:  fwmark 1 → table 101 (default via wan's transit address),
//	       fwmark 2 → table 102 (default via vpn's), LAN and transit
//	       prefixes in both; main table default by routing.router.
//	wan:   LAN prefixes via main's transit address (the default comes from
//	       the WAN's DHCP client).
//	vpn:   LAN prefixes via main; an unreachable default under the
//	       tunnel's own: the kill switch.
func routingPlan(cfg *config.Config, pubs []config.Publish) *netns.Plan {
	n := cfg.Netns
	p := &netns.Plan{RouteNamespaces: []string{"", n.WAN, n.VPN}}
	default4 := netip.MustParsePrefix("0.0.0.0/0")
	default6 := netip.MustParsePrefix("::/0")
	for _, t := range []struct {
		via   via.Path
		table int
		prio  int
	}{{via.WAN, TableWAN, RulePrioWAN}, {via.VPN, TableVPN, RulePrioVPN}} {
		gw4, gw6 := n.Gateways(t.via)
		for _, v6 := range []bool{false, true} {
			p.Rules = append(p.Rules, netns.Rule{V6: v6, Priority: t.prio, Mark: t.via.Mark(), Mask: via.Mask, Table: t.table})
		}
		p.Routes = append(p.Routes,
			netns.Route{Table: t.table, Dst: default4, Gw: gw4, Dev: n.Bridge},
			netns.Route{Table: t.table, Dst: default6, Gw: gw6, Dev: n.Bridge},
			netns.Route{Table: t.table, Dst: n.Transit4.Masked(), Dev: n.Bridge, Src: n.MainAddr4().Addr()},
			netns.Route{Table: t.table, Dst: n.Transit6.Masked(), Dev: n.Bridge},
		)
		for _, l := range cfg.LAN {
			for _, a := range l.Addresses {
				r := netns.Route{Table: t.table, Dst: a.Masked(), Dev: l.Name}
				if a.Addr().Is4() {
					r.Src = a.Addr()
				}
				p.Routes = append(p.Routes, r)
			}
		}
	}
	gw4, gw6 := n.Gateways(cfg.Routing.Router)
	p.Routes = append(p.Routes,
		netns.Route{Dst: default4, Gw: gw4, Dev: n.Bridge},
		netns.Route{Dst: default6, Gw: gw6, Dev: n.Bridge},
	)
	// Networks behind a LAN's gateway: in main and in both path tables
	// (a connection from them to the internet has its replies routed by
	// its mark), and back from the wan and vpn namespaces.
	for _, r := range cfg.Routes {
		for _, table := range []int{0, TableWAN, TableVPN} {
			p.Routes = append(p.Routes, netns.Route{Table: table, Dst: r.To, Gw: r.Via, Dev: r.LAN})
		}
		gw := n.MainAddr4().Addr()
		if r.To.Addr().Is6() {
			gw = n.MainAddr6().Addr()
		}
		for _, ns := range []string{n.WAN, n.VPN} {
			p.Routes = append(p.Routes, netns.Route{NS: ns, Dst: r.To, Gw: gw, Dev: config.TransitPeerLink})
		}
	}
	for _, l := range cfg.LAN {
		for _, a := range l.Addresses {
			for _, ns := range []string{n.WAN, n.VPN} {
				gw := n.MainAddr4().Addr()
				if a.Addr().Is6() {
					gw = n.MainAddr6().Addr()
				}
				p.Routes = append(p.Routes, netns.Route{NS: ns, Dst: a.Masked(), Gw: gw, Dev: config.TransitPeerLink})
			}
		}
	}
	// A published container (an address on one of this host's bridges,
	// not a LAN's): the vpn namespace reaches it through main.
	for _, pub := range pubs {
		for _, to := range []netip.AddrPort{pub.To, pub.To6} {
			if !to.IsValid() || inLANs(cfg, to.Addr()) {
				continue
			}
			gw := n.MainAddr4().Addr()
			if to.Addr().Is6() {
				gw = n.MainAddr6().Addr()
			}
			host := netip.PrefixFrom(to.Addr(), to.Addr().BitLen())
			p.Routes = append(p.Routes, netns.Route{NS: n.VPN, Dst: host, Gw: gw, Dev: config.TransitPeerLink})
			// In main the connection is marked for the tunnel's table,
			// which knows only the LANs: thrown back to the main table,
			// it finds the container's bridge.
			for _, table := range []int{TableWAN, TableVPN} {
				p.Routes = append(p.Routes, netns.Route{Table: table, Dst: host, Type: unix.RTN_THROW})
			}
		}
	}
	p.Routes = append(p.Routes,
		netns.Route{NS: n.VPN, Dst: default4, Type: unix.RTN_UNREACHABLE, Metric: killSwitchMetric},
		netns.Route{NS: n.VPN, Dst: default6, Type: unix.RTN_UNREACHABLE, Metric: killSwitchMetric},
	)
	// [remote] published through the relay: what its server in wan
	// answers a device behind the relay is marked for the vpn path and
	// routed back into the vpn namespace.
	if remoteViaRelay(cfg) {
		for _, v6 := range []bool{false, true} {
			p.Rules = append(p.Rules, netns.Rule{NS: n.WAN, V6: v6, Priority: RulePrioVPN, Mark: via.VPN.Mark(), Mask: via.Mask, Table: TableVPN})
		}
		p.Routes = append(p.Routes,
			netns.Route{NS: n.WAN, Table: TableVPN, Dst: default4, Gw: n.VPNAddr4().Addr(), Dev: config.TransitPeerLink},
			netns.Route{NS: n.WAN, Table: TableVPN, Dst: default6, Gw: n.VPNAddr6().Addr(), Dev: config.TransitPeerLink})
	}
	return p
}

// statusName is how status names a namespace: "main" for routerd's own.
func statusName(ns string) string {
	if ns == "" {
		return "main"
	}
	return ns
}

// inLANs reports whether a is inside a LAN's subnet.
func inLANs(cfg *config.Config, a netip.Addr) bool {
	for _, p := range cfg.LANNets.All() {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
