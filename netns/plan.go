package netns

import (
	"bytes"
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
	Type   int // unix.RTN_UNICAST (0 is taken as unicast) or unix.RTN_UNREACHABLE
	Metric int
}

func (r Route) String() string {
	var b strings.Builder
	if r.Type == unix.RTN_UNREACHABLE {
		b.WriteString("unreachable ")
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

func ensureBridge(h *netlink.Handle, b Bridge) (int, error) {
	changes := 0
	l, err := h.LinkByName(b.Name)
	if err != nil {
		if !isNotFound(err) {
			return 0, fmt.Errorf("look up bridge %s: %w", b.Name, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: b.Name}}
		if err := h.LinkAdd(br); err != nil {
			return 0, fmt.Errorf("create bridge %s: %w", b.Name, err)
		}
		changes++
		if l, err = h.LinkByName(b.Name); err != nil {
			return changes, fmt.Errorf("look up bridge %s: %w", b.Name, err)
		}
	} else if l.Type() != "bridge" {
		return 0, fmt.Errorf("%s exists and is a %s, not a bridge", b.Name, l.Type())
	}
	n, err := ensureAddrs(h, l, b.Addrs)
	return changes + n, err
}

func ensureVeth(main *netlink.Handle, v Veth) (int, error) {
	changes := 0
	peerNS, err := Open(v.PeerNS)
	if err != nil {
		return 0, err
	}
	defer peerNS.Close()
	ph, err := Handle(v.PeerNS)
	if err != nil {
		return 0, err
	}
	defer ph.Close()

	l, err := main.LinkByName(v.Name)
	if err != nil && !isNotFound(err) {
		return 0, fmt.Errorf("look up %s: %w", v.Name, err)
	}
	peer, perr := ph.LinkByName(v.PeerName)
	if l != nil && (perr != nil || l.Type() != "veth") {
		// Half a pair (its namespace was recreated, say): start over.
		if err := main.LinkDel(l); err != nil {
			return 0, fmt.Errorf("delete stale %s: %w", v.Name, err)
		}
		changes++
		l = nil
	}
	if l == nil {
		if perr == nil {
			// A stray peer-side link with our name: it can only be ours.
			ph.LinkDel(peer)
		}
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: v.Name},
			PeerName:      v.PeerName,
			PeerNamespace: netlink.NsFd(int(peerNS)),
		}
		if err := main.LinkAdd(veth); err != nil {
			return changes, fmt.Errorf("create veth %s (peer %s in netns %s): %w", v.Name, v.PeerName, v.PeerNS, err)
		}
		changes++
		if l, err = main.LinkByName(v.Name); err != nil {
			return changes, fmt.Errorf("look up %s: %w", v.Name, err)
		}
		if peer, err = ph.LinkByName(v.PeerName); err != nil {
			return changes, fmt.Errorf("look up %s in netns %s: %w", v.PeerName, v.PeerNS, err)
		}
	}
	if v.Master != "" {
		m, err := main.LinkByName(v.Master)
		if err != nil {
			return changes, fmt.Errorf("look up %s: %w", v.Master, err)
		}
		if l.Attrs().MasterIndex != m.Attrs().Index {
			if err := main.LinkSetMasterByIndex(l, m.Attrs().Index); err != nil {
				return changes, fmt.Errorf("enslave %s to %s: %w", v.Name, v.Master, err)
			}
			changes++
		}
	}
	if v.PeerMAC != nil && !bytes.Equal(peer.Attrs().HardwareAddr, v.PeerMAC) {
		if err := ph.LinkSetHardwareAddr(peer, v.PeerMAC); err != nil {
			return changes, fmt.Errorf("set MAC of %s in netns %s to %s: %w", v.PeerName, v.PeerNS, v.PeerMAC, err)
		}
		changes++
	}
	n, err := ensureAddrs(ph, peer, v.PeerAddrs)
	changes += n
	if err != nil {
		return changes, fmt.Errorf("netns %s: %w", v.PeerNS, err)
	}
	return changes, nil
}

// linksUp brings the plan's bridges and both ends of its veths up.
func (p *Plan) linksUp(main *netlink.Handle) (int, error) {
	changes := 0
	up := func(h *netlink.Handle, name string) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("look up %s: %w", name, err)
		}
		n, err := ensureUp(h, l)
		changes += n
		return err
	}
	var errs []error
	for _, b := range p.Bridges {
		errs = append(errs, up(main, b.Name))
	}
	for _, v := range p.Veths {
		errs = append(errs, up(main, v.Name))
		ph, err := Handle(v.PeerNS)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, up(ph, v.PeerName))
		ph.Close()
	}
	return changes, errors.Join(errs...)
}

