package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/hw"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/failover"
	"github.com/routerd/routerd/router/status"
)

// wanComp gives the uplinks their addresses (each uplink's DHCPv4 and
// DHCPv6 clients, PPPoE session or static addresses and gateways, on its
// NIC or its VLAN, which it makes; all of it redone when the NIC is
// re-adopted) and, with a backup uplink, decides which one carries the
// traffic (failover). The rest of the router hears of the active
// uplink's lease.
type wanComp struct {
	withHealth
	cfg      *config.Config
	nics     *hw.Manager
	ups      []*uplink     // the primary, then the backup
	failover *failoverLoop // nil without a backup
	log      *slog.Logger

	onLease  fanout[*dhcp.WANLease]
	onLease6 fanout[*dhcp.WANLease6]
	onIface  fanout[struct{}]
	onActive fanout[string] // the uplink that now carries the traffic
	run      lifecycle.Group
}

func newWANComp(cfg *config.Config, nics *hw.Manager, log *slog.Logger) *wanComp {
	c := &wanComp{cfg: cfg, nics: nics, log: log}
	metric := 0
	if cfg.WAN.Backup != nil {
		metric = metricPrimary
	}
	c.ups = append(c.ups, newUplink(cfg, "primary", &cfg.WAN, metric, log))
	if b := cfg.WAN.Backup; b != nil {
		c.ups = append(c.ups, newUplink(cfg, "backup", &b.WAN, metricBackup, log.With("uplink", "backup")))
		c.failover = newFailoverLoop(cfg, c.ups, log.With("component", "failover"))
		c.failover.switched = func(u *uplink) {
			c.onActive.call(u.role)
			c.uplinkLeased(u, u.current())
		}
	}
	for _, u := range c.ups {
		u.onLease, u.onLease6 = c.uplinkLeased, c.onLease6.call
		u.onIface = func() { c.onIface.call(struct{}{}) }
	}
	return c
}

// OnLease registers fn to hear about the active uplink's leases (the
// resolver takes the ISP's DNS servers as its fallback, the firewall the
// address for NAT loopback).
func (c *wanComp) OnLease(fn func(*dhcp.WANLease)) { c.onLease.add(fn) }

// OnLease6 registers fn to hear about the primary's DHCPv6 leases (the
// delegated prefix goes to the LANs).
func (c *wanComp) OnLease6(fn func(*dhcp.WANLease6)) { c.onLease6.add(fn) }

// OnActive registers fn to hear which uplink carries the traffic after a
// switch ("primary" or "backup"): the shaper takes its rates.
func (c *wanComp) OnActive(fn func(role string)) { c.onActive.add(fn) }

// OnIface registers fn to hear of an uplink's new interface (a PPP
// session's): the firewall hooks it.
func (c *wanComp) OnIface(fn func()) { c.onIface.add(func(struct{}) { fn() }) }

// uplinkLeased passes an uplink's lease on if that uplink is the active
// one (failover passes the other's on when it switches).
func (c *wanComp) uplinkLeased(u *uplink, l *dhcp.WANLease) {
	if c.failover != nil && c.failover.active() != u {
		return
	}
	c.onLease.call(l)
	if l != nil {
		c.health.Running()
	} else {
		c.health.Failed(fmt.Errorf("no WAN lease"))
	}
}

func (c *wanComp) Name() string { return "wan" }

func (c *wanComp) Start(ctx context.Context) error {
	events := c.nics.Subscribe()
	c.run.Start(ctx)
	c.run.Go(func(ctx context.Context) {
		for {
			select {
			case e := <-events:
				if e.Kind != hw.Adopted {
					continue
				}
				for i, u := range c.ups {
					if e.Name != u.w.Name {
						continue
					}
					c.log.Info("WAN NIC re-adopted; reconfiguring its address", "nic", e.Name)
					if err := u.readopted(); err != nil {
						c.health.Failed(err)
					} else if i == 0 && u.client == nil && u.ppp == nil {
						c.health.Running()
					}
				}
			case <-ctx.Done():
				return
			}
		}
	})
	if c.failover != nil {
		c.failover.resume() // before the uplinks' leases come: they go on by the active one
	}
	var errs []error
	for i, u := range c.ups {
		if u.v6 != nil {
			c.run.Go(u.v6.Run)
		}
		// A NIC not there yet: redone when it is adopted. The backup's
		// (an LTE stick not plugged in) is no failure of the WAN's.
		if err := errors.Join(u.link(), u.static()); err != nil && i > 0 {
			c.log.Warn("backup uplink not ready; again when its NIC is adopted", "err", err)
		} else {
			errs = append(errs, err)
		}
		switch {
		case u.ppp != nil:
			c.run.Go(u.ppp.Run)
		case u.client != nil:
			c.run.Go(u.client.Run) // with static IPv6 too: DHCPv4 does not wait for it
		}
	}
	if p := c.ups[0]; p.w.IPv6 == "static" {
		// The routed prefix is announced again before its lifetime
		// (static6Lifetime) runs out, as a DHCPv6 renewal would.
		c.run.Every(static6Lifetime/4, func(context.Context) { c.onLease6.call(static6Lease(p.w, time.Now())) })
	}
	if c.failover != nil {
		c.run.Go(c.failover.run)
	} else if err := failover.Unsteer(c.cfg.Netns.WAN); err != nil {
		// A backup configured before: its routes go with it.
		c.log.Warn("remove the failover's default routes", "err", err)
	}
	// Starting does not wait for the ISP: the LAN comes up regardless, and
	// status shows the lease when it arrives.
	if c.ups[0].ppp != nil {
		return nil
	}
	return errors.Join(errs...)
}

// Stop leaves the failover's routes: the next generation's first round
// finds them in place, and teardown takes the namespace.
func (c *wanComp) Stop(ctx context.Context) error { return c.run.Stop(ctx) }

func (c *wanComp) fillStatus(st *status.Status) {
	st.WAN = c.ups[0].status()
	if len(c.ups) > 1 {
		st.WAN.Backup = c.ups[1].status()
		st.WAN.Failover = c.failover.status()
	}
}
