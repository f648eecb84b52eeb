package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/routerd/routerd/internal/atomicfile"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/router/vpn"
	"github.com/routerd/routerd/rules"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// relayComp is routerd as a relay: one component, since a relay is one
// namespace with one tunnel and one ruleset. It owns the forwarding
// sysctls (recorded for teardown), the WireGuard server, the relay's
// nftables table and the conntrack capacity.
type relayComp struct {
	r   *config.Relay
	sys *netnsComp // the sysctls, applied and recorded as the router's are
	vc  vpn.Config
	t   *vpn.Tunnel
	log *slog.Logger
	run lifecycle.Group

	ct *conntrackWatch
}

func newRelayComp(cfg *config.Config, log *slog.Logger) *relayComp {
	r := cfg.Relay
	c := &relayComp{r: r, log: log}
	c.sys = &netnsComp{cfg: cfg, plan: &netns.Plan{Sysctls: relaySysctls(r)},
		state: cfg.StatePath(config.StateRelay), log: log}
	c.vc = vpn.Config{Iface: r.Interface, KeyFile: r.PrivateKeyFile, Addresses: r.Addresses, MTU: r.MTU,
		Implementation: "auto", ListenPort: r.ListenPort, UAPIName: cfg.Hostname + "-" + r.Interface, Log: log}
	for _, p := range r.Peers {
		c.vc.Peers = append(c.vc.Peers, vpnPeer(p.Peer))
	}
	c.t = vpn.New(c.vc)
	c.ct = &conntrackWatch{capacity: r.MaxConnections, key: "relay.max_connections", ns: map[string]string{"relay": ""}, log: log}
	return c
}

// relaySysctls: forwarding, and what forwarding would break on a VPS. With
// forwarding on, the kernel ignores router advertisements unless accept_ra
// is 2, and a VPS usually learns its IPv6 default route from one. The
// tunnel's reverse-path filter is loose: WireGuard's allowed IPs already
// refuse any source a peer may not use, and strict filtering only breaks
// the asymmetric routes of a host with policy routing.
func relaySysctls(r *config.Relay) []netns.Sysctl {
	out := []netns.Sysctl{
		sysctl("", "net/ipv4/ip_forward", "1"),
		sysctl("", "net/ipv6/conf/all/forwarding", "1"),
	}
	for _, nic := range r.Public {
		out = append(out, sysctl("", "net/ipv6/conf/"+nic+"/accept_ra", "2"))
	}
	return append(out, sysctl("", "net/ipv4/conf/"+r.Interface+"/rp_filter", "2"))
}

func (c *relayComp) Name() string { return "relay" }

func (c *relayComp) Start(ctx context.Context) error {
	if err := c.t.Start(ctx); err != nil {
		return err
	}
	if f := c.r.PublicKeyFile; f != "" {
		// For the peers' configs (seed 000's publicKeyFile); readable by
		// all, as a public key is.
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			return fmt.Errorf("relay.public_key_file: %w", err)
		}
		if err := atomicfile.WriteFile(f, []byte(c.t.PublicKey().String()+"\n"), 0o644); err != nil {
			return fmt.Errorf("relay.public_key_file: %w", err)
		}
	}
	// The tunnel's own sysctl needs its interface, so they come after it.
	if err := c.sys.Start(ctx); err != nil {
		return err
	}
	if err := rules.ApplyRelay("", c.ruleset()); err != nil {
		return err
	}
	c.ct.offload = c.r.FlowOffload && rules.FlowOffloadSupported("") == nil
	c.ct.provision()
	c.run.Start(ctx)
	c.run.Every(10*time.Second, c.ct.watch)
	return nil
}

func (c *relayComp) Stop(ctx context.Context) error {
	return errors.Join(c.run.Stop(ctx), c.t.Stop(ctx))
}

func (c *relayComp) Teardown(ctx context.Context) error {
	// The tunnel's sysctl is restored while the tunnel is still there (if
	// routerd stopped first, the tunnel went, and its setting with it).
	return errors.Join(
		rules.Remove("", nftables.TableFamilyINet, rules.Table),
		c.sys.Teardown(ctx),
		vpn.Teardown(c.vc))
}

