package config

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Segments: a LAN's link (one NIC, a bridge of ports, or a VLAN), its
// access, static routes, firewall rules, DHCPv4 options and the mDNS
// reflector.

// lanLink reads how the LAN reaches its hosts: match_mac (one NIC), ports
// (a bridge) or parent and vlan (an 802.1Q sub-interface), and its access.
func (v *validator) lanLink(path string, f *fileLAN, l *LAN) {
	l.Access = Access(v.enum(path+".access", or(f.Access, string(AccessAll)), string(AccessAll), string(AccessInternet), string(AccessIsolated)))
	kinds := 0
	for _, set := range []bool{f.MatchMAC != "", len(f.Ports) > 0, f.Parent != "" || f.VLAN != nil} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds > 1:
		v.p.errf(path, "give one of match_mac (one NIC), ports (a bridge of NICs) or parent and vlan (a VLAN)")
		return
	case len(f.Ports) > 0:
		for i, port := range f.Ports {
			pp := idx(path+".ports", i)
			name := port.Name
			if name == "" {
				name = fmt.Sprintf("%sp%d", l.Name, i)
			}
			if len(name) > 15 {
				v.p.errf(pp+".name", "%q (from the LAN's name) is longer than 15 bytes: give the port a shorter name", name)
			} else {
				v.ifname(pp+".name", name)
			}
			l.Ports = append(l.Ports, Port{Name: name, MatchMAC: v.matchMAC(pp+".match_mac", port.MatchMAC)})
		}
	case f.Parent != "" || f.VLAN != nil:
		if f.Parent == "" {
			v.p.errf(path+".parent", "required with vlan: the LAN whose ports carry the VLAN")
		}
		l.Parent = f.Parent
		if f.VLAN == nil {
			v.p.errf(path+".vlan", "required with parent: the VLAN id (1-4094)")
		} else if n := *f.VLAN; n < 1 || n > 4094 {
			v.p.errf(path+".vlan", "%d is outside 1-4094", n)
		} else {
			l.VLAN = int(n)
		}
	default:
		l.MatchMAC = v.matchMAC(path+".match_mac", f.MatchMAC)
	}
}

// vlans checks each VLAN's parent (after every LAN is known) and makes a
// parent that is one NIC a bridge of that NIC.
func (v *validator) vlans() {
	seen := map[string]int{}
	for i := range v.c.LAN {
		l := &v.c.LAN[i]
		if l.Parent == "" {
			continue
		}
		path := idx("lan", i)
		j := slices.IndexFunc(v.c.LAN, func(o LAN) bool { return o.Name == l.Parent })
		switch {
		case j < 0:
			v.p.errf(path+".parent", "%q is not the name of a [[lan]]", l.Parent)
			continue
		case j == i:
			v.p.errf(path+".parent", "a LAN cannot be its own parent")
			continue
		case v.c.LAN[j].Parent != "":
			v.p.errf(path+".parent", "%q is itself a VLAN; VLANs go on a LAN of NICs", l.Parent)
			continue
		}
		if l.VLAN == 0 {
			continue
		}
		key := fmt.Sprintf("%s/%d", l.Parent, l.VLAN)
		if k, dup := seen[key]; dup {
			v.p.errf(path+".vlan", "VLAN %d on %s is already lan[%d]", l.VLAN, l.Parent, k)
		}
		seen[key] = i
		if l.MTU != 0 && v.c.LAN[j].MTU != 0 && l.MTU > v.c.LAN[j].MTU {
			v.p.errf(path+".mtu", "%d is above the parent's MTU %d", l.MTU, v.c.LAN[j].MTU)
		}
		if p := &v.c.LAN[j]; p.MatchMAC != nil {
			name := p.Name + "p0"
			if len(name) > 15 {
				v.p.errf(idx("lan", j)+".name", "%q carries VLANs, so its NIC becomes a bridge port named %q: longer than 15 bytes", p.Name, name)
				continue
			}
			v.ifname(idx("lan", j)+".match_mac", name)
			p.Ports = []Port{{Name: name, MatchMAC: p.MatchMAC}}
			p.MatchMAC = nil
		}
	}
}

