package vpn

import (
	"context"
	"time"

	"github.com/routerd/routerd/router/config"
)

// The tunnel's sessions: when a tunnel counts as up, and what is done when
// it is not (the watch).

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
		if err := t.configure(ctx); err != nil {
			t.setErr(err)
		}
	}
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