func (c *relayComp) ruleset() *rules.Relay {
	r := c.r
	rl := &rules.Relay{Public: r.Public, Tunnel: r.Interface, Masquerade: r.Masquerade,
		MSS4: r.MSS(false), MSS6: r.MSS(true), ForwardDrop: r.ForwardDrop,
		TunnelPool4: r.TunnelPool(false), TunnelPool6: r.TunnelPool(true)}
	if r.FlowOffload {
		rl.Offload = rules.Offload{Devices: append(slices.Clone(r.Public), r.Interface)}
	}
	for _, a := range r.Addresses {
		rl.Own = append(rl.Own, a.Addr())
	}
	rl.Pool4, rl.Pool6 = byFamily(r.SNATPool, netip.Addr.Is4)
	for i, f := range r.Forwards {
		rl.Forwards = append(rl.Forwards, rules.RelayForward{Protos: f.Protos, From: f.From, To: f.To, Target: f.Target, ToPort: f.ToPort,
			SNATPool: f.SNATPool, MatchIPs: f.MatchIPs, Index: i})
	}
	return rl
}

func (c *relayComp) fillStatus(st *status.Status) {
	v := c.t.Status()
	s := &status.Relay{Interface: v.Interface, Implementation: v.Implementation, PublicKey: v.PublicKey,
		ListenPort: v.ListenPort, MSS4: int(c.r.MSS(false)), MSS6: int(c.r.MSS(true)), Error: v.Error,
		Conntrack: c.ct.read()}
	byKey := map[string]status.Peer{}
	for _, p := range v.Peers {
		byKey[p.PublicKey] = p
	}
	for _, p := range c.r.Peers {
		rp := status.RelayPeer{Name: p.Name, PublicKey: p.PublicKeyText}
		for _, a := range p.AllowedIPs {
			rp.AllowedIPs = append(rp.AllowedIPs, a.String())
		}
		if d, ok := byKey[wgtypes.Key(p.PublicKey).String()]; ok {
			rp.Endpoint, rp.LastHandshake, rp.RxBytes, rp.TxBytes = d.Endpoint, d.LastHandshake, d.RxBytes, d.TxBytes
		}
		s.Peers = append(s.Peers, rp)
	}
	counts, err := rules.RelayForwardCounts("")
	if err != nil && s.Error == "" {
		s.Error = err.Error()
	}
	named, _ := rules.Counters("", nftables.TableFamilyINet, rules.Table)
	for i, f := range c.r.Forwards {
		rf := status.RelayForward{Name: f.Name, Forward: f.String(), Peer: c.r.PeerOf(f.Target)}
		for _, n := range counts {
			if n.Target == f.Target && n.From == f.From && len(f.MatchIPs) == 0 {
				rf.Packets, rf.Bytes = n.Packets, n.Bytes
			}
		}
		for _, n := range named {
			if n.Name == fmt.Sprintf("forward_%d", i) {
				rf.Packets, rf.Bytes = n.Packets, n.Bytes
			}
		}
		if f.SNATPool {
			pool := c.r.TunnelPool(f.Target.Is6())
			// The kernel picks each connection's source port from
			// 1024-65535 (NAT does not use ip_local_port_range).
			rf.NAT = fmt.Sprintf("snat pool %s: %d connections per address", joinAddrs(pool), 65535-1024+1)
		}
		s.Forwards = append(s.Forwards, rf)
	}
	switch {
	case len(c.r.SNATPool) > 0:
		s.NAT = "snat pool " + joinAddrs(c.r.SNATPool)
	case c.r.Masquerade:
		s.NAT = "masquerade"
	default:
		s.NAT = "none"
	}
	s.Warnings = append(s.Warnings, c.ct.warnings(s.Conntrack)...)
	st.Relay = s
}

func joinAddrs(as []netip.Addr) string {
	ss := make([]string, len(as))
	for i, a := range as {
		ss[i] = a.String()
	}
	return strings.Join(ss, ", ")
}
