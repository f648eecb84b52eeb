package router

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/hw"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/internal/via"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
	"github.com/vishvananda/netlink"
)

// lanComp runs the LAN's address services: DHCPv4, DHCPv6 and router
// advertisements on each LAN, over one lease store.
type lanComp struct {
	cfg  *config.Config
	nics *hw.Manager
	log  *slog.Logger
	// pathUp reports whether the clients' default path works (for the RA
	// router lifetime).
	pathUp func() bool

	mu    sync.Mutex
	store *dhcp.Store
	v4    map[string]*dhcp.Server4
	v6    map[string]*dhcp.Server6
	ra    map[string]*dhcp.Advertiser
	subs  fanout[dhcp.Event]
	run   lifecycle.Group
}

func newLANComp(cfg *config.Config, nics *hw.Manager, pathUp func() bool, log *slog.Logger) *lanComp {
	return &lanComp{cfg: cfg, nics: nics, pathUp: pathUp, log: log,
		v4: map[string]*dhcp.Server4{}, v6: map[string]*dhcp.Server6{}, ra: map[string]*dhcp.Advertiser{}}
}

// OnLease registers fn for lease changes (the resolver's names).
func (c *lanComp) OnLease(fn func(dhcp.Event)) { c.subs.add(fn) }

// clockStepped moves the leases this run granted by the clock's step d, so
// that they keep their remaining time (dhcp.Store.ClockStepped).
func (c *lanComp) clockStepped(d time.Duration) {
	c.mu.Lock()
	store := c.store
	c.mu.Unlock()
	if store == nil {
		return // not started yet: leases are loaded after the floor is set
	}
	if err := store.ClockStepped(d); err != nil {
		c.log.Error("move leases after a clock step", "step", d, "err", err)
	}
}

func (c *lanComp) Name() string { return "lan" }

func (c *lanComp) Start(ctx context.Context) error {
	store, err := dhcp.OpenStore(c.cfg.StatePath(config.StateLeases), c.log)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.store = store
	c.mu.Unlock()
	for _, fn := range c.subs.list() {
		store.Subscribe(fn)
		// Leases from before a restart are news to a fresh subscriber.
		for _, l := range store.Leases(time.Now()) {
			fn(dhcp.Event{Lease: l})
		}
	}
	ctx = c.run.Start(ctx)
	for _, l := range lanServices(c.cfg) {
		log := c.log.With("iface", l.Iface)
		if sc := l.DHCP4; sc != nil {
			sc.Log = log
			c.v4[l.Iface] = dhcp.NewServer4(*sc, store)
			c.run.Go(c.v4[l.Iface].Run)
		}
		if sc := l.DHCP6; sc != nil {
			sc.Log = log
			c.v6[l.Iface] = dhcp.NewServer6(*sc, store)
			c.run.Go(c.v6[l.Iface].Run)
		}
		if rc := l.RA; rc != nil {
			rc.DefaultPath, rc.Log = c.pathUp, log
			c.ra[l.Iface] = dhcp.NewAdvertiser(*rc)
			c.run.Go(c.ra[l.Iface].Run)
		}
	}
	c.run.Go(c.watch)
	return c.waitReady(ctx)
}

