// Package rules owns routerd's nftables rulesets: one inet table named
// "routerd" in each namespace (main, wan, vpn) and a netdev table on the
// WAN NIC. Each table is replaced whole in one transaction, so a failed
// apply leaves the previous ruleset in force and there is never a moment
// without one. Tables routerd does not own are never flushed or touched,
// so Docker, podman or Tailscale rules coexist.
//
// Every policy decision and every drop reason has a named counter; status
// reads them from the kernel.
package rules

import (
	"fmt"
	"sort"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/status"
	"golang.org/x/sys/unix"
)

// Table names.
const (
	Table        = "routerd"         // inet, in each namespace
	IngressTable = "routerd_ingress" // netdev, on the WAN NIC
)

// ruleset accumulates one table's content in a batch.
type ruleset struct {
	c    *nftables.Conn
	t    *nftables.Table
	prev map[string]nftables.CounterObj
	// prevBans are the old table's kept sets (bans, peers) and their
	// elements, carried across the swap.
	prevBans map[string][]nftables.SetElement
	objs     map[string]bool
	sets     map[string]*nftables.Set
	order    []string // counter names, for status
	err      error
	ns       string // the namespace the table goes to
	// offloading: the table has a flowtable, and forward chains add
	// established connections to it.
	offloading bool
}

// chain adds a chain. A base chain gets hook, priority, type and policy; a
// regular chain (jump/goto target) passes a nil hook.
func (r *ruleset) chain(name string, hook *nftables.ChainHook, prio int32, typ nftables.ChainType, policy nftables.ChainPolicy) *nftables.Chain {
	ch := &nftables.Chain{Name: name, Table: r.t}
	if hook != nil {
		ch.Hooknum, ch.Priority, ch.Type, ch.Policy = hook, nftables.ChainPriorityRef(nftables.ChainPriority(prio)), typ, &policy
	}
	return r.c.AddChain(ch)
}

func (r *ruleset) rule(ch *nftables.Chain, parts ...exprs) {
	if twin := logTwin(parts); twin != nil {
		r.c.AddRule(&nftables.Rule{Table: r.t, Chain: ch, Exprs: twin})
	}
	r.c.AddRule(&nftables.Rule{Table: r.t, Chain: ch, Exprs: cat(parts...)})
}

// counter returns "counter name NAME", creating the named counter (with the
// values it had before this apply) the first time it is used.
func (r *ruleset) counter(name string) exprs {
	if !r.objs[name] {
		r.objs[name] = true
		r.order = append(r.order, name)
		old := r.prev[name]
		r.c.AddObj(&nftables.CounterObj{Table: r.t, Name: name, Bytes: old.Bytes, Packets: old.Packets})
	}
	return counter(name)
}

// set adds a named set with its elements.
func (r *ruleset) set(name string, key nftables.SetDatatype, interval bool, elems []nftables.SetElement) *nftables.Set {
	s := &nftables.Set{Table: r.t, Name: name, KeyType: key, Interval: interval}
	if key == nftables.TypeIFName {
		s.KeyByteOrder = binaryutil.NativeEndian // strings are host order to nft
	}
	r.addSet(s, elems)
	r.sets[name] = s
	return s
}

// setChunk is how many elements go in one message: google/nftables puts
// a call's elements in one nested attribute, whose length is 16 bits, and
// beyond 64 KiB the kernel silently gets only part of them.
const setChunk = 256

// addSet adds a set (or map) and its elements, a chunk per message, in
// the ruleset's batch.
func (r *ruleset) addSet(s *nftables.Set, elems []nftables.SetElement) {
	first := elems[:min(len(elems), setChunk)]
	err := r.c.AddSet(s, first)
	for i := len(first); err == nil && i < len(elems); i += setChunk {
		err = r.c.SetAddElements(s, elems[i:min(i+setChunk, len(elems))])
	}
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("set %s: %w", s.Name, err)
	}
}

