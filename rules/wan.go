package rules

import (
	"net/netip"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// WAN is the wan namespace's ruleset: NAT out of the WAN NIC, port forwards
// in, and the router's own exposure on the WAN.
type WAN struct {
	// Uplinks are the interfaces WAN traffic leaves by: the primary
	// uplink's (its NIC, VLAN or PPP interface), then a backup's.
	Uplinks    []string
	Transit    string // the transit veth
	LAN4, LAN6 []netip.Prefix
	Own4, Own6 []netip.Prefix // transit and loopback: never a source from outside
	Harden     bool
	ICMPRate   uint64
	ICMPUnit   string
	WGPort     uint16 // WireGuard's listen port (0: none)
	RemotePort uint16 // [remote]'s WireGuard server's (0: none)
	// RemoteTransit: RemotePort is also published through the relay: it
	// comes from the vpn namespace across the transit, and what the
	// server answers goes back that way (marked MarkVPN, which the wan
	// namespace routes to the vpn namespace), never out of the WAN.
	RemoteTransit bool
	MarkVPN       uint32
	Forwards      []Forward
	// ScanBan is how long a source scanning the WAN's closed ports is
	// banned (0: no scan detection).
	ScanBan time.Duration
	// Exempt are never banned, whatever is sent in their name: the
	// configured servers the household depends on (DNS upstreams, VPN
	// endpoints, NTP servers, list hosts) given as addresses. The router's
	// own addresses (Own4, Own6) and the peers it talks to are never
	// banned either.
	Exempt []netip.Prefix
	// Offload: the WAN NIC and the transit veth.
	Offload Offload
	// Pinholes: IPv6 ports of LAN hosts open to the internet (the same
	// as Main's).
	Pinholes []Pinhole
	// PortMap: ports LAN devices asked for (NAT-PMP, PCP), the mappings
	// as they are when the ruleset is made (UpdatePortMaps after).
	PortMap  bool
	PortMaps []PortMapping
}

var ula = netip.MustParsePrefix("fc00::/7")

// ApplyWAN replaces the wan namespace's tables. The netdev table hooks
// the uplinks' interfaces themselves, so it covers those that are there
// (the ruleset is applied again when one comes).
func ApplyWAN(ns string, w *WAN) error {
	if err := replace(ns, nftables.TableFamilyINet, Table, func(r *ruleset) { w.build(r) }); err != nil {
		return err
	}
	present := presentLinks(ns, w.Uplinks)
	if !w.Harden || len(present) == 0 {
		return Remove(ns, nftables.TableFamilyNetdev, IngressTable)
	}
	return replace(ns, nftables.TableFamilyNetdev, IngressTable, func(r *ruleset) {
		for i, dev := range present {
			w.ingress(r, dev, i == 0)
		}
	})
}

// from and to match packets arriving by and leaving through an uplink:
// its name with one, a set of them with a backup.
func (w *WAN) from(r *ruleset) exprs { return w.uplink(r, false) }
func (w *WAN) to(r *ruleset) exprs   { return w.uplink(r, true) }

func (w *WAN) uplink(r *ruleset, out bool) exprs {
	if len(w.Uplinks) == 1 {
		return ifEq(out, w.Uplinks[0], false)
	}
	s, ok := r.sets["uplinks"]
	if !ok {
		s = r.set("uplinks", nftables.TypeIFName, false, ifnameElems(w.Uplinks))
	}
	return ifIn(out, s, false)
}

func (w *WAN) build(r *ruleset) {
	needed := icmp6NeededSet(r)
	r.flowtable(w.Offload)
	// Port forwards: to the router's own address from the WAN, and from
	// the LAN too (NAT loopback).
	bans := r.wanBanSets(w)
	bans.banChain(r, needed)
	pre := r.chain("prerouting", nftables.ChainHookPrerouting, -100, nftables.ChainTypeNAT, nftables.ChainPolicyAccept)
	for _, f := range w.Forwards {
		p := Port{Proto: f.Proto}
		r.rule(pre, nfproto(f.To.Addr().Is6()), daddrLocal(), l4proto(p.proto()), dportRange(f.Port, f.Port), dnat(f.To))
	}
	if w.PortMap {
		portMapDNATRule(r, pre, w.from(r), w.PortMaps)
	}
	post := r.chain("postrouting", nftables.ChainHookPostrouting, 100, nftables.ChainTypeNAT, nftables.ChainPolicyAccept)
	r.rule(post, w.to(r), nfproto(false), masq())
	// NAT66 only for ULA sources: global addresses (a delegated prefix)
	// go out as they are.
	ulaSet := r.set("ula", nftables.TypeIP6Addr, true, prefixElems([]netip.Prefix{ula}))
	r.rule(post, w.to(r), addrIn(true, false, ulaSet, false), masq())
	// NAT loopback: the LAN host answers the router, not the LAN client.
	r.rule(post, iif(w.Transit), oif(w.Transit), ctDNAT(), masq())

	in := r.chain("input", nftables.ChainHookInput, 0, nftables.ChainTypeFilter, nftables.ChainPolicyDrop)
	r.rule(in, ctState(ctEstablished|ctRelated), accept())
	r.rule(in, ctState(ctInvalid), r.counter("drop_invalid"), drop())
	r.rule(in, iif("lo"), accept())
	r.rule(in, icmp6In(needed, false), accept())
	r.rule(in, w.from(r), udpPorts(67, 68), accept())   // DHCPv4 replies
	r.rule(in, w.from(r), udpPorts(547, 546), accept()) // DHCPv6 replies
	if w.WGPort != 0 {
		r.rule(in, w.from(r), l4proto(unix.IPPROTO_UDP), dportRange(w.WGPort, w.WGPort), accept())
	}
	if w.RemotePort != 0 {
		r.rule(in, w.from(r), l4proto(unix.IPPROTO_UDP), dportRange(w.RemotePort, w.RemotePort), r.counter("remote_wireguard"), accept())
	}
	if w.RemoteTransit {
		r.rule(in, iif(w.Transit), l4proto(unix.IPPROTO_UDP), dportRange(w.RemotePort, w.RemotePort), r.counter("remote_wireguard_relay"), accept())
		// Marked before routing, so that the reverse-path filter (with
		// src_valid_mark) finds the client behind the transit.
		mark := r.chain("remote_mark", nftables.ChainHookPrerouting, -150, nftables.ChainTypeFilter, nftables.ChainPolicyAccept)
		r.rule(mark, iif(w.Transit), l4proto(unix.IPPROTO_UDP), dportRange(w.RemotePort, w.RemotePort), setMark(w.MarkVPN), saveMark())
		back := r.chain("remote_replies", nftables.ChainHookOutput, -150, nftables.ChainTypeRoute, nftables.ChainPolicyAccept)
		r.rule(back, restoreMark(0xff))
	}
	r.rule(in, w.from(r), l4proto(unix.IPPROTO_ICMP), icmpType(8), accept())
	r.rule(in, w.from(r), l4proto(unix.IPPROTO_ICMPV6), icmpType(128), accept())
	if w.ScanBan > 0 {
		bans.scanBans(r, in, w.from(r), w.ScanBan)
	}
	r.rule(in, r.counter("drop_input"), drop())

	fw := r.chain("forward", nftables.ChainHookForward, 0, nftables.ChainTypeFilter, nftables.ChainPolicyDrop)
	// Clamp to the route's MTU both ways (SYN and SYN-ACK).
	r.rule(fw, w.to(r), tcpSyn(), mssRouteMTU())
	r.rule(fw, w.from(r), tcpSyn(), mssRouteMTU())
	out := r.chain("output", nftables.ChainHookOutput, 0, nftables.ChainTypeFilter, nftables.ChainPolicyAccept)
	bans.learnPeers(r, out, fw, w)
	r.offload(fw)
	r.rule(fw, ctState(ctEstablished|ctRelated), accept())
	r.rule(fw, ctState(ctInvalid), r.counter("drop_invalid"), drop())
	r.rule(fw, ctState(ctNew), tcpFlags(tcpSYN, tcpSYN, true), r.counter("drop_new_without_syn"), drop())
	r.rule(fw, iif(w.Transit), w.to(r), accept())
	r.rule(fw, w.from(r), oif(w.Transit), ctDNAT(), r.counter("port_forward"), accept())
	r.rule(fw, iif(w.Transit), oif(w.Transit), ctDNAT(), r.counter("nat_loopback"), accept())
	pinholes(r, fw, w.Pinholes, w.from(r), w.Transit)
	r.rule(fw, r.counter("drop_forward"), drop())
}

// ingress is an uplink's netdev hardening: it sees every packet before
// conntrack or routing do. The first uplink's chain makes the sets the
// others share.
func (w *WAN) ingress(r *ruleset, dev string, first bool) {
	name, spoof4, spoof6 := "ingress", r.sets["spoof4"], r.sets["spoof6"]
	if first {
		spoof4 = r.set("spoof4", nftables.TypeIPAddr, true, prefixElems(mergeV(w.LAN4, w.Own4)))
		spoof6 = r.set("spoof6", nftables.TypeIP6Addr, true, prefixElems(mergeV(w.LAN6, w.Own6)))
	} else {
		name += "_" + dev
	}
	in := r.c.AddChain(&nftables.Chain{Name: name, Table: r.t, Hooknum: nftables.ChainHookIngress,
		Priority: nftables.ChainPriorityRef(-500), Type: nftables.ChainTypeFilter, Device: dev})
	// DHCP comes before the address that the fib checks below need.
	r.rule(in, udpPorts(67, 68), accept())
	r.rule(in, udpPorts(547, 546), accept())
	badFlags(r, in, "")
	r.rule(in, addrInNetdev(false, false, spoof4, false), r.counter("drop_spoofed"), drop())
	r.rule(in, addrInNetdev(true, false, spoof6, false), r.counter("drop_spoofed"), drop())
	// With one uplink the source must be routed back through it (strict
	// reverse path). With a backup, the standby uplink's traffic (its
	// probes' answers) comes in by an interface the default route does
	// not use: then the source must merely be routable (loose, RFC 3704).
	r.rule(in, fibSaddrMissing(len(w.Uplinks) == 1), r.counter("drop_fib_saddr"), drop())
	// The rate limit is for what the internet asks of the router (echo,
	// timestamp, information and address mask requests): the answers to
	// the household's own pings and the router's probes, and the errors
	// its connections need (fragmentation needed), are not limited here;
	// conntrack drops the unsolicited ones further on.
	req4, req6 := icmpRequestSets(r, first)
	r.rule(in, l4proto(unix.IPPROTO_ICMP), exprs{payloadByte(0), lookup(req4, false)}, limitOver(w.ICMPRate, w.ICMPUnit), r.counter("drop_icmp_rate"), drop())
	r.rule(in, icmp6In(req6, false), limitOver(w.ICMPRate, w.ICMPUnit), r.counter("drop_icmp_rate"), drop())
}

// icmpRequests are the ICMP types that ask something of the router.
var (
	icmpRequests  = []byte{8, 13, 15, 17}
	icmp6Requests = []byte{128}
)

func icmpRequestSets(r *ruleset, first bool) (*nftables.Set, *nftables.Set) {
	if !first {
		return r.sets["icmp_requests"], r.sets["icmp6_requests"]
	}
	elems := func(ts []byte) (out []nftables.SetElement) {
		for _, t := range ts {
			out = append(out, nftables.SetElement{Key: []byte{t}})
		}
		return out
	}
	return r.set("icmp_requests", nftables.TypeICMPType, false, elems(icmpRequests)),
		r.set("icmp6_requests", nftables.TypeICMP6Type, false, elems(icmp6Requests))
}

// icmpType matches the ICMP/ICMPv6 type (after l4proto).
func icmpType(t byte) exprs {
	return exprs{payloadByte(0), cmpEq([]byte{t})}
}
