package rules

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/routerd/routerd/netns"
	"golang.org/x/sys/unix"
)

// Banned addresses: sets with timeouts in routerd's table of the main
// namespace (SSH logins failing) and of the wan namespace (port scans).
// A banned source opens no new connection: its new packets are dropped
// before anything else sees them, while replies to connections the
// household opened still pass, so that a ban forged in someone else's
// name (the DNS upstream, the VPN endpoint) cannot cut the household off.
// Their elements outlive a ruleset replacement: replace carries them over
// with the time they had left.
const (
	SetBanned4 = "banned4"
	SetBanned6 = "banned6"
	// SetBanned64 is the wan namespace's IPv6 ban set, keyed on the
	// source's /64: one host on the internet holds a whole /64, and a
	// scanner hopping through it is still one scanner.
	SetBanned64 = "banned6_64"
	// The wan namespace's peers: the addresses the router itself
	// (WireGuard, the DHCP client, DNS, NTP and list downloads through the
	// transit) opened connections to in the last peerTimeout. A peer is
	// never banned.
	setPeers4 = "peers4"
	setPeers6 = "peers6"
)

// Sizes of the dynamic sets, explicit so that a flood fills a set of known
// size (then reported) rather than the kernel's default.
const (
	BanSetSize  = 65536
	scanSetSize = 65536
	peerSetSize = 8192
	peerTimeout = time.Hour
)

// keptSets are the dynamic sets whose elements survive a replacement.
var keptSets = []string{SetBanned4, SetBanned6, SetBanned64, setPeers4, setPeers6}

// Scan detection on the WAN: a source that opens new connections to about
// this many distinct closed ports within a minute is banned.
const (
	ScanPorts  = 20
	scanWindow = time.Minute
)

// Banned is one banned address, or an IPv6 /64 (Bits 64), and the time its
// ban has left.
type Banned struct {
	Addr netip.Addr
	Bits int
	Left time.Duration
}

// String is the address, or the prefix for a /64.
func (b Banned) String() string {
	if b.Bits != 0 && b.Bits < b.Addr.BitLen() {
		return netip.PrefixFrom(b.Addr, b.Bits).String()
	}
	return b.Addr.String()
}

// banSets adds the ban sets to r, with the elements the old table had;
// net64 keys IPv6 on the /64.
func (r *ruleset) banSets(net64 bool) (s4, s6 *nftables.Set) {
	name6 := SetBanned6
	if net64 {
		name6 = SetBanned64
	}
	return r.keptSet(SetBanned4, nftables.TypeIPAddr, BanSetSize, 0), r.keptSet(name6, nftables.TypeIP6Addr, BanSetSize, 0)
}

// keptSet adds a dynamic set with timeouts whose elements the old table
// had are carried over.
func (r *ruleset) keptSet(name string, key nftables.SetDatatype, size uint32, timeout time.Duration) *nftables.Set {
	s := &nftables.Set{Table: r.t, Name: name, KeyType: key, HasTimeout: true, Timeout: timeout, Dynamic: true, Size: size}
	r.addSet(s, r.prevBans[name])
	r.sets[name] = s
	return s
}

// banElements reads the named sets of an existing table, each element
// with the time it has left as its new timeout.
func banElements(c *nftables.Conn, t *nftables.Table, names ...string) map[string][]nftables.SetElement {
	out := map[string][]nftables.SetElement{}
	for _, name := range names {
		s, err := c.GetSetByName(t, name)
		if err != nil {
			continue
		}
		elems, err := c.GetSetElements(s)
		if err != nil {
			continue
		}
		for _, e := range elems {
			if e.Expires > 0 {
				out[name] = append(out[name], nftables.SetElement{Key: e.Key, Timeout: e.Expires})
			}
		}
	}
	return out
}

// mask64 is an IPv6 address's /64.
var mask64 = append(bytes.Repeat([]byte{0xff}, 8), make([]byte, 8)...)

// saddrKey loads the source address into register 1, an IPv6 one cut to
// its /64 with net64.
func saddrKey(v6, net64 bool) exprs {
	if !v6 {
		return exprs{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}}
	}
	e := exprs{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16}}
	if net64 {
		e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: mask64, Xor: make([]byte, 16)})
	}
	return e
}

