package rules

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Relay is the ruleset of routerd as a relay (a VPS with one public NIC):
// public ports DNATed into the tunnel with the client's address kept, the
// peers' own traffic NATed out of the public NIC, MSS clamped to the
// tunnel. Seed 000 wrote one rule per match × address × port × protocol;
// here every forward of a family is an element of one map (two: ports
// mapped to a given port, ranges that keep theirs), so the ruleset has the
// same dozen rules for one forward or a thousand.
//
// The relay is someone's VPS: routerd filters only what crosses its tunnel
// and leaves the host's input and its other forwarding alone.
type Relay struct {
	Public     []string // the VPS's public NICs
	Tunnel     string
	Own        []netip.Addr // the relay's tunnel addresses: never DNATed
	Forwards   []RelayForward
	Masquerade bool
	Pool4      []netip.Addr
	Pool6      []netip.Addr
	MSS4, MSS6 uint16
	// Offload: the public NIC and the tunnel. Only what crosses the
	// tunnel is offloaded: the VPS's other forwarding is not routerd's.
	Offload Offload
	// ForwardDrop: the forward chain's policy drops what the relay does
	// not forward itself (counted as drop_forward).
	ForwardDrop bool
	// TunnelPool4/6 are the relay's tunnel addresses, the sources of
	// forwards with SNATPool.
	TunnelPool4, TunnelPool6 []netip.Addr
}

// RelayForward is one public port or range into the tunnel.
type RelayForward struct {
	Protos   []string // "tcp", "udp"
	From, To uint16
	Target   netip.Addr
	ToPort   uint16 // 0: keep the port
	// SNATPool: the source becomes one of the tunnel pool's addresses,
	// a new connection to the next (seed 000); false keeps the client's.
	SNATPool bool
	// MatchIPs: only arrivals to these public addresses (counted as
	// forward_<Index>); empty: to any of the relay's.
	MatchIPs []netip.Addr
	Index    int
}

// dport is the port a forward's connections arrive on at the target,
// for a single port.
func (f RelayForward) dport() uint16 {
	switch {
	case f.ToPort != 0:
		return f.ToPort
	default:
		return f.From
	}
}

// Map names: by family, and whether the target port is given or kept.
func relayMap(v6, keep bool) string {
	name := "fwd4"
	if v6 {
		name = "fwd6"
	}
	if keep {
		name += "_keep"
	}
	return name
}

// ApplyRelay replaces the relay's table in namespace ns.
func ApplyRelay(ns string, rl *Relay) error {
	return replace(ns, nftables.TableFamilyINet, Table, func(r *ruleset) { rl.build(r) })
}

func protoNum(p string) byte { return Port{Proto: p}.proto() }

// forwardKey is a map key: meta l4proto . th dport, each padded to 4 bytes.
func forwardKey(proto byte, port uint16) []byte {
	k := make([]byte, 8)
	k[0] = proto
	binary.BigEndian.PutUint16(k[4:], port)
	return k
}

