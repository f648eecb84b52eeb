package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/routerd/routerd/netns"
	"golang.org/x/sys/unix"
)

// Banned addresses: sets with timeouts in routerd's table of the main
// namespace (SSH logins failing) and of the wan namespace (port scans),
// whose packets are dropped before anything else sees them. Their elements
// outlive a ruleset replacement: replace carries them over with the time
// they had left.
const (
	SetBanned4 = "banned4"
	SetBanned6 = "banned6"
)

// Scan detection on the WAN: a source that opens new connections to about
// this many distinct closed ports within a minute is banned.
const (
	ScanPorts  = 20
	scanWindow = time.Minute
)

// Banned is one banned address and the time its ban has left.
type Banned struct {
	Addr netip.Addr
	Left time.Duration
}

// banSets adds the ban sets to r, with the elements the old table had.
func (r *ruleset) banSets() (s4, s6 *nftables.Set) {
	mk := func(name string, key nftables.SetDatatype) *nftables.Set {
		s := &nftables.Set{Table: r.t, Name: name, KeyType: key, HasTimeout: true, Dynamic: true}
		r.addSet(s, r.prevBans[name])
		r.sets[name] = s
		return s
	}
	return mk(SetBanned4, nftables.TypeIPAddr), mk(SetBanned6, nftables.TypeIP6Addr)
}

// banElements reads the ban sets of an existing table, each element with
// the time it has left as its new timeout.
func banElements(c *nftables.Conn, t *nftables.Table) map[string][]nftables.SetElement {
	out := map[string][]nftables.SetElement{}
	for _, name := range []string{SetBanned4, SetBanned6} {
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

// dropBanned drops what a banned address sends, counted.
func (r *ruleset) dropBanned(ch *nftables.Chain, s4, s6 *nftables.Set) {
	r.rule(ch, addrIn(false, false, s4, false), r.counter("drop_banned"), drop())
	r.rule(ch, addrIn(true, false, s6, false), r.counter("drop_banned"), drop())
}

// scanBans adds the rules that ban a port scanner: each new connection
// from iface to a closed port is remembered (source . port) for a minute;
// a source's distinct ports run through a per-source rate limit, and the
// one over it is banned for banTime. They belong just before the final
// drop of the input chain: what reaches there met a closed port.
func (r *ruleset) scanBans(in *nftables.Chain, iface string, banTime time.Duration, s4, s6 *nftables.Set) {
	for _, v6 := range []bool{false, true} {
		addrLen, portReg := uint32(4), uint32(9) // NFT_REG32_01 follows a 4-byte address
		ban, fam := s4, "4"
		if v6 {
			addrLen, portReg, ban, fam = 16, 12, s6, "6" // after 16 bytes: NFT_REG32_04
		}
		addrType := nftables.TypeIPAddr
		if v6 {
			addrType = nftables.TypeIP6Addr
		}
		seenKey, _ := nftables.ConcatSetType(addrType, nftables.TypeInetService)
		seen := &nftables.Set{Table: r.t, Name: "scan_seen" + fam, KeyType: seenKey, Concatenation: true,
			HasTimeout: true, Timeout: scanWindow, Dynamic: true}
		rate := &nftables.Set{Table: r.t, Name: "scan_rate" + fam, KeyType: addrType, HasTimeout: true, Timeout: scanWindow, Dynamic: true}
		for _, s := range []*nftables.Set{seen, rate} {
			if err := r.c.AddSet(s, nil); err != nil && r.err == nil {
				r.err = fmt.Errorf("set %s: %w", s.Name, err)
			}
		}
		saddrOff := uint32(12)
		if v6 {
			saddrOff = 8
		}
		key := exprs{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddrOff, Len: addrLen},
			&expr.Payload{DestRegister: portReg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		}
		for _, proto := range []byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
			match := cat(iif(iface), nfproto(v6), l4proto(proto), ctState(ctNew))
			// A port already counted in the window counts no more.
			r.rule(in, match, key, exprs{&expr.Lookup{SourceRegister: 1, SetName: seen.Name, SetID: seen.ID}},
				r.counter("drop_input"), drop())
			r.rule(in, match, key,
				exprs{&expr.Dynset{SrcRegKey: 1, SetName: seen.Name, SetID: seen.ID, Operation: uint32(unix.NFT_DYNSET_OP_ADD), Timeout: scanWindow}},
				exprs{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddrOff, Len: addrLen}},
				exprs{&expr.Dynset{SrcRegKey: 1, SetName: rate.Name, SetID: rate.ID, Operation: uint32(unix.NFT_DYNSET_OP_UPDATE), Timeout: scanWindow,
					Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: ScanPorts, Over: true, Unit: expr.LimitTimeMinute, Burst: ScanPorts - 1}}}},
				exprs{&expr.Dynset{SrcRegKey: 1, SetName: ban.Name, SetID: ban.ID, Operation: uint32(unix.NFT_DYNSET_OP_ADD), Timeout: banTime}},
				r.counter("scan_banned"), drop())
		}
	}
}

// Ban adds a to the ban set of routerd's table in namespace ns for d.
func Ban(ns string, a netip.Addr, d time.Duration) error {
	c, done, err := openConn(ns)
	if err != nil {
		return err
	}
	defer done()
	s := banSet(a)
	if err := c.SetAddElements(s, []nftables.SetElement{{Key: a.Unmap().AsSlice(), Timeout: d}}); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("ban %s in %s: %w", a, netns.Label(ns), err)
	}
	return nil
}

// Unban removes a from the ban set in ns; an address not banned is not
// an error.
func Unban(ns string, a netip.Addr) error {
	c, done, err := openConn(ns)
	if err != nil {
		return err
	}
	defer done()
	if err := c.SetDeleteElements(banSet(a), []nftables.SetElement{{Key: a.Unmap().AsSlice()}}); err != nil {
		return err
	}
	if err := c.Flush(); err != nil && !isNoEntry(err) {
		return fmt.Errorf("unban %s in %s: %w", a, netns.Label(ns), err)
	}
	return nil
}

// Bans lists the banned addresses in ns.
func Bans(ns string) ([]Banned, error) {
	c, done, err := openConn(ns)
	if err != nil {
		return nil, err
	}
	defer done()
	t := &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}
	var out []Banned
	for _, elems := range banElements(c, t) {
		for _, e := range elems {
			if a, ok := netip.AddrFromSlice(e.Key); ok {
				out = append(out, Banned{Addr: a.Unmap(), Left: e.Timeout})
			}
		}
	}
	slices.SortFunc(out, func(a, b Banned) int { return a.Addr.Compare(b.Addr) })
	return out, nil
}

func banSet(a netip.Addr) *nftables.Set {
	t := &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}
	if a.Unmap().Is4() {
		return &nftables.Set{Table: t, Name: SetBanned4, KeyType: nftables.TypeIPAddr, HasTimeout: true}
	}
	return &nftables.Set{Table: t, Name: SetBanned6, KeyType: nftables.TypeIP6Addr, HasTimeout: true}
}

func isNoEntry(err error) bool {
	return errors.Is(err, unix.ENOENT)
}
