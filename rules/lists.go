package rules

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/routerd/routerd/internal/iprange"
	"github.com/routerd/routerd/netns"
	"golang.org/x/sys/unix"
)

// ListsTable holds the blocklists: destinations forced onto a path. It is
// separate from the main table so a firewall reapply never touches its
// sets; its chain runs between the main table's restore and policy chains.
const ListsTable = "routerd_lists"

// Lists configures the blocklists' chain.
type Lists struct {
	LANIfaces []string
	Mask      uint32
	MarkWAN   uint32
	MarkVPN   uint32
}

// The lists' sets: interval sets of listed prefixes, and timeout sets of
// addresses learnt from domain lists through the resolver.
const (
	SetVPN4, SetVPN6       = "vpn4", "vpn6"
	SetWAN4, SetWAN6       = "wan4", "wan6"
	SetVPN4DNS, SetVPN6DNS = "vpn4_dns", "vpn6_dns"
	SetWAN4DNS, SetWAN6DNS = "wan4_dns", "wan6_dns"
)

// EnsureLists creates the lists table and its sets if missing and replaces
// its chain, in one transaction. The sets' contents are left as they are.
func EnsureLists(ns string, l *Lists) error {
	c, done, err := openConn(ns)
	if err != nil {
		return err
	}
	defer done()
	existing := counterObjs(c, nftables.TableFamilyINet, ListsTable)
	t := c.AddTable(&nftables.Table{Name: ListsTable, Family: nftables.TableFamilyINet})
	sets := map[string]*nftables.Set{}
	for _, s := range []struct {
		name    string
		v6, dyn bool
	}{{SetVPN4, false, false}, {SetVPN6, true, false}, {SetWAN4, false, false}, {SetWAN6, true, false},
		{SetVPN4DNS, false, true}, {SetVPN6DNS, true, true}, {SetWAN4DNS, false, true}, {SetWAN6DNS, true, true}} {
		set := &nftables.Set{Table: t, Name: s.name, KeyType: nftables.TypeIPAddr, Interval: !s.dyn, HasTimeout: s.dyn}
		if s.v6 {
			set.KeyType = nftables.TypeIP6Addr
		}
		if err := c.AddSet(set, nil); err != nil {
			return fmt.Errorf("set %s: %w", s.name, err)
		}
		sets[s.name] = set
	}
	lan := &nftables.Set{Table: t, Name: "lan_ifaces", KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
	if err := c.AddSet(lan, nil); err != nil {
		return err
	}
	c.FlushSet(lan)
	if err := c.SetAddElements(lan, ifnameElems(l.LANIfaces)); err != nil {
		return err
	}
	for _, name := range []string{"forced_vpn", "forced_wan"} {
		if _, ok := existing[name]; !ok {
			c.AddObj(&nftables.CounterObj{Table: t, Name: name})
		}
	}
	ch := c.AddChain(&nftables.Chain{Name: "force", Table: t, Hooknum: nftables.ChainHookPrerouting,
		Priority: nftables.ChainPriorityRef(PrioLists), Type: nftables.ChainTypeFilter, Policy: policyRef(nftables.ChainPolicyAccept)})
	c.FlushChain(ch)
	rule := func(parts ...exprs) { c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: cat(parts...)}) }
	// Only new, undecided LAN connections: a connection keeps its path.
	rule(markMasked(l.Mask, false), ret())
	rule(ifIn(false, lan, true), ret())
	// The VPN lists first: a destination on both is safer in the tunnel.
	for _, f := range []struct {
		mark    uint32
		counter string
		sets    []string
	}{{l.MarkVPN, "forced_vpn", []string{SetVPN4, SetVPN4DNS, SetVPN6, SetVPN6DNS}},
		{l.MarkWAN, "forced_wan", []string{SetWAN4, SetWAN4DNS, SetWAN6, SetWAN6DNS}}} {
		for i, name := range f.sets {
			v6 := i >= 2
			rule(addrIn(v6, true, sets[name], false), setMark(f.mark), saveMark(), counter(f.counter), ret())
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("apply table %s in %s: %w", ListsTable, netns.Label(ns), err)
	}
	return nil
}