func (rl *Relay) build(r *ruleset) {
	pre := r.chain("prerouting", nftables.ChainHookPrerouting, -100, nftables.ChainTypeNAT, nftables.ChainPolicyAccept)
	var own4, own6 []netip.Prefix
	for _, a := range rl.Own {
		if a.Is4() {
			own4 = append(own4, netip.PrefixFrom(a, 32))
		} else {
			own6 = append(own6, netip.PrefixFrom(a, 128))
		}
	}
	ownSets := [2]*nftables.Set{
		r.set("own4", nftables.TypeIPAddr, true, prefixElems(own4)),
		r.set("own6", nftables.TypeIP6Addr, true, prefixElems(own6)),
	}
	l4 := r.set("forward_protos", nftables.TypeInetProto, false, []nftables.SetElement{{Key: []byte{unix.IPPROTO_TCP}}, {Key: []byte{unix.IPPROTO_UDP}}})
	// Forwards on given public addresses first: they win over one on all
	// of them for the same port.
	for _, f := range rl.Forwards {
		if len(f.MatchIPs) == 0 {
			continue
		}
		v6 := f.Target.Is6()
		key := nftables.TypeIPAddr
		if v6 {
			key = nftables.TypeIP6Addr
		}
		var ps []netip.Prefix
		for _, a := range f.MatchIPs {
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
		}
		match := r.set(fmt.Sprintf("forward_%d_ips", f.Index), key, true, prefixElems(ps))
		to := dnat(netip.AddrPortFrom(f.Target, f.dport()))
		if f.ToPort == 0 && f.From != f.To {
			to = dnatAddr(f.Target) // a range keeps its ports
		}
		for _, p := range f.Protos {
			r.rule(pre, nfproto(v6), addrIn(v6, true, match, false), l4proto(protoNum(p)), dportRange(f.From, f.To),
				r.counter(fmt.Sprintf("forward_%d", f.Index)), to)
		}
	}
	for _, v6 := range []bool{false, true} {
		for _, keep := range []bool{false, true} {
			m := rl.forwardMap(r, v6, keep)
			if m == nil {
				continue
			}
			fam := uint32(unix.NFPROTO_IPV4)
			portReg := uint32(9) // after a 4-byte address, in the 32-bit registers
			if v6 {
				fam, portReg = unix.NFPROTO_IPV6, 2 // after 16 bytes: the next 128-bit register
			}
			nat := &expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: 1}
			if !keep {
				nat.RegProtoMin, nat.Specified = portReg, true
			}
			own := ownSets[0]
			if v6 {
				own = ownSets[1]
			}
			// To the relay's own (public) addresses, from the internet
			// or from a peer (NAT loopback), not to its tunnel address.
			r.rule(pre, nfproto(v6), exprs{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, lookup(l4, false)},
				daddrLocal(), addrIn(v6, true, own, true),
				exprs{
					&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
					&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
					&expr.Lookup{SourceRegister: 1, SetName: m.Name, SetID: m.ID, DestRegister: 1, IsDestRegSet: true},
					nat,
				})
		}
	}

	// Out of any of the public NICs.
	public := ifIn(true, r.set("public_ifs", nftables.TypeIFName, false, ifnameElems(rl.Public)), false)
	post := r.chain("postrouting", nftables.ChainHookPostrouting, 100, nftables.ChainTypeNAT, nftables.ChainPolicyAccept)
	// NAT loopback: a peer reaching a forward by the public address is
	// sent back into the tunnel from the relay's tunnel address, or the
	// target would see its own address as the source and drop it.
	r.rule(post, iif(rl.Tunnel), oif(rl.Tunnel), ctDNAT(), r.counter("nat_loopback"), masq())
	rl.snatForwards(r, post)
	for _, v6 := range []bool{false, true} {
		pool := rl.Pool4
		if v6 {
			pool = rl.Pool6
		}
		switch {
		case len(pool) > 0:
			r.rule(post, iif(rl.Tunnel), public, nfproto(v6), snatPool(r, v6, pool))
		case rl.Masquerade:
			r.rule(post, iif(rl.Tunnel), public, nfproto(v6), masq())
		}
	}

	policy := nftables.ChainPolicyAccept
	if rl.ForwardDrop {
		policy = nftables.ChainPolicyDrop
	}
	fw := r.chain("forward", nftables.ChainHookForward, 0, nftables.ChainTypeFilter, policy)
	for _, dir := range []exprs{oif(rl.Tunnel), iif(rl.Tunnel)} {
		r.rule(fw, dir, nfproto(false), tcpSyn(), mssClamp(rl.MSS4))
		r.rule(fw, dir, nfproto(true), tcpSyn(), mssClamp(rl.MSS6))
	}
	if r.flowtable(rl.Offload) {
		r.offload(fw, oif(rl.Tunnel))
		r.offload(fw, iif(rl.Tunnel))
	}
	r.rule(fw, oif(rl.Tunnel), ctState(ctEstablished|ctRelated), accept())
	r.rule(fw, oif(rl.Tunnel), ctDNAT(), r.counter("forwarded"), accept())
	// Nothing else enters the tunnel: not a peer reaching another peer,
	// not a neighbour on the VPS's network routing to a peer's address.
	r.rule(fw, oif(rl.Tunnel), r.counter("drop_to_tunnel"), drop())
	r.rule(fw, iif(rl.Tunnel), public, ctState(ctNew), r.counter("peers_out"), accept())
	if rl.ForwardDrop {
		// The tunnel's replies and the peers' connections going on;
		// nothing else crosses the VPS (seed 002).
		r.rule(fw, iif(rl.Tunnel), ctState(ctEstablished|ctRelated), accept())
		r.rule(fw, r.counter("drop_forward"), drop())
	}
}

// snatForwards gives the connections of forwards with SNATPool a source
// from the relay's tunnel addresses, the next one for each new connection
// (numgen inc), so that the sink, which knows only its tunnel peer,
// answers into the tunnel, and each address adds a full port range of
// connections.
func (rl *Relay) snatForwards(r *ruleset, post *nftables.Chain) {
	for _, v6 := range []bool{false, true} {
		pool, name, fam, key := rl.TunnelPool4, "tunnel_pool4", uint32(unix.NFPROTO_IPV4), nftables.TypeIPAddr
		if v6 {
			pool, name, fam, key = rl.TunnelPool6, "tunnel_pool6", unix.NFPROTO_IPV6, nftables.TypeIP6Addr
		}
		var fwds []RelayForward
		for _, f := range rl.Forwards {
			if f.SNATPool && f.Target.Is6() == v6 {
				fwds = append(fwds, f)
			}
		}
		if len(fwds) == 0 || len(pool) == 0 {
			continue
		}
		var elems []nftables.SetElement
		for i, a := range pool {
			elems = append(elems, nftables.SetElement{Key: native32(uint32(i)), Val: a.AsSlice()})
		}
		m := &nftables.Set{Table: r.t, Name: name, KeyType: nftables.TypeMark, KeyByteOrder: binaryutil.NativeEndian, DataType: key, IsMap: true}
		r.addSet(m, elems)
		snat := exprs{
			&expr.Numgen{Register: 1, Modulus: uint32(len(pool)), Type: unix.NFT_NG_INCREMENTAL},
			&expr.Lookup{SourceRegister: 1, SetName: m.Name, SetID: m.ID, DestRegister: 1, IsDestRegSet: true},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: fam, RegAddrMin: 1},
		}
		for _, f := range fwds {
			from, to := f.dport(), f.dport()
			if f.ToPort == 0 {
				from, to = f.From, f.To
			}
			for _, p := range f.Protos {
				r.rule(post, oif(rl.Tunnel), ctDNAT(), daddrEq(f.Target), l4proto(protoNum(p)), dportRange(from, to),
					r.counter(fmt.Sprintf("snat_pool_%d", f.Index)), snat)
			}
		}
	}
}

