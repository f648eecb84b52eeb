package rules

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/routerd/routerd/internal/iprange"
	"golang.org/x/sys/unix"
)

// The builders below each produce the bytecode of one nft phrase, as
// nft --debug=netlink shows it; the comment on each is that phrase.

type exprs = []expr.Any

func cat(parts ...exprs) exprs {
	var out exprs
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// meta nfproto ipv4|ipv6 (needed before ip/ip6 payload in inet tables)
func nfproto(v6 bool) exprs {
	p := byte(unix.NFPROTO_IPV4)
	if v6 {
		p = unix.NFPROTO_IPV6
	}
	return exprs{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// meta l4proto P
func l4proto(p byte) exprs {
	return exprs{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// iifname "NAME" / oifname "NAME" (neg: !=)
func ifEq(out bool, name string, neg bool) exprs {
	key := expr.MetaKeyIIFNAME
	if out {
		key = expr.MetaKeyOIFNAME
	}
	op := expr.CmpOpEq
	if neg {
		op = expr.CmpOpNeq
	}
	return exprs{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: ifname(name)},
	}
}

func iif(name string) exprs { return ifEq(false, name, false) }
func oif(name string) exprs { return ifEq(true, name, false) }

// iifname @set / oifname @set (neg: !=)
func ifIn(out bool, set *nftables.Set, neg bool) exprs {
	key := expr.MetaKeyIIFNAME
	if out {
		key = expr.MetaKeyOIFNAME
	}
	return exprs{
		&expr.Meta{Key: key, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID, Invert: neg},
	}
}

// meta protocol ip|ip6 (the ethertype: how a netdev table tells families)
func ethertype(v6 bool) exprs {
	t := uint16(unix.ETH_P_IP)
	if v6 {
		t = unix.ETH_P_IPV6
	}
	return exprs{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(t)},
	}
}

// ip saddr/daddr @set, ip6 saddr/daddr @set, in an inet table
func addrIn(v6, dst bool, set *nftables.Set, neg bool) exprs {
	return addrInFam(nfproto(v6), v6, dst, set, neg)
}

// the same in a netdev table
func addrInNetdev(v6, dst bool, set *nftables.Set, neg bool) exprs {
	return addrInFam(ethertype(v6), v6, dst, set, neg)
}

func addrInFam(fam exprs, v6, dst bool, set *nftables.Set, neg bool) exprs {
	off, n := uint32(12), uint32(4)
	if v6 {
		off, n = 8, 16
	}
	if dst {
		off += n
	}
	return cat(fam, exprs{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID, Invert: neg},
	})
}

// ip saddr/daddr A, ip6 saddr/daddr A
func addrEq(a netip.Addr, dst bool) exprs {
	v6 := a.Is6()
	off, n := uint32(12), uint32(4)
	if v6 {
		off, n = 8, 16
	}
	if dst {
		off += n
	}
	return cat(nfproto(v6), exprs{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()},
	})
}

func saddrEq(a netip.Addr) exprs { return addrEq(a, false) }
func daddrEq(a netip.Addr) exprs { return addrEq(a, true) }

// ether saddr @set
func etherSaddrIn(set *nftables.Set) exprs {
	return exprs{
		&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint16(unix.ARPHRD_ETHER)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
	}
}

// ether saddr MAC
func etherSaddrEq(mac net.HardwareAddr) exprs {
	return exprs{
		&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint16(unix.ARPHRD_ETHER)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
		cmpEq(mac),
	}
}

// th dport FROM-TO (after l4proto)
func dportRange(from, to uint16) exprs { return portRange(2, from, to) }

// th sport FROM-TO (after l4proto)
func sportRange(from, to uint16) exprs { return portRange(0, from, to) }

func portRange(off uint32, from, to uint16) exprs {
	e := exprs{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}}
	if from == to {
		return append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(from)})
	}
	return append(e,
		&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: be16(from)},
		&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: be16(to)})
}

// udp sport S udp dport D
func udpPorts(sport, dport uint16) exprs {
	return cat(l4proto(unix.IPPROTO_UDP), exprs{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: append(be16(sport), be16(dport)...)},
	})
}

// udp sport S
func udpSport(sport uint16) exprs {
	return cat(l4proto(unix.IPPROTO_UDP), exprs{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(sport)},
	})
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
)

// tcp flags & MASK == VAL (neq: !=)
func tcpFlags(mask, val byte, neq bool) exprs {
	op := expr.CmpOpEq
	if neq {
		op = expr.CmpOpNeq
	}
	return cat(l4proto(unix.IPPROTO_TCP), exprs{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{mask}, Xor: []byte{0}},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{val}},
	})
}

// tcp flags syn (the SYN bit set)
func tcpSyn() exprs { return tcpFlags(tcpSYN, 0, true) }

// tcp option maxseg size LO-HI
func mssBetween(lo, hi uint16) exprs {
	return exprs{
		&expr.Exthdr{DestRegister: 1, Type: 2, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt},
		&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: be16(lo)},
		&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: be16(hi)},
	}
}

// tcp option maxseg size > N tcp option maxseg size set N
func mssClamp(n uint16) exprs {
	return exprs{
		&expr.Exthdr{DestRegister: 1, Type: 2, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt},
		&expr.Cmp{Op: expr.CmpOpGt, Register: 1, Data: be16(n)},
		&expr.Immediate{Register: 1, Data: be16(n)},
		&expr.Exthdr{SourceRegister: 1, Type: 2, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt},
	}
}

