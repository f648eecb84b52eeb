package router

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/failover"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/rules"
	"github.com/vishvananda/netlink"
)

// failoverLoop probes the uplinks every probe_interval and moves the
// traffic when failover.Monitor says: the active uplink's default routes
// in front (failover.Steer: the LANs' traffic, the tunnel's packets and
// the router's own all follow the wan namespace's default route), the
// connections of the uplink left deleted so that they start again on the
// new one (NAT gave them an address the new uplink cannot answer), and
// its lease passed on as the WAN's.
type failoverLoop struct {
	ns       string
	ups      []*uplink
	prober   *failover.Prober
	interval time.Duration
	log      *slog.Logger
	switched func(*uplink) // the new active uplink

	mu       sync.Mutex
	mon      *failover.Monitor
	switches []status.FailoverSwitch // the last maxSwitches
	count    int                     // switches in all
	steerErr string
}

// maxSwitches bounds the switches status shows.
const maxSwitches = 20

func newFailoverLoop(cfg *config.Config, ups []*uplink, log *slog.Logger) *failoverLoop {
	b := cfg.WAN.Backup
	names := make([]string, len(ups))
	for i, u := range ups {
		names[i] = u.role
	}
	return &failoverLoop{ns: cfg.Netns.WAN, ups: ups, interval: b.ProbeInterval, log: log,
		prober: &failover.Prober{NS: cfg.Netns.WAN, Targets: b.Probe, Timeout: b.ProbeTimeout},
		mon:    failover.NewMonitor(failover.Config{Uplinks: names, DownFor: b.ProbeDown, UpFor: b.ProbeUp}, time.Now())}
}

// active is the uplink that carries the traffic.
func (f *failoverLoop) active() *uplink {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byRole(f.mon.Active())
}

func (f *failoverLoop) byRole(role string) *uplink {
	for _, u := range f.ups {
		if u.role == role {
			return u
		}
	}
	return f.ups[0]
}

// resume takes up where an earlier routerd left the traffic: on the
// backup, if its routes point there.
func (f *failoverLoop) resume() {
	if was := failover.Steered(f.ns); was != "" && was != f.ups[0].w.Iface() {
		for _, u := range f.ups[1:] {
			if u.w.Iface() == was {
				f.log.Info("the backup carried the traffic before this start; it keeps it until the primary answers", "uplink", u.role)
				f.mu.Lock()
				f.mon.Resume(u.role, time.Now())
				f.mu.Unlock()
				f.switched(u)
			}
		}
	}
}

// run probes the uplinks every interval, rounds overlapping when answers
// take longer (failover.RunRounds).
func (f *failoverLoop) run(ctx context.Context) {
	ifaces := make([]string, len(f.ups))
	for i, u := range f.ups {
		ifaces[i] = u.w.Iface()
	}
	failover.RunRounds(ctx, f.interval, func(ctx context.Context) []failover.Result {
		return f.prober.Round(ctx, ifaces)
	}, f.handle)
}

// handle takes a round's results: the monitor's verdict, the routes, and a
// switch's consequences; a stale round's only count in the loss.
func (f *failoverLoop) handle(round []failover.Result, stale bool) {
	if stale {
		f.mu.Lock()
		f.mon.Tally(round)
		f.mu.Unlock()
		return
	}
	f.mu.Lock()
	sw := f.mon.Handle(round, time.Now())
	active := f.byRole(f.mon.Active())
	f.mu.Unlock()
	f.steer(active)
	if sw != nil {
		from := f.byRole(sw.From)
		f.log.Warn("uplink switched", "from", sw.From, "to", sw.To, "why", sw.Why)
		n := f.flush(from)
		f.mu.Lock()
		f.count++
		f.switches = append(f.switches, status.FailoverSwitch{At: sw.At, From: sw.From, To: sw.To, Why: sw.Why, Flushed: n})
		if k := len(f.switches) - maxSwitches; k > 0 {
			f.switches = f.switches[k:]
		}
		f.mu.Unlock()
		f.switched(active)
	}
}

// steer puts the active uplink's default routes in front, logging a
// failure once until it changes.
func (f *failoverLoop) steer(u *uplink) {
	msg := ""
	if err := failover.Steer(f.ns, u.w.Iface()); err != nil {
		msg = err.Error()
	}
	f.mu.Lock()
	changed := msg != f.steerErr
	f.steerErr = msg
	f.mu.Unlock()
	if changed && msg != "" {
		f.log.Warn("steer the default routes", "uplink", u.role, "err", msg)
	}
}

// flush deletes the wan namespace's connections through u: those NAT
// gave u's address, or from or to it. The clients' next packets start
// new connections through the active uplink.
func (f *failoverLoop) flush(u *uplink) int {
	addrs := ifaceAddrs(f.ns, u.w.Iface())
	if l := u.current(); l != nil {
		addrs = append(addrs, l.Address.Addr())
	}
	if len(addrs) == 0 {
		return 0 // its addresses went with its link, and the kernel's NAT forgot them
	}
	n, err := rules.DeleteConns(f.ns, func(c rules.Conn) bool {
		return slices.Contains(addrs, c.NATSrc) || slices.Contains(addrs, c.Src) || slices.Contains(addrs, c.Dst)
	})
	if err != nil {
		f.log.Warn("delete the connections of the uplink left", "uplink", u.role, "err", err)
	}
	return n
}

// ifaceAddrs are the global addresses on iface in namespace ns.
func ifaceAddrs(ns, iface string) []netip.Addr {
	h, link, err := netns.HandleLink(ns, iface)
	if err != nil {
		return nil
	}
	defer h.Close()
	as, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range as {
		if p := netns.PrefixOf(a.IPNet); p.Addr().IsGlobalUnicast() {
			out = append(out, p.Addr())
		}
	}
	return out
}

func (f *failoverLoop) status() *status.Failover {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &status.Failover{Active: f.mon.Active(), Count: f.count, Switches: slices.Clone(f.switches)}
	for _, t := range f.prober.Targets {
		st.Probe = append(st.Probe, t.String())
	}
	for i, u := range f.mon.Uplinks() {
		st.Uplinks = append(st.Uplinks, status.UplinkHealth{Uplink: u.Name, Iface: f.ups[i].w.Iface(), State: string(u.State),
			Since: u.Since, RTT: u.RTT, Loss: u.Loss, Probes: u.Probes})
	}
	return st
}
