package router

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/hw"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/router/config"
)

// wanComp gives the WAN NIC its address: the DHCPv4 client, or the static
// address and gateway. Either way it is redone when the NIC is re-adopted.
type wanComp struct {
	withHealth
	cfg    *config.Config
	nics   *hw.Manager
	client *dhcp.Client4
	v6     *dhcp.Client6
	log    *slog.Logger

	mu      sync.Mutex
	onLease []func(*dhcp.WANLease)
	run     lifecycle.Group
}

func newWANComp(cfg *config.Config, nics *hw.Manager, log *slog.Logger) *wanComp {
	c := &wanComp{cfg: cfg, nics: nics, log: log}
	if cfg.WAN.IPv4 == "dhcp" {
		c.client = dhcp.NewClient4(dhcp.Client4Config{
			NS: cfg.Netns.WAN, Iface: cfg.WAN.Name, Hostname: cfg.Hostname,
			StatePath: filepath.Join(cfg.StateDir, "wan-dhcp4.json"), Log: log,
			OnLease: c.leased,
		})
	}
	if cfg.WAN.IPv6 == "dhcp" {
		c.v6 = dhcp.NewClient6(dhcp.Client6Config{NS: cfg.Netns.WAN, Iface: cfg.WAN.Name, PD: true, Log: log})
	}
	return c
}

// OnLease registers fn to hear about WAN leases (the resolver takes the
// ISP's DNS servers as its fallback).
func (c *wanComp) OnLease(fn func(*dhcp.WANLease)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onLease = append(c.onLease, fn)
}

func (c *wanComp) leased(l *dhcp.WANLease) {
	c.mu.Lock()
	fns := c.onLease
	c.mu.Unlock()
	for _, fn := range fns {
		fn(l)
	}
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
				if c.v6 != nil {
					c.v6.Readopted()
				}
				if c.client != nil {
					c.client.Readopted()
				} else if err := c.static(); err != nil {
					c.health.Failed(err)
				} else {
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
	if c.client == nil {
		return c.static()
	}
	c.run.Go(c.client.Run)
	// Starting does not wait for the ISP: the LAN comes up regardless, and
	// status shows the lease when it arrives.
	return nil
}

func (c *wanComp) static() error {
	w := c.cfg.WAN
	return dhcp.InstallStatic(c.cfg.Netns.WAN, w.Name, w.Address, w.Gateway)
}

func (c *wanComp) Stop(ctx context.Context) error { return c.run.Stop(ctx) }

// WANStatus is the WAN section of routerctl status.
type WANStatus struct {
	Mode  string              `json:"mode"` // "dhcp" | "static"
	DHCP  *dhcp.Client4Status `json:"dhcp,omitempty"`
	Addr  string              `json:"address,omitempty"`
	IPv6  string              `json:"ipv6_mode"`
	DHCP6 *dhcp.Client6Status `json:"dhcp6,omitempty"`
}

func (c *wanComp) fillStatus(st *Status) {
	ws := &WANStatus{Mode: c.cfg.WAN.IPv4, IPv6: c.cfg.WAN.IPv6}
	if c.v6 != nil {
		s := c.v6.Status()
		ws.DHCP6 = &s
	}
	if c.client != nil {
		s := c.client.Status()
		ws.DHCP = &s
	} else {
		ws.Addr = c.cfg.WAN.Address.String() + " via " + c.cfg.WAN.Gateway.String()
	}
	st.WAN = ws
}

func init() { sectionRenderers = append(sectionRenderers, renderWAN) }

func renderWAN(st *Status, w io.Writer) {
	if st.WAN == nil {
		return
	}
	section(w, "WAN")
	if d := st.WAN.DHCP; d != nil {
		fmt.Fprintf(w, "dhcp\t%s\t%s\n", d.State, orDash(d.Address))
		if d.Address != "" {
			fmt.Fprintf(w, "\trouter %s, dns %s, server %s\n", orDash(d.Router), orDash(strings.Join(d.DNS, " ")), orDash(d.Server))
			fmt.Fprintf(w, "\texpires in %s, next renew in %s\n", until(d.Expires), until(d.NextRenew))
		}
		if d.Error != "" {
			fmt.Fprintf(w, "\terror: %s\n", oneLine(d.Error))
		}
	} else {
		fmt.Fprintf(w, "static\t%s\n", st.WAN.Addr)
	}
	if d := st.WAN.DHCP6; d != nil {
		fmt.Fprintf(w, "dhcpv6\t%s\t%s\n", d.State, orDash(d.Address))
		if d.Delegated != "" {
			fmt.Fprintf(w, "\tdelegated prefix %s, expires in %s\n", d.Delegated, until(d.Expires))
		}
	} else {
		fmt.Fprintf(w, "ipv6\t%s\n", st.WAN.IPv6)
	}
}

func until(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Until(t).Round(time.Second).String()
}
