package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/hw"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/pppoe"
	"github.com/routerd/routerd/router/status"
)

// wanComp gives the WAN its addresses: the DHCPv4 and DHCPv6 clients, the
// PPPoE session, or the static addresses and gateways (and, for IPv6, the
// routed prefix, handed on as if delegated), on the NIC or on its VLAN
// (wan.vlan), which it makes. All of it is redone when the NIC is
// re-adopted.
type wanComp struct {
	withHealth
	cfg    *config.Config
	nics   *hw.Manager
	client *dhcp.Client4
	v6     *dhcp.Client6
	ppp    *pppoe.Client
	log    *slog.Logger

	onLease  fanout[*dhcp.WANLease]
	onLease6 fanout[*dhcp.WANLease6]
	run      lifecycle.Group
}

func newWANComp(cfg *config.Config, nics *hw.Manager, log *slog.Logger) *wanComp {
	c := &wanComp{cfg: cfg, nics: nics, log: log}
	if cfg.WAN.IPv4 == "dhcp" {
		c.client = dhcp.NewClient4(dhcp.Client4Config{
			NS: cfg.Netns.WAN, Iface: cfg.WAN.Link(), Hostname: cfg.Hostname,
			StatePath: cfg.StatePath(config.StateWANDHCP4), Log: log,
			OnLease: c.leased,
		})
	}
	if cfg.WAN.IPv6 == "dhcp" {
		// Over PPPoE the client runs on the session's interface (made
		// anew by each session: started again by pppUp6), its DUID from
		// the NIC's MAC.
		duid := ""
		if cfg.WAN.PPPoE != nil {
			duid = cfg.WAN.Name
		}
		c.v6 = dhcp.NewClient6(dhcp.Client6Config{NS: cfg.Netns.WAN, Iface: cfg.WAN.Iface(), DUIDFrom: duid, PD: true,
			HintPath: cfg.StatePath(config.StatePDHint), Log: log, OnLease: c.leased6})
	}
	if p := cfg.WAN.PPPoE; p != nil {
		nic := ""
		if cfg.WAN.VLAN != 0 {
			nic = cfg.WAN.Name
		}
		c.ppp = pppoe.NewClient(pppoe.Config{NS: cfg.Netns.WAN, Link: cfg.WAN.Link(), NIC: nic, Iface: cfg.WAN.Iface(),
			Username: p.Username, Password: p.Password, Service: p.Service, ACName: p.ACName, MTU: p.MTU,
			IPv6: cfg.WAN.IPv6 == "dhcp", EchoInterval: p.LCPEcho, EchoFailures: p.LCPFailures,
			Log: log.With("client", "pppoe"), OnUp: c.pppUp, OnUp6: c.pppUp6, OnDown: c.pppDown})
	}
	return c
}

// pppUp hands the session on as the WAN's lease: its address, the ISP's
// end as the router, its DNS servers. A PPP session has no lifetime; it
// lasts until it ends.
func (c *wanComp) pppUp(s pppoe.Session) {
	if _, err := netns.SetSysctls(wanSysctls(c.cfg, s.Iface)); err != nil {
		c.log.Warn("PPP interface settings", "err", err)
	}
	c.leased(&dhcp.WANLease{Address: netip.PrefixFrom(s.Local, 32), Router: s.Peer, DNS: s.DNS, MTU: s.MTU,
		Acquired: s.Began, Lifetime: pppLifetime})
}

func (c *wanComp) pppDown(reason string) { c.leased(nil) }

// pppUp6: IPv6CP agreed and the link is up; DHCPv6 starts on it.
func (c *wanComp) pppUp6(pppoe.Session) {
	if c.v6 != nil {
		c.v6.Readopted()
	}
}

// pppLifetime is what a PPP session's lease says of its lifetime: none.
const pppLifetime = 100 * 365 * 24 * time.Hour

// link makes the WAN's VLAN on its NIC (wan.vlan), with the settings of
// the interface that carries the WAN's addresses (or, under PPPoE, none).
func (c *wanComp) link() error {
	w := c.cfg.WAN
	if w.VLAN == 0 {
		return nil
	}
	sys := wanSysctls(c.cfg, w.Link())
	if w.PPPoE != nil {
		sys = []netns.Sysctl{sysctl(c.cfg.Netns.WAN, "net/ipv6/conf/"+w.Link()+"/disable_ipv6", "1")}
	}
	_, err := netns.EnsureVLAN(c.cfg.Netns.WAN, netns.VLAN{Name: w.Link(), Parent: w.Name, ID: w.VLAN, MTU: w.MTU}, sys)
	return err
}

// OnLease registers fn to hear about WAN leases (the resolver takes the
// ISP's DNS servers as its fallback).
func (c *wanComp) OnLease(fn func(*dhcp.WANLease)) { c.onLease.add(fn) }

