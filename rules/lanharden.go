package rules

import (
	"github.com/google/nftables"
)

// LANIngressTable is the main namespace's netdev table: the ingress checks
// of the LAN interfaces.
const LANIngressTable = "routerd_lan_ingress"

// LANIngress hardens the LAN interfaces as the WAN NIC is (seed 003 runs
// the same checks on every NIC): TCP flag combinations no stack sends and
// SYNs with a tiny MSS are dropped at ingress, before conntrack, and counted
// per interface (drop_<reason>_<iface>). Spoofed sources are BCP 38's job
// (the sources chain), the fib check's too on a LAN.
type LANIngress struct {
	Ifaces []string
}

// ApplyLANIngress replaces the table in namespace ns over the interfaces
// of l that exist now (a netdev chain needs its device); with none it is
// removed. The firewall applies it again when a NIC comes.
func ApplyLANIngress(ns string, l *LANIngress) error {
	var present []string
	if l != nil {
		present = presentLinks(ns, l.Ifaces)
	}
	if len(present) == 0 {
		return Remove(ns, nftables.TableFamilyNetdev, LANIngressTable)
	}
	return replace(ns, nftables.TableFamilyNetdev, LANIngressTable, func(r *ruleset) {
		for _, dev := range present {
			ch := r.c.AddChain(&nftables.Chain{Name: "ingress_" + dev, Table: r.t, Hooknum: nftables.ChainHookIngress,
				Priority: nftables.ChainPriorityRef(-500), Type: nftables.ChainTypeFilter, Device: dev})
			badFlags(r, ch, "_"+dev)
		}
	})
}

// badFlags drops, most specific first so each packet is counted under its
// own reason, what no TCP stack sends: the checks the WAN NIC and the
// LANs share.
func badFlags(r *ruleset, ch *nftables.Chain, suffix string) {
	all := byte(tcpFIN | tcpSYN | tcpRST | tcpPSH | tcpACK | tcpURG)
	r.rule(ch, tcpFlags(all, all, false), r.counter("drop_xmas"+suffix), drop())
	r.rule(ch, tcpFlags(all, 0, false), r.counter("drop_null"+suffix), drop())
	r.rule(ch, tcpFlags(tcpFIN|tcpSYN, tcpFIN|tcpSYN, false), r.counter("drop_syn_fin"+suffix), drop())
	r.rule(ch, tcpFlags(tcpSYN|tcpRST, tcpSYN|tcpRST, false), r.counter("drop_syn_rst"+suffix), drop())
	r.rule(ch, tcpSyn(), mssBetween(0, 499), r.counter("drop_small_mss"+suffix), drop())
}
