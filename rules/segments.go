package rules

import (
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Segments: what each LAN may open connections to, and the user's rules
// before that. Replies always pass: the forward chain accepts established
// connections first, so a household that may reach an isolated LAN gets
// its answers, while the isolated hosts cannot open anything back.

// Access levels of a LAN (config.Access).
const (
	AccessAll      = "all"      // the internet and every LAN
	AccessInternet = "internet" // the internet only
	AccessIsolated = "isolated" // neither: the router's DHCP, DNS and NTP only
)

// Segment is one LAN interface's access.
type Segment struct {
	Iface  string
	Access string
}

// Rule is a user's forward rule: connections from From to To on Ports get
// Action ("accept", "drop" or "reject"), counted in rule_<Name>.
type Rule struct {
	Name     string
	From, To RuleMatch
	Ports    []Port
	Action   string
}

// RuleMatch is one side of a rule: any of its entries matches; empty
// matches anything. WAN is the internet, by either path: the transit
// bridge.
type RuleMatch struct {
	Ifaces     []string
	Net4, Net6 []netip.Prefix
	MACs       []net.HardwareAddr // senders only
	WAN        bool
	// Hosts: destinations named by MAC, matched by their addresses (the
	// sets rule_<name>_to_hosts4/6, kept current by SetRuleHosts); Host4
	// and Host6 are those known when the ruleset is applied.
	Hosts        bool
	Host4, Host6 []netip.Addr
}

// SetRuleHosts replaces the addresses of the hosts a rule names by MAC,
// in one transaction.
func SetRuleHosts(ns, rule string, addrs []netip.Addr) error {
	return replaceAddrSets(ns, "rule_"+rule+"_to_hosts4", "rule_"+rule+"_to_hosts6", addrs)
}

func addrElems(as []netip.Addr) []nftables.SetElement {
	var out []nftables.SetElement
	for _, a := range as {
		out = append(out, nftables.SetElement{Key: a.AsSlice()})
	}
	return out
}

// segmentSets returns the LAN interfaces that may reach the internet and
// those that may reach every LAN. Without segments every LAN may.
func (m *Main) segmentSets(r *ruleset) (internet, all *nftables.Set) {
	if s, ok := r.sets["lan_all"]; ok {
		return r.sets["lan_internet"], s
	}
	in, everything := m.LANIfaces, m.LANIfaces
	if m.Segments != nil {
		in, everything = nil, nil
		for _, s := range m.Segments {
			switch s.Access {
			case AccessAll:
				everything = append(everything, s.Iface)
				in = append(in, s.Iface)
			case AccessInternet:
				in = append(in, s.Iface)
			}
		}
	}
	return r.set("lan_internet", nftables.TypeIFName, false, ifnameElems(in)),
		r.set("lan_all", nftables.TypeIFName, false, ifnameElems(everything))
}

// segments adds the user's rules and the access defaults to the forward
// chain, after the established and invalid verdicts.
func (m *Main) segments(r *ruleset, fw *nftables.Chain, lan *nftables.Set) {
	if len(m.Rules) > 0 {
		ch := r.chain("user_rules", nil, 0, "", 0)
		for i, u := range m.Rules {
			m.userRule(r, ch, i, u)
		}
		r.rule(fw, exprs{&expr.Verdict{Kind: expr.VerdictJump, Chain: "user_rules"}})
	}
	internet, all := m.segmentSets(r)
	r.rule(fw, ifIn(false, internet, false), oif(m.Transit), accept())
	r.rule(fw, ifIn(false, all, false), ifIn(true, lan, false), accept())
	// A LAN that may not reach the others: counted, so that status shows
	// the isolation at work.
	r.rule(fw, ifIn(false, lan, false), ifIn(true, lan, false), r.counter("drop_segment"), drop())
	r.rule(fw, ifIn(false, lan, false), oif(m.Transit), r.counter("drop_segment"), drop())
}

// userRule expands one rule into nft rules: one per combination of the
// kinds of source, destination and port given.
func (m *Main) userRule(r *ruleset, ch *nftables.Chain, i int, u Rule) {
	name := "rule_" + u.Name
	type part struct {
		e  exprs
		v6 int // 0 any, 4, 6
	}
	side := func(kind string, rm RuleMatch, dst bool) []part {
		var out []part
		if len(rm.Ifaces) > 0 {
			out = append(out, part{ifIn(dst, r.set(name+"_"+kind+"_if", nftables.TypeIFName, false, ifnameElems(rm.Ifaces)), false), 0})
		}
		if len(rm.Net4) > 0 {
			out = append(out, part{addrIn(false, dst, r.set(name+"_"+kind+"4", nftables.TypeIPAddr, true, prefixElems(rm.Net4)), false), 4})
		}
		if len(rm.Net6) > 0 {
			out = append(out, part{addrIn(true, dst, r.set(name+"_"+kind+"6", nftables.TypeIP6Addr, true, prefixElems(rm.Net6)), false), 6})
		}
		if len(rm.MACs) > 0 && !dst {
			out = append(out, part{etherSaddrIn(r.set(name+"_"+kind+"_mac", nftables.TypeEtherAddr, false, macElems(rm.MACs))), 0})
		}
		if rm.Hosts && dst {
			out = append(out,
				part{addrIn(false, true, r.set(name+"_to_hosts4", nftables.TypeIPAddr, false, addrElems(rm.Host4)), false), 4},
				part{addrIn(true, true, r.set(name+"_to_hosts6", nftables.TypeIP6Addr, false, addrElems(rm.Host6)), false), 6})
		}
		if rm.WAN {
			if dst {
				out = append(out, part{oif(m.Transit), 0})
			} else {
				out = append(out, part{iif(m.Transit), 0})
			}
		}
		if len(out) == 0 {
			out = []part{{}}
		}
		return out
	}
	srcs, dsts := side("from", u.From, false), side("to", u.To, true)
	ports := []exprs{nil}
	if len(u.Ports) > 0 {
		ports = nil
		for _, p := range u.Ports {
			ports = append(ports, cat(l4proto(p.proto()), dportRange(p.From, p.To)))
		}
	}
	ctr := r.counter(name)
	for _, s := range srcs {
		for _, d := range dsts {
			if s.v6 != 0 && d.v6 != 0 && s.v6 != d.v6 {
				continue
			}
			for _, pt := range ports {
				switch u.Action {
				case "accept":
					r.rule(ch, s.e, d.e, pt, ctr, accept())
				case "reject":
					// TCP is told with a reset (a connection refused at
					// once), everything else with ICMP administratively
					// prohibited.
					r.rule(ch, s.e, d.e, pt, l4proto(unix.IPPROTO_TCP), ctr, exprs{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}})
					r.rule(ch, s.e, d.e, pt, ctr, exprs{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}})
				default:
					r.rule(ch, s.e, d.e, pt, ctr, drop())
				}
			}
		}
	}
}
