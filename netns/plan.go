package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/routerd/routerd/internal/rtproto"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Proto is the rtnetlink protocol number on every route and rule routerd
// installs ("proto 201" in ip route/ip rule). It is how convergence and
// teardown recognise routerd's own entries without keeping a list of them.
const Proto = rtproto.Plan

// Plan is the desired state of the links, addresses, routes and rules that
// routerd owns across its namespaces. Apply converges to it; applying the
// same plan twice changes nothing the second time.
type Plan struct {
	Namespaces []string // named namespaces that must exist
	Sysctls    []Sysctl
	Bridges    []Bridge // in the main namespace
	VLANs      []VLAN   // in the main namespace, on the plan's bridges
	Veths      []Veth   // one end in main, the other in a named namespace
	Routes     []Route
	Rules      []Rule
	// RouteNamespaces lists every namespace whose Proto routes and rules
	// this plan owns: entries of Proto there that the plan lacks are
	// removed. "" is the main namespace.
	RouteNamespaces []string
	// Proto is the routes' and rules' protocol number, when not Proto: a
	// second owner of routes (the delegated prefix's) converges its own
	// without touching the routing plan's.
	Proto int
}

func (p *Plan) proto() int {
	if p.Proto != 0 {
		return p.Proto
	}
	return Proto
}

// Bridge is a bridge in the main namespace with its addresses.
type Bridge struct {
	Name  string
	Addrs []netip.Prefix
	MTU   int // 0: the kernel's
}

// VLAN is an 802.1Q sub-interface in the main namespace.
type VLAN struct {
	Name   string
	Parent string // a link of the plan (a bridge) or one that exists
	ID     int
	Addrs  []netip.Prefix
	MTU    int // 0: the parent's
}

// Veth is a veth pair: Name in the main namespace (enslaved to Master),
// PeerName in PeerNS with PeerAddrs.
type Veth struct {
	Name      string
	Master    string
	PeerNS    string
	PeerName  string
	PeerAddrs []netip.Prefix
	// PeerMAC fixes the peer end's MAC (nil: the kernel's random one), so
	// that the main namespace's firewall can tell which namespace a
	// packet arriving on the bridge came from.
	PeerMAC net.HardwareAddr
}

// Route is one route. Dst is required (0.0.0.0/0 or ::/0 for default).
type Route struct {
	NS     string
	Table  int // 0 means main
	Dst    netip.Prefix
	Gw     netip.Addr
	Dev    string
	Src    netip.Addr
	Type   int // unix.RTN_UNICAST (0 is taken as unicast), unix.RTN_UNREACHABLE or unix.RTN_THROW
	Metric int
}

func (r Route) String() string {
	var b strings.Builder
	switch r.Type {
	case unix.RTN_UNREACHABLE:
		b.WriteString("unreachable ")
	case unix.RTN_THROW:
		b.WriteString("throw ")
	}
	if r.Dst.Bits() == 0 {
		b.WriteString("default")
	} else {
		b.WriteString(r.Dst.String())
	}
	if r.Gw.IsValid() {
		b.WriteString(" via " + r.Gw.String())
	}
	if r.Dev != "" {
		b.WriteString(" dev " + r.Dev)
	}
	if r.Src.IsValid() {
		b.WriteString(" src " + r.Src.String())
	}
	if r.Table != 0 {
		fmt.Fprintf(&b, " table %d", r.Table)
	}
	if r.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", r.Metric)
	}
	if r.NS != "" {
		b.WriteString(" in " + r.NS)
	}
	return b.String()
}

// Rule is a policy routing rule: packets with (mark & Mask) == Mark look up
// Table.
type Rule struct {
	NS       string
	V6       bool
	Priority int
	Mark     uint32
	Mask     uint32
	Table    int
}

func (r Rule) String() string {
	fam := "ip"
	if r.V6 {
		fam = "ip -6"
	}
	return fmt.Sprintf("%s rule %d: fwmark %#x/%#x lookup %d", fam, r.Priority, r.Mark, r.Mask, r.Table)
}

