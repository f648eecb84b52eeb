package netns

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The plan's routes and policy rules, converged by protocol number.

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
	if nr.Type == unix.RTN_UNREACHABLE || nr.Type == unix.RTN_THROW {
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