func loopbackUp(ns string) (int, error) {
	h, err := Handle(ns)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return 0, fmt.Errorf("look up lo in %s: %w", Label(ns), err)
	}
	return ensureUp(h, lo)
}

func ensureUp(h *netlink.Handle, l netlink.Link) (int, error) {
	if l.Attrs().Flags&net.FlagUp != 0 {
		return 0, nil
	}
	if err := h.LinkSetUp(l); err != nil {
		return 0, fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
	}
	return 1, nil
}

// ensureAddrs makes the link's global addresses exactly want. Link-local
// addresses are the kernel's and left alone. New addresses skip duplicate
// address detection: they are on links only routerd uses, and DAD would
// delay IPv6 by seconds at every start.
func ensureAddrs(h *netlink.Handle, l netlink.Link, want []netip.Prefix) (int, error) {
	return SyncAddrs(h, l, want, true)
}

// SyncAddrs makes l's global addresses exactly want; with exclusive false it
// only adds what is missing.
func SyncAddrs(h *netlink.Handle, l netlink.Link, want []netip.Prefix, exclusive bool) (int, error) {
	have, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return 0, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	changes := 0
	wanted := map[netip.Prefix]bool{}
	for _, w := range want {
		wanted[w] = true
	}
	present := map[netip.Prefix]bool{}
	for _, a := range have {
		p := PrefixOf(a.IPNet)
		if p.Addr().IsLinkLocalUnicast() {
			continue
		}
		present[p] = true
		if exclusive && !wanted[p] {
			if err := h.AddrDel(l, &a); err != nil {
				return changes, fmt.Errorf("remove %s from %s: %w", p, l.Attrs().Name, err)
			}
			changes++
		}
	}
	for _, w := range want {
		if present[w] {
			continue
		}
		a := &netlink.Addr{IPNet: IPNet(w)}
		if w.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, a); err != nil {
			return changes, fmt.Errorf("add %s to %s: %w", w, l.Attrs().Name, err)
		}
		changes++
	}
	return changes, nil
}

// convergeRoutes makes the Proto routes in namespace ns exactly the plan's.
func (p *Plan) convergeRoutes(ns string) (changes int, missing []string, err error) {
	h, err := Handle(ns)
	if err != nil {
		return 0, nil, err
	}
	defer h.Close()
	want := map[string]*netlink.Route{}
	var order []string
	var errs []error
	for _, r := range p.Routes {
		if r.NS != ns {
			continue
		}
		nr, err := r.netlink(h, p.proto())
		if err != nil {
			if isNotFound(err) {
				missing = append(missing, r.Dev)
				continue
			}
			errs = append(errs, err)
			continue
		}
		k := routeKey(nr)
		want[k] = nr
		order = append(order, k)
	}
	have, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: netlink.RouteProtocol(p.proto()), Table: unix.RT_TABLE_UNSPEC},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return 0, missing, fmt.Errorf("list routes in %s: %w", Label(ns), err)
	}
	present := map[string]bool{}
	for i := range have {
		k := routeKey(&have[i])
		if _, ok := want[k]; ok {
			present[k] = true
			continue
		}
		if err := h.RouteDel(&have[i]); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s in %s: %w", k, Label(ns), err))
			continue
		}
		changes++
	}
	for _, k := range order {
		if present[k] {
			continue
		}
		if err := h.RouteReplace(want[k]); err != nil {
			errs = append(errs, fmt.Errorf("add route %s in %s: %w", k, Label(ns), err))
			continue
		}
		present[k] = true
		changes++
	}
	return changes, missing, errors.Join(errs...)
}