func policyRef(p nftables.ChainPolicy) *nftables.ChainPolicy { return &p }

// ListDiff is the change to one path's listed prefixes.
type ListDiff struct {
	Set4, Set6 string
	Add4, Del4 []iprange.R4
	Add6, Del6 []iprange.R6
}

// ReplaceLists empties the given sets and fills them anew, in one
// transaction: used at start, when what the kernel holds from before a
// restart is not known to this process.
func ReplaceLists(ns string, diffs []ListDiff) error {
	size := 0
	for _, d := range diffs {
		size += 48*len(d.Add4) + 80*len(d.Add6)
	}
	b := newElemBatch(unix.NFPROTO_INET, ListsTable, size)
	var k4 [4]byte
	for _, d := range diffs {
		b.flush(d.Set4)
		b.flush(d.Set6)
		for _, r := range d.Add4 {
			b.interval(unix.NFT_MSG_NEWSETELEM, d.Set4, be32(k4[:], r.Lo), be32(make([]byte, 4), r.Hi))
		}
		for _, r := range d.Add6 {
			b.interval(unix.NFT_MSG_NEWSETELEM, d.Set6, r.Lo[:], r.Hi[:])
		}
	}
	return b.send(ns)
}

// ApplyListDiffs applies every diff in one transaction: deletions first,
// then additions, so at no moment is a destination listed in both old and
// new lists missing from the set, and the whole change lands at once.
func ApplyListDiffs(ns string, diffs []ListDiff) error {
	size := 0
	for _, d := range diffs {
		size += 48*(len(d.Add4)+len(d.Del4)) + 80*(len(d.Add6)+len(d.Del6))
	}
	b := newElemBatch(unix.NFPROTO_INET, ListsTable, size)
	var k4 [4]byte
	for _, d := range diffs {
		for _, r := range d.Del4 {
			b.interval(unix.NFT_MSG_DELSETELEM, d.Set4, be32(k4[:], r.Lo), be32(make([]byte, 4), r.Hi))
		}
		for _, r := range d.Del6 {
			b.interval(unix.NFT_MSG_DELSETELEM, d.Set6, r.Lo[:], r.Hi[:])
		}
	}
	for _, d := range diffs {
		for _, r := range d.Add4 {
			b.interval(unix.NFT_MSG_NEWSETELEM, d.Set4, be32(k4[:], r.Lo), be32(make([]byte, 4), r.Hi))
		}
		for _, r := range d.Add6 {
			b.interval(unix.NFT_MSG_NEWSETELEM, d.Set6, r.Lo[:], r.Hi[:])
		}
	}
	return b.send(ns)
}

func be32(b []byte, v uint32) []byte { binary.BigEndian.PutUint32(b, v); return b }

// AddDynamic puts addresses learnt from a domain list into a timeout set,
// each for ttl (an existing element gets the new timeout).
func AddDynamic(ns, set4, set6 string, addrs []netip.Addr, ttl time.Duration) error {
	c, done, err := openConn(ns)
	if err != nil {
		return err
	}
	defer done()
	t := &nftables.Table{Name: ListsTable, Family: nftables.TableFamilyINet}
	var e4, e6 []nftables.SetElement
	for _, a := range addrs {
		e := nftables.SetElement{Key: a.AsSlice(), Timeout: ttl}
		if a.Is4() {
			e4 = append(e4, e)
		} else {
			e6 = append(e6, e)
		}
	}
	if len(e4) > 0 {
		if err := c.SetAddElements(&nftables.Set{Table: t, Name: set4, KeyType: nftables.TypeIPAddr, HasTimeout: true}, e4); err != nil {
			return err
		}
	}
	if len(e6) > 0 {
		if err := c.SetAddElements(&nftables.Set{Table: t, Name: set6, KeyType: nftables.TypeIP6Addr, HasTimeout: true}, e6); err != nil {
			return err
		}
	}
	return c.Flush()
}

// RemoveLists deletes the lists table.
func RemoveLists(ns string) error { return Remove(ns, nftables.TableFamilyINet, ListsTable) }
