package config

import (
	"net/netip"
	"strings"
	"time"
)

// maxWANWait bounds wan.wait.
const maxWANWait = 10 * time.Minute

// [wan]: the uplink NIC, its MAC and addressing.

func (v *validator) wan(f *fileWAN) {
	if f == nil {
		v.p.errf("wan", "the [wan] section is required")
		return
	}
	v.uplink("wan", f, &v.c.WAN, "wan0")
	v.backup(f)
}

// uplink checks what the primary and the backup uplink have alike: the
// NIC, its MAC and addressing, at path ("wan" or "wan.backup").
func (v *validator) uplink(path string, f *fileWAN, w *WAN, name string) {
	w.Name = or(f.Name, name)
	v.ifname(path+".name", w.Name)
	w.MatchMAC = v.matchMAC(path+".match_mac", f.MatchMAC)
	if f.SetMAC != "" {
		w.SetMAC = v.mac(path+".set_mac", f.SetMAC)
		if w.SetMAC != nil {
			if w.SetMAC[0]&1 != 0 {
				v.p.errf(path+".set_mac", "%s is a multicast address; the low bit of the first octet must be clear (e.g. %02x:%s)",
					f.SetMAC, w.SetMAC[0]&^1, strings.SplitN(w.SetMAC.String(), ":", 2)[1])
			}
			if isZero(w.SetMAC) {
				v.p.errf(path+".set_mac", "%s is the all-zero address", f.SetMAC)
			}
		}
	}
	w.Wait = v.duration(path+".wait", or(f.Wait, "30s"))
	if w.Wait > maxWANWait {
		// Start-up waits this long for a slow NIC while holding every
		// reload and rollback back.
		v.p.errf(path+".wait", "%s is longer than %s", f.Wait, maxWANWait)
	}
	w.IPv4 = v.enum(path+".ipv4", or(f.IPv4, "dhcp"), "dhcp", "static", "pppoe")
	w.Address, w.Gateway = v.wanStatic(path, "ipv4", w.IPv4, "address", f.Address, "gateway", f.Gateway, fam4)
	w.IPv6 = v.enum(path+".ipv6", or(f.IPv6, "dhcp"), "dhcp", "slaac", "static", "off")
	w.Address6, w.Gateway6 = v.wanStatic(path, "ipv6", w.IPv6, "address6", f.Address6, "gateway6", f.Gateway6, fam6)
	v.wanPrefix6(path, f, w)
	w.MTU = v.mtu(path+".mtu", f.MTU, 576, w.IPv6 != "off")
	if f.VLAN != nil {
		if n := *f.VLAN; n < 1 || n > 4094 {
			v.p.errf(path+".vlan", "%d is outside 1-4094", n)
		} else {
			w.VLAN = int(n)
		}
	}
	v.pppoe(path, f, w)
}