// waitReady waits, a bounded while, for every server to listen, so that a
// started component is one that answers. A LAN whose NIC is missing does
// not hold the others up: its servers keep trying in the background.
func (c *lanComp) waitReady(ctx context.Context) error {
	deadline := time.After(5 * time.Second)
	var waiting []string
	for _, w := range c.readiness() {
		select {
		case <-w.ready:
		case <-deadline:
			waiting = append(waiting, w.name)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if len(waiting) > 0 {
		return fmt.Errorf("not listening yet (still trying): %s", strings.Join(waiting, ", "))
	}
	return nil
}

type readiness struct {
	name  string
	ready <-chan struct{}
}

func (c *lanComp) readiness() []readiness {
	var out []readiness
	for n, s := range c.v4 {
		out = append(out, readiness{n + "/dhcpv4", s.Ready()})
	}
	for n, s := range c.v6 {
		out = append(out, readiness{n + "/dhcpv6", s.Ready()})
	}
	for n, s := range c.ra {
		out = append(out, readiness{n + "/ra", s.Ready()})
	}
	return out
}

// watch reopens a LAN's servers when hw re-adopts its NIC, tells lease
// subscribers about expiries, and re-advertises when the default path
// comes or goes.
func (c *lanComp) watch(ctx context.Context) {
	events := c.nics.Subscribe()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	last := time.Now()
	up := c.pathUp()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-events:
			if e.Kind != hw.Adopted || e.Role != "lan" {
				continue
			}
			c.log.Info("LAN NIC re-adopted; reopening its services", "iface", e.Name)
			if s := c.v4[e.Name]; s != nil {
				s.Reopen()
			}
			if s := c.v6[e.Name]; s != nil {
				s.Reopen()
			}
			if s := c.ra[e.Name]; s != nil {
				s.Reopen()
			}
		case now := <-tick.C:
			c.store.Expire(now, last)
			last = now
			if u := c.pathUp(); u != up {
				up = u
				c.log.Info("default path changed; re-advertising", "up", up)
				for _, a := range c.ra {
					a.Refresh()
				}
			}
		}
	}
}

func (c *lanComp) Stop(ctx context.Context) error {
	if err := c.run.Stop(ctx); err != nil {
		// A server still running may still commit: closing the store
		// under it would lose that lease.
		return err
	}
	if c.store != nil {
		return c.store.Close()
	}
	return nil
}

func (c *lanComp) leases() []status.Lease {
	if c.store == nil {
		return nil
	}
	var out []status.Lease
	for _, l := range c.store.Leases(time.Now()) {
		fam := "v4"
		if l.Addr.Is6() {
			fam = "v6"
		}
		out = append(out, status.Lease{Interface: l.Iface, Family: fam, Address: l.Addr.String(), MAC: l.MAC, DUID: l.DUID,
			IAID: l.IAID, Hostname: l.Hostname, Expires: l.Expires, Reserved: l.Reserved})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Family != out[j].Family {
			return out[i].Family < out[j].Family
		}
		return out[i].Address < out[j].Address
	})
	return out
}

func (c *lanComp) fillStatus(st *status.Status) {
	ls := &status.LAN{Leases: c.leases(), Stats: map[string]map[string]int64{}}
	for n, s := range c.v4 {
		ls.Stats[n+"/dhcpv4"] = s.Stats()
	}
	for n, s := range c.v6 {
		ls.Stats[n+"/dhcpv6"] = s.Stats()
	}
	for n, s := range c.ra {
		ls.Stats[n+"/ra"] = s.Stats()
	}
	if c.store != nil {
		ls.Store = c.store.Stats()
	}
	st.LAN = ls
}

// defaultPathUp reports whether LAN clients' default path has a way out:
// the tunnel has a recent handshake, or the WAN has an IPv6 default route.
func defaultPathUp(cfg *config.Config, tunnelUp func() bool) func() bool {
	return func() bool {
		if cfg.Routing.Default == via.VPN {
			return tunnelUp != nil && tunnelUp()
		}
		h, err := netns.Handle(cfg.Netns.WAN)
		if err != nil {
			return false
		}
		defer h.Close()
		routes, err := h.RouteList(nil, netlink.FAMILY_V6)
		if err != nil {
			return false
		}
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() == "::/0" {
				return true
			}
		}
		return false
	}
}

// currentLeases are the leases in force now (none before Start).
func (c *lanComp) currentLeases() []dhcp.Lease {
	c.mu.Lock()
	st := c.store
	c.mu.Unlock()
	if st == nil {
		return nil
	}
	return st.Leases(time.Now())
}

// macOf returns the MAC a DHCPv4 lease binds to a, or "".
func (c *lanComp) macOf(a netip.Addr) string {
	c.mu.Lock()
	st := c.store
	c.mu.Unlock()
	if st == nil {
		return ""
	}
	if l, ok := st.ByAddr(a); ok {
		return l.MAC
	}
	return ""
}