// tcp option maxseg size set rt mtu
func mssRouteMTU() exprs {
	return exprs{
		&expr.Rt{Register: 1, Key: expr.RtTCPMSS},
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 2, Size: 2},
		&expr.Exthdr{SourceRegister: 1, Type: 2, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt},
	}
}

// meta mark & MASK == 0 (zero) / != 0
func markMasked(mask uint32, zero bool) exprs {
	op := expr.CmpOpNeq
	if zero {
		op = expr.CmpOpEq
	}
	return exprs{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(mask), Xor: native32(0)},
		&expr.Cmp{Op: op, Register: 1, Data: native32(0)},
	}
}

// ct mark & MASK != 0 meta mark set ct mark
func restoreMark(mask uint32) exprs {
	return exprs{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(mask), Xor: native32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: native32(0)},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}
}

// meta mark set V
func setMark(v uint32) exprs {
	return exprs{
		&expr.Immediate{Register: 1, Data: native32(v)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}
}

// ct mark set meta mark
func saveMark() exprs {
	return exprs{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Ct{Key: expr.CtKeyMARK, SourceRegister: true, Register: 1},
	}
}

func native32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }

// ct state in BITS (any of them)
func ctState(bits uint32) exprs {
	return exprs{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(bits), Xor: native32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: native32(0)},
	}
}

// IPS_DST_NAT, the conntrack status bit of a destination-NATed connection.
const ctStatusDNAT = 0x20

// ct status dnat
func ctDNAT() exprs {
	return exprs{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(ctStatusDNAT), Xor: native32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: native32(0)},
	}
}

// fib daddr type local
func daddrLocal() exprs {
	return exprs{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: native32(unix.RTN_LOCAL)},
	}
}

// fib daddr type != local
func daddrNotLocal() exprs {
	return exprs{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: native32(unix.RTN_LOCAL)},
	}
}

// fib daddr type != unicast
func daddrNotUnicast() exprs {
	return exprs{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: native32(unix.RTN_UNICAST)},
	}
}

// fib saddr . iif oif missing (strict), fib saddr oif missing (loose)
func fibSaddrMissing(strict bool) exprs {
	return exprs{
		&expr.Fib{Register: 1, FlagSADDR: true, FlagIIF: strict, ResultOIF: true, FlagPRESENT: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: native32(0)},
	}
}

// limit rate over N/UNIT
func limitOver(n uint64, unit string) exprs {
	u := expr.LimitTimeSecond
	switch unit {
	case "minute":
		u = expr.LimitTimeMinute
	case "hour":
		u = expr.LimitTimeHour
	}
	return exprs{&expr.Limit{Type: expr.LimitTypePkts, Rate: n, Over: true, Unit: u, Burst: uint32(max(n/2, 5))}}
}

// counter name NAME
func counter(name string) exprs {
	return exprs{&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: name}}
}

func verdict(k expr.VerdictKind) exprs { return exprs{&expr.Verdict{Kind: k}} }
func accept() exprs                    { return verdict(expr.VerdictAccept) }
func drop() exprs                      { return verdict(expr.VerdictDrop) }
func ret() exprs                       { return verdict(expr.VerdictReturn) }
func goTo(chain string) exprs          { return exprs{&expr.Verdict{Kind: expr.VerdictGoto, Chain: chain}} }

// masquerade
func masq() exprs { return exprs{&expr.Masq{}} }

// dnat ip|ip6 to A:P
func dnat(to netip.AddrPort) exprs {
	fam := uint32(unix.NFPROTO_IPV4)
	if to.Addr().Is6() {
		fam = unix.NFPROTO_IPV6
	}
	return exprs{
		&expr.Immediate{Register: 1, Data: to.Addr().AsSlice()},
		&expr.Immediate{Register: 2, Data: be16(to.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

// dnat ip|ip6 to A (the port kept)
func dnatAddr(a netip.Addr) exprs {
	fam := uint32(unix.NFPROTO_IPV4)
	if a.Is6() {
		fam = unix.NFPROTO_IPV6
	}
	return exprs{
		&expr.Immediate{Register: 1, Data: a.AsSlice()},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: 1},
	}
}

// prefixElems returns interval set elements covering prefixes, merged
// first: interval sets reject overlapping elements.
func prefixElems(ps []netip.Prefix) []nftables.SetElement {
	return rangeElems(iprange.MergePrefixes(slices.Clone(ps)))
}

// rangeElems returns interval set elements for merged ranges: each range is
// its start and, unless it reaches the end of the address space, the
// address after it flagged as an interval end.
func rangeElems(rs []iprange.Range) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, 2*len(rs))
	for _, r := range rs {
		out = append(out, nftables.SetElement{Key: r.From.AsSlice()})
		if next := r.To.Next(); next.IsValid() {
			out = append(out, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	return out
}

func macElems(ms []net.HardwareAddr) []nftables.SetElement {
	out := make([]nftables.SetElement, len(ms))
	for i, m := range ms {
		out[i] = nftables.SetElement{Key: []byte(m)}
	}
	return out
}

func ifnameElems(names []string) []nftables.SetElement {
	out := make([]nftables.SetElement, len(names))
	for i, n := range names {
		out[i] = nftables.SetElement{Key: ifname(n)}
	}
	return out
}

func cmpEq(b []byte) expr.Any { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b} }

// mergeV concatenates prefix lists (callers pass disjoint ones).
func mergeV(lists ...[]netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}
