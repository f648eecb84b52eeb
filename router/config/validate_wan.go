package config

import (
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
	if w.Wait > maxWANWait {
		// Start-up waits this long for a slow NIC while holding every
		// reload and rollback back.
		v.p.errf("wan.wait", "%s is longer than %s", f.Wait, maxWANWait)
	}
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
	w.IPv6 = v.enum("wan.ipv6", or(f.IPv6, "dhcp"), "dhcp", "slaac", "static", "off")
	v.wanStatic6(f)
	w.MTU = v.mtu("wan.mtu", f.MTU, 576, w.IPv6 != "off")
}

// wanStatic6 checks ipv6 = "static": the WAN's address and gateway, and the
// routed prefix the LANs' pd_subnets come from.
func (v *validator) wanStatic6(f *fileWAN) {
	w := &v.c.WAN
	if w.IPv6 != "static" {
		for _, k := range []struct{ key, val string }{{"address6", f.Address6}, {"gateway6", f.Gateway6}, {"prefix6", f.Prefix6}} {
			if k.val != "" {
				v.p.errf("wan."+k.key, "only meaningful with ipv6 = \"static\"")
			}
		}
		return
	}
	if f.Address6 == "" {
		v.p.errf("wan.address6", "required with ipv6 = \"static\"")
	} else {
		w.Address6 = v.prefix("wan.address6", f.Address6, fam6)
	}
	if f.Gateway6 == "" {
		v.p.errf("wan.gateway6", "required with ipv6 = \"static\"")
	} else {
		w.Gateway6 = v.addr("wan.gateway6", f.Gateway6, fam6)
		// A link-local gateway (fe80::1) is on every link; another must be
		// on the address's.
		if g := w.Gateway6; g.IsValid() && !g.IsLinkLocalUnicast() && w.Address6.IsValid() && !w.Address6.Contains(g) {
			v.p.errf("wan.gateway6", "%s is outside %s (a link-local gateway such as fe80::1 is fine)", g, w.Address6.Masked())
		}
	}
	if f.Prefix6 != "" {
		w.Prefix6 = v.prefix("wan.prefix6", f.Prefix6, fam6)
		if p := w.Prefix6; p.IsValid() {
			switch {
			case p.Bits() > 64:
				v.p.errf("wan.prefix6", "/%d is longer than a /64: a LAN's subnet is a /64", p.Bits())
			case p.Addr() != p.Masked().Addr():
				v.p.errf("wan.prefix6", "%s has host bits set; the prefix is %s", p, p.Masked())
			case w.Address6.IsValid() && p.Overlaps(w.Address6):
				v.p.errf("wan.prefix6", "%s overlaps wan.address6 %s: the routed prefix is the ISP's second one", p, w.Address6)
			}
		}
	}
}