// Result says what an Apply did.
type Result struct {
	Changes       int      // netlink and sysctl mutations made
	Created       []string // namespaces this Apply created
	SysctlsBefore []Sysctl // previous values of the sysctls it changed
	MissingLinks  []string // links routes referred to that do not exist (yet)
}

// Apply converges the machine to p. It does every part it can and returns
// the errors of the parts it could not, joined.
func (p *Plan) Apply() (Result, error) {
	var res Result
	var errs []error
	for _, name := range p.Namespaces {
		created, err := Ensure(name)
		if err != nil {
			return res, err // nothing else can work without it
		}
		if created {
			res.Created = append(res.Created, name)
			res.Changes++
		}
	}
	for _, name := range p.Namespaces {
		n, err := loopbackUp(name)
		res.Changes += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	before := p.readSysctls()
	n, err := SetSysctls(p.globalSysctls())
	res.Changes += n
	if err != nil {
		errs = append(errs, err)
	}
	main, err := Handle("")
	if err != nil {
		return res, err
	}
	defer main.Close()
	for _, b := range p.Bridges {
		n, err := ensureBridge(main, b)
		res.Changes += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, v := range p.VLANs {
		n, err := ensureVLAN(main, v)
		res.Changes += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, v := range p.Veths {
		n, err := ensureVeth(main, v)
		res.Changes += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	// Interface sysctls once the links exist but before they come up, so
	// that settings like accept_dad hold from the first moment.
	n, err = SetSysctls(p.linkSysctls())
	res.Changes += n
	if err != nil {
		errs = append(errs, err)
	}
	n, err = p.linksUp(main)
	res.Changes += n
	if err != nil {
		errs = append(errs, err)
	}
	for _, s := range p.Sysctls {
		if v, ok := before[s]; ok && v != s.Value {
			res.SysctlsBefore = append(res.SysctlsBefore, Sysctl{NS: s.NS, Key: s.Key, Value: v})
		}
	}
	for _, ns := range p.RouteNamespaces {
		n, missing, err := p.convergeRoutes(ns)
		res.Changes += n
		res.MissingLinks = append(res.MissingLinks, missing...)
		if err != nil {
			errs = append(errs, err)
		}
		n, err = p.convergeRules(ns)
		res.Changes += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

// globalSysctls are those that exist before any link of ours does.
func (p *Plan) globalSysctls() []Sysctl {
	var out []Sysctl
	for _, s := range p.Sysctls {
		if !p.isLinkSysctl(s) {
			out = append(out, s)
		}
	}
	return out
}

func (p *Plan) linkSysctls() []Sysctl {
	var out []Sysctl
	for _, s := range p.Sysctls {
		if p.isLinkSysctl(s) {
			out = append(out, s)
		}
	}
	return out
}

// isLinkSysctl reports whether s is per-interface for a link this plan makes.
func (p *Plan) isLinkSysctl(s Sysctl) bool {
	for _, b := range p.Bridges {
		if strings.Contains(s.Key, "/"+b.Name+"/") {
			return true
		}
	}
	for _, v := range p.Veths {
		if strings.Contains(s.Key, "/"+v.Name+"/") || strings.Contains(s.Key, "/"+v.PeerName+"/") {
			return true
		}
	}
	for _, v := range p.VLANs {
		if strings.Contains(s.Key, "/"+v.Name+"/") {
			return true
		}
	}
	return false
}

func (p *Plan) readSysctls() map[Sysctl]string {
	out := map[Sysctl]string{}
	for _, s := range p.Sysctls {
		if v, err := ReadSysctl(s.NS, s.Key); err == nil {
			out[s] = v
		}
	}
	return out
}

// Teardown removes what the plan makes: rules and routes of Proto in its
// namespaces, veths, bridges, and the namespaces listed in created (those
// routerd made; a namespace that existed before routerd stays). Sysctls are
// set back to restore.
func (p *Plan) Teardown(created []string, restore []Sysctl) error {
	var errs []error
	empty := &Plan{RouteNamespaces: p.RouteNamespaces, Proto: p.Proto}
	for _, ns := range p.RouteNamespaces {
		if ns != "" && !Exists(ns) {
			continue
		}
		if _, _, err := empty.convergeRoutes(ns); err != nil {
			errs = append(errs, err)
		}
		if _, err := empty.convergeRules(ns); err != nil {
			errs = append(errs, err)
		}
	}
	main, err := Handle("")
	if err != nil {
		return err
	}
	defer main.Close()
	for _, v := range p.Veths {
		if l, err := main.LinkByName(v.Name); err == nil {
			if err := main.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", v.Name, err))
			}
		}
	}
	for _, v := range p.VLANs {
		if l, err := main.LinkByName(v.Name); err == nil && l.Type() == "vlan" {
			if err := main.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", v.Name, err))
			}
		}
	}
	for _, b := range p.Bridges {
		if l, err := main.LinkByName(b.Name); err == nil {
			if err := main.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", b.Name, err))
			}
		}
	}
	// Only the main namespace's settings need restoring: a namespace
	// routerd made takes its own with it. So does an interface that is
	// gone (the relay's tunnel, deleted when routerd stopped).
	var restoreMain []Sysctl
	for _, s := range restore {
		if s.NS != "" {
			continue
		}
		if iface := s.Interface(); iface != "" {
			if _, err := main.LinkByName(iface); errors.As(err, new(netlink.LinkNotFoundError)) {
				continue
			}
		}
		restoreMain = append(restoreMain, s)
	}
	if _, err := SetSysctls(restoreMain); err != nil {
		errs = append(errs, err)
	}
	for _, ns := range created {
		if err := Delete(ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Label names a namespace in errors and logs: "main netns" or "netns NAME".
func Label(ns string) string {
	if ns == "" {
		return "main netns"
	}
	return "netns " + ns
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// IPNet converts a prefix to netlink's form.
func IPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// PrefixOf converts netlink's form back; IPv4-mapped addresses come back as
// IPv4.
func PrefixOf(n *net.IPNet) netip.Prefix {
	a, _ := netip.AddrFromSlice(n.IP)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

// Owned lists routerd's rules and routes in namespace ns, in ip's words,
// for status.
func Owned(ns string) (rules, routes []string) {
	h, err := Handle(ns)
	if err != nil {
		return []string{err.Error()}, nil
	}
	defer h.Close()
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, _ := h.RuleList(fam)
		for _, r := range rs {
			if r.Protocol != Proto {
				continue
			}
			mask := uint32(0xffffffff)
			if r.Mask != nil {
				mask = *r.Mask
			}
			rules = append(rules, Rule{V6: fam == netlink.FAMILY_V6, Priority: r.Priority, Mark: r.Mark, Mask: mask, Table: r.Table}.String())
		}
	}
	rts, _ := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: Proto, Table: unix.RT_TABLE_UNSPEC},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	names := map[int]string{}
	if ls, err := h.LinkList(); err == nil {
		for _, l := range ls {
			names[l.Attrs().Index] = l.Attrs().Name
		}
	}
	for _, r := range rts {
		out := Route{Table: r.Table, Type: r.Type, Metric: r.Priority, Dev: names[r.LinkIndex]}
		if out.Table == unix.RT_TABLE_MAIN {
			out.Table = 0
		}
		if out.Type == unix.RTN_UNICAST {
			out.Type = 0
		}
		if r.Dst != nil {
			out.Dst = PrefixOf(r.Dst)
		} else if r.Family == netlink.FAMILY_V6 {
			out.Dst = netip.MustParsePrefix("::/0")
		} else {
			out.Dst = netip.MustParsePrefix("0.0.0.0/0")
		}
		out.Gw, _ = netip.AddrFromSlice(r.Gw)
		out.Gw = out.Gw.Unmap()
		out.Src, _ = netip.AddrFromSlice(r.Src)
		out.Src = out.Src.Unmap()
		routes = append(routes, out.String())
	}
	return rules, routes
}