// routes reads [[route]]: each gateway on a LAN, the network not one of
// the router's own.
func (v *validator) routes(fs []fileRoute) {
	for i, f := range fs {
		path := idx("route", i)
		r := StaticRoute{Advertise: f.Advertise}
		r.To = v.prefix(path+".to", f.To, famAny)
		r.Via = v.addr(path+".via", f.Via, famAny)
		if !r.To.IsValid() || !r.Via.IsValid() {
			continue
		}
		if r.To != r.To.Masked() {
			v.p.errf(path+".to", "%s has host bits set; did you mean %s?", r.To, r.To.Masked())
			continue
		}
		if r.To.Bits() == 0 {
			v.p.errf(path+".to", "a default route goes by routing.default, not through a LAN gateway")
			continue
		}
		if r.To.Addr().Is4() != r.Via.Is4() {
			v.p.errf(path+".via", "%s and %s are of different families", r.Via, r.To)
			continue
		}
		for j, l := range v.c.LAN {
			for _, a := range l.Addresses {
				if a.Masked().Contains(r.Via) {
					if a.Addr() == r.Via {
						v.p.errf(path+".via", "%s is the router's own address on %s", r.Via, l.Name)
					}
					r.LAN = l.Name
				}
				if a.Masked().Overlaps(r.To) {
					v.p.errf(path+".to", "%s overlaps %s of lan[%d] (%s)", r.To, a.Masked(), j, l.Name)
				}
			}
		}
		if r.LAN == "" {
			v.p.errf(path+".via", "%s is on no LAN: the gateway must be a host in a [[lan]]'s subnet", r.Via)
		}
		for _, t := range []netip.Prefix{v.c.Netns.Transit4, v.c.Netns.Transit6} {
			if t.IsValid() && t.Overlaps(r.To) {
				v.p.errf(path+".to", "%s overlaps the transit network %s", r.To, t)
			}
		}
		if r.Advertise && r.To.Addr().Is6() {
			v.p.errf(path+".advertise", "option 121 is DHCPv4's: an IPv6 route is not advertised")
		}
		for j, o := range v.c.Routes {
			if o.To.Overlaps(r.To) {
				v.p.errf(path+".to", "%s overlaps route[%d] (%s)", r.To, j, o.To)
			}
		}
		v.c.Routes = append(v.c.Routes, r)
		// The networks behind a LAN's gateway are the household's too:
		// their hosts use the resolver, and BCP 38 lets them in.
		if r.To.Addr().Is4() {
			v.c.LANNets.V4 = append(v.c.LANNets.V4, r.To)
		} else {
			v.c.LANNets.V6 = append(v.c.LANNets.V6, r.To)
		}
	}
}

// ruleActions are what a rule may do.
var ruleActions = []string{"accept", "drop", "reject"}

// rules reads [[firewall.rule]].
func (v *validator) rules(fs []fileRule) {
	names := map[string]int{}
	for i, f := range fs {
		path := idx("firewall.rule", i)
		r := Rule{Name: f.Name, Action: v.enum(path+".action", f.Action, ruleActions...)}
		v.uniqueName(path, "firewall.rule", f.Name, i, names)
		r.From = v.match(path+".from", f.From)
		r.To = v.match(path+".to", f.To)
		for j, s := range f.Ports {
			pr, err := ParsePortRange(s)
			if err != nil {
				v.p.errf(idx(path+".ports", j), "%q: %v", s, err)
				continue
			}
			r.Ports = append(r.Ports, pr)
		}
		if r.From.WAN && r.To.WAN {
			v.p.errf(path, "from and to are both \"wan\": the router forwards nothing from the internet to it")
		}
		v.c.Firewall.Rules = append(v.c.Firewall.Rules, r)
	}
}

// match reads one side of a rule.
func (v *validator) match(path string, ss []string) Match {
	var m Match
	for i, s := range ss {
		if s == "wan" {
			m.WAN = true
			continue
		}
		sel, ok := v.selector(idx(path, i), s)
		if !ok {
			v.p.errf(idx(path, i), "%q is not a [[lan]] name, IP, CIDR, MAC or \"wan\"", s)
			continue
		}
		m.LANs = appendIf(m.LANs, sel.lan, sel.lan != "")
		m.MACs = appendIf(m.MACs, sel.mac, sel.mac != nil)
		m.Prefixes = appendIf(m.Prefixes, sel.prefix, sel.prefix.IsValid())
	}
	return m
}

