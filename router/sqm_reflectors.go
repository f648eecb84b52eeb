package router

import (
	"net/netip"
	"sync"

	"github.com/routerd/routerd/dhcp"
)

// reflectors are what autorate measures against: [sqm] reflectors, or
// else the gateway of the active uplink's lease (the WAN's OnLease: the
// DHCP router, the PPPoE session's peer, the static gateway), which
// follows a failover and a new lease.
type reflectors struct {
	fixed []netip.Addr

	mu sync.Mutex
	gw netip.Addr
}

func (r *reflectors) get() []netip.Addr {
	if len(r.fixed) > 0 {
		return r.fixed
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.gw.IsValid() {
		return nil
	}
	return []netip.Addr{r.gw}
}

// lease takes the active uplink's lease (nil: none).
func (r *reflectors) lease(l *dhcp.WANLease) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gw = netip.Addr{}
	if l != nil && l.Router.Is4() {
		r.gw = l.Router
	}
}
