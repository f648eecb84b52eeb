package rules

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/routerd/routerd/netns"
	"golang.org/x/sys/unix"
)

// Port is a protocol and port range.
type Port struct {
	Proto    string // "tcp" | "udp"
	From, To uint16
}

func (p Port) proto() byte {
	if p.Proto == "udp" {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

// Forward is a port forward from the WAN address to a LAN host.
type Forward struct {
	Proto string
	Port  uint16
	To    netip.AddrPort
}

// Policy sends matching new LAN connections by the path of Mark. Within a
// kind of matcher any entry matches; all kinds given must match.
type Policy struct {
	Name   string
	Src4   []netip.Prefix
	Src6   []netip.Prefix
	MACs   []net.HardwareAddr
	Ifaces []string
	Dst4   []netip.Prefix
	Dst6   []netip.Prefix
	Ports  []Port
	Mark   uint32
}

// Main is the main namespace's ruleset: the path decision for each LAN
// connection and the router's own input and forward filters.
type Main struct {
	LANIfaces  []string
	LAN4, LAN6 []netip.Prefix // merged LAN subnets
	Transit    string         // the transit bridge
	Mask       uint32         // routerd's bits of the packet mark
	MarkWAN    uint32
	MarkVPN    uint32
	Policies   []Policy
	Default    uint32 // mark for LAN connections no policy matches
	LANInput   []Port // extra router ports LAN clients may reach
	Forwards   []Forward
	// Admin are the LAN interfaces where SSH management answers, on
	// AdminPort; no other interface reaches it.
	Admin     []string
	AdminPort uint16
	// Sources are, per LAN interface, the networks its packets may come
	// from (BCP 38): anything else is dropped before conntrack sees it.
	Sources []LANSource
	// Publish are the services reached through the tunnel, and VPNMAC the
	// vpn namespace's MAC on the transit bridge: a connection from it is
	// one that came through the tunnel, and its replies go back there.
	Publish []Publish
	VPNMAC  net.HardwareAddr
	// Local are the policies for this host's own processes (routerd on a
	// host that runs other services), matched in output.
	Local []LocalPolicy
	// Offload: the LAN NICs and the transit bridge.
	Offload Offload
	// Segments are each LAN's access (nil: every LAN reaches everything);
	// Rules come before them. LANServices are router ports every LAN
	// reaches whatever its access (NTP); LANInput only LANs of access
	// all.
	Segments    []Segment
	Rules       []Rule
	LANServices []Port
	// Pinholes: IPv6 ports of LAN hosts open to the internet.
	Pinholes []Pinhole
	// PortMap: mappings LAN devices asked for pass the forward chain.
	PortMap  bool
	PortMaps []PortMapping
}

// LocalPolicy sends the traffic of some of this host's processes by the
// path of Mark: those of the users UIDs or in the cgroups.
type LocalPolicy struct {
	Name       string
	UIDs       []uint32
	Cgroups    []Cgroup
	Dst4, Dst6 []netip.Prefix
	Ports      []Port
	Mark       uint32
	// Refuse6 rejects their IPv6 beyond the router and its LANs: the
	// path has no IPv6, and it must not leave by another.
	Refuse6 bool
}

// Cgroup is a cgroup v2 as nftables matches it: its id (the inode of its
// directory) at its depth below the root.
type Cgroup struct {
	Path  string
	Level uint32
	ID    uint64
}

// LANSource is what a LAN's hosts may send from: its prefixes; link-local
// IPv6 (NDP) and the unspecified addresses (DAD, a DHCPv4 client or an
// IGMP report from a host without an address) are always allowed.
type LANSource struct {
	Iface    string
	Prefixes []netip.Prefix
}

// Chain priorities in the main namespace's prerouting. The blocklist
// table's chain runs between restore and policy, so a forced destination
// wins over any policy but never over a connection's saved path.
const (
	PrioSources = -300 // raw: before conntrack, so a forged packet leaves no trace
	PrioRestore = -160
	PrioLists   = -155
	PrioPolicy  = -150
)

// ApplyMain replaces the main namespace's table.
func ApplyMain(ns string, m *Main) error {
	return replace(ns, nftables.TableFamilyINet, Table, func(r *ruleset) { m.build(r) })
}

func (m *Main) build(r *ruleset) {
	lan := r.set("lan_ifaces", nftables.TypeIFName, false, ifnameElems(m.LANIfaces))
	lan4 := r.set("lan4", nftables.TypeIPAddr, true, prefixElems(m.LAN4))
	lan6 := r.set("lan6", nftables.TypeIP6Addr, true, prefixElems(m.LAN6))
	r.set("wan_addrs4", nftables.TypeIPAddr, false, nil)
	r.set("wan_addrs6", nftables.TypeIP6Addr, false, nil)

	m.sources(r)
	m.dnsNotrack(r, lan)

	// A connection's path, once decided, is restored on every packet.
	restore := r.chain("restore", nftables.ChainHookPrerouting, PrioRestore, nftables.ChainTypeFilter, nftables.ChainPolicyAccept)
	r.rule(restore, restoreMark(m.Mask))

	save := r.chain("save", nil, 0, "", 0)
	r.rule(save, saveMark())

	pol := r.chain("policy", nftables.ChainHookPrerouting, PrioPolicy, nftables.ChainTypeFilter, nftables.ChainPolicyAccept)
	r.rule(pol, markMasked(m.Mask, false), ret())
	// Connections from the internet (port forwards, published services)
	// answer the way they came, whatever the LAN host's own policy.
	if len(m.Publish) > 0 {
		r.rule(pol, iif(m.Transit), etherSaddrEq(m.VPNMAC), ctState(ctNew), setMark(m.MarkVPN), r.counter("inbound_vpn"), goTo("save"))
	}
	r.rule(pol, iif(m.Transit), ctState(ctNew), setMark(m.MarkWAN), r.counter("inbound_wan"), goTo("save"))
	r.rule(pol, ifIn(false, lan, true), ret())
	r.rule(pol, addrIn(false, true, lan4, false), ret())
	r.rule(pol, addrIn(true, true, lan6, false), ret())
	// Only unicast beyond the LAN has a path: not the router itself,
	// broadcast, multicast (NDP, MLD, mDNS) or link-local addresses.
	r.rule(pol, daddrNotUnicast(), ret())
	linkLocal := r.set("link_local6", nftables.TypeIP6Addr, true, prefixElems([]netip.Prefix{netip.MustParsePrefix("fe80::/10")}))
	r.rule(pol, addrIn(true, true, linkLocal, false), ret())
	// NAT loopback: the router's own public address is reached directly.
	r.rule(pol, addrIn(false, true, r.sets["wan_addrs4"], false), setMark(m.MarkWAN), r.counter("nat_loopback"), goTo("save"))
	r.rule(pol, addrIn(true, true, r.sets["wan_addrs6"], false), setMark(m.MarkWAN), r.counter("nat_loopback"), goTo("save"))
	for i, p := range m.Policies {
		m.policyRules(r, pol, i, p)
	}
	defName := "default_wan"
	if m.Default == m.MarkVPN {
		defName = "default_vpn"
	}
	r.rule(pol, setMark(m.Default), r.counter(defName), goTo("save"))

	r.flowtable(m.Offload)
	m.hostReplies(r)
	m.input(r, lan)
	m.forward(r, lan)
	m.local(r, lan4, lan6)
}

// hostReplies routes what this host's own services send on a connection
// that came through the tunnel (a published host service) back by the
// connection's path: the mark saved in conntrack is restored in output,
// and the route chain routes again by it. With the tunnel down the reply
// meets the vpn namespace's kill switch, never the WAN.
func (m *Main) hostReplies(r *ruleset) {
	host := false
	for _, p := range m.Publish {
		host = host || p.Host
	}
	if !host {
		return
	}
	out := r.chain("host_replies", nftables.ChainHookOutput, -160, nftables.ChainTypeRoute, nftables.ChainPolicyAccept)
	r.rule(out, restoreMark(m.Mask))
}

// local marks the packets of this host's processes that a local policy
// selects; the route chain re-routes them by the mark. Packets to the
// router's own addresses are marked too: that is how the resolver learns
// which path a local process's question takes (SO_RCVMARK).
func (m *Main) local(r *ruleset, lan4, lan6 *nftables.Set) {
	if len(m.Local) == 0 {
		return
	}
	out := r.chain("local_policy", nftables.ChainHookOutput, -150, nftables.ChainTypeRoute, nftables.ChainPolicyAccept)
	r.rule(out, markMasked(m.Mask, false), ret())
	for _, p := range m.Local {
		var who []exprs
		for _, uid := range p.UIDs {
			who = append(who, exprs{&expr.Meta{Key: expr.MetaKeySKUID, Register: 1}, cmpEq(native32(uid))})
		}
		for _, cg := range p.Cgroups {
			who = append(who, exprs{&expr.Socket{Key: expr.SocketKeyCgroupv2, Level: cg.Level, Register: 1},
				cmpEq(binary.NativeEndian.AppendUint64(nil, cg.ID))})
		}
		dsts := []exprs{nil}
		if len(p.Dst4)+len(p.Dst6) > 0 {
			dsts = nil
			if len(p.Dst4) > 0 {
				dsts = append(dsts, addrIn(false, true, r.set("local_"+p.Name+"_dst4", nftables.TypeIPAddr, true, prefixElems(p.Dst4)), false))
			}
			if len(p.Dst6) > 0 {
				dsts = append(dsts, addrIn(true, true, r.set("local_"+p.Name+"_dst6", nftables.TypeIP6Addr, true, prefixElems(p.Dst6)), false))
			}
		}
		prts := []exprs{nil}
		if len(p.Ports) > 0 {
			prts = nil
			for _, pr := range p.Ports {
				prts = append(prts, cat(l4proto(pr.proto()), dportRange(pr.From, pr.To)))
			}
		}
		ctr := r.counter("policy_" + p.Name)
		for _, w := range who {
			for _, d := range dsts {
				for _, pt := range prts {
					if p.Refuse6 {
						r.rule(out, w, nfproto(true), d, pt, daddrNotLocal(), addrIn(true, true, lan6, true),
							r.counter("policy_"+p.Name+"_refused6"), exprs{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}})
					}
					r.rule(out, w, d, pt, setMark(p.Mark), ctr, ret())
				}
			}
		}
	}
}

// sources drops packets from a LAN whose source address does not belong
// to it, counted by family: the router must not forward (nor answer) what a
// host forges (BCP 38).
func (m *Main) sources(r *ruleset) {
	if len(m.Sources) == 0 {
		return
	}
	ch := r.chain("sources", nftables.ChainHookPrerouting, PrioSources, nftables.ChainTypeFilter, nftables.ChainPolicyAccept)
	for i, s := range m.Sources {
		var v4, v6 []netip.Prefix
		for _, p := range s.Prefixes {
			if p.Addr().Is4() {
				v4 = append(v4, p.Masked())
			} else {
				v6 = append(v6, p.Masked())
			}
		}
		v6 = append(v6, netip.MustParsePrefix("fe80::/10"))
		set4 := r.set(fmt.Sprintf("sources%d_v4", i), nftables.TypeIPAddr, true, prefixElems(v4))
		set6 := r.set(fmt.Sprintf("sources%d_v6", i), nftables.TypeIP6Addr, true, prefixElems(v6))
		in := iif(s.Iface)
		r.rule(ch, in, addrIn(false, false, set4, false), ret())
		r.rule(ch, in, addrIn(true, false, set6, false), ret())
		r.rule(ch, in, saddrEq(netip.IPv4Unspecified()), l4proto(unix.IPPROTO_UDP), dportRange(67, 67), ret())
		// A host without an address yet may report multicast membership.
		r.rule(ch, in, saddrEq(netip.IPv4Unspecified()), l4proto(unix.IPPROTO_IGMP), ret())
		r.rule(ch, in, saddrEq(netip.IPv6Unspecified()), ret())
		r.rule(ch, in, nfproto(false), r.counter("drop_spoofed_lan4"), drop())
		r.rule(ch, in, nfproto(true), r.counter("drop_spoofed_lan6"), drop())
	}
}

// dnsNotrack takes the router's own resolver out of conntrack: a LAN
// client's question to the router and its answer are a packet each way,
// and tracking them (a conntrack entry per question, for 30 seconds) costs
// more than answering from the cache, and fills the table under load.
// Questions to other servers, which go through NAT, stay tracked; so do
// the resolver's own questions upstream, whose answers the input chain
// accepts as established.
func (m *Main) dnsNotrack(r *ruleset, lan *nftables.Set) {
	in := r.chain("dns_notrack_in", nftables.ChainHookPrerouting, PrioSources, nftables.ChainTypeFilter, nftables.ChainPolicyAccept)
	r.rule(in, ifIn(false, lan, false), l4proto(unix.IPPROTO_UDP), dportRange(53, 53), daddrLocal(), exprs{&expr.Notrack{}})
	out := r.chain("dns_notrack_out", nftables.ChainHookOutput, PrioSources, nftables.ChainTypeFilter, nftables.ChainPolicyAccept)
	r.rule(out, ifIn(true, lan, false), udpSport(53), exprs{&expr.Notrack{}})
}

// policyRules expands one policy into rules: one per combination of source
// kind, destination family and port range present (usually one or two).
func (m *Main) policyRules(r *ruleset, pol *nftables.Chain, i int, p Policy) {
	name := "policy_" + p.Name
	type part struct {
		e  exprs
		v6 int // 0 any, 4, 6
	}
	var srcs, dsts, ports []part
	set := func(kind string, key nftables.SetDatatype, interval bool, elems []nftables.SetElement) *nftables.Set {
		return r.set(name+"_"+kind, key, interval, elems)
	}
	if len(p.Src4) > 0 {
		srcs = append(srcs, part{addrIn(false, false, set("src4", nftables.TypeIPAddr, true, prefixElems(p.Src4)), false), 4})
	}
	if len(p.Src6) > 0 {
		srcs = append(srcs, part{addrIn(true, false, set("src6", nftables.TypeIP6Addr, true, prefixElems(p.Src6)), false), 6})
	}
	if len(p.MACs) > 0 {
		srcs = append(srcs, part{etherSaddrIn(set("mac", nftables.TypeEtherAddr, false, macElems(p.MACs))), 0})
	}
	if len(p.Ifaces) > 0 {
		srcs = append(srcs, part{ifIn(false, set("iif", nftables.TypeIFName, false, ifnameElems(p.Ifaces)), false), 0})
	}
	if len(p.Dst4) > 0 {
		dsts = append(dsts, part{addrIn(false, true, set("dst4", nftables.TypeIPAddr, true, prefixElems(p.Dst4)), false), 4})
	}
	if len(p.Dst6) > 0 {
		dsts = append(dsts, part{addrIn(true, true, set("dst6", nftables.TypeIP6Addr, true, prefixElems(p.Dst6)), false), 6})
	}
	for _, pr := range p.Ports {
		ports = append(ports, part{cat(l4proto(pr.proto()), dportRange(pr.From, pr.To)), 0})
	}
	any := []part{{}}
	if len(srcs) == 0 {
		srcs = any
	}
	if len(dsts) == 0 {
		dsts = any
	}
	if len(ports) == 0 {
		ports = any
	}
	ctr := r.counter(name)
	for _, s := range srcs {
		for _, d := range dsts {
			if s.v6 != 0 && d.v6 != 0 && s.v6 != d.v6 {
				continue // an IPv4 source never goes to an IPv6 destination
			}
			for _, pt := range ports {
				r.rule(pol, s.e, d.e, pt.e, setMark(p.Mark), ctr, goTo("save"))
			}
		}
	}
}

// conntrack state bits.
const (
	ctInvalid     = 0x01
	ctEstablished = 0x02
	ctRelated     = 0x04
	ctNew         = 0x08
)

// ICMPv6 types IPv6 cannot work without: errors (incl. packet-too-big) and
// neighbour discovery.
var icmp6Needed = []byte{1, 2, 3, 4, 133, 134, 135, 136, 137}

// icmp6In matches ICMPv6 of the needed types (neg: of any other type).
func icmp6In(set *nftables.Set, neg bool) exprs {
	return cat(l4proto(unix.IPPROTO_ICMPV6), exprs{
		payloadByte(0),
		lookup(set, neg),
	})
}

func (m *Main) input(r *ruleset, lan *nftables.Set) {
	needed := icmp6NeededSet(r)
	in := r.chain("input", nftables.ChainHookInput, 0, nftables.ChainTypeFilter, nftables.ChainPolicyDrop)
	// A banned address opens no new connection to the router; a session
	// it already had (an admin's SSH session) goes on.
	ban4, ban6 := r.banSets(false)
	r.dropBanned(in, ban4, ban6, false)
	r.rule(in, ctState(ctEstablished|ctRelated), accept())
	r.rule(in, ctState(ctInvalid), r.counter("drop_invalid"), drop())
	r.rule(in, iif("lo"), accept())
	// Neighbour discovery from anywhere, transit included: without it the
	// wan and vpn namespaces lose the main namespace's IPv6 address once
	// their neighbour entry goes stale, and IPv6 replies die there (the
	// "IPv6 only works while pinging" problem).
	r.rule(in, icmp6In(needed, false), accept())
	r.rule(in, ifIn(false, lan, false), l4proto(unix.IPPROTO_ICMP), accept())
	r.rule(in, ifIn(false, lan, false), l4proto(unix.IPPROTO_ICMPV6), accept())
	for _, p := range append([]Port{
		{"udp", 67, 67},   // DHCPv4
		{"udp", 547, 547}, // DHCPv6
		{"udp", 53, 53},   // DNS
		{"tcp", 53, 53},
		{"udp", 5353, 5353}, // mDNS
	}, m.LANServices...) {
		r.rule(in, ifIn(false, lan, false), l4proto(p.proto()), dportRange(p.From, p.To), accept())
	}
	_, all := m.segmentSets(r)
	for _, p := range m.LANInput {
		r.rule(in, ifIn(false, all, false), l4proto(p.proto()), dportRange(p.From, p.To), accept())
	}
	// Services of this host published through the tunnel: they arrive
	// from the vpn namespace on the transit bridge.
	for _, p := range m.Publish {
		if p.Host {
			p.targets(func(proto byte, to netip.AddrPort) {
				r.rule(in, iif(m.Transit), etherSaddrEq(m.VPNMAC), daddrEq(to.Addr()), l4proto(proto), dportRange(to.Port(), to.Port()),
					r.counter("publish_"+p.Name), accept())
			})
		}
	}
	if len(m.Admin) > 0 && m.AdminPort != 0 {
		admin := r.set("admin_ifaces", nftables.TypeIFName, false, ifnameElems(m.Admin))
		r.rule(in, ifIn(false, admin, false), l4proto(unix.IPPROTO_TCP), dportRange(m.AdminPort, m.AdminPort), accept())
	}
	// Answers to the resolver's one-shot mDNS queries come by unicast
	// from the responder's port 5353 (RFC 6762 §5.1); conntrack cannot
	// tie them to a query sent to the multicast group.
	r.rule(in, ifIn(false, lan, false), udpSport(5353), accept())
	r.rule(in, r.counter("drop_input"), drop())
}

func (m *Main) forward(r *ruleset, lan *nftables.Set) {
	fw := r.chain("forward", nftables.ChainHookForward, 0, nftables.ChainTypeFilter, nftables.ChainPolicyDrop)
	// Every established connection here was let in below and has its
	// path (the mark restored from conntrack routed it).
	r.offload(fw)
	r.rule(fw, ctState(ctEstablished|ctRelated), accept())
	r.rule(fw, ctState(ctInvalid), r.counter("drop_invalid"), drop())
	m.segments(r, fw, lan)
	for _, f := range m.Forwards {
		p := Port{Proto: f.Proto}
		r.rule(fw, iif(m.Transit), daddrEq(f.To.Addr()), l4proto(p.proto()), dportRange(f.To.Port(), f.To.Port()),
			r.counter("port_forward"), accept())
	}
	for _, p := range m.Publish {
		p.targets(func(proto byte, to netip.AddrPort) {
			r.rule(fw, iif(m.Transit), etherSaddrEq(m.VPNMAC), daddrEq(to.Addr()), l4proto(proto), dportRange(to.Port(), to.Port()),
				r.counter("publish_"+p.Name), accept())
		})
	}
	if m.PortMap {
		portMapForwardRule(r, fw, m.Transit, m.PortMaps)
	}
	pinholes(r, fw, m.Pinholes, iif(m.Transit), "")
	r.rule(fw, r.counter("drop_forward"), drop())
}

// SetWANAddrs replaces the router's public addresses in the main table (for
// NAT loopback), in one transaction.
func SetWANAddrs(ns string, addrs []netip.Addr) error {
	return replaceAddrSets(ns, "wan_addrs4", "wan_addrs6", addrs)
}

// replaceAddrSets replaces the elements of a pair of address sets of the
// main table (IPv4, IPv6) with addrs, in one transaction.
func replaceAddrSets(ns, name4, name6 string, addrs []netip.Addr) error {
	c, done, err := openConn(ns)
	if err != nil {
		return err
	}
	defer done()
	t := &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}
	s4 := &nftables.Set{Table: t, Name: name4, KeyType: nftables.TypeIPAddr}
	s6 := &nftables.Set{Table: t, Name: name6, KeyType: nftables.TypeIP6Addr}
	c.FlushSet(s4)
	c.FlushSet(s6)
	a4, a6 := splitAddrs(addrs)
	for _, x := range []struct {
		s *nftables.Set
		a []netip.Addr
	}{{s4, a4}, {s6, a6}} {
		if len(x.a) > 0 {
			if err := c.SetAddElements(x.s, addrElems(x.a)); err != nil {
				return fmt.Errorf("sets %s, %s in %s: %w", name4, name6, netns.Label(ns), err)
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("sets %s, %s in %s: %w", name4, name6, netns.Label(ns), err)
	}
	return nil
}

func splitAddrs(addrs []netip.Addr) (v4, v6 []netip.Addr) {
	for _, a := range addrs {
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	return v4, v6
}
