package rules

import (
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
}

// ApplyVPN replaces the vpn namespace's table.
func ApplyVPN(ns string, v *VPN) error {
	return replace(ns, nftables.TableFamilyINet, Table, func(r *ruleset) { v.build(r) })
}

func (v *VPN) build(r *ruleset) {
	needed := icmp6NeededSet(r)
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
	r.rule(fw, ctState(ctEstablished|ctRelated), accept())
	r.rule(fw, ctState(ctInvalid), r.counter("drop_invalid"), drop())
	r.rule(fw, iif(v.Transit), oif(v.Iface), r.counter("tunnel_out"), accept())
	r.rule(fw, r.counter("drop_kill_switch"), drop())
}
