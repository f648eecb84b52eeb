package router

import (
	"context"
	"github.com/routerd/routerd/internal/via"
	"log/slog"

	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/router/vpn"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// remoteComp runs [remote]'s WireGuard server for the household's devices
// away from home: its socket in the wan namespace (the WAN firewall lets
// its port in), its interface in main, where it is a LAN like the others.
// It starts before the routes, which name its interface.
type remoteComp struct {
	cfg *config.Config
	vc  vpn.Config
	t   *vpn.Tunnel
}

func newRemoteComp(cfg *config.Config, log *slog.Logger) *remoteComp {
	r := cfg.Remote
	vc := vpn.Config{WANNS: cfg.Netns.WAN, VPNNS: "", Iface: r.Interface, KeyFile: r.PrivateKeyFile, Addresses: r.Addresses,
		MTU: 1420, Implementation: "auto", ListenPort: r.ListenPort, UAPIName: cfg.Hostname + "-" + r.Interface, Log: log}
	for _, p := range r.Peers {
		vc.Peers = append(vc.Peers, vpn.Peer{PublicKey: wgtypes.Key(p.PublicKey), AllowedIPs: p.Addresses})
	}
	if remoteViaRelay(cfg) {
		// Behind CGNAT the devices come through the relay, and the
		// server answers that way: its packets take the vpn path out of
		// the wan namespace, never the WAN.
		vc.FirewallMark = int(via.VPN.Mark())
	}
	return &remoteComp{cfg: cfg, vc: vc, t: vpn.New(vc)}
}

func (c *remoteComp) Name() string                       { return "remote" }
func (c *remoteComp) Start(ctx context.Context) error    { return c.t.Start(ctx) }
func (c *remoteComp) Stop(ctx context.Context) error     { return c.t.Stop(ctx) }
func (c *remoteComp) Teardown(ctx context.Context) error { return vpn.Teardown(c.vc) }

func (c *remoteComp) fillStatus(st *status.Status) {
	ts := c.t.Status()
	r := &status.Remote{Interface: ts.Interface, PublicKey: ts.PublicKey, ListenPort: ts.ListenPort, Endpoint: c.cfg.Remote.Endpoint, Error: ts.Error}
	seen := map[string]status.Peer{}
	for _, p := range ts.Peers {
		seen[p.PublicKey] = status.Peer{PublicKey: p.PublicKey, Endpoint: p.Endpoint, LastHandshake: p.LastHandshake, RxBytes: p.RxBytes, TxBytes: p.TxBytes}
	}
	for _, p := range c.cfg.Remote.Peers {
		rp := status.RemotePeer{Name: p.Name, FullTunnel: p.FullTunnel, Peer: seen[p.PublicKeyText]}
		rp.PublicKey = p.PublicKeyText
		for _, a := range p.Addresses {
			rp.Addresses = append(rp.Addresses, a.String())
		}
		r.Peers = append(r.Peers, rp)
	}
	st.Remote = r
}