// reflect reads dns.mdns_reflect.
func (v *validator) reflect(path string, names []string) []string {
	if len(names) == 1 {
		v.p.errf(path, "relays between LANs: name at least two")
	}
	var out []string
	for i, n := range names {
		switch {
		case !v.isLAN(n):
			v.p.errf(idx(path, i), "%q is not the name of a [[lan]]", n)
		case slices.Contains(out, n):
			v.p.errf(idx(path, i), "%q is named twice", n)
		default:
			out = append(out, n)
		}
	}
	return out
}

// dhcpOption is how routerd encodes an option given by number.
type dhcpOption struct {
	kind string // "ips" | "string" | "u8" | "u16" | "u32" | "bool"
	what string
}

// dhcpOptions are the options a config may give by number; the others are
// routerd's own (named in ownedDHCPOptions) or unknown to it.
var dhcpOptions = map[uint8]dhcpOption{
	4: {"ips", "time servers"}, 7: {"ips", "log servers"}, 9: {"ips", "LPR servers"},
	17: {"string", "root path"}, 19: {"bool", "IP forwarding"}, 23: {"u8", "default TTL"},
	40: {"string", "NIS domain"}, 41: {"ips", "NIS servers"}, 44: {"ips", "NetBIOS name servers"},
	46: {"u8", "NetBIOS node type"}, 47: {"string", "NetBIOS scope"}, 64: {"string", "NIS+ domain"},
	65: {"ips", "NIS+ servers"}, 66: {"string", "TFTP server name"}, 67: {"string", "boot file name"},
	69: {"ips", "SMTP servers"}, 70: {"ips", "POP3 servers"}, 72: {"ips", "WWW servers"},
	114: {"string", "captive portal URI"}, 150: {"ips", "TFTP server addresses"},
	252: {"string", "WPAD URL"},
}

// ownedDHCPOptions are set from other keys.
var ownedDHCPOptions = map[uint8]string{
	1: "the LAN's address", 3: "lan.dhcp4.router", 6: "lan.dhcp4.dns", 12: "the client",
	15: "dns.domain", 26: "lan.mtu", 28: "the LAN's address", 42: "lan.dhcp4.ntp",
	50: "the server", 51: "lan.dhcp4.lease_time", 53: "the server", 54: "the server",
	55: "the client", 58: "the server", 59: "the server", 61: "the client", 81: "the client",
	82: "the relay agent", 119: "lan.dhcp4.domain_search", 121: "[[route]] advertise",
}

// dhcp4Options reads the options given by number and the typed ones.
func (v *validator) dhcp4Options(path string, f *fileDHCP4, d *DHCP4) {
	if d == nil {
		return
	}
	codes := make([]string, 0, len(f.Options))
	for k := range f.Options {
		codes = append(codes, k)
	}
	sort.Strings(codes)
	for _, k := range codes {
		op := path + ".options." + k
		n, err := strconv.ParseUint(k, 10, 8)
		if err != nil || n == 0 || n == 255 {
			v.p.errf(op, "%q is not a DHCP option number (1-254)", k)
			continue
		}
		code := uint8(n)
		if by, owned := ownedDHCPOptions[code]; owned {
			v.p.errf(op, "option %d is set by %s", code, by)
			continue
		}
		def, known := dhcpOptions[code]
		if !known && code >= 224 { // site-specific: as text
			def, known = dhcpOption{"string", "site-specific"}, true
		}
		if !known {
			v.p.errf(op, "option %d: routerd does not know its format (options it takes by number: %s, and 224-254 as text)", code, knownOptionList())
			continue
		}
		b, err := encodeOption(def.kind, f.Options[k])
		if err != nil {
			v.p.errf(op, "option %d (%s): %v", code, def.what, err)
			continue
		}
		d.Options = append(d.Options, DHCPOption{Code: code, Value: b})
	}
	for i, s := range f.NTP {
		if a := v.addr(idx(path+".ntp", i), s, fam4); a.IsValid() {
			d.NTP = append(d.NTP, a)
		}
	}
	for i, s := range f.DomainSearch {
		name := strings.TrimSuffix(strings.ToLower(s), ".")
		if !validDomain(name) {
			v.p.errf(idx(path+".domain_search", i), "%q is not a domain name", s)
			continue
		}
		d.DomainSearch = append(d.DomainSearch, name)
	}
}

