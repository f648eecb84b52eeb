package rules

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/routerd/routerd/netns"
	"golang.org/x/sys/unix"
)

// Port mappings that LAN devices asked for (NAT-PMP, PCP): elements of
// one map in the wan namespace (protocol . port → the host's address .
// port, which DNATs them) and of one set in main (the host's address .
// protocol . port, which lets them through the forward chain); never
// rules, so that a console's fifty mappings cost one lookup each way.

// PortMapping is one mapped port of the WAN's IPv4 address.
type PortMapping struct {
	Proto    string // "tcp" | "udp"
	External uint16
	To       netip.AddrPort // IPv4
}

const (
	portMapDNAT    = "portmap4"
	portMapForward = "portmap_fwd4"
)

// mapKey: meta l4proto . th dport, each padded to 4 bytes.
func (p PortMapping) mapKey() []byte { return forwardKey(protoNum(p.Proto), p.External) }

// mapVal: ip daddr . th dport of the DNAT, the port padded.
func (p PortMapping) mapVal() []byte {
	v := p.To.Addr().AsSlice()
	v = binary.BigEndian.AppendUint16(v, p.To.Port())
	return append(v, 0, 0)
}

// fwdKey: ip daddr . meta l4proto . th dport, padded.
func (p PortMapping) fwdKey() []byte {
	k := p.To.Addr().AsSlice()
	k = append(k, protoNum(p.Proto), 0, 0, 0)
	k = binary.BigEndian.AppendUint16(k, p.To.Port())
	return append(k, 0, 0)
}

func portMapDNATSet(t *nftables.Table) *nftables.Set {
	key, _ := nftables.ConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	data, _ := nftables.ConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	return &nftables.Set{Table: t, Name: portMapDNAT, KeyType: key, DataType: data, IsMap: true, Concatenation: true}
}

func portMapForwardSet(t *nftables.Table) *nftables.Set {
	key, _ := nftables.ConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	return &nftables.Set{Table: t, Name: portMapForward, KeyType: key, Concatenation: true}
}

// portMapDNATRule DNATs what comes to the WAN's own address on a mapped
// port (after the configured port forwards, which win).
func portMapDNATRule(r *ruleset, pre *nftables.Chain, fromWAN exprs, ms []PortMapping) {
	s := portMapDNATSet(r.t)
	var elems []nftables.SetElement
	for _, m := range ms {
		elems = append(elems, nftables.SetElement{Key: m.mapKey(), Val: m.mapVal()})
	}
	r.addSet(s, elems)
	r.sets[s.Name] = s
	r.rule(pre, fromWAN, nfproto(false), daddrLocal(), exprs{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, DestRegister: 1, IsDestRegSet: true},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9, Specified: true},
	})
}

// portMapForwardRule lets the mapped connections from the transit bridge
// through main's forward chain, counted as portmap.
func portMapForwardRule(r *ruleset, fw *nftables.Chain, transit string, ms []PortMapping) {
	s := portMapForwardSet(r.t)
	var elems []nftables.SetElement
	for _, m := range ms {
		elems = append(elems, nftables.SetElement{Key: m.fwdKey()})
	}
	r.addSet(s, elems)
	r.sets[s.Name] = s
	r.rule(fw, iif(transit), nfproto(false), exprs{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
		&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
	}, r.counter("portmap"), accept())
}

// UpdatePortMaps adds and removes mappings: the wan namespace's map and
// main's set, each in one transaction.
func UpdatePortMaps(wanNS, mainNS string, add, del []PortMapping) error {
	for _, side := range []struct {
		ns  string
		set func(*nftables.Table) *nftables.Set
		el  func(PortMapping) nftables.SetElement
	}{
		{wanNS, portMapDNATSet, func(m PortMapping) nftables.SetElement { return nftables.SetElement{Key: m.mapKey(), Val: m.mapVal()} }},
		{mainNS, portMapForwardSet, func(m PortMapping) nftables.SetElement { return nftables.SetElement{Key: m.fwdKey()} }},
	} {
		c, done, err := openConn(side.ns)
		if err != nil {
			return err
		}
		s := side.set(&nftables.Table{Name: Table, Family: nftables.TableFamilyINet})
		var d, a []nftables.SetElement
		for _, m := range del {
			d = append(d, side.el(m))
		}
		for _, m := range add {
			a = append(a, side.el(m))
		}
		if len(d) > 0 {
			if err := c.SetDeleteElements(s, d); err != nil {
				done()
				return fmt.Errorf("port mappings in %s: %w", netns.Label(side.ns), err)
			}
		}
		if len(a) > 0 {
			if err := c.SetAddElements(s, a); err != nil {
				done()
				return fmt.Errorf("port mappings in %s: %w", netns.Label(side.ns), err)
			}
		}
		err = c.Flush()
		done()
		if err != nil {
			return fmt.Errorf("port mappings in %s: %w", netns.Label(side.ns), err)
		}
	}
	return nil
}
