package config

import (
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/routerd/routerd/internal/iprange"
	"github.com/routerd/routerd/internal/via"
	"github.com/routerd/routerd/router/control"
)

// Defaults for keys a config may leave out.
const (
	DefaultStateDir  = "/var/lib/routerd"
	DefaultSocket    = control.DefaultSocket
	defaultLeaseTime = 12 * time.Hour
)

// validate converts the file schema into a Config, recording every problem.
// It keeps going after errors so that one pass reports them all; the returned
// Config is meaningful only when p has no errors.
func validate(p *problems, fc *fileConfig) *Config {
	c := &Config{
		Hostname: or(fc.Hostname, "router"),
		StateDir: or(fc.StateDir, DefaultStateDir),
	}
	if !validLabel(c.Hostname) {
		p.errf("hostname", "%q is not a valid host name (letters, digits and '-', at most 63)", c.Hostname)
	}
	if !filepath.IsAbs(c.StateDir) {
		p.errf("state_dir", "%q must be an absolute path", c.StateDir)
	}
	v := validator{p: p, c: c, ifnames: map[string]string{}, macs: map[string]string{}}
	v.netns(&fc.Netns)
	v.wan(fc.WAN)
	if len(fc.LAN) == 0 {
		p.errf("lan", "at least one [[lan]] is required")
	}
	for i := range fc.LAN {
		v.lan(idx("lan", i), &fc.LAN[i])
	}
	v.lanOverlaps()
	v.vpn(fc.VPN)
	v.transitOverlaps()
	v.dns(fc.DNS)
	v.routing(&fc.Routing)
	for i := range fc.Blocklist {
		v.blocklist(idx("blocklist", i), &fc.Blocklist[i])
	}
	v.firewall(&fc.Firewall)
	v.status(&fc.Status)
	return c
}

