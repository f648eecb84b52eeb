package dhcp

import (
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// What a hostile LAN client can do to the DHCPv4 server and others'
// leases, and the limits on it.

// Hostile clients: a client may hold maxLeasesPerMAC leases under one
// hardware address (one per client identifier: a host with two stacks, a
// VM), and the whole LAN may quarantine maxDeclines addresses per
// declineWindow; beyond that a client declining addresses it was given is
// draining the pool, not reporting conflicts.
const (
	maxLeasesPerMAC = 2
	maxDeclines     = 4
	declineWindow   = time.Minute
)

// tooMany reports whether the hardware address mac holds the most leases
// it may under other client identifiers than key's.
func (s *Server4) tooMany(mac, key string, now time.Time) bool {
	return s.store.CountMAC(s.cfg.Iface, mac, key, now) >= maxLeasesPerMAC
}

// release frees the lease of a client that says it is done with it. The
// client sends its RELEASE from the leased address itself (RFC 2131
// §4.4.6), or through its relay: one from anywhere else is someone with
// the client's hardware address in a forged packet.
func (s *Server4) release(req *dhcpv4.DHCPv4, src netip.Addr) {
	ci, ok := netip.AddrFromSlice(req.ClientIPAddr.To4())
	if !ok {
		return
	}
	gi, _ := netip.AddrFromSlice(req.GatewayIPAddr.To4())
	if src != ci && (!gi.IsValid() || gi.IsUnspecified() || src != gi) {
		s.count("drop_release_not_from_client")
		return
	}
	if l, ok := s.store.ByAddr(ci); ok && l.Key() == s.key(req) {
		if err := s.store.Release(l); err != nil {
			s.cfg.Log.Error("release DHCPv4 lease", "err", err)
		}
	}
}

func (s *Server4) decline(req *dhcpv4.DHCPv4, now time.Time) {
	a, ok := netip.AddrFromSlice(req.RequestedIPAddress().To4())
	if !ok || !s.cfg.Addr.Masked().Contains(a) {
		return
	}
	// Only the address this client was offered or given, never a
	// reservation's (a conflict there is the admin's to solve), and at a
	// bounded rate.
	key := s.key(req)
	l, leased := s.store.ByAddr(a)
	s.mu.Lock()
	o, offered := s.offers[a]
	s.mu.Unlock()
	if !(leased && l.Key() == key) && !(offered && o.key == key) {
		s.count("drop_decline_not_given")
		return
	}
	if _, reserved := s.byIP[a]; reserved {
		s.count("drop_decline_reserved")
		return
	}
	if !s.declineAllowed(now) {
		s.count("drop_decline_rate")
		return
	}
	if ok, held := s.warn.Allow("decline", now); ok {
		s.cfg.Log.Warn("DHCPv4 address declined: in use by someone else; quarantined", "addr", a, "client", req.ClientHWAddr, "since_last_warning", held)
	}
	if err := s.store.Decline(s.cfg.Iface, a, now.Add(declineQuarantine)); err != nil {
		s.cfg.Log.Error("decline", "err", err)
	}
}

// declineAllowed takes one of the declines the LAN may make per window.
func (s *Server4) declineAllowed(now time.Time) bool { return s.declines.take(now) }

// rateWindow allows max events per window.
type rateWindow struct {
	max    int
	window time.Duration

	mu    sync.Mutex
	times []time.Time
}

// take reports whether one more event may happen at now, and counts it.
func (w *rateWindow) take(now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	recent := w.times[:0]
	for _, t := range w.times {
		if now.Sub(t) < w.window {
			recent = append(recent, t)
		}
	}
	w.times = recent
	if len(recent) >= w.max {
		return false
	}
	w.times = append(w.times, now)
	return true
}