func (r Route) netlink(h *netlink.Handle, proto int) (*netlink.Route, error) {
	nr := &netlink.Route{
		Dst:      IPNet(r.Dst.Masked()),
		Protocol: netlink.RouteProtocol(proto),
		Table:    r.Table,
		Priority: r.Metric,
		Type:     r.Type,
		Family:   netlink.FAMILY_V4,
	}
	if r.Dst.Addr().Is6() {
		nr.Family = netlink.FAMILY_V6
	}
	if nr.Table == 0 {
		nr.Table = unix.RT_TABLE_MAIN
	}
	if nr.Type == 0 {
		nr.Type = unix.RTN_UNICAST
	}
	if r.Gw.IsValid() {
		nr.Gw = r.Gw.AsSlice()
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if r.Dev != "" {
		l, err := h.LinkByName(r.Dev)
		if err != nil {
			return nil, fmt.Errorf("route %s: link %s: %w", r, r.Dev, err)
		}
		nr.LinkIndex = l.Attrs().Index
		if !r.Gw.IsValid() {
			nr.Scope = netlink.SCOPE_LINK
		}
	}
	if nr.Type == unix.RTN_UNREACHABLE {
		nr.Scope = netlink.SCOPE_UNIVERSE
	}
	return nr, nil
}

// routeKey identifies a route by what makes it distinct to the kernel plus
// what routerd sets, so a listed route and a planned one compare equal.
func routeKey(r *netlink.Route) string {
	dst := "default"
	if r.Dst != nil {
		dst = PrefixOf(r.Dst).String()
	}
	if dst == "0.0.0.0/0" || dst == "::/0" {
		dst = "default"
		if r.Family == netlink.FAMILY_V6 || (r.Dst != nil && r.Dst.IP.To4() == nil) {
			dst = "default6"
		}
	}
	gw, src := "", ""
	if r.Gw != nil {
		gw = r.Gw.String()
	}
	if r.Src != nil {
		src = r.Src.String()
	}
	metric := r.Priority
	if metric == 0 && isV6Route(r) {
		metric = 1024 // the kernel's default for IPv6
	}
	dev := r.LinkIndex
	if r.Type != unix.RTN_UNICAST && r.Type != 0 {
		dev = 0 // the kernel reports IPv6 unreachable routes on lo
	}
	return fmt.Sprintf("type=%d table=%d dst=%s gw=%s dev=%d src=%s metric=%d", r.Type, r.Table, dst, gw, dev, src, metric)
}

func isV6Route(r *netlink.Route) bool {
	if r.Family == netlink.FAMILY_V6 {
		return true
	}
	return r.Dst != nil && r.Dst.IP.To4() == nil
}

// convergeRules makes the Proto rules in namespace ns exactly the plan's.
func (p *Plan) convergeRules(ns string) (int, error) {
	h, err := Handle(ns)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	changes := 0
	var errs []error
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		have, err := h.RuleList(fam)
		if err != nil {
			return changes, fmt.Errorf("list rules in %s: %w", Label(ns), err)
		}
		want := map[string]Rule{}
		var order []string
		for _, r := range p.Rules {
			if r.NS == ns && r.V6 == (fam == netlink.FAMILY_V6) {
				k := r.String()
				want[k] = r
				order = append(order, k)
			}
		}
		present := map[string]bool{}
		for _, hr := range have {
			if int(hr.Protocol) != p.proto() {
				continue
			}
			mask := uint32(0xffffffff)
			if hr.Mask != nil {
				mask = *hr.Mask
			}
			k := Rule{V6: fam == netlink.FAMILY_V6, Priority: hr.Priority, Mark: hr.Mark, Mask: mask, Table: hr.Table}.String()
			if _, ok := want[k]; ok && !present[k] {
				present[k] = true
				continue
			}
			hr := hr
			if err := h.RuleDel(&hr); err != nil {
				errs = append(errs, fmt.Errorf("delete rule %s in %s: %w", k, Label(ns), err))
				continue
			}
			changes++
		}
		for _, k := range order {
			if present[k] {
				continue
			}
			r := want[k]
			nr := netlink.NewRule()
			nr.Family = fam
			nr.Priority = r.Priority
			nr.Mark = r.Mark
			mask := r.Mask
			nr.Mask = &mask
			nr.Table = r.Table
			nr.Protocol = uint8(p.proto())
			if err := h.RuleAdd(nr); err != nil {
				errs = append(errs, fmt.Errorf("add %s in %s: %w", k, Label(ns), err))
				continue
			}
			present[k] = true
			changes++
		}
	}
	return changes, errors.Join(errs...)
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
	for _, b := range p.Bridges {
		if l, err := main.LinkByName(b.Name); err == nil {
			if err := main.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", b.Name, err))
			}
		}
	}
	var restoreMain []Sysctl
	for _, s := range restore {
		if s.NS == "" {
			restoreMain = append(restoreMain, s)
		}
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