type validator struct {
	p       *problems
	c       *Config
	ifnames map[string]string // interface name -> path that claimed it
	macs    map[string]string // match_mac -> path that claimed it
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (v *validator) netns(f *fileNetns) {
	n := &v.c.Netns
	n.WAN = or(f.WAN, "wan")
	n.VPN = or(f.VPN, "vpn")
	n.Bridge = or(f.Bridge, "br0")
	if !validNetnsName(n.WAN) {
		v.p.errf("netns.wan", "%q is not a valid namespace name", n.WAN)
	}
	if !validNetnsName(n.VPN) {
		v.p.errf("netns.vpn", "%q is not a valid namespace name", n.VPN)
	}
	if n.WAN == n.VPN {
		v.p.errf("netns.vpn", "%q is also the wan namespace; the two must differ", n.VPN)
	}
	v.ifname("netns.bridge", n.Bridge)
	n.Transit4 = v.prefix("netns.transit4", or(f.Transit4, "10.254.0.0/29"), fam4)
	if n.Transit4.IsValid() && n.Transit4.Bits() > 29 {
		v.p.errf("netns.transit4", "%s is too small: it needs at least a /29 (main .1, vpn .2, wan .3)", n.Transit4)
	}
	n.Transit6 = v.prefix("netns.transit6", or(f.Transit6, "fd01::/64"), fam6)
	if n.Transit6.IsValid() && n.Transit6.Bits() > 126 {
		v.p.errf("netns.transit6", "%s is too small: it needs at least a /126 (main ::1, vpn ::2, wan ::3)", n.Transit6)
	}
}

func (v *validator) wan(f *fileWAN) {
	if f == nil {
		v.p.errf("wan", "the [wan] section is required")
		return
	}
	w := &v.c.WAN
	w.Name = or(f.Name, "wan0")
	v.ifname("wan.name", w.Name)
	w.MatchMAC = v.matchMAC("wan.match_mac", f.MatchMAC)
	if f.SetMAC != "" {
		w.SetMAC = v.mac("wan.set_mac", f.SetMAC)
		if w.SetMAC != nil {
			if w.SetMAC[0]&1 != 0 {
				v.p.errf("wan.set_mac", "%s is a multicast address; the low bit of the first octet must be clear (e.g. %02x:%s)",
					f.SetMAC, w.SetMAC[0]&^1, strings.SplitN(w.SetMAC.String(), ":", 2)[1])
			}
			if isZero(w.SetMAC) {
				v.p.errf("wan.set_mac", "%s is the all-zero address", f.SetMAC)
			}
		}
	}
	w.Wait = v.duration("wan.wait", or(f.Wait, "30s"))
	w.IPv4 = v.enum("wan.ipv4", or(f.IPv4, "dhcp"), "dhcp", "static")
	switch w.IPv4 {
	case "static":
		if f.Address == "" {
			v.p.errf("wan.address", "required with ipv4 = \"static\"")
		} else {
			w.Address = v.prefix("wan.address", f.Address, fam4)
		}
		if f.Gateway == "" {
			v.p.errf("wan.gateway", "required with ipv4 = \"static\"")
		} else {
			w.Gateway = v.addr("wan.gateway", f.Gateway, fam4)
			if w.Address.IsValid() && w.Gateway.IsValid() && !w.Address.Contains(w.Gateway) {
				v.p.errf("wan.gateway", "%s is outside %s", w.Gateway, w.Address.Masked())
			}
		}
	case "dhcp":
		if f.Address != "" {
			v.p.errf("wan.address", "only meaningful with ipv4 = \"static\"")
		}
		if f.Gateway != "" {
			v.p.errf("wan.gateway", "only meaningful with ipv4 = \"static\"")
		}
	}
	w.IPv6 = v.enum("wan.ipv6", or(f.IPv6, "dhcp"), "dhcp", "slaac", "off")
	w.MTU = v.mtu("wan.mtu", f.MTU, 576, w.IPv6 != "off")
}

func (v *validator) lan(path string, f *fileLAN) {
	l := LAN{Name: f.Name}
	if f.Name == "" {
		v.p.errf(path+".name", "required")
	} else {
		v.ifname(path+".name", f.Name)
	}
	l.MatchMAC = v.matchMAC(path+".match_mac", f.MatchMAC)
	if len(f.Addresses) == 0 {
		v.p.errf(path+".addresses", "at least one address is required")
	}
	var n4, n6 int
	for i, s := range f.Addresses {
		a := v.prefix(idx(path+".addresses", i), s, famAny)
		if !a.IsValid() {
			continue
		}
		if a.Addr() == a.Masked().Addr() && a.Bits() < a.Addr().BitLen()-1 {
			v.p.errf(idx(path+".addresses", i), "%s is the network address; give the router's own address with its prefix length, e.g. %s/%d", s, a.Addr().Next(), a.Bits())
			continue
		}
		if a.Addr().Is4() {
			n4++
		} else {
			n6++
		}
		l.Addresses = append(l.Addresses, a)
	}
	if f.MTU != nil {
		l.MTU = v.mtu(path+".mtu", f.MTU, 576, n6 > 0)
	}
	a4, has4 := l.Addr4()
	a6, has6 := l.Addr6()
	if f.DHCP4 != nil {
		dp := path + ".dhcp4"
		if !has4 {
			v.p.errf(dp, "needs an IPv4 address in %s.addresses", path)
		} else {
			l.DHCP4 = v.dhcp4(dp, f.DHCP4, a4)
		}
	}
	if f.DHCP6 != nil {
		dp := path + ".dhcp6"
		if !has6 {
			v.p.errf(dp, "needs an IPv6 address in %s.addresses", path)
		} else {
			l.DHCP6 = v.dhcp6(dp, f.DHCP6, a6)
		}
	}
	switch {
	case f.RA != nil && !has6:
		v.p.errf(path+".ra", "needs an IPv6 address in %s.addresses", path)
	case f.RA != nil:
		l.RA = v.ra(path+".ra", f.RA, l)
	case has6:
		// An IPv6 LAN without router advertisements has no default route,
		// so advertise the interface's prefixes unless told otherwise.
		l.RA = &RA{Managed: l.DHCP6 != nil, Other: true, Autonomous: l.DHCP6 == nil}
		for _, a := range l.Addresses {
			if a.Addr().Is6() {
				l.RA.Prefixes = append(l.RA.Prefixes, a.Masked())
			}
		}
		l.RA.DNS = []netip.Addr{a6.Addr()}
	}
	v.c.LAN = append(v.c.LAN, l)
	n := &v.c.LANNets
	n.Ifaces = append(n.Ifaces, l.Name)
	for _, a := range l.Addresses {
		n.RouterAddr = append(n.RouterAddr, a.Addr())
		if a.Addr().Is4() {
			n.V4 = append(n.V4, a.Masked())
		} else {
			n.V6 = append(n.V6, a.Masked())
		}
	}
}

func (v *validator) dhcp4(path string, f *fileDHCP4, iface netip.Prefix) *DHCP4 {
	d := &DHCP4{LeaseTime: defaultLeaseTime}
	subnet := iface.Masked()
	d.RangeStart, d.RangeEnd = v.addrRange(path+".range", f.Range, iface, fam4)
	if d.RangeStart.IsValid() && d.RangeEnd.IsValid() {
		bcast := iprange.Last(subnet)
		if d.RangeStart == subnet.Addr() || d.RangeEnd == bcast ||
			(d.RangeStart.Less(bcast) && bcast.Less(d.RangeEnd)) {
			v.p.errf(path+".range", "%s-%s contains the network or broadcast address of %s", d.RangeStart, d.RangeEnd, subnet)
		}
	}
	if f.LeaseTime != "" {
		d.LeaseTime = v.duration(path+".lease_time", f.LeaseTime)
		if d.LeaseTime > 0 && d.LeaseTime < time.Minute {
			v.p.errf(path+".lease_time", "%s is too short (at least 1m)", f.LeaseTime)
		}
	}
	d.Router = iface.Addr()
	if f.Router != "" {
		d.Router = v.addr(path+".router", f.Router, fam4)
		if d.Router.IsValid() && !subnet.Contains(d.Router) {
			v.p.errf(path+".router", "%s is outside %s", d.Router, subnet)
		}
	}
	d.DNS = v.addrList(path+".dns", f.DNS, fam4, iface.Addr())
	seenMAC := map[string]int{}
	seenIP := map[netip.Addr]int{}
	for i, r := range f.Reservation {
		rp := idx(path+".reservation", i)
		res := Reservation{Hostname: strings.ToLower(r.Hostname)}
		res.MAC = v.mac(rp+".mac", r.MAC)
		if res.MAC != nil {
			if j, dup := seenMAC[res.MAC.String()]; dup {
				v.p.errf(rp+".mac", "%s is already reserved by %s", r.MAC, idx(path+".reservation", j))
			}
			seenMAC[res.MAC.String()] = i
		}
		res.IP = v.addr(rp+".ip", r.IP, fam4)
		if res.IP.IsValid() {
			switch {
			case !subnet.Contains(res.IP):
				v.p.errf(rp+".ip", "%s is outside %s", res.IP, subnet)
			case res.IP == iface.Addr():
				v.p.errf(rp+".ip", "%s is the router's own address", res.IP)
			case res.IP == subnet.Addr() || res.IP == iprange.Last(subnet):
				v.p.errf(rp+".ip", "%s is the network or broadcast address of %s", res.IP, subnet)
			}
			if j, dup := seenIP[res.IP]; dup {
				v.p.errf(rp+".ip", "%s is already reserved by %s", res.IP, idx(path+".reservation", j))
			}
			seenIP[res.IP] = i
		}
		if r.Hostname != "" && !validLabel(r.Hostname) {
			v.p.errf(rp+".hostname", "%q is not a valid host name (one label: letters, digits and '-')", r.Hostname)
		}
		d.Reservations = append(d.Reservations, res)
	}
	return d
}

func (v *validator) dhcp6(path string, f *fileDHCP6, iface netip.Prefix) *DHCP6 {
	d := &DHCP6{LeaseTime: defaultLeaseTime}
	d.RangeStart, d.RangeEnd = v.addrRange(path+".range", f.Range, iface, fam6)
	if f.LeaseTime != "" {
		d.LeaseTime = v.duration(path+".lease_time", f.LeaseTime)
	}
	d.DNS = v.addrList(path+".dns", f.DNS, fam6, iface.Addr())
	return d
}

func (v *validator) ra(path string, f *fileRA, l LAN) *RA {
	r := &RA{Managed: l.DHCP6 != nil, Other: true, Autonomous: l.DHCP6 == nil}
	if f.Managed != nil {
		r.Managed = *f.Managed
	}
	if f.Other != nil {
		r.Other = *f.Other
	}
	if f.Autonomous != nil {
		r.Autonomous = *f.Autonomous
	}
	for i, s := range f.Prefixes {
		pp := idx(path+".prefixes", i)
		pf := v.prefix(pp, s, fam6)
		if !pf.IsValid() {
			continue
		}
		if pf != pf.Masked() {
			v.p.errf(pp, "%s has host bits set; did you mean %s?", s, pf.Masked())
			continue
		}
		if r.Autonomous && pf.Bits() != 64 {
			v.p.errf(pp, "%s: SLAAC (autonomous = true) needs a /64", s)
		}
		onLink := false
		for _, a := range l.Addresses {
			if a.Addr().Is6() && pf.Contains(a.Addr()) {
				onLink = true
			}
		}
		if !onLink {
			v.p.errf(pp, "%s does not contain any of %s's addresses", s, l.Name)
		}
		r.Prefixes = append(r.Prefixes, pf)
	}
	a6, _ := l.Addr6()
	r.DNS = v.addrList(path+".dns", f.DNS, fam6, a6.Addr())
	return r
}

// lanOverlaps reports LAN subnets that overlap each other.
func (v *validator) lanOverlaps() {
	type owned struct {
		p    netip.Prefix
		path string
	}
	var seen []owned
	for i, l := range v.c.LAN {
		for j, a := range l.Addresses {
			path := idx(idx("lan", i)+".addresses", j)
			for _, o := range seen {
				if o.p.Overlaps(a.Masked()) {
					v.p.errf(path, "%s overlaps %s (%s)", a.Masked(), o.p, o.path)
				}
			}
			seen = append(seen, owned{a.Masked(), path})
		}
	}
}

func (v *validator) vpn(f *fileVPN) {
	if f == nil {
		return
	}
	w := &VPN{
		Interface:      or(f.Interface, "wg0"),
		Implementation: v.enum("vpn.implementation", or(f.Implementation, "auto"), "auto", "kernel", "userspace"),
	}
	v.ifname("vpn.interface", w.Interface)
	w.PrivateKeyFile = v.stateFile(or(f.PrivateKeyFile, w.Interface+".key"))
	if len(f.Addresses) == 0 {
		v.p.errf("vpn.addresses", "at least one tunnel address is required")
	}
	has6 := false
	for i, s := range f.Addresses {
		a := v.prefix(idx("vpn.addresses", i), s, famAny)
		if !a.IsValid() {
			continue
		}
		has6 = has6 || a.Addr().Is6()
		for li, l := range v.c.LAN {
			for _, la := range l.Addresses {
				if la.Masked().Overlaps(a.Masked()) {
					v.p.errf(idx("vpn.addresses", i), "%s overlaps %s of lan[%d] (%s)", s, la.Masked(), li, l.Name)
				}
			}
		}
		w.Addresses = append(w.Addresses, a)
	}
	if f.MTU == nil {
		w.MTU = 1420
	} else {
		w.MTU = v.mtu("vpn.mtu", f.MTU, 576, has6)
	}
	w.ListenPort = 51820
	if f.ListenPort != nil {
		if *f.ListenPort < 1 || *f.ListenPort > 65535 {
			v.p.errf("vpn.listen_port", "%d is outside 1-65535", *f.ListenPort)
		} else {
			w.ListenPort = int(*f.ListenPort)
		}
	}
	if len(f.Peer) == 0 {
		v.p.errf("vpn.peer", "at least one [[vpn.peer]] is required")
	}
	for i, fp := range f.Peer {
		pp := idx("vpn.peer", i)
		peer := Peer{PublicKeyText: fp.PublicKey}
		if k, ok := wgKey(fp.PublicKey); ok {
			peer.PublicKey = k
		} else {
			v.p.errf(pp+".public_key", "%q is not a WireGuard key (base64 of 32 bytes)", fp.PublicKey)
		}
		if fp.PresharedKeyFile != "" {
			peer.PresharedKeyFile = v.stateFile(fp.PresharedKeyFile)
		}
		if fp.Endpoint == "" {
			v.p.errf(pp+".endpoint", "required (host:port or [v6]:port)")
		} else if ep, err := parseEndpoint(fp.Endpoint); err != nil {
			v.p.errf(pp+".endpoint", "%q: %v", fp.Endpoint, err)
		} else {
			peer.Endpoint = ep
		}
		if len(fp.AllowedIPs) == 0 {
			v.p.errf(pp+".allowed_ips", "at least one prefix is required (0.0.0.0/0 and ::/0 for a full tunnel)")
		}
		for j, s := range fp.AllowedIPs {
			a := v.prefix(idx(pp+".allowed_ips", j), s, famAny)
			if a.IsValid() {
				peer.AllowedIPs = append(peer.AllowedIPs, a.Masked())
			}
		}
		if fp.PersistentKeepalive != "" {
			peer.PersistentKeepalive = v.duration(pp+".persistent_keepalive", fp.PersistentKeepalive)
			if peer.PersistentKeepalive > 65535*time.Second {
				v.p.errf(pp+".persistent_keepalive", "%s is longer than WireGuard allows (65535s)", fp.PersistentKeepalive)
			}
		}
		w.Peers = append(w.Peers, peer)
	}
	v.c.VPN = w
}

// transitOverlaps checks the transit prefixes against every other prefix the
// router owns: an overlap would make main-namespace routing ambiguous.
func (v *validator) transitOverlaps() {
	check := func(path string, t netip.Prefix) {
		if !t.IsValid() {
			return
		}
		for i, l := range v.c.LAN {
			for _, a := range l.Addresses {
				if a.Masked().Overlaps(t) {
					v.p.errf(path, "%s overlaps %s of lan[%d] (%s)", t, a.Masked(), i, l.Name)
				}
			}
		}
		if v.c.VPN != nil {
			for _, a := range v.c.VPN.Addresses {
				if a.Masked().Overlaps(t) {
					v.p.errf(path, "%s overlaps vpn address %s", t, a)
				}
			}
		}
		if w := v.c.WAN.Address; w.IsValid() && w.Masked().Overlaps(t) {
			v.p.errf(path, "%s overlaps wan.address %s", t, w)
		}
	}
	check("netns.transit4", v.c.Netns.Transit4)
	check("netns.transit6", v.c.Netns.Transit6)
}

func (v *validator) dns(f *fileDNS) {
	d := &v.c.DNS
	d.Domain, d.CacheSize = "lan", 10000
	if f == nil {
		f = &fileDNS{}
	}
	if f.Listen == nil {
		for _, l := range v.c.LAN {
			d.Listen = append(d.Listen, l.Name)
		}
	}
	for i, name := range f.Listen {
		if !v.isLAN(name) {
			v.p.errf(idx("dns.listen", i), "%q is not a [[lan]] name", name)
			continue
		}
		d.Listen = append(d.Listen, name)
	}
	for i, s := range f.Upstream {
		ap, err := parseUpstream(s)
		if err != nil {
			v.p.errf(idx("dns.upstream", i), "%q: %v", s, err)
			continue
		}
		d.Upstream = append(d.Upstream, ap)
	}
	if f.Domain != nil {
		d.Domain = strings.TrimSuffix(strings.ToLower(*f.Domain), ".")
		if d.Domain != "" && !validDomain(d.Domain) {
			v.p.errf("dns.domain", "%q is not a valid domain name", *f.Domain)
		}
		if d.Domain == "local" {
			v.p.errf("dns.domain", "\"local\" is reserved for mDNS (RFC 6762); use e.g. \"lan\" or \"home.arpa\"")
		}
	}
	d.MDNS = f.MDNS
	if f.CacheSize != nil {
		if *f.CacheSize < 0 || *f.CacheSize > 10_000_000 {
			v.p.errf("dns.cache_size", "%d is outside 0-10000000", *f.CacheSize)
		} else {
			d.CacheSize = int(*f.CacheSize)
		}
	}
	for i, r := range f.Record {
		rp := idx("dns.record", i)
		rec := Record{Name: strings.TrimSuffix(strings.ToLower(r.Name), ".")}
		if !validDomain(rec.Name) {
			v.p.errf(rp+".name", "%q is not a valid domain name", r.Name)
		}
		if len(r.Addresses) == 0 {
			v.p.errf(rp+".addresses", "at least one address is required")
		}
		for j, s := range r.Addresses {
			if a := v.addr(idx(rp+".addresses", j), s, famAny); a.IsValid() {
				rec.Addresses = append(rec.Addresses, a)
			}
		}
		d.Records = append(d.Records, rec)
	}
}

func (v *validator) routing(f *fileRouting) {
	r := &v.c.Routing
	def := via.WAN
	if v.c.VPN != nil {
		def = via.VPN
	}
	r.Default = v.via("routing.default", or(f.Default, def.String()))
	r.Router = v.via("routing.router", or(f.Router, via.WAN.String()))
	names := map[string]int{}
	for i, fp := range f.Policy {
		pp := idx("routing.policy", i)
		pol := Policy{Name: fp.Name, Via: v.via(pp+".via", fp.Via)}
		if fp.Name == "" {
			v.p.errf(pp+".name", "required")
		} else if j, dup := names[fp.Name]; dup {
			v.p.errf(pp+".name", "%q is also the name of routing.policy[%d]", fp.Name, j)
		} else {
			names[fp.Name] = i
		}
		for j, s := range fp.Sources {
			sp := idx(pp+".sources", j)
			switch {
			case v.isLAN(s):
				pol.SourceIfaces = append(pol.SourceIfaces, s)
			case strings.Count(s, ":") == 5 && !strings.Contains(s, "::"):
				if m := v.mac(sp, s); m != nil {
					pol.SourceMACs = append(pol.SourceMACs, m)
				}
			default:
				pf, err := parseAddrOrPrefix(s)
				if err != nil {
					v.p.errf(sp, "%q is not an IP, CIDR, MAC or [[lan]] name", s)
					continue
				}
				pol.SourceAddrs = append(pol.SourceAddrs, pf)
			}
		}
		for j, s := range fp.Destinations {
			pf, err := parseAddrOrPrefix(s)
			if err != nil {
				v.p.errf(idx(pp+".destinations", j), "%q is not an IP or CIDR", s)
				continue
			}
			pol.Destinations = append(pol.Destinations, pf)
		}
		for j, s := range fp.DestinationPorts {
			pr, err := ParsePortRange(s)
			if err != nil {
				v.p.errf(idx(pp+".destination_ports", j), "%q: %v", s, err)
				continue
			}
			pol.DestinationPorts = append(pol.DestinationPorts, pr)
		}
		if len(fp.Sources)+len(fp.Destinations)+len(fp.DestinationPorts) == 0 {
			v.p.errf(pp, "matches everything: give sources, destinations or destination_ports (or set routing.default instead)")
		}
		r.Policies = append(r.Policies, pol)
	}
}

func (v *validator) blocklist(path string, f *fileBlocklist) {
	b := Blocklist{Name: f.Name, URL: f.URL, File: f.File, MinRatio: 0.5, DomainTTLFloor: time.Hour,
		Timeout: 2 * time.Minute, MaxSize: 256 << 20}
	if f.Name == "" {
		v.p.errf(path+".name", "required")
	} else if !validSetName(f.Name) {
		v.p.errf(path+".name", "%q: use letters, digits, '-' and '_' (at most 32)", f.Name)
	}
	for _, o := range v.c.Blocklists {
		if o.Name == f.Name && f.Name != "" {
			v.p.errf(path+".name", "%q is used by another blocklist", f.Name)
		}
	}
	switch {
	case f.URL != "" && f.File != "":
		v.p.errf(path, "has both url and file; give exactly one")
	case f.URL == "" && f.File == "":
		v.p.errf(path, "needs a url or a file")
	case f.URL != "":
		u, err := url.Parse(f.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.p.errf(path+".url", "%q is not an http(s) URL", f.URL)
		}
	case !filepath.IsAbs(f.File):
		v.p.errf(path+".file", "%q must be an absolute path", f.File)
	}
	b.Format = v.enum(path+".format", or(f.Format, "auto"), "auto", "lines", "rkn-csv", "domains")
	def := "24h"
	if f.File != "" {
		def = "1h"
	}
	b.Refresh = v.duration(path+".refresh", or(f.Refresh, def))
	if b.Refresh > 0 && b.Refresh < time.Minute {
		v.p.errf(path+".refresh", "%s is too often (at least 1m)", f.Refresh)
	}
	b.Via = v.via(path+".via", f.Via)
	if f.MinRatio != nil {
		if *f.MinRatio < 0 || *f.MinRatio > 1 || math.IsNaN(*f.MinRatio) {
			v.p.errf(path+".min_ratio", "%v is outside 0-1", *f.MinRatio)
		} else {
			b.MinRatio = *f.MinRatio
		}
	}
	if f.DomainTTLFloor != "" {
		b.DomainTTLFloor = v.duration(path+".domain_ttl_floor", f.DomainTTLFloor)
	}
	if f.Timeout != "" {
		b.Timeout = v.duration(path+".timeout", f.Timeout)
	}
	if f.MaxSize != "" {
		n, err := parseSize(f.MaxSize)
		if err != nil || n < 1<<10 {
			v.p.errf(path+".max_size", "%q is not a size of at least 1KiB (e.g. \"64MiB\")", f.MaxSize)
		} else {
			b.MaxSize = n
		}
	}
	v.c.Blocklists = append(v.c.Blocklists, b)
}

func (v *validator) firewall(f *fileFirewall) {
	fw := &v.c.Firewall
	fw.Harden = f.Harden == nil || *f.Harden
	rate, err := parseRate(or(f.ICMPRate, "10/second"))
	if err != nil {
		v.p.errf("firewall.icmp_rate", "%q: %v", f.ICMPRate, err)
	}
	fw.ICMPRate = rate
	for i, s := range f.LANInput {
		pr, err := ParsePortRange(s)
		if err != nil {
			v.p.errf(idx("firewall.lan_input", i), "%q: %v", s, err)
			continue
		}
		fw.LANInput = append(fw.LANInput, pr)
	}
	seen := map[string]int{}
	for i, pf := range f.PortForward {
		pp := idx("firewall.port_forward", i)
		fwd := PortForward{Proto: v.enum(pp+".proto", pf.Proto, "tcp", "udp")}
		if pf.Port < 1 || pf.Port > 65535 {
			v.p.errf(pp+".port", "%d is outside 1-65535", pf.Port)
		} else {
			fwd.Port = uint16(pf.Port)
		}
		key := fmt.Sprintf("%s/%d", pf.Proto, pf.Port)
		if j, dup := seen[key]; dup {
			v.p.errf(pp+".port", "%s is already forwarded by firewall.port_forward[%d]", key, j)
		}
		seen[key] = i
		to, err := parseToAddrPort(pf.To, uint16(pf.Port))
		if err != nil {
			v.p.errf(pp+".to", "%q: %v", pf.To, err)
		} else if !v.inLANSubnet(to.Addr()) {
			v.p.errf(pp+".to", "%s is not inside any LAN subnet", to.Addr())
		} else {
			fwd.To = to
		}
		fw.PortForwards = append(fw.PortForwards, fwd)
	}
}

func (v *validator) status(f *fileStatus) {
	s := &v.c.Status
	s.Socket = or(f.Socket, DefaultSocket)
	if !filepath.IsAbs(s.Socket) {
		v.p.errf("status.socket", "%q must be an absolute path", s.Socket)
	} else if len(s.Socket) > 107 {
		v.p.errf("status.socket", "%q is longer than a unix socket path may be (107 bytes)", s.Socket)
	}
	s.Metrics = f.Metrics
	if f.Metrics != "" {
		if _, err := netip.ParseAddrPort(f.Metrics); err != nil {
			v.p.errf("status.metrics", "%q is not ip:port", f.Metrics)
		}
	}
}

// --- value checks -----------------------------------------------------------

type family int

const (
	famAny family = iota
	fam4
	fam6
)

func (f family) ok(a netip.Addr) bool {
	return f == famAny || (f == fam4) == a.Is4()
}

func (f family) String() string {
	switch f {
	case fam4:
		return "IPv4"
	case fam6:
		return "IPv6"
	}
	return "IP"
}

func (v *validator) prefix(path, s string, fam family) netip.Prefix {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		v.p.errf(path, "%q is not an address with prefix length (e.g. 192.168.1.1/24)", s)
		return netip.Prefix{}
	}
	if p.Addr().Zone() != "" {
		v.p.errf(path, "%q: zones are not allowed here", s)
		return netip.Prefix{}
	}
	if !fam.ok(p.Addr()) {
		v.p.errf(path, "%s is not an %s prefix", s, fam)
		return netip.Prefix{}
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits())
}