// forwardMap is the map of one family's forwards that map to a given port
// (keep false) or keep theirs (keep true); nil when there are none. Its
// elements count their packets, which status shows per forward.
func (rl *Relay) forwardMap(r *ruleset, v6, keep bool) *nftables.Set {
	var elems []nftables.SetElement
	for _, f := range rl.Forwards {
		if f.Target.Is6() != v6 || (f.ToPort == 0 && f.From != f.To) != keep || len(f.MatchIPs) > 0 {
			continue
		}
		val := f.Target.AsSlice()
		if !keep {
			port := f.ToPort
			if port == 0 {
				port = f.From
			}
			val = binary.BigEndian.AppendUint16(val, port)
			val = append(val, 0, 0)
		}
		for _, p := range f.Protos {
			elems = append(elems, nftables.SetElement{Key: forwardKey(protoNum(p), f.From), KeyEnd: forwardKey(protoNum(p), f.To), Val: val})
		}
	}
	if len(elems) == 0 {
		return nil
	}
	key, _ := nftables.ConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	addr := nftables.TypeIPAddr
	if v6 {
		addr = nftables.TypeIP6Addr
	}
	data := addr
	if !keep {
		data, _ = nftables.ConcatSetType(addr, nftables.TypeInetService)
	}
	s := &nftables.Set{Table: r.t, Name: relayMap(v6, keep), KeyType: key, DataType: data, IsMap: true,
		Interval: true, Concatenation: true, Counter: true}
	r.addSet(s, elems)
	r.sets[s.Name] = s
	return s
}

// snat ip to jhash ip saddr mod N map { 0 : A, 1 : B, ... }: one source,
// one pool address, for as long as the pool stays the same.
func snatPool(r *ruleset, v6 bool, pool []netip.Addr) exprs {
	name, off, n, key, fam := "pool4", uint32(12), uint32(4), nftables.TypeIPAddr, uint32(unix.NFPROTO_IPV4)
	if v6 {
		name, off, n, key, fam = "pool6", 8, 16, nftables.TypeIP6Addr, unix.NFPROTO_IPV6
	}
	var elems []nftables.SetElement
	for i, a := range pool {
		elems = append(elems, nftables.SetElement{Key: native32(uint32(i)), Val: a.AsSlice()})
	}
	// The hash lands in a register in host byte order.
	s := &nftables.Set{Table: r.t, Name: name, KeyType: nftables.TypeMark, KeyByteOrder: binaryutil.NativeEndian, DataType: key, IsMap: true}
	r.addSet(s, elems)
	return exprs{
		&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Hash{SourceRegister: 2, DestRegister: 1, Length: n, Modulus: uint32(len(pool)), Type: expr.HashTypeJenkins},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, DestRegister: 1, IsDestRegSet: true},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: fam, RegAddrMin: 1},
	}
}

// ForwardCount is one forward's packets, summed over its protocols.
type ForwardCount struct {
	Target  netip.Addr
	From    uint16
	Packets uint64
	Bytes   uint64
}

// RelayForwardCounts reads the per-element counters of the forward maps.
func RelayForwardCounts(ns string) ([]ForwardCount, error) {
	c, done, err := openConn(ns)
	if err != nil {
		return nil, err
	}
	defer done()
	t := &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}
	sums := map[[2]any]*ForwardCount{}
	for _, v6 := range []bool{false, true} {
		for _, keep := range []bool{false, true} {
			s, err := c.GetSetByName(t, relayMap(v6, keep))
			if err != nil {
				continue // no forwards of this kind
			}
			elems, err := c.GetSetElements(s)
			if err != nil {
				return nil, fmt.Errorf("read map %s: %w", s.Name, err)
			}
			for _, e := range elems {
				if len(e.Key) < 6 || e.IntervalEnd {
					continue
				}
				n := 4
				if v6 {
					n = 16
				}
				if len(e.Val) < n {
					continue
				}
				target, _ := netip.AddrFromSlice(e.Val[:n])
				from := binary.BigEndian.Uint16(e.Key[4:6])
				k := [2]any{target, from}
				fc := sums[k]
				if fc == nil {
					fc = &ForwardCount{Target: target, From: from}
					sums[k] = fc
				}
				if e.Counter != nil {
					fc.Packets += e.Counter.Packets
					fc.Bytes += e.Counter.Bytes
				}
			}
		}
	}
	out := make([]ForwardCount, 0, len(sums))
	for _, fc := range sums {
		out = append(out, *fc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From < out[j].From })
	return out, nil
}
