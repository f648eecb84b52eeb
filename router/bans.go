package router

import (
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/rules"
)

// failWindow is how far back failed SSH logins count towards a ban.
const failWindow = 10 * time.Minute

// sshBanner bans a LAN address after admin.ban_after failed SSH logins
// within ten minutes (seed 003's fail2ban): its packets to the router are
// dropped for admin.ban_time. The WAN's port scanners are banned by the
// wan namespace's ruleset itself.
type sshBanner struct {
	cfg *config.Admin
	log *slog.Logger

	mu    sync.Mutex
	fails map[netip.Addr][]time.Time
	bans  int // since start
}

func newSSHBanner(cfg *config.Admin, log *slog.Logger) *sshBanner {
	return &sshBanner{cfg: cfg, log: log, fails: map[netip.Addr][]time.Time{}}
}

// succeeded forgets a's failures: an admin's typo yesterday does not count
// towards tomorrow's ban.
func (b *sshBanner) succeeded(a netip.Addr) {
	b.mu.Lock()
	delete(b.fails, a)
	b.mu.Unlock()
}

// failed records one failed authentication from a.
func (b *sshBanner) failed(a netip.Addr) {
	now := time.Now()
	b.mu.Lock()
	recent := b.fails[a][:0]
	for _, t := range b.fails[a] {
		if now.Sub(t) < failWindow {
			recent = append(recent, t)
		}
	}
	recent = append(recent, now)
	ban := len(recent) >= b.cfg.BanAfter
	if ban {
		delete(b.fails, a)
		b.bans++
	} else {
		b.fails[a] = recent
	}
	// Forget addresses that went quiet, so the map stays small.
	for addr, ts := range b.fails {
		if now.Sub(ts[len(ts)-1]) > failWindow {
			delete(b.fails, addr)
		}
	}
	b.mu.Unlock()
	if !ban {
		return
	}
	if err := rules.Ban("", a, b.cfg.BanTime); err != nil {
		b.log.Error("ban", "addr", a, "err", err)
		return
	}
	b.log.Warn("banned after failed SSH logins", "addr", a, "failures", b.cfg.BanAfter, "for", b.cfg.BanTime)
}

// banNamespaces are where routerd's tables keep bans: main (the router's
// own services) and wan (scanners, port forwards).
func (s *Supervisor) banNamespaces() []string { return []string{"", s.config().Netns.WAN} }

func (s *Supervisor) bansList() ([]status.Ban, error) {
	var out []status.Ban
	var errs []error
	for _, ns := range s.banNamespaces() {
		bs, err := rules.Bans(ns)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		where := "lan"
		if ns != "" {
			where = "wan"
		}
		for _, b := range bs {
			out = append(out, status.Ban{Addr: b.String(), Side: where, Until: time.Now().Add(b.Left).Truncate(time.Second)})
		}
	}
	return out, errors.Join(errs...)
}
