package router

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/router/vpn"
)

// vpnComp runs the WireGuard tunnel.
type vpnComp struct {
	cfg *config.Config
	t   *vpn.Tunnel
	vc  vpn.Config

	mu    sync.Mutex
	ispNS []netip.Addr // the ISP's DNS servers from the WAN lease
	onUp  []func()     // after the tunnel's interface is up
}

// OnUp registers fn to run each time the tunnel has started: its
// interface is there.
func (c *vpnComp) OnUp(fn func()) { c.onUp = append(c.onUp, fn) }

func newVPNComp(cfg *config.Config, log *slog.Logger) *vpnComp {
	c := &vpnComp{cfg: cfg}
	c.vc = vpnConfig(cfg, c.dnsServers, log)
	c.t = vpn.New(c.vc)
	return c
}

// dnsServers are what endpoint names are resolved with, from the wan
// namespace: the configured plain-DNS upstreams, then the ISP's. (A
// DNS-over-TLS upstream is the resolver's only; an endpoint given as an
// address needs no lookup at all.)
func (c *vpnComp) dnsServers() []netip.AddrPort {
	var out []netip.AddrPort
	for _, u := range c.cfg.DNS.Upstream {
		if !u.TLS {
			out = append(out, u.Addr)
		}
	}
	c.mu.Lock()
	for _, a := range c.ispNS {
		out = append(out, netip.AddrPortFrom(a, 53))
	}
	c.mu.Unlock()
	return out
}

func (c *vpnComp) wanLease(l *dhcp.WANLease) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ispNS = nil
	if l != nil {
		c.ispNS = l.DNS
	}
}

func (c *vpnComp) Name() string { return "vpn" }
func (c *vpnComp) Start(ctx context.Context) error {
	if err := c.t.Start(ctx); err != nil {
		return err
	}
	for _, fn := range c.onUp {
		fn()
	}
	return nil
}

func (c *vpnComp) Stop(ctx context.Context) error     { return c.t.Stop(ctx) }
func (c *vpnComp) Teardown(ctx context.Context) error { return vpn.Teardown(c.vc) }

func (c *vpnComp) fillStatus(st *status.Status) {
	s := c.t.Status()
	st.VPN = &s
}