// saddrKeyIn matches a source whose key (saddrKey) is in set.
func saddrKeyIn(v6, net64 bool, set *nftables.Set) exprs {
	return cat(nfproto(v6), saddrKey(v6, net64), exprs{&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID}})
}

// dropBanned drops the new connections of a banned source, counted.
// Replies and established sessions pass: a ban is no reason to break what
// the household itself opened.
func (r *ruleset) dropBanned(ch *nftables.Chain, s4, s6 *nftables.Set, net64 bool) {
	r.rule(ch, ctState(ctNew), saddrKeyIn(false, false, s4), r.counter("drop_banned"), drop())
	r.rule(ch, ctState(ctNew), saddrKeyIn(true, net64, s6), r.counter("drop_banned"), drop())
}

// wanBans is the wan namespace's ban machinery.
type wanBans struct {
	ban, noban, peers [2]*nftables.Set // [0] IPv4, [1] IPv6
	own               [2]*nftables.Set
}

// fam indexes wanBans' pairs.
func fam(v6 bool) int {
	if v6 {
		return 1
	}
	return 0
}

// wanBanSets adds the wan namespace's ban sets: the bans (IPv6 by /64),
// the addresses never banned (exempt: the router's own and the configured
// servers), the learnt peers, and the router's own sources.
func (r *ruleset) wanBanSets(w *WAN) *wanBans {
	b := &wanBans{}
	b.ban[0], b.ban[1] = r.banSets(true)
	own4 := mergeV(w.Own4)
	own6 := mergeV(w.Own6)
	var ex4, ex6 []netip.Prefix
	for _, p := range w.Exempt {
		if p.Addr().Unmap().Is4() {
			ex4 = append(ex4, netip.PrefixFrom(p.Addr().Unmap(), min(p.Bits(), 32)).Masked())
		} else {
			ex6 = append(ex6, p.Masked())
		}
	}
	b.noban[0] = r.set("noban4", nftables.TypeIPAddr, true, prefixElems(mergeV(own4, ex4)))
	b.noban[1] = r.set("noban6", nftables.TypeIP6Addr, true, prefixElems(mergeV(own6, ex6)))
	b.own[0] = r.set("own4", nftables.TypeIPAddr, true, prefixElems(own4))
	b.own[1] = r.set("own6", nftables.TypeIP6Addr, true, prefixElems(own6))
	b.peers[0] = r.keptSet(setPeers4, nftables.TypeIPAddr, peerSetSize, peerTimeout)
	b.peers[1] = r.keptSet(setPeers6, nftables.TypeIP6Addr, peerSetSize, peerTimeout)
	return b
}

// banChain drops the new connections of banned sources before DNAT, so
// they reach neither the router nor a port forward. What the WAN cannot
// work without passes first: DHCP and neighbour discovery from the ISP,
// the exempt addresses and the peers.
func (b *wanBans) banChain(r *ruleset, needed *nftables.Set) {
	ch := r.chain("ban", nftables.ChainHookPrerouting, -150, nftables.ChainTypeFilter, nftables.ChainPolicyAccept)
	r.rule(ch, udpPorts(67, 68), accept())
	r.rule(ch, udpPorts(547, 546), accept())
	r.rule(ch, icmp6In(needed, false), accept())
	for _, v6 := range []bool{false, true} {
		r.rule(ch, addrIn(v6, false, b.noban[fam(v6)], false), accept())
		r.rule(ch, addrIn(v6, false, b.peers[fam(v6)], false), accept())
	}
	r.dropBanned(ch, b.ban[0], b.ban[1], true)
}

// learnPeers adds the destinations of the router's own new connections out
// of the WAN NIC to the peers: from this namespace (output) and from the
// main namespace through the transit (forward, the router's own transit
// addresses as source).
func (b *wanBans) learnPeers(r *ruleset, out, fw *nftables.Chain, w *WAN) {
	for _, v6 := range []bool{false, true} {
		remember := b.rememberDst(v6)
		r.rule(out, w.to(r), ctState(ctNew), remember)
		r.rule(fw, iif(w.Transit), w.to(r), ctState(ctNew), addrIn(v6, false, b.own[fam(v6)], false), remember)
	}
}

