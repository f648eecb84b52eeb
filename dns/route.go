package dns

import "github.com/routerd/routerd/internal/via"

// Route is the way a client's questions go upstream: the path whose socket
// mark they are sent with, and the servers they are asked of. View 0 is
// the configured upstreams (with the ISP's as fallback); view i is
// Config.Views[i-1], a routing policy's own servers, and nothing else: a
// question meant for them never reaches another. Each route has its own
// answers in the cache.
type Route struct {
	Path via.Path
	View uint8
}

// View is a set of upstream servers of its own: a routing policy's.
type View struct {
	Name      string // the policy's, for status
	Upstreams []Upstream
}

// routeMDNS keys answers learnt over mDNS: they belong to no upstream.
var routeMDNS = Route{Path: 0xff}

// forwarder is the forwarder of a view: the default one for view 0 or a
// view the resolver does not have.
func (r *Resolver) forwarder(view uint8) *forwarder {
	if view == 0 || int(view) > len(r.views) {
		return r.fwd
	}
	return r.views[view-1]
}
