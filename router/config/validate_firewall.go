package config

// [firewall]: hardening, LAN input and port forwards.

import (
	"fmt"
)

// Conntrack capacities a config may ask for.
const (
	minConnections = 16
	maxConnections = 1 << 26
)

// maxConnections checks a conntrack capacity (firewall's or relay's).
func (v *validator) maxConnections(path string, n int64) int {
	if n < minConnections || n > maxConnections {
		v.p.errf(path, "%d is outside %d-%d", n, minConnections, maxConnections)
		return 0
	}
	return int(n)
}

// MaxConnectionsFor is the default conntrack capacity of a machine with
// mem bytes of memory: one connection per 16 KiB, between OpenWrt's 16384
// and 262144. A tracked connection costs about 320 bytes in each namespace
// it crosses (two: main and wan or vpn), so even a full table stays under
// 4% of memory; the kernel's own default gives a 1 GiB box 8192, which a
// household with a game console and a torrent client runs out of.
func MaxConnectionsFor(mem uint64) int {
	return int(min(max(mem/(16<<10), 16384), 262144))
}

func (v *validator) firewall(f *fileFirewall) {
	fw := &v.c.Firewall
	fw.Harden = f.Harden == nil || *f.Harden
	fw.HardenLAN = f.HardenLAN == nil || *f.HardenLAN
	if f.Log != "" {
		fw.Log = v.enum("firewall.log", f.Log, "rate")
	}
	fw.FlowOffload = f.FlowOffload == nil || *f.FlowOffload
	if f.MaxConnections != nil {
		fw.MaxConnections = v.maxConnections("firewall.max_connections", *f.MaxConnections)
	}
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
