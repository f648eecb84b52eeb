package router

// The translation of config into the leaf packages' inputs that are not
// plans or rulesets of their own (topology.go: the namespaces and routing;
// firewall.go: the rulesets): the resolver's, the LAN's address services'
// and the tunnel's configs. Pure: the golden tests (translate_test.go)
// print them for every config in testdata. What only exists at run time
// (loggers, callbacks into other components) the components add.

import (
	"log/slog"
	"net/netip"
	"slices"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/dns"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/vpn"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// lanService is one LAN's address services; nil: not served there.
type lanService struct {
	Iface string
	DHCP4 *dhcp.Server4Config
	DHCP6 *dhcp.Server6Config
	RA    *dhcp.RAConfig
}

func lanServices(cfg *config.Config) []lanService {
	var out []lanService
	for _, l := range cfg.LAN {
		s := lanService{Iface: l.Name}
		if d := l.DHCP4; d != nil {
			a4, _ := l.Addr4()
			sc := dhcp.Server4Config{Iface: l.Name, Addr: a4, Start: d.RangeStart, End: d.RangeEnd, LeaseTime: d.LeaseTime,
				Router: d.Router, DNS: d.DNS, NTP: lanNTP(cfg, a4), Domain: cfg.DNS.Domain, MTU: l.MTU}
			for _, r := range d.Reservations {
				sc.Reservations = append(sc.Reservations, dhcp.Reservation{MAC: r.MAC, IP: r.IP, Hostname: r.Hostname})
			}
			if d.NTP != nil {
				sc.NTP = d.NTP
			}
			sc.DomainSearch = d.DomainSearch
			for _, o := range d.Options {
				sc.Options = append(sc.Options, dhcp.RawOption{Code: o.Code, Value: o.Value})
			}
			for _, r := range cfg.Routes {
				// Only where the gateway is on the link: the other LANs
				// reach it through the router, their default.
				if r.Advertise && r.LAN == l.Name {
					sc.Routes = append(sc.Routes, dhcp.Route4{Dst: r.To, Gw: r.Via})
				}
			}
			s.DHCP4 = &sc
		}
		if d := l.DHCP6; d != nil {
			a6, _ := l.Addr6()
			s.DHCP6 = &dhcp.Server6Config{Iface: l.Name, Addr: a6, Start: d.RangeStart, End: d.RangeEnd,
				LeaseTime: d.LeaseTime, DNS: d.DNS, NTP: lanNTP(cfg, a6), Domain: cfg.DNS.Domain}
		}
		if r := l.RA; r != nil {
			s.RA = &dhcp.RAConfig{Iface: l.Name, Prefixes: r.Prefixes, Managed: r.Managed,
				Other: r.Other, Autonomous: r.Autonomous, DNS: r.DNS, Domain: cfg.DNS.Domain, MTU: l.MTU}
		}
		out = append(out, s)
	}
	return out
}

// fixedName is a name the resolver answers from the start: a DHCP
// reservation's hostname.
type fixedName struct {
	key, name string
	addr      netip.Addr
}

// dnsConfig is the resolver's config, but for what the DNS component
// adds at run time (the client's route, the blocklists' hooks, the
// validator, the log), and the reservations' names.
func dnsConfig(cfg *config.Config) (dns.Config, []fixedName) {
	lan := cfg.LANNets
	dc := dns.Config{Domain: cfg.DNS.Domain, Hostname: cfg.Hostname, ListenIfaces: cfg.DNS.Listen, Clients: dnsClients(cfg),
		RouterAddrs: lan.RouterAddr, Upstreams: upstreams(cfg.DNS.Upstream), TLSRoots: cfg.DNS.TLSRoots, CacheSize: cfg.DNS.CacheSize,
		MDNS: cfg.DNS.MDNS, MDNSIfaces: lan.Ifaces, QueryLog: cfg.DNS.QueryLog}
	for _, r := range cfg.DNS.Records {
		dc.Records = append(dc.Records, dns.Record{Name: r.Name, Addrs: r.Addresses})
	}
	for _, p := range cfg.Routing.Policies {
		if p.Local() {
			dc.MarkRoute = routeOfMark
		}
		if p.View > 0 {
			dc.Views = append(dc.Views, dns.View{Name: p.Name, Upstreams: upstreams(p.DNS)})
		}
	}
	var names []fixedName
	for _, l := range cfg.LAN {
		if l.DHCP4 == nil {
			continue
		}
		for _, res := range l.DHCP4.Reservations {
			if res.Hostname != "" {
				names = append(names, fixedName{"reservation:" + res.MAC.String(), res.Hostname, res.IP})
			}
		}
	}
	return dc, names
}

// dnsClients are the networks the resolver answers: those of the LANs in
// dns.listen. A LAN left out gets REFUSED even when it reaches a listed
// LAN's address through the router.
func dnsClients(cfg *config.Config) []netip.Prefix {
	var out []netip.Prefix
	for _, l := range cfg.LAN {
		if slices.Contains(cfg.DNS.Listen, l.Name) {
			for _, a := range l.Addresses {
				out = append(out, a.Masked())
			}
		}
	}
	return out
}

func upstreams(us []config.Upstream) []dns.Upstream {
	var out []dns.Upstream
	for _, u := range us {
		out = append(out, dns.Upstream{Addr: u.Addr, TLS: u.TLS, ServerName: u.ServerName})
	}
	return out
}

func vpnConfig(cfg *config.Config, dns func() []netip.AddrPort, log *slog.Logger) vpn.Config {
	v := cfg.VPN
	vc := vpn.Config{WANNS: cfg.Netns.WAN, VPNNS: cfg.Netns.VPN, Iface: v.Interface, KeyFile: v.PrivateKeyFile,
		Addresses: v.Addresses, MTU: v.MTU, Implementation: v.Implementation, ListenPort: v.ListenPort, DNS: dns, Log: log}
	for _, p := range v.Peers {
		vc.Peers = append(vc.Peers, vpnPeer(p))
	}
	return vc
}

func vpnPeer(p config.Peer) vpn.Peer {
	return vpn.Peer{PublicKey: wgtypes.Key(p.PublicKey), PresharedKeyFile: p.PresharedKeyFile,
		Endpoint: p.Endpoint, AllowedIPs: p.AllowedIPs, Keepalive: p.PersistentKeepalive}
}
