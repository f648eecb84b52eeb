package router

import (
	"net/netip"
	"sync"
	"time"

	"github.com/routerd/routerd/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// reflectors are what autorate measures against: [sqm] reflectors, or
// else the gateway of the wan namespace's default route (the uplink that
// carries the traffic; on PPPoE the session's peer), looked up again
// every few seconds so that a failover or a new lease is followed.
type reflectors struct {
	ns    string
	fixed []netip.Addr

	mu     sync.Mutex
	gw     []netip.Addr
	looked time.Time
}

func (r *reflectors) get() []netip.Addr {
	if len(r.fixed) > 0 {
		return r.fixed
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.looked) < 5*time.Second && len(r.gw) > 0 {
		return r.gw
	}
	r.looked = time.Now()
	r.gw = nil
	if a, ok := defaultGateway4(r.ns); ok {
		r.gw = []netip.Addr{a}
	}
	return r.gw
}

// defaultGateway4 is the next hop of ns's preferred IPv4 default route:
// its gateway, or on a point-to-point link (PPP) the peer's address.
func defaultGateway4(ns string) (netip.Addr, bool) {
	h, err := netns.Handle(ns)
	if err != nil {
		return netip.Addr{}, false
	}
	defer h.Close()
	routes, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return netip.Addr{}, false
	}
	var best *netlink.Route
	for i, rt := range routes {
		if isDefaultRoute(rt) && (best == nil || rt.Priority < best.Priority) {
			best = &routes[i]
		}
	}
	if best == nil {
		return netip.Addr{}, false
	}
	if a, ok := netip.AddrFromSlice(best.Gw); ok {
		return a.Unmap(), true
	}
	link, err := h.LinkByIndex(best.LinkIndex)
	if err != nil {
		return netip.Addr{}, false
	}
	addrs, err := h.AddrList(link, unix.AF_INET)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		if a.Peer != nil {
			if p, ok := netip.AddrFromSlice(a.Peer.IP); ok {
				return p.Unmap(), true
			}
		}
	}
	return netip.Addr{}, false
}

func isDefaultRoute(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}
