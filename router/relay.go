package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
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

	notApplied string // why nf_conntrack_max is not the capacity
	warned     bool   // the fill is past 80% and the log has said so
}

const conntrackWarn = 0.8

func newRelayComp(cfg *config.Config, log *slog.Logger) *relayComp {
	r := cfg.Relay
	c := &relayComp{r: r, log: log}
	c.sys = &netnsComp{cfg: cfg, plan: &netns.Plan{Sysctls: relaySysctls(r)},
		state: filepath.Join(cfg.StateDir, "relay.json"), log: log}
	c.vc = vpn.Config{Iface: r.Interface, KeyFile: r.PrivateKeyFile, Addresses: r.Addresses, MTU: r.MTU,
		Implementation: "auto", ListenPort: r.ListenPort, UAPIName: cfg.Hostname + "-" + r.Interface, Log: log}
	for _, p := range r.Peers {
		c.vc.Peers = append(c.vc.Peers, vpnPeer(p.Peer))
	}
	c.t = vpn.New(c.vc)
	return c
}

// relaySysctls: forwarding, and what forwarding would break on a VPS. With
// forwarding on, the kernel ignores router advertisements unless accept_ra
// is 2, and a VPS usually learns its IPv6 default route from one. The
// tunnel's reverse-path filter is loose: WireGuard's allowed IPs already
// refuse any source a peer may not use, and strict filtering only breaks
// the asymmetric routes of a host with policy routing.
func relaySysctls(r *config.Relay) []netns.Sysctl {
	return []netns.Sysctl{
		sysctl("", "net/ipv4/ip_forward", "1"),
		sysctl("", "net/ipv6/conf/all/forwarding", "1"),
		sysctl("", "net/ipv6/conf/"+r.Public+"/accept_ra", "2"),
		sysctl("", "net/ipv4/conf/"+r.Interface+"/rp_filter", "2"),
	}
}

func (c *relayComp) Name() string { return "relay" }

func (c *relayComp) Start(ctx context.Context) error {
	if err := c.t.Start(ctx); err != nil {
		return err
	}
	// The tunnel's own sysctl needs its interface, so they come after it.
	if err := c.sys.Start(ctx); err != nil {
		return err
	}
	if err := rules.ApplyRelay("", c.ruleset()); err != nil {
		return err
	}
	c.provisionConntrack()
	c.run.Start(ctx)
	c.run.Every(10*time.Second, c.watch)
	return nil
}

func (c *relayComp) Stop(ctx context.Context) error {
	return errors.Join(c.run.Stop(ctx), c.t.Stop(ctx))
}

func (c *relayComp) Teardown(ctx context.Context) error {
	// The tunnel's sysctl is restored while the tunnel is still there.
	return errors.Join(
		rules.Remove("", nftables.TableFamilyINet, rules.Table),
		c.sys.Teardown(ctx),
		vpn.Teardown(c.vc))
}

func (c *relayComp) ruleset() *rules.Relay {
	r := c.r
	rl := &rules.Relay{Public: r.Public, Tunnel: r.Interface, Masquerade: r.Masquerade,
		MSS4: r.MSS(false), MSS6: r.MSS(true)}
	for _, a := range r.Addresses {
		rl.Own = append(rl.Own, a.Addr())
	}
	rl.Pool4, rl.Pool6 = byFamily(r.SNATPool, netip.Addr.Is4)
	for _, f := range r.Forwards {
		rl.Forwards = append(rl.Forwards, rules.RelayForward{Protos: f.Protos, From: f.From, To: f.To, Target: f.Target, ToPort: f.ToPort})
	}
	return rl
}

const (
	conntrackMax     = "/proc/sys/net/netfilter/nf_conntrack_max"
	conntrackCount   = "/proc/sys/net/netfilter/nf_conntrack_count"
	conntrackBuckets = "/proc/sys/net/netfilter/nf_conntrack_buckets"
)

