package config

import (
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/routerd/routerd/internal/via"
)

// Checks of single values, each reporting its own error by field path.

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

// inDir resolves a file the config names relative to dir (the config
// file's directory).
func inDir(dir, file string) string {
	if filepath.IsAbs(file) {
		return file
	}
	return filepath.Join(dir, file)
}

// stateFile resolves a path relative to state_dir.
func (v *validator) stateFile(p string) string { return inDir(v.c.StateDir, p) }

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