func (v *validator) addr(path, s string, fam family) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		v.p.errf(path, "%q is not an IP address", s)
		return netip.Addr{}
	}
	if !fam.ok(a) {
		v.p.errf(path, "%s is not an %s address", s, fam)
		return netip.Addr{}
	}
	return a
}

// addrList parses a list of addresses, defaulting to def when empty.
func (v *validator) addrList(path string, ss []string, fam family, def netip.Addr) []netip.Addr {
	if len(ss) == 0 {
		return []netip.Addr{def}
	}
	var out []netip.Addr
	for i, s := range ss {
		if a := v.addr(idx(path, i), s, fam); a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// addrRange parses a [first, last] pool inside iface's subnet that does not
// contain the router's own address.
func (v *validator) addrRange(path string, ss []string, iface netip.Prefix, fam family) (first, last netip.Addr) {
	if len(ss) != 2 {
		v.p.errf(path, "want [first, last], got %d values", len(ss))
		return
	}
	first = v.addr(idx(path, 0), ss[0], fam)
	last = v.addr(idx(path, 1), ss[1], fam)
	if !first.IsValid() || !last.IsValid() {
		return netip.Addr{}, netip.Addr{}
	}
	subnet := iface.Masked()
	bad := false
	for _, a := range []netip.Addr{first, last} {
		if !subnet.Contains(a) {
			v.p.errf(path, "%s is outside %s", a, subnet)
			bad = true
		}
	}
	if last.Less(first) {
		v.p.errf(path, "%s-%s is reversed: the first address must not be after the last", first, last)
		bad = true
	}
	if !bad && !iface.Addr().Less(first) && !last.Less(iface.Addr()) {
		v.p.errf(path, "%s-%s contains the router's own address %s", first, last, iface.Addr())
		bad = true
	}
	if bad {
		return netip.Addr{}, netip.Addr{}
	}
	return first, last
}

func (v *validator) mac(path, s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil || len(m) != 6 {
		v.p.errf(path, "%q is not a MAC address (aa:bb:cc:dd:ee:ff)", s)
		return nil
	}
	return m
}

// matchMAC parses a NIC's permanent MAC and checks no other NIC claims it.
func (v *validator) matchMAC(path, s string) net.HardwareAddr {
	if s == "" {
		v.p.errf(path, "required: the NIC's permanent MAC address")
		return nil
	}
	m := v.mac(path, s)
	if m == nil {
		return nil
	}
	if other, dup := v.macs[m.String()]; dup {
		v.p.errf(path, "%s is also matched by %s", s, other)
	}
	v.macs[m.String()] = path
	return m
}

// ifname checks an interface name and that no other interface claims it.
func (v *validator) ifname(path, name string) {
	switch {
	case name == "" || len(name) > 15:
		v.p.errf(path, "%q: interface names are 1-15 bytes", name)
		return
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n%"):
		v.p.errf(path, "%q is not a valid interface name", name)
		return
	case name == "lo":
		v.p.errf(path, "\"lo\" is the loopback interface")
		return
	case name == TransitWANLink || name == TransitVPNLink || name == TransitPeerLink:
		v.p.errf(path, "%q is reserved for routerd's transit links", name)
		return
	}
	if other, dup := v.ifnames[name]; dup {
		v.p.errf(path, "%q is also the name of %s", name, other)
		return
	}
	v.ifnames[name] = path
}

func (v *validator) duration(path, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		v.p.errf(path, "%q is not a duration (e.g. \"30s\", \"12h\")", s)
		return 0
	}
	if d <= 0 {
		v.p.errf(path, "%s must be positive", s)
		return 0
	}
	return d
}

func (v *validator) enum(path, s string, allowed ...string) string {
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	v.p.errf(path, "%q is not one of %s", s, quoteList(allowed))
	return ""
}

func (v *validator) via(path, s string) via.Path {
	if s == "" {
		v.p.errf(path, "required: %q or %q", via.WAN, via.VPN)
		return 0
	}
	p, err := via.Parse(v.enum(path, s, via.WAN.String(), via.VPN.String()))
	if err != nil {
		return 0 // enum said why
	}
	if p == via.VPN && v.c.VPN == nil {
		v.p.errf(path, "\"vpn\" needs a [vpn] section")
	}
	return p
}

func (v *validator) mtu(path string, n *int64, min int, ipv6 bool) int {
	if n == nil {
		return 0
	}
	if ipv6 && min < 1280 {
		min = 1280
	}
	if *n < int64(min) || *n > 9000 {
		why := ""
		if ipv6 && *n < 1280 {
			why = " (IPv6 needs at least 1280)"
		}
		v.p.errf(path, "%d is outside %d-9000%s", *n, min, why)
		return 0
	}
	return int(*n)
}

// stateFile resolves a path relative to state_dir.
func (v *validator) stateFile(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(v.c.StateDir, p)
}

func (v *validator) isLAN(name string) bool {
	for _, l := range v.c.LAN {
		if l.Name == name {
			return true
		}
	}
	return false
}

func (v *validator) inLANSubnet(a netip.Addr) bool {
	for _, l := range v.c.LAN {
		for _, p := range l.Addresses {
			if p.Masked().Contains(a) && p.Addr() != a {
				return true
			}
		}
	}
	return false
}

// --- parsers shared with other packages ----------------------------------------

// ParsePortRange parses "tcp/25" or "udp/5000-5010".
func ParsePortRange(s string) (PortRange, error) {
	proto, ports, ok := strings.Cut(s, "/")
	if !ok || (proto != "tcp" && proto != "udp") {
		return PortRange{}, fmt.Errorf("want tcp/PORT or udp/PORT[-PORT]")
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	from, err := parsePort(lo)
	if err != nil {
		return PortRange{}, err
	}
	to := from
	if isRange {
		if to, err = parsePort(hi); err != nil {
			return PortRange{}, err
		}
		if to < from {
			return PortRange{}, fmt.Errorf("port range %d-%d is reversed", from, to)
		}
	}
	return PortRange{Proto: proto, From: from, To: to}, nil
}

func (r PortRange) String() string {
	if r.From == r.To {
		return fmt.Sprintf("%s/%d", r.Proto, r.From)
	}
	return fmt.Sprintf("%s/%d-%d", r.Proto, r.From, r.To)
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is outside 1-65535", s)
	}
	return uint16(n), nil
}

func parseAddrOrPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("bad address %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseUpstream(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return ap, fmt.Errorf("port 0")
		}
		return ap, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a, 53), nil
	}
	return netip.AddrPort{}, fmt.Errorf("want an IP address with optional port (9.9.9.9:53, [2620:fe::fe]:53)")
}