// rememberDst adds (or refreshes) the packet's destination in the peers.
func (b *wanBans) rememberDst(v6 bool) exprs {
	off, n := uint32(16), uint32(4)
	if v6 {
		off, n = 24, 16
	}
	s := b.peers[fam(v6)]
	return cat(nfproto(v6), exprs{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Dynset{SrcRegKey: 1, SetName: s.Name, SetID: s.ID, Operation: uint32(unix.NFT_DYNSET_OP_UPDATE), Timeout: peerTimeout},
	})
}

// scanBans adds the rules that ban a port scanner: each new connection
// from iface to a closed port is remembered (source . port) for a minute;
// a source's distinct ports run through a per-source rate limit, and the
// one over it is banned for banTime. They belong just before the final
// drop of the input chain: what reaches there met a closed port.
//
// Only what a scanner must send counts: TCP SYNs (not a stray ACK or RST of
// a connection conntrack forgot), and UDP from a port of 1024 or above to
// one below 32768 (a late reply comes from a service's port to an
// ephemeral one). Exempt addresses and peers are never counted, whatever
// they send; IPv6 sources count by their /64.
func (b *wanBans) scanBans(r *ruleset, in *nftables.Chain, fromWAN exprs, banTime time.Duration) {
	for _, v6 := range []bool{false, true} {
		f := fam(v6)
		r.rule(in, fromWAN, addrIn(v6, false, b.noban[f], false), r.counter("drop_input"), drop())
		r.rule(in, fromWAN, addrIn(v6, false, b.peers[f], false), r.counter("drop_input"), drop())
		portReg, addrType, name := uint32(9), nftables.TypeIPAddr, "4" // NFT_REG32_01 follows a 4-byte address
		if v6 {
			portReg, addrType, name = 12, nftables.TypeIP6Addr, "6" // after 16 bytes: NFT_REG32_04
		}
		seenKey, _ := nftables.ConcatSetType(addrType, nftables.TypeInetService)
		seen := &nftables.Set{Table: r.t, Name: "scan_seen" + name, KeyType: seenKey, Concatenation: true,
			HasTimeout: true, Timeout: scanWindow, Dynamic: true, Size: scanSetSize}
		rate := &nftables.Set{Table: r.t, Name: "scan_rate" + name, KeyType: addrType, HasTimeout: true, Timeout: scanWindow,
			Dynamic: true, Size: scanSetSize}
		for _, s := range []*nftables.Set{seen, rate} {
			r.addSet(s, nil)
		}
		key := cat(saddrKey(v6, true), exprs{&expr.Payload{DestRegister: portReg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}})
		for _, probe := range []exprs{
			tcpFlags(tcpSYN|tcpACK|tcpRST|tcpFIN, tcpSYN, false),
			cat(l4proto(unix.IPPROTO_UDP), sportRange(1024, 65535), dportRange(0, 32767)),
		} {
			match := cat(fromWAN, nfproto(v6), ctState(ctNew), probe)
			// A port already counted in the window counts no more.
			r.rule(in, match, key, exprs{&expr.Lookup{SourceRegister: 1, SetName: seen.Name, SetID: seen.ID}},
				r.counter("drop_input"), drop())
			r.rule(in, match, key,
				exprs{&expr.Dynset{SrcRegKey: 1, SetName: seen.Name, SetID: seen.ID, Operation: uint32(unix.NFT_DYNSET_OP_ADD), Timeout: scanWindow}},
				saddrKey(v6, true),
				exprs{&expr.Dynset{SrcRegKey: 1, SetName: rate.Name, SetID: rate.ID, Operation: uint32(unix.NFT_DYNSET_OP_UPDATE), Timeout: scanWindow,
					Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: ScanPorts, Over: true, Unit: expr.LimitTimeMinute, Burst: ScanPorts - 1}}}},
				exprs{&expr.Dynset{SrcRegKey: 1, SetName: b.ban[f].Name, SetID: b.ban[f].ID, Operation: uint32(unix.NFT_DYNSET_OP_ADD), Timeout: banTime}},
				r.counter("scan_banned"), drop())
		}
	}
}

