package config

import (
	"net"
	"net/netip"
	"os/user"
	"slices"
	"strconv"

	"github.com/routerd/routerd/internal/via"
)

// Flow is what the path decision looks at in a LAN connection's first
// packet. A zero Dst or Port is unknown: the resolver asks for a client
// without knowing where its next connection goes.
type Flow struct {
	Src   netip.Addr
	MAC   net.HardwareAddr // nil: unknown
	Iface string
	Dst   netip.Addr
	Proto string // "tcp" | "udp"
	Port  uint16
}

// PathOf is the path decision of the firewall's policy chain, in Go: the
// first policy that matches f, else the default. The firewall's nftables
// translation (rules.Main's policy chain) implements the same rule, and
// the resolver uses this one to send a client's questions upstream by the
// path its traffic takes.
func (r *Routing) PathOf(f Flow) via.Path {
	if p := r.PolicyOf(f); p != nil {
		return p.Via
	}
	return r.Default
}

// PolicyOf is the first policy that matches f, or nil (the default).
func (r *Routing) PolicyOf(f Flow) *Policy {
	for i := range r.Policies {
		if r.Policies[i].Matches(f) {
			return &r.Policies[i]
		}
	}
	return nil
}

// Matches reports whether f matches the policy: any of its source matchers
// (address, MAC or interface; none means any source), and any of its
// destinations if it has some, and any of its ports if it has some. A
// destination or port matcher never matches an unknown one.
func (p *Policy) Matches(f Flow) bool {
	if p.Local() {
		return false // about this host's processes, never a LAN flow
	}
	return p.matchesSource(f) && p.matchesDestination(f) && p.matchesPort(f)
}

func (p *Policy) matchesSource(f Flow) bool {
	if len(p.SourceAddrs) == 0 && len(p.SourceMACs) == 0 && len(p.SourceIfaces) == 0 {
		return true
	}
	for _, s := range p.SourceAddrs {
		if f.Src.IsValid() && s.Contains(f.Src.Unmap()) {
			return true
		}
	}
	for _, m := range p.SourceMACs {
		if f.MAC != nil && slices.Equal(m, f.MAC) {
			return true
		}
	}
	return f.Iface != "" && slices.Contains(p.SourceIfaces, f.Iface)
}

func (p *Policy) matchesDestination(f Flow) bool {
	if len(p.Destinations) == 0 {
		return true
	}
	for _, d := range p.Destinations {
		if f.Dst.IsValid() && d.Contains(f.Dst.Unmap()) {
			return true
		}
	}
	return false
}

func (p *Policy) matchesPort(f Flow) bool {
	if len(p.DestinationPorts) == 0 {
		return true
	}
	for _, r := range p.DestinationPorts {
		if f.Port != 0 && r.Proto == f.Proto && r.From <= f.Port && f.Port <= r.To {
			return true
		}
	}
	return false
}

// loadUsers resolves the local policies' user names to uids on this host.
// A name this host does not know is left out, and FileWarnings says so:
// the package that creates the user may come later, and a reload picks it
// up.
func (r *Routing) loadUsers() {
	for i := range r.Policies {
		pol := &r.Policies[i]
		pol.UIDs = nil
		for _, name := range pol.Users {
			if uid, ok := lookupUID(name); ok {
				pol.UIDs = append(pol.UIDs, uid)
			}
		}
	}
}

func lookupUID(name string) (uint32, bool) {
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		return uint32(n), true
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	return uint32(n), err == nil
}