// OnLease6 registers fn to hear about WAN DHCPv6 leases (the delegated
// prefix goes to the LANs).
func (c *wanComp) OnLease6(fn func(*dhcp.WANLease6)) { c.onLease6.add(fn) }

func (c *wanComp) leased6(l *dhcp.WANLease6) { c.onLease6.call(l) }

func (c *wanComp) leased(l *dhcp.WANLease) {
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
				if e.Role != "wan" || e.Kind != hw.Adopted {
					continue
				}
				c.log.Info("WAN NIC re-adopted; reconfiguring its address")
				if err := c.link(); err != nil {
					c.health.Failed(err)
				}
				if c.ppp != nil {
					c.ppp.Restart("the WAN NIC was reset")
				}
				if c.v6 != nil {
					c.v6.Readopted()
				}
				if c.client != nil {
					c.client.Readopted()
				}
				if err := c.static(); err != nil {
					c.health.Failed(err)
				} else if c.client == nil && c.ppp == nil {
					c.health.Running()
				}
			case <-ctx.Done():
				return
			}
		}
	})
	if c.v6 != nil {
		c.run.Go(c.v6.Run)
	}
	if c.cfg.WAN.IPv6 == "static" {
		// The routed prefix is announced again before its lifetime
		// (static6Lifetime) runs out, as a DHCPv6 renewal would.
		c.run.Every(static6Lifetime/4, func(context.Context) { c.leased6(c.static6Lease(time.Now())) })
	}
	err := errors.Join(c.link(), c.static()) // a NIC not there yet: redone when it is adopted
	if c.ppp != nil {
		c.run.Go(c.ppp.Run)
		return nil // like DHCP, start does not wait for the ISP
	}
	if c.client == nil {
		return err
	}
	c.run.Go(c.client.Run) // with static IPv6 too: DHCPv4 does not wait for it
	// Starting does not wait for the ISP: the LAN comes up regardless, and
	// status shows the lease when it arrives.
	return err
}

// static installs what is static of the WAN's addressing (IPv4, IPv6 or
// both) and announces the routed IPv6 prefix.
func (c *wanComp) static() error {
	w := c.cfg.WAN
	if w.IPv4 == "static" {
		if err := dhcp.InstallStatic(c.cfg.Netns.WAN, w.Name, w.Address, w.Gateway); err != nil {
			return err
		}
	}
	if w.IPv6 == "static" {
		if err := dhcp.InstallStatic(c.cfg.Netns.WAN, w.Name, w.Address6, w.Gateway6); err != nil {
			return err
		}
		c.leased6(c.static6Lease(time.Now()))
	}
	return nil
}

// static6Lifetime is the lifetime the routed prefix is given: the LANs'
// router advertisements count it down, and it is renewed long before.
const static6Lifetime = 24 * time.Hour

// static6Lease is the static IPv6 addressing as the DHCPv6 client would
// report it: the address, and prefix6 as the delegated prefix.
func (c *wanComp) static6Lease(now time.Time) *dhcp.WANLease6 {
	w := c.cfg.WAN
	return &dhcp.WANLease6{Address: w.Address6.Addr(), Delegated: w.Prefix6, Acquired: now, Valid: static6Lifetime,
		PrefixPreferred: static6Lifetime, PrefixValid: static6Lifetime}
}

func (c *wanComp) Stop(ctx context.Context) error { return c.run.Stop(ctx) }

func (c *wanComp) fillStatus(st *status.Status) {
	ws := &status.WAN{Mode: c.cfg.WAN.IPv4, IPv6: c.cfg.WAN.IPv6, VLAN: c.cfg.WAN.VLAN}
	if ws.VLAN != 0 {
		ws.Link = c.cfg.WAN.Link()
	}
	if c.v6 != nil {
		s := c.v6.Status()
		ws.DHCP6 = &s
	}
	switch {
	case c.ppp != nil:
		ws.PPPoE = pppoeStatus(c.ppp.Status())
	case c.client != nil:
		s := c.client.Status()
		ws.DHCP = &s
	default:
		ws.Addr = c.cfg.WAN.Address.String() + " via " + c.cfg.WAN.Gateway.String()
	}
	if w := c.cfg.WAN; w.IPv6 == "static" {
		ws.Addr6 = w.Address6.String() + " via " + w.Gateway6.String()
		if w.Prefix6.IsValid() {
			ws.Addr6 += ", routed " + w.Prefix6.String()
		}
	}
	st.WAN = ws
}

func pppoeStatus(s pppoe.Status) *status.PPPoE {
	return &status.PPPoE{State: s.State, AC: s.AC, ACMAC: s.ACMAC, SessionID: s.SessionID, Address: s.Local, Peer: s.Peer,
		MTU: s.MTU, Since: s.Since, EchoRTT: s.EchoRTT, Reconnects: s.Reconnects, LastEnd: s.LastEnd, NextTry: s.NextTry}
}