func knownOptionList() string {
	var ns []int
	for c := range dhcpOptions {
		ns = append(ns, int(c))
	}
	sort.Ints(ns)
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// encodeOption encodes a TOML value as an option of kind.
func encodeOption(kind string, val any) ([]byte, error) {
	switch kind {
	case "string":
		s, ok := val.(string)
		if !ok || s == "" || len(s) > 255 {
			return nil, fmt.Errorf("want a string of 1-255 bytes")
		}
		return []byte(s), nil
	case "ips":
		var list []any
		switch x := val.(type) {
		case string:
			list = []any{x}
		case []any:
			list = x
		}
		var b []byte
		for _, e := range list {
			s, _ := e.(string)
			a, err := netip.ParseAddr(s)
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("%v is not an IPv4 address", e)
			}
			b = append(b, a.AsSlice()...)
		}
		if len(b) == 0 || len(b) > 252 {
			return nil, fmt.Errorf("want one or more IPv4 addresses (a string or a list)")
		}
		return b, nil
	case "bool":
		x, ok := val.(bool)
		if !ok {
			return nil, fmt.Errorf("want true or false")
		}
		if x {
			return []byte{1}, nil
		}
		return []byte{0}, nil
	}
	n, ok := val.(int64)
	limit := map[string]int64{"u8": 0xff, "u16": 0xffff, "u32": 0xffffffff}[kind]
	if !ok || n < 0 || n > limit {
		return nil, fmt.Errorf("want a whole number 0-%d", limit)
	}
	switch kind {
	case "u8":
		return []byte{byte(n)}, nil
	case "u16":
		return binary.BigEndian.AppendUint16(nil, uint16(n)), nil
	}
	return binary.BigEndian.AppendUint32(nil, uint32(n)), nil
}

// pinholes reads [[firewall.pinhole]].
func (v *validator) pinholes(fs []filePinhole) {
	names := map[string]int{}
	for i, f := range fs {
		path := idx("firewall.pinhole", i)
		p := Pinhole{Name: f.Name}
		v.uniqueName(path, "firewall.pinhole", f.Name, i, names)
		if strings.Count(f.To, ":") == 5 && !strings.Contains(f.To, "::") {
			p.MAC = v.mac(path+".to", f.To)
		} else if a, err := netip.ParseAddr(f.To); err == nil && a.Is6() && !a.Is4In6() && a.Zone() == "" && binary.BigEndian.Uint64(a.AsSlice()[:8]) == 0 && !a.IsUnspecified() {
			p.IID = a
		} else {
			v.p.errf(path+".to", "%q: want a LAN host's MAC (aa:bb:cc:00:00:01) or an interface identifier (\"::10\")", f.To)
		}
		if len(f.Ports) == 0 {
			v.p.errf(path+".ports", "required: which ports to open (\"tcp/443\")")
		}
		for j, s := range f.Ports {
			pr, err := ParsePortRange(s)
			if err != nil {
				v.p.errf(idx(path+".ports", j), "%q: %v", s, err)
				continue
			}
			p.Ports = append(p.Ports, pr)
		}
		v.c.Firewall.Pinholes = append(v.c.Firewall.Pinholes, p)
	}
}

// uniqueName checks the name of section[i] (at path), which status and
// counters show: given, of letters, digits, '-' and '_', and not another
// entry's; names holds those seen so far.
func (v *validator) uniqueName(path, section, name string, i int, names map[string]int) {
	switch j, dup := names[name]; {
	case name == "":
		v.p.errf(path+".name", "required")
	case !validSetName(name):
		v.p.errf(path+".name", "%q: use letters, digits, '-' and '_' (at most 32)", name)
	case dup:
		v.p.errf(path+".name", "%q is also the name of %s[%d]", name, section, j)
	default:
		names[name] = i
	}
}
