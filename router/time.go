package router

import (
	"context"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/router/timesync"
)

// BuildTime is stamped by the build (-ldflags -X, RFC 3339): the clock's
// floor. Without it, the commit time the go command records stands in.
var BuildTime = ""

// Built is when this binary was built (zero if unknown): the earliest the
// clock may be, since no binary runs before it was built.
func Built() time.Time {
	if t, err := time.Parse(time.RFC3339, BuildTime); err == nil {
		return t
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t
				}
			}
		}
	}
	return time.Time{}
}

// timeComp keeps the clock ([time]): its floor, SNTP, and the LAN's NTP
// server. It starts before the tunnel and the LAN services, so that
// WireGuard's handshake timestamps, certificate checks and lease times see
// a clock at least at its floor.
type timeComp struct {
	s *timesync.Service

	onStep fanout[time.Duration]
}

func newTimeComp(cfg *config.Config, log *slog.Logger) *timeComp {
	t := cfg.Time
	c := &timeComp{}
	tc := timesync.Config{Servers: t.Servers, SetClock: t.SetClock, Floor: Built(),
		ClockFile: cfg.StatePath(config.StateClock), Serve: ntpAddrs(cfg),
		Resolver: ownResolver(), OnStep: c.stepped, Log: log}
	c.s = timesync.New(tc)
	return c
}

// ntpAddrs are the LAN addresses the NTP server answers on and DHCP hands
// out (time.serve).
func ntpAddrs(cfg *config.Config) []netip.Addr {
	if cfg.Time == nil || !cfg.Time.Serve {
		return nil
	}
	var out []netip.Addr
	for _, l := range cfg.LAN {
		for _, p := range l.Addresses {
			out = append(out, p.Addr())
		}
	}
	return out
}

// lanNTP is what DHCP on l hands out as the NTP server: the LAN's own
// address of that family.
func lanNTP(cfg *config.Config, p netip.Prefix) []netip.Addr {
	if cfg.Time == nil || !cfg.Time.Serve || !p.IsValid() {
		return nil
	}
	return []netip.Addr{p.Addr()}
}

// OnStep registers fn for steps of the clock.
func (c *timeComp) OnStep(fn func(time.Duration)) {
	c.onStep.add(fn)
}

func (c *timeComp) stepped(d time.Duration) { c.onStep.call(d) }

// synced is closed once the clock can be trusted with certificate dates.
func (c *timeComp) synced() <-chan struct{} { return c.s.Synced() }

func (c *timeComp) Name() string                    { return "time" }
func (c *timeComp) Start(ctx context.Context) error { return c.s.Start(ctx) }
func (c *timeComp) Stop(ctx context.Context) error  { return c.s.Stop(ctx) }

func (c *timeComp) fillStatus(st *status.Status) {
	t := c.s.Status()
	st.Time = &t
}