// pppoe checks [wan.pppoe] (ipv4 = "pppoe"). The password file is read
// with the config (Config.loadFiles).
func (v *validator) pppoe(path string, f *fileWAN, w *WAN) {
	if w.IPv4 != "pppoe" {
		if f.PPPoE != nil {
			v.p.errf(path+".pppoe", "only meaningful with ipv4 = \"pppoe\"")
		}
		return
	}
	if w.IPv6 != "off" && w.IPv6 != "dhcp" {
		v.p.errf(path+".ipv6", "%q with PPPoE: use \"dhcp\" (IPv6CP, then DHCPv6 with prefix delegation over the session) or \"off\"", w.IPv6)
	}
	if f.PPPoE == nil {
		v.p.errf(path+".pppoe", "required with ipv4 = \"pppoe\": username and password_file")
		return
	}
	p := &PPPoE{Username: f.PPPoE.Username, PasswordFile: f.PPPoE.PasswordFile, Service: f.PPPoE.Service, ACName: f.PPPoE.ACName, MTU: 1492}
	if p.Username == "" || len(p.Username) > 255 {
		v.p.errf(path+".pppoe.username", "required, up to 255 characters (the ISP's login, often user@isp)")
	}
	if p.PasswordFile == "" {
		v.p.errf(path+".pppoe.password_file", "required: a file holding the password (relative to the config's directory)")
	}
	p.LCPEcho = v.duration(path+".pppoe.lcp_echo", or(f.PPPoE.LCPEcho, "10s"))
	if p.LCPEcho < time.Second || p.LCPEcho > 5*time.Minute {
		v.p.errf(path+".pppoe.lcp_echo", "%s is outside 1s-5m", p.LCPEcho)
	}
	p.LCPFailures = 3
	if n := f.PPPoE.LCPFailures; n != nil {
		if *n < 1 || *n > 100 {
			v.p.errf(path+".pppoe.lcp_echo_failures", "%d is outside 1-100", *n)
		} else {
			p.LCPFailures = int(*n)
		}
	}
	if f.PPPoE.MTU != nil {
		if n := *f.PPPoE.MTU; n < 1280 || n > 1500 {
			v.p.errf(path+".pppoe.mtu", "%d is outside 1280-1500 (above 1492 needs baby-jumbo frames, RFC 4638)", n)
		} else {
			p.MTU = int(n)
		}
	}
	w.PPPoE = p
}

// wanStatic checks one family's static address and gateway (wan.<family>
// = "static"): required then, and meaningless otherwise. The gateway is on
// the address's subnet, or link-local (IPv6's fe80::1 is on every link).
func (v *validator) wanStatic(path, family, mode, addrKey, addrVal, gwKey, gwVal string, fam family) (netip.Prefix, netip.Addr) {
	if mode != "static" {
		for _, k := range [][2]string{{addrKey, addrVal}, {gwKey, gwVal}} {
			if k[1] != "" {
				v.p.errf(path+"."+k[0], "only meaningful with %s = \"static\"", family)
			}
		}
		return netip.Prefix{}, netip.Addr{}
	}
	var addr netip.Prefix
	var gw netip.Addr
	if addrVal == "" {
		v.p.errf(path+"."+addrKey, "required with %s = \"static\"", family)
	} else {
		addr = v.prefix(path+"."+addrKey, addrVal, fam)
	}
	if gwVal == "" {
		v.p.errf(path+"."+gwKey, "required with %s = \"static\"", family)
	} else {
		gw = v.addr(path+"."+gwKey, gwVal, fam)
		if gw.IsValid() && addr.IsValid() && !addr.Contains(gw) && !(gw.Is6() && gw.IsLinkLocalUnicast()) {
			v.p.errf(path+"."+gwKey, "%s is outside %s", gw, addr.Masked())
		}
	}
	return addr, gw
}

// wanPrefix6 checks the routed prefix the LANs' pd_subnets come from
// (ipv6 = "static").
func (v *validator) wanPrefix6(path string, f *fileWAN, w *WAN) {
	if w.IPv6 != "static" {
		if f.Prefix6 != "" {
			v.p.errf(path+".prefix6", "only meaningful with ipv6 = \"static\"")
		}
		return
	}
	if f.Prefix6 != "" {
		w.Prefix6 = v.prefix(path+".prefix6", f.Prefix6, fam6)
		if p := w.Prefix6; p.IsValid() {
			switch {
			case p.Bits() > 64:
				v.p.errf(path+".prefix6", "/%d is longer than a /64: a LAN's subnet is a /64", p.Bits())
			case p.Addr() != p.Masked().Addr():
				v.p.errf(path+".prefix6", "%s has host bits set; the prefix is %s", p, p.Masked())
			case w.Address6.IsValid() && p.Overlaps(w.Address6):
				v.p.errf(path+".prefix6", "%s overlaps %s.address6 %s: the routed prefix is the ISP's second one", p, path, w.Address6)
			}
		}
	}
}