// provisionConntrack raises nf_conntrack_max (and the hash table, a
// quarter of it) to relay.max_connections. It never lowers them: they are
// the whole host's, and something else may need more. Inside a network
// namespace they are read-only; status then says so.
func (c *relayComp) provisionConntrack() {
	c.notApplied = ""
	want := c.r.MaxConnections
	have, err := readInt(conntrackMax)
	if err != nil {
		c.notApplied = err.Error()
		return
	}
	if have >= want {
		return
	}
	if err := os.WriteFile(conntrackMax, []byte(strconv.Itoa(want)), 0o644); err != nil {
		c.notApplied = fmt.Sprintf("nf_conntrack_max stays %d: %v (it is global: set it on the host)", have, err)
		c.log.Warn("conntrack capacity not raised", "want", want, "have", have, "err", err)
		return
	}
	if b, err := readInt(conntrackBuckets); err == nil && b < want/4 {
		os.WriteFile(conntrackBuckets, []byte(strconv.Itoa(want/4)), 0o644)
	}
	c.log.Info("conntrack capacity raised", "from", have, "to", want)
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// watch warns in the log when the conntrack table passes 80% of its
// capacity, once per crossing.
func (c *relayComp) watch(ctx context.Context) {
	ct := c.conntrack()
	switch {
	case ct.Fill >= conntrackWarn && !c.warned:
		c.log.Warn("conntrack table filling up: new connections are dropped silently when it is full",
			"count", ct.Count, "limit", ct.Limit)
		c.warned = true
	case ct.Fill < conntrackWarn*0.9:
		c.warned = false
	}
}

func (c *relayComp) conntrack() status.Conntrack {
	ct := status.Conntrack{Capacity: c.r.MaxConnections, NotApplied: c.notApplied}
	ct.Count, _ = readInt(conntrackCount)
	ct.Max, _ = readInt(conntrackMax)
	ct.Limit = ct.Capacity
	if ct.Max > 0 && ct.Max < ct.Limit {
		ct.Limit = ct.Max
	}
	ct.Fill = float64(ct.Count) / float64(ct.Limit)
	return ct
}

func (c *relayComp) fillStatus(st *status.Status) {
	v := c.t.Status()
	s := &status.Relay{Interface: v.Interface, Implementation: v.Implementation, PublicKey: v.PublicKey,
		ListenPort: v.ListenPort, MSS4: int(c.r.MSS(false)), MSS6: int(c.r.MSS(true)), Error: v.Error,
		Conntrack: c.conntrack()}
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
	for _, f := range c.r.Forwards {
		rf := status.RelayForward{Name: f.Name, Forward: f.String(), Peer: c.r.PeerOf(f.Target)}
		for _, n := range counts {
			if n.Target == f.Target && n.From == f.From {
				rf.Packets, rf.Bytes = n.Packets, n.Bytes
			}
		}
		s.Forwards = append(s.Forwards, rf)
	}
	switch {
	case len(c.r.SNATPool) > 0:
		var as []string
		for _, a := range c.r.SNATPool {
			as = append(as, a.String())
		}
		s.NAT = "snat pool " + strings.Join(as, ", ")
	case c.r.Masquerade:
		s.NAT = "masquerade"
	default:
		s.NAT = "none"
	}
	if s.Conntrack.Fill >= conntrackWarn {
		s.Warnings = append(s.Warnings, fmt.Sprintf("conntrack table %.0f%% full (%d of %d): when it is full, new connections are dropped without a trace",
			100*s.Conntrack.Fill, s.Conntrack.Count, s.Conntrack.Limit))
	}
	if s.Conntrack.Max > 0 && s.Conntrack.Max < s.Conntrack.Capacity {
		s.Warnings = append(s.Warnings, fmt.Sprintf("the kernel tracks at most %d connections, fewer than relay.max_connections %d", s.Conntrack.Max, s.Conntrack.Capacity))
	}
	st.Relay = s
}
