package rules

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/routerd/routerd/netns"
)

// Pinhole opens ports of a LAN host to the internet over IPv6
// ([[firewall.pinhole]]): no NAT, the host's own global addresses, which
// the router follows as they change (the delegated prefix renumbered, a
// new SLAAC address). The addresses are the set pinhole_<name>, in the
// main and the wan namespace alike, kept current by SetPinhole.
type Pinhole struct {
	Name  string
	Ports []Port
	Addrs []netip.Addr // IPv6 only
}

func pinholeSet(name string) string { return "pinhole_" + name }

// pinholes lets new connections from the internet (matched by from,
// towards the LAN through oif when not "") to the pinholes' addresses and
// ports, each counted as pinhole_<name>.
func pinholes(r *ruleset, fw *nftables.Chain, ps []Pinhole, from exprs, oif_ string) {
	for _, p := range ps {
		set := r.set(pinholeSet(p.Name), nftables.TypeIP6Addr, false, addrElems(p.Addrs))
		ctr := r.counter(pinholeSet(p.Name))
		for _, pt := range p.Ports {
			match := cat(from, nfproto(true), addrIn(true, true, set, false), l4proto(pt.proto()), dportRange(pt.From, pt.To))
			if oif_ != "" {
				match = cat(match, oif(oif_))
			}
			r.rule(fw, match, ctr, accept())
		}
	}
}

// SetPinhole replaces a pinhole's addresses in namespace ns, in one
// transaction.
func SetPinhole(ns, name string, addrs []netip.Addr) error {
	c, done, err := openConn(ns)
	if err != nil {
		return err
	}
	defer done()
	s := &nftables.Set{Table: &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}, Name: pinholeSet(name), KeyType: nftables.TypeIP6Addr}
	c.FlushSet(s)
	if len(addrs) > 0 {
		if err := c.SetAddElements(s, addrElems(addrs)); err != nil {
			return fmt.Errorf("set %s in %s: %w", s.Name, netns.Label(ns), err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("set %s in %s: %w", s.Name, netns.Label(ns), err)
	}
	return nil
}
