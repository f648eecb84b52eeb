package router

import (
	"context"
	"encoding/hex"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/rules"
	"github.com/vishvananda/netlink"
)

// Rules that name a destination host by MAC: a forwarded packet carries
// the router's own MAC as its destination, so such a rule matches the
// host's addresses instead, followed as they change: its reservations, its
// DHCPv4 and DHCPv6 leases (a DUID-LL or DUID-LLT carries the MAC), and
// what the neighbour tables of the LAN interfaces say (SLAAC and static
// addresses, once the router has heard from them).

// hostRules are the rules with MACs in "to".
func hostRules(cfg *config.Config) []config.Rule {
	var out []config.Rule
	for _, r := range cfg.Firewall.Rules {
		if len(r.To.MACs) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// resolveHosts maps each rule with MACs in "to" to those hosts' addresses.
func resolveHosts(cfg *config.Config, leases []dhcp.Lease, neigh map[string][]netip.Addr) map[string][]netip.Addr {
	return ruleHosts(cfg, hostsByMAC(cfg, leases, neigh))
}

// hostsByMAC is every LAN host's addresses by MAC (lower case): its
// reservations, its leases (DHCPv6 by a DUID carrying the MAC) and what the
// neighbour tables say; never link-local ones.
func hostsByMAC(cfg *config.Config, leases []dhcp.Lease, neigh map[string][]netip.Addr) map[string][]netip.Addr {
	byMAC := map[string][]netip.Addr{}
	add := func(mac string, a netip.Addr) {
		if mac != "" && a.IsValid() && !a.IsLinkLocalUnicast() && !slices.Contains(byMAC[mac], a) {
			byMAC[mac] = append(byMAC[mac], a)
		}
	}
	for _, l := range cfg.LAN {
		if l.DHCP4 != nil {
			for _, r := range l.DHCP4.Reservations {
				add(r.MAC.String(), r.IP)
			}
		}
	}
	for _, l := range leases {
		mac := l.MAC
		if mac == "" {
			mac = duidMAC(l.DUID)
		}
		add(strings.ToLower(mac), l.Addr)
	}
	for mac, addrs := range neigh {
		for _, a := range addrs {
			add(mac, a)
		}
	}
	return byMAC
}

// ruleHosts maps each rule with MACs in "to" to those hosts' addresses.
func ruleHosts(cfg *config.Config, byMAC map[string][]netip.Addr) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for _, r := range hostRules(cfg) {
		var addrs []netip.Addr
		for _, m := range r.To.MACs {
			addrs = append(addrs, byMAC[m.String()]...)
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		out[r.Name] = slices.Compact(addrs)
	}
	return out
}

// duidMAC is the MAC in a DUID-LLT (type 1) or DUID-LL (type 3) of
// Ethernet (hardware type 1), given in hex; "" for any other DUID.
func duidMAC(duid string) string {
	b, err := hex.DecodeString(strings.ReplaceAll(duid, ":", ""))
	if err != nil || len(b) < 4 || b[0] != 0 || b[2] != 0 || b[3] != 1 {
		return ""
	}
	switch {
	case b[1] == 1 && len(b) == 14:
		return net.HardwareAddr(b[8:]).String()
	case b[1] == 3 && len(b) == 10:
		return net.HardwareAddr(b[4:]).String()
	}
	return ""
}

// lanNeighbours reads the main namespace's neighbour tables on the LAN
// interfaces: MAC → addresses the router has heard it use.
func lanNeighbours(ifaces []string) map[string][]netip.Addr {
	h, err := netns.Handle("")
	if err != nil {
		return nil
	}
	defer h.Close()
	out := map[string][]netip.Addr{}
	for _, name := range ifaces {
		l, err := h.LinkByName(name)
		if err != nil {
			continue
		}
		ns, err := h.NeighList(l.Attrs().Index, netlink.FAMILY_ALL)
		if err != nil {
			continue
		}
		for _, n := range ns {
			if n.HardwareAddr == nil || n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE|netlink.NUD_NOARP) != 0 {
				continue
			}
			if a, ok := netip.AddrFromSlice(n.IP); ok {
				out[n.HardwareAddr.String()] = append(out[n.HardwareAddr.String()], a.Unmap())
			}
		}
	}
	return out
}

// syncHosts updates the rules' host sets when what the leases and the
// neighbour tables say changed (every few seconds, and at each lease).
func (c *firewallComp) syncHosts(context.Context) {
	if c.leases == nil {
		return
	}
	byMAC := hostsByMAC(c.cfg, c.leases(), lanNeighbours(c.cfg.LANNets.Ifaces))
	hosts := ruleHosts(c.cfg, byMAC)
	c.mu.Lock()
	sameHosts := maps.EqualFunc(hosts, c.hosts, slices.Equal[[]netip.Addr])
	c.facts.byMAC = byMAC
	pins := pinholeAddrs(c.cfg, c.facts.deleg, byMAC)
	samePins := maps.EqualFunc(pins, c.facts.pins, slices.Equal[[]netip.Addr])
	c.mu.Unlock()
	if sameHosts && samePins {
		return
	}
	c.applying.Lock()
	defer c.applying.Unlock()
	for name, addrs := range hosts {
		if err := rules.SetRuleHosts("", name, addrs); err != nil {
			c.log.Warn("update a rule's hosts", "rule", name, "err", err)
			return
		}
	}
	if !samePins {
		if err := c.setPinholes(pins); err != nil {
			c.log.Warn("update the pinholes' addresses", "err", err)
			return
		}
	}
	c.mu.Lock()
	c.hosts = hosts
	c.facts.pins = pins
	c.main, c.wan, c.vpn = firewallSpecs(c.cfg, c.facts) // a ruleset applied anew starts with them
	c.mu.Unlock()
	c.log.Debug("hosts by MAC updated", "rules", hosts, "pinholes", pins)
}

// setPinholes puts the pinholes' addresses in their sets, in the main and
// the wan namespace.
func (c *firewallComp) setPinholes(pins map[string][]netip.Addr) error {
	for _, p := range c.cfg.Firewall.Pinholes {
		for _, ns := range []string{"", c.cfg.Netns.WAN} {
			if err := rules.SetPinhole(ns, p.Name, pins[p.Name]); err != nil {
				return err
			}
		}
	}
	return nil
}

// pinholeAddrs are each pinhole's host's global addresses in the delegated
// prefixes. A host named by MAC: every address the router knows it by
// (leases, neighbours), and its EUI-64 address in every LAN's delegated
// subnet, which a server using SLAAC takes in a new prefix before it has
// said a word from it (a silent server is only found by the packets the
// pinhole lets in). A host named by interface identifier: that identifier
// in every LAN's delegated subnet.
func pinholeAddrs(cfg *config.Config, d delegated, byMAC map[string][]netip.Addr) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	inSubnets := func(iid [16]byte) []netip.Addr {
		var addrs []netip.Addr
		for _, l := range cfg.LAN {
			for _, sub := range d.byLAN[l.Name] {
				b := sub.Masked().Addr().As16()
				copy(b[8:], iid[8:])
				addrs = append(addrs, netip.AddrFrom16(b))
			}
		}
		return addrs
	}
	for _, p := range cfg.Firewall.Pinholes {
		var addrs []netip.Addr
		if p.MAC != nil {
			for _, a := range byMAC[p.MAC.String()] {
				if a.Is6() && slices.ContainsFunc(d.prefixes, func(pf netip.Prefix) bool { return pf.Contains(a) }) {
					addrs = append(addrs, a)
				}
			}
			if len(p.MAC) == 6 {
				m := p.MAC
				addrs = append(addrs, inSubnets([16]byte{8: m[0] ^ 0x02, 9: m[1], 10: m[2], 11: 0xff, 12: 0xfe, 13: m[3], 14: m[4], 15: m[5]})...)
			}
		} else {
			addrs = inSubnets(p.IID.As16())
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		out[p.Name] = slices.Compact(addrs)
	}
	return out
}

// withHosts gives the rules that name hosts by MAC the addresses known
// now, so that a ruleset applied anew starts with them.
func withHosts(rs []rules.Rule, hosts map[string][]netip.Addr) []rules.Rule {
	out := slices.Clone(rs)
	for i := range out {
		if out[i].To.Hosts {
			out[i].To.Host4, out[i].To.Host6 = byFamily(hosts[out[i].Name], netip.Addr.Is4)
		}
	}
	return out
}
