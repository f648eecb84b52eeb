package rules

import (
	"errors"
	"fmt"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/routerd/routerd/netns"
	"golang.org/x/sys/unix"
)

// Flow offload (OpenWrt's software flow offloading): each namespace's
// table has a flowtable over the devices that forward there, and the
// forward chain adds an established TCP or UDP connection to it after
// every decision about it was made (its path, NAT, the filters). From then
// on the kernel forwards its packets at the ingress hook, by the route and
// NAT the connection already has, skipping prerouting, forward and
// postrouting. What a flow does not skip: the WAN NIC's netdev hardening
// (a hook before the flowtable's). What ends a flow: its conntrack entry
// going (routerd deletes those a blocklist or a ban moves), a device of
// its route going down, its route changing, TCP FIN or RST, idleness.

// FlowtableName is the flowtable in routerd's table of each namespace.
const FlowtableName = "ft"

// Offload says which devices a namespace's flowtable spans; devices that
// are not there when the ruleset is applied are left out (a NIC not yet
// plugged in, a tunnel not yet up), and the ruleset is applied again when
// they come. Zero: no flowtable.
type Offload struct {
	Devices []string
}

// flowtable adds the table's flowtable over the devices of o present in
// its namespace; false when there is none (offload off, no device, or a
// kernel without flowtables: then the ruleset is the same without them).
func (r *ruleset) flowtable(o Offload) bool {
	devs := presentLinks(r.ns, o.Devices)
	if len(devs) == 0 || FlowOffloadSupported(r.ns) != nil {
		return false
	}
	r.c.AddFlowtable(&nftables.Flowtable{Table: r.t, Name: FlowtableName, Hooknum: nftables.FlowtableHookIngress,
		Priority: nftables.FlowtablePriorityFilter, Devices: devs,
		// Offloaded packets still count in conntrack's own accounting.
		Flags: nftables.FlowtableFlagsCounter})
	r.offloading = true
	return true
}

// offload adds, to a forward chain, the rules that move an established
// TCP or UDP connection matching match into the flowtable. It must come
// after every rule that drops or marks established packets.
func (r *ruleset) offload(ch *nftables.Chain, match ...exprs) {
	if !r.offloading {
		return
	}
	for _, proto := range []byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
		r.rule(ch, cat(match...), ctState(ctEstablished), l4proto(proto), exprs{&expr.FlowOffload{Name: FlowtableName}})
	}
}

// presentLinks returns those of names that are links in namespace ns.
func presentLinks(ns string, names []string) []string {
	if len(names) == 0 {
		return nil
	}
	h, err := netns.Handle(ns)
	if err != nil {
		return nil
	}
	defer h.Close()
	var out []string
	for _, n := range names {
		if _, err := h.LinkByName(n); err == nil {
			out = append(out, n)
		}
	}
	return out
}

var (
	offloadOnce sync.Once
	offloadErr  error
)

// FlowOffloadSupported reports whether the kernel has flowtables
// (nf_flow_table, nft_flow_offload): it adds a table with a flowtable and
// deletes it again in one transaction in namespace ns, which leaves
// nothing behind either way. The answer is the kernel's: asked once.
func FlowOffloadSupported(ns string) error {
	offloadOnce.Do(func() { offloadErr = probeFlowtable(ns) })
	return offloadErr
}

func probeFlowtable(ns string) error {
	c, done, err := openConn(ns)
	if err != nil {
		return err
	}
	defer done()
	t := c.AddTable(&nftables.Table{Name: "routerd_probe", Family: nftables.TableFamilyINet})
	c.AddFlowtable(&nftables.Flowtable{Table: t, Name: FlowtableName, Hooknum: nftables.FlowtableHookIngress,
		Priority: nftables.FlowtablePriorityFilter, Devices: []string{"lo"}})
	ch := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Hooknum: nftables.ChainHookForward,
		Priority: nftables.ChainPriorityFilter, Type: nftables.ChainTypeFilter})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{&expr.FlowOffload{Name: FlowtableName}}})
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
			return errors.New("this kernel has no flowtables (nf_flow_table, nft_flow_offload)")
		}
		return fmt.Errorf("probe flowtables in %s: %w", netns.Label(ns), err)
	}
	return nil
}

// FlowtableDevices returns the devices of the flowtable in routerd's table
// of namespace ns, as the kernel has them; none when there is no flowtable.
func FlowtableDevices(ns string) ([]string, error) {
	c, done, err := openConn(ns)
	if err != nil {
		return nil, err
	}
	defer done()
	fts, err := c.ListFlowtables(&nftables.Table{Name: Table, Family: nftables.TableFamilyINet})
	if err != nil {
		return nil, fmt.Errorf("list flowtables in %s: %w", netns.Label(ns), err)
	}
	for _, ft := range fts {
		if ft.Name == FlowtableName {
			return ft.Devices, nil
		}
	}
	return nil, nil
}
