package rules

import (
	"net/netip"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// VPN is the vpn namespace's ruleset: NAT out of the tunnel and nothing
// else. Together with a routing table whose only way out is the tunnel,
// this is the kill switch: with the tunnel down, LAN traffic for the VPN
// path has nowhere to go.
type VPN struct {
	Iface      string // the WireGuard interface
	Transit    string
	MSS4, MSS6 uint16 // TCP MSS that fits the tunnel, by inner family
	// Publish are the LAN services reached through the tunnel: what
	// arrives on the tunnel's own address and port is DNATed to the LAN
	// host, the client's address untouched.
	Publish []Publish
	// Offload: the tunnel and the transit veth.
	Offload Offload
}

// Publish is a LAN service published through the tunnel's relay.
type Publish struct {
	Name     string
	Protos   []string // "tcp", "udp"
	Port     uint16   // arriving on the tunnel's addresses
	To4, To6 netip.AddrPort
	// Host: the service runs on the routerd host itself; To4 and To6 are
	// the main namespace's transit addresses.
	Host bool
}

// targets calls fn for each family the service is published on.
func (p Publish) targets(fn func(proto byte, to netip.AddrPort)) {
	for _, proto := range p.Protos {
		for _, to := range []netip.AddrPort{p.To4, p.To6} {
			if to.IsValid() {
				fn(protoNum(proto), to)
			}
		}
	}
}

// ApplyVPN replaces the vpn namespace's table.
func ApplyVPN(ns string, v *VPN) error {
	return replace(ns, nftables.TableFamilyINet, Table, func(r *ruleset) { v.build(r) })
}

func (v *VPN) build(r *ruleset) {
	needed := icmp6NeededSet(r)
	r.flowtable(v.Offload)
	if len(v.Publish) > 0 {
		pre := r.chain("prerouting", nftables.ChainHookPrerouting, -100, nftables.ChainTypeNAT, nftables.ChainPolicyAccept)
		for _, p := range v.Publish {
			p.targets(func(proto byte, to netip.AddrPort) {
				r.rule(pre, iif(v.Iface), nfproto(to.Addr().Is6()), daddrLocal(), l4proto(proto), dportRange(p.Port, p.Port), dnat(to))
			})
		}
	}
	post := r.chain("postrouting", nftables.ChainHookPostrouting, 100, nftables.ChainTypeNAT, nftables.ChainPolicyAccept)
	r.rule(post, oif(v.Iface), masq())

	in := r.chain("input", nftables.ChainHookInput, 0, nftables.ChainTypeFilter, nftables.ChainPolicyDrop)
	r.rule(in, ctState(ctEstablished|ctRelated), accept())
	r.rule(in, ctState(ctInvalid), r.counter("drop_invalid"), drop())
	r.rule(in, iif("lo"), accept())
	r.rule(in, icmp6In(needed, false), accept())
	r.rule(in, iif(v.Transit), l4proto(unix.IPPROTO_ICMP), accept())
	r.rule(in, r.counter("drop_input"), drop())

	fw := r.chain("forward", nftables.ChainHookForward, 0, nftables.ChainTypeFilter, nftables.ChainPolicyDrop)
	for _, dir := range []exprs{oif(v.Iface), iif(v.Iface)} {
		r.rule(fw, dir, nfproto(false), tcpSyn(), mssClamp(v.MSS4))
		r.rule(fw, dir, nfproto(true), tcpSyn(), mssClamp(v.MSS6))
	}
	r.offload(fw)
	r.rule(fw, ctState(ctEstablished|ctRelated), accept())
	r.rule(fw, ctState(ctInvalid), r.counter("drop_invalid"), drop())
	r.rule(fw, iif(v.Transit), oif(v.Iface), r.counter("tunnel_out"), accept())
	if len(v.Publish) > 0 {
		r.rule(fw, iif(v.Iface), oif(v.Transit), ctDNAT(), r.counter("published_in"), accept())
	}
	r.rule(fw, r.counter("drop_kill_switch"), drop())
}