// replace builds a table with build and swaps it in atomically in namespace
// ns: create-if-missing, delete, create, fill, all in one batch.
func replace(ns string, family nftables.TableFamily, name string, build func(r *ruleset)) error {
	c, done, err := openConn(ns)
	if err != nil {
		return err
	}
	defer done()
	prev := counterObjs(c, family, name)
	t := &nftables.Table{Name: name, Family: family}
	var bans map[string][]nftables.SetElement
	if family == nftables.TableFamilyINet {
		bans = banElements(c, t, keptSets...)
	}
	c.AddTable(t)
	c.DelTable(t)
	r := &ruleset{c: c, t: c.AddTable(t), prev: prev, prevBans: bans, objs: map[string]bool{}, sets: map[string]*nftables.Set{}, ns: ns}
	build(r)
	if r.err != nil {
		return r.err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("apply %s table %s in %s: %w", familyName(family), name, netns.Label(ns), err)
	}
	return nil
}

// Remove deletes routerd's table from namespace ns, if it is there.
func Remove(ns string, family nftables.TableFamily, name string) error {
	if ns != "" && !netns.Exists(ns) {
		return nil
	}
	c, done, err := openConn(ns)
	if err != nil {
		return err
	}
	defer done()
	t := &nftables.Table{Name: name, Family: family}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete table %s in %s: %w", name, netns.Label(ns), err)
	}
	return nil
}

// Counter is one named counter as the kernel has it.
type Counter = status.Counter

// Counters reads the named counters of a table, sorted by name.
func Counters(ns string, family nftables.TableFamily, name string) ([]Counter, error) {
	c, done, err := openConn(ns)
	if err != nil {
		return nil, err
	}
	defer done()
	t := &nftables.Table{Name: name, Family: family}
	objs, err := c.GetObjects(t)
	if err != nil {
		return nil, fmt.Errorf("read counters of %s in %s: %w", name, netns.Label(ns), err)
	}
	var out []Counter
	for _, o := range objs {
		if co, ok := o.(*nftables.CounterObj); ok {
			out = append(out, Counter{Name: co.Name, Packets: co.Packets, Bytes: co.Bytes})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyNetdev:
		return "netdev"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	}
	return fmt.Sprint(f)
}

// counterObjs returns the named counters of a table as the kernel has
// them (none if the table is missing), so that a replacement can carry
// their values over.
func counterObjs(c *nftables.Conn, family nftables.TableFamily, name string) map[string]nftables.CounterObj {
	out := map[string]nftables.CounterObj{}
	if old, err := c.ListTableOfFamily(name, family); err == nil && old != nil {
		if objs, err := c.GetObjects(old); err == nil {
			for _, o := range objs {
				if co, ok := o.(*nftables.CounterObj); ok {
					out[co.Name] = *co
				}
			}
		}
	}
	return out
}

// openConn returns an nftables connection working in namespace ns. The
// namespace handle must stay open until the last Flush: the library dials
// its netlink socket at each Flush.
func openConn(ns string) (*nftables.Conn, func(), error) {
	fd, err := netns.Open(ns)
	if err != nil {
		return nil, nil, err
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(fd)), nftables.WithSockOptions(bigSendBuffer))
	if err != nil {
		fd.Close()
		return nil, nil, fmt.Errorf("nftables in %s: %w", netns.Label(ns), err)
	}
	return c, func() { fd.Close() }, nil
}

// bigSendBuffer lets a whole table go to the kernel in one sendmsg: a
// ruleset with a thousand forwards or a long policy set is more than the
// default socket buffer, and the kernel applies a batch all or nothing
// only when it arrives whole. The receive side gets room too: the kernel
// acknowledges each message of the batch, and on a busy box those acks
// outran the default buffer (ENOBUFS, the apply reported failed).
func bigSendBuffer(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 32<<20)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		}
	}); err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("netlink buffers of 32 MiB to send, 8 MiB to receive (SO_SNDBUFFORCE, SO_RCVBUFFORCE): %w", serr)
	}
	return nil
}

// payloadByte loads one byte of the transport header (ICMP type at 0).
func payloadByte(off uint32) expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 1}
}

func lookup(s *nftables.Set, neg bool) expr.Any {
	return &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, Invert: neg}
}

// icmp6NeededSet is the constant set of ICMPv6 types IPv6 needs.
func icmp6NeededSet(r *ruleset) *nftables.Set {
	if s, ok := r.sets["icmp6_needed"]; ok {
		return s
	}
	var elems []nftables.SetElement
	for _, t := range icmp6Needed {
		elems = append(elems, nftables.SetElement{Key: []byte{t}})
	}
	s := r.set("icmp6_needed", nftables.TypeICMP6Type, false, elems)
	return s
}