// Ban adds a to the ban set of routerd's table in namespace ns for d (an
// IPv6 address by its /64 where the table keys bans so).
func Ban(ns string, a netip.Addr, d time.Duration) error {
	c, done, err := openConn(ns)
	if err != nil {
		return err
	}
	defer done()
	s, key := banTarget(c, a)
	if err := c.SetAddElements(s, []nftables.SetElement{{Key: key, Timeout: d}}); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("ban %s in %s: %w", a, netns.Label(ns), err)
	}
	return nil
}

// Unban removes a (or its /64) from the ban set in ns; an address not
// banned is not an error.
func Unban(ns string, a netip.Addr) error {
	c, done, err := openConn(ns)
	if err != nil {
		return err
	}
	defer done()
	s, key := banTarget(c, a)
	if err := c.SetDeleteElements(s, []nftables.SetElement{{Key: key}}); err != nil {
		return err
	}
	if err := c.Flush(); err != nil && !isNoEntry(err) {
		return fmt.Errorf("unban %s in %s: %w", a, netns.Label(ns), err)
	}
	return nil
}

// banTarget is the set a's ban goes to in the table c sees, and its key.
func banTarget(c *nftables.Conn, a netip.Addr) (*nftables.Set, []byte) {
	t := &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}
	a = a.Unmap()
	if a.Is4() {
		return &nftables.Set{Table: t, Name: SetBanned4, KeyType: nftables.TypeIPAddr, HasTimeout: true}, a.AsSlice()
	}
	if _, err := c.GetSetByName(t, SetBanned64); err == nil {
		p := netip.PrefixFrom(a, 64).Masked()
		return &nftables.Set{Table: t, Name: SetBanned64, KeyType: nftables.TypeIP6Addr, HasTimeout: true}, p.Addr().AsSlice()
	}
	return &nftables.Set{Table: t, Name: SetBanned6, KeyType: nftables.TypeIP6Addr, HasTimeout: true}, a.AsSlice()
}

// Bans lists the banned addresses (and /64s) in ns.
func Bans(ns string) ([]Banned, error) {
	c, done, err := openConn(ns)
	if err != nil {
		return nil, err
	}
	defer done()
	t := &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}
	var out []Banned
	for name, elems := range banElements(c, t, SetBanned4, SetBanned6, SetBanned64) {
		for _, e := range elems {
			if a, ok := netip.AddrFromSlice(e.Key); ok {
				b := Banned{Addr: a.Unmap(), Left: e.Timeout}
				if name == SetBanned64 {
					b.Bits = 64
				}
				out = append(out, b)
			}
		}
	}
	slices.SortFunc(out, func(a, b Banned) int { return a.Addr.Compare(b.Addr) })
	return out, nil
}

// SetFill is how full one of routerd's sets of fixed size is.
type SetFill struct {
	Name    string
	N, Size int
}

// sizedSets are routerd's dynamic sets and their sizes. (The kernel does
// not say a set's size back to google/nftables.)
var sizedSets = map[string]int{
	SetBanned4: BanSetSize, SetBanned6: BanSetSize, SetBanned64: BanSetSize,
	"scan_seen4": scanSetSize, "scan_seen6": scanSetSize, "scan_rate4": scanSetSize, "scan_rate6": scanSetSize,
	setPeers4: peerSetSize, setPeers6: peerSetSize,
}

// SetFills reads how full routerd's dynamic sets (bans, scan tracking,
// peers) in ns are.
func SetFills(ns string) ([]SetFill, error) {
	c, done, err := openConn(ns)
	if err != nil {
		return nil, err
	}
	defer done()
	t := &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}
	var out []SetFill
	for _, name := range slices.Sorted(maps.Keys(sizedSets)) {
		s, err := c.GetSetByName(t, name)
		if err != nil {
			continue // not in this namespace's table
		}
		elems, err := c.GetSetElements(s)
		if err != nil {
			return out, fmt.Errorf("read set %s in %s: %w", name, netns.Label(ns), err)
		}
		out = append(out, SetFill{Name: name, N: len(elems), Size: sizedSets[name]})
	}
	return out, nil
}

func isNoEntry(err error) bool {
	return errors.Is(err, unix.ENOENT)
}