func parseToAddrPort(s string, defPort uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return ap, fmt.Errorf("port 0")
		}
		return ap, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, defPort), nil
	}
	return netip.AddrPort{}, fmt.Errorf("want ip:port")
}

// parseEndpoint accepts host:port and [v6]:port with a port in 1-65535.
func parseEndpoint(s string) (Endpoint, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("want host:port or [v6]:port")
	}
	p, err := parsePort(port)
	if err != nil {
		return Endpoint{}, err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Is6() && !strings.HasPrefix(s, "[") {
			return Endpoint{}, fmt.Errorf("IPv6 endpoints need brackets: [%s]:%s", host, port)
		}
		return Endpoint{Addr: a.Unmap(), Port: p}, nil
	}
	if !validDomain(strings.TrimSuffix(host, ".")) {
		return Endpoint{}, fmt.Errorf("%q is neither an IP address nor a host name", host)
	}
	return Endpoint{Host: host, Port: p}, nil
}

func parseRate(s string) (Rate, error) {
	n, unit, ok := strings.Cut(s, "/")
	c, err := strconv.ParseUint(n, 10, 32)
	if !ok || err != nil || c == 0 {
		return Rate{}, fmt.Errorf("want N/second, N/minute or N/hour with N > 0")
	}
	switch unit {
	case "second", "minute", "hour":
	default:
		return Rate{}, fmt.Errorf("unit %q is not second, minute or hour", unit)
	}
	return Rate{N: c, Unit: unit}, nil
}

func wgKey(s string) ([32]byte, bool) {
	var k [32]byte
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		return k, false
	}
	copy(k[:], b)
	return k, true
}

func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !validLabel(l) && !(l != "" && strings.Trim(l, "_abcdefghijklmnopqrstuvwxyz0123456789-") == "") {
			return false
		}
	}
	return true
}

func validNetnsName(s string) bool {
	return s != "" && len(s) <= 64 && s != "." && s != ".." && !strings.ContainsAny(s, "/ \t\n\x00")
}

func validSetName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func isZero(m net.HardwareAddr) bool {
	for _, b := range m {
		if b != 0 {
			return false
		}
	}
	return true
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// parseSize reads "512KiB", "64MiB", "1GiB" or a plain number of bytes.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
