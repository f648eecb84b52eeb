package vpn

import (
	"context"
	"time"

	"github.com/routerd/routerd/router/config"
)

// The tunnel's sessions: when a tunnel counts as up, and what is done when
// it is not (the watch, a retry at a new lease).

// UpWithin is how recent a handshake must be for the tunnel to be up: a
// session lives two minutes (REKEY_AFTER_TIME), none past three (REJECT_AFTER_TIME).
const UpWithin = 3 * time.Minute

// fresh reports whether a handshake at t makes a peer up now.
func fresh(t time.Time) bool { return !t.IsZero() && time.Since(t) < UpWithin }

// watch re-resolves endpoint names when handshakes stop (the provider
// moved), and keeps the link in shape.
func (t *Tunnel) watch(ctx context.Context) {
	st := t.Status()
	stale := len(st.Peers) > 0
	for _, p := range st.Peers {
		if fresh(p.LastHandshake) {
			stale = false
		}
	}
	if stale || t.unresolved() {
		if err := t.configure(ctx, false); err != nil {
			t.setErr(err)
		}
	}
}

// Retry has the peers start their handshake now if none has a session: the
// WAN has just got an address and a route (a lease, a PPP session, the
// other uplink). WireGuard tries a handshake again only 5 s after the last
// (REKEY_TIMEOUT), so one tried before the WAN could carry it, as at every
// boot (the tunnel is configured before the first lease), held the
// tunnel down for those 5 s. Peers replaced start afresh: a persistent
// keepalive's first packet, or the first packet from the LAN, starts a
// handshake at once. A tunnel with a session is left alone.
func (t *Tunnel) Retry() {
	t.run.Go(func(ctx context.Context) {
		if ctx.Err() != nil {
			return
		}
		for _, p := range t.Status().Peers {
			if fresh(p.LastHandshake) {
				return
			}
		}
		if err := t.configure(ctx, true); err != nil {
			t.setErr(err)
		}
	})
}

func (t *Tunnel) unresolved() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, p := range t.cfg.Peers {
		if p.Endpoint != (config.Endpoint{}) {
			n++
		}
	}
	return len(t.endpoints) < n
}
