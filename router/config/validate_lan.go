package config

import (
	"net/netip"
	"strings"
	"time"

	"github.com/routerd/routerd/internal/iprange"
)

// [[lan]]: addresses, DHCPv4, DHCPv6 and router advertisements.

func (v *validator) lan(path string, f *fileLAN) {
	l := LAN{Name: f.Name, PDSubnet: -1}
	if f.Name == "" {
		v.p.errf(path+".name", "required")
	} else {
		v.ifname(path+".name", f.Name)
	}
	v.lanLink(path, f, &l)
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
			v.dhcp4Options(dp, f.DHCP4, l.DHCP4)
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
	if f.PDSubnet != nil {
		switch n := *f.PDSubnet; {
		case n < 0 || n > 0xffff:
			v.p.errf(path+".pd_subnet", "%d is not a subnet id (0-65535)", n)
		case v.c.WAN.IPv6 == "static" && v.c.WAN.Prefix6 == (netip.Prefix{}):
			v.p.errf(path+".pd_subnet", "needs wan.prefix6 with wan.ipv6 = \"static\" (the routed prefix the subnet comes from)")
		case v.c.WAN.IPv6 != "dhcp" && v.c.WAN.IPv6 != "static":
			v.p.errf(path+".pd_subnet", "needs wan.ipv6 = \"dhcp\" (a delegated prefix comes from the WAN's DHCPv6) or \"static\" with wan.prefix6")
		case l.RA == nil:
			v.p.errf(path+".pd_subnet", "needs IPv6 on this LAN (an IPv6 address in %s.addresses) to advertise the prefix", path)
		default:
			for i, o := range v.c.LAN {
				if o.PDSubnet == int(n) {
					v.p.errf(path+".pd_subnet", "subnet id %d is already lan[%d]'s (%s)", n, i, o.Name)
				}
			}
			l.PDSubnet = int(n)
		}
	}
	v.addLAN(l)
}

// addLAN adds a validated LAN, and its interface and networks to LANNets.
func (v *validator) addLAN(l LAN) {
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
			if l.Remote {
				path = idx("remote.addresses", j)
			}
			for _, o := range seen {
				if o.p.Overlaps(a.Masked()) {
					v.p.errf(path, "%s overlaps %s (%s)", a.Masked(), o.p, o.path)
				}
			}
			seen = append(seen, owned{a.Masked(), path})
		}
	}
}
