package failover

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/routerd/routerd/internal/rtproto"
	"github.com/routerd/routerd/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Metric is the active uplink's default routes': in front of each
// uplink's own (their DHCP client, PPP session or static config installs
// them at the uplink's metric, so that a probe bound to the uplink finds
// its way out whichever is active).
const Metric = 1

// Steer makes the active uplink's default routes, of both families, the
// namespace's: copies of iface's own default routes at Metric, replacing
// any through another interface. An uplink without a default route of a
// family (no lease yet) leaves that family to the uplinks' own routes.
func Steer(ns, iface string) error {
	h, link, err := netns.HandleLink(ns, iface)
	if err != nil {
		return err
	}
	defer h.Close()
	var errs []error
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			errs = append(errs, fmt.Errorf("list routes in %s: %w", netns.Label(ns), err))
			continue
		}
		var want *netlink.Route
		var have []netlink.Route
		for _, r := range routes {
			if !isDefault(r) {
				continue
			}
			if r.Protocol == rtproto.Failover {
				have = append(have, r)
				continue
			}
			if r.LinkIndex == link.Attrs().Index && (want == nil || r.Priority < want.Priority) {
				want = &netlink.Route{LinkIndex: r.LinkIndex, Dst: r.Dst, Gw: r.Gw, Scope: r.Scope, Family: fam,
					Priority: Metric, Protocol: rtproto.Failover, Table: unix.RT_TABLE_MAIN}
			}
		}
		for _, r := range have {
			if want != nil && r.LinkIndex == want.LinkIndex && r.Gw.Equal(want.Gw) {
				want = nil // already so
				continue
			}
			if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("remove the default route via %s in %s: %w", r.Gw, netns.Label(ns), err))
			}
		}
		if want != nil {
			if want.Dst == nil {
				want.Dst = defaultDst(fam)
			}
			if err := h.RouteReplace(want); err != nil {
				errs = append(errs, fmt.Errorf("default route via %s %s in %s: %w", iface, want.Gw, netns.Label(ns), err))
			}
		}
	}
	return errors.Join(errs...)
}

// Unsteer removes Steer's routes: each uplink's own decide again.
func Unsteer(ns string) error {
	h, err := netns.Handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	var errs []error
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: rtproto.Failover},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range routes {
			if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

func defaultDst(fam int) *net.IPNet {
	if fam == netlink.FAMILY_V6 {
		return netns.IPNet(netip.MustParsePrefix("::/0"))
	}
	return netns.IPNet(netip.MustParsePrefix("0.0.0.0/0"))
}

// Steered returns the interface the namespace's failover routes go
// through ("": none), as an earlier routerd left them.
func Steered(ns string) string {
	h, err := netns.Handle(ns)
	if err != nil {
		return ""
	}
	defer h.Close()
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: rtproto.Failover},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil || len(routes) == 0 {
		return ""
	}
	l, err := h.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return ""
	}
	return l.Attrs().Name
}
