// Package vpn owns the WireGuard tunnel: its key, its interface (created in
// the wan namespace so its UDP socket lives there, then moved into the vpn
// namespace), its peer configuration through wgctrl, the routes into it and
// the endpoint's name resolution. Kernel WireGuard is used when the kernel
// has it; otherwise the embedded userspace implementation runs on a TUN
// device, in the same namespaces, configured through the same wgctrl.
package vpn

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/routerd/routerd/internal/atomicfile"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/internal/rtproto"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// RouteProto marks the routes into the tunnel ("proto 202"): they are the
// tunnel's, not the routing plan's (201), and each converges its own.
const RouteProto = rtproto.Tunnel

// Peer is one WireGuard peer.
type Peer struct {
	PublicKey        wgtypes.Key
	PresharedKeyFile string
	Endpoint         config.Endpoint
	AllowedIPs       []netip.Prefix
	Keepalive        time.Duration
}

// Config is the tunnel's desired state.
type Config struct {
	WANNS, VPNNS   string
	Iface          string
	KeyFile        string
	Addresses      []netip.Prefix
	MTU            int
	Implementation string // "kernel" | "userspace" | "auto"
	ListenPort     int
	// FirewallMark marks the tunnel's own packets (0: none), for policy
	// routing in WANNS.
	FirewallMark int
	Peers        []Peer
	// DNS returns the servers to resolve endpoint names with (asked from a
	// socket in the wan namespace).
	DNS func() []netip.AddrPort
	// UAPIName names a userspace device's UAPI socket, which lives in
	// the global /var/run/wireguard; empty: VPNNS-Iface.
	UAPIName string
	Log      *slog.Logger
}

// Tunnel is a running WireGuard interface.
type Tunnel struct {
	cfg  Config
	key  wgtypes.Key
	impl string // "kernel" | "userspace"
	user *userspace

	mu        sync.Mutex
	endpoints map[wgtypes.Key]netip.AddrPort // resolved endpoint per peer
	err       error
	run       lifecycle.Group
}

// New returns a tunnel for cfg; Start brings it up.
func New(cfg Config) *Tunnel {
	return &Tunnel{cfg: cfg, endpoints: map[wgtypes.Key]netip.AddrPort{}}
}

// LoadOrCreateKey reads the private key file, creating it (mode 0600)
// with a fresh key if it does not exist.
func LoadOrCreateKey(path string) (wgtypes.Key, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			return k, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return k, err
		}
		if err := atomicfile.WriteFile(path, []byte(k.String()+"\n"), 0o600); err != nil {
			return k, fmt.Errorf("write WireGuard key: %w", err)
		}
		return k, nil
	}
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("read WireGuard key: %w", err)
	}
	k, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
	if err != nil {
		return k, fmt.Errorf("WireGuard key %s: %w", path, err)
	}
	return k, nil
}

// PublicKey returns the tunnel's public key.
func (t *Tunnel) PublicKey() wgtypes.Key { return t.key.PublicKey() }

// Start brings the tunnel up: key, interface, peers, addresses, routes. A
// tunnel already there from before a restart is adopted without a flap.
func (t *Tunnel) Start(ctx context.Context) error {
	key, err := LoadOrCreateKey(t.cfg.KeyFile)
	if err != nil {
		return err
	}
	t.key = key
	if err := t.ensureInterface(); err != nil {
		return err
	}
	if err := t.configure(ctx); err != nil {
		return err
	}
	if err := t.ensureLink(); err != nil {
		return err
	}
	t.cfg.Log.Info("tunnel configured", "iface", t.cfg.Iface, "netns", t.cfg.VPNNS, "implementation", t.impl)
	t.run.Start(ctx)
	t.run.Every(30*time.Second, t.watch)
	return nil
}

// Stop stops watching; the interface stays. A userspace tunnel's TUN is
// persistent, so its link, addresses and routes outlive routerd and its
// packets simply wait (nothing leaves the vpn namespace another way).
func (t *Tunnel) Stop(ctx context.Context) error {
	err := t.run.Stop(ctx)
	if t.user != nil {
		t.user.close()
	}
	return err
}

// uapiName is the userspace device's name for wgctrl: its UAPI socket lives
// in the global /var/run/wireguard, so it carries the namespace's name to
// stay unique when several vpn namespaces have a wg0.
func (t *Tunnel) uapiName() string { return uapiName(t.cfg) }

func uapiName(cfg Config) string {
	if cfg.UAPIName != "" {
		return cfg.UAPIName
	}
	return cfg.VPNNS + "-" + cfg.Iface
}

// DeviceName is the name wgctrl knows the device by.
func (t *Tunnel) DeviceName() string {
	if t.impl == "userspace" {
		return t.uapiName()
	}
	return t.cfg.Iface
}

// ensureInterface finds the interface in the vpn namespace or creates it in
// the wan namespace and moves it there.
func (t *Tunnel) ensureInterface() error {
	vh, err := netns.Handle(t.cfg.VPNNS)
	if err != nil {
		return err
	}
	defer vh.Close()
	existing, err := vh.LinkByName(t.cfg.Iface)
	switch {
	case err == nil && existing.Type() == "wireguard":
		t.impl = "kernel"
		return nil
	case err == nil && existing.Type() == "tuntap":
		if t.cfg.Implementation == "kernel" {
			return fmt.Errorf("%s in netns %s is a userspace tunnel but vpn.implementation is \"kernel\"", t.cfg.Iface, t.cfg.VPNNS)
		}
		t.impl = "userspace"
		u, err := attachUserspace(t.cfg, t.uapiName())
		if err != nil {
			return err
		}
		t.user = u
		return nil
	case err == nil:
		return fmt.Errorf("%s in netns %s is a %s, not a tunnel; refusing to touch it", t.cfg.Iface, t.cfg.VPNNS, existing.Type())
	}
	if t.cfg.Implementation != "userspace" {
		err := t.createKernel()
		if err == nil {
			t.impl = "kernel"
			return nil
		}
		if t.cfg.Implementation == "kernel" {
			return err
		}
		t.cfg.Log.Info("no kernel WireGuard; using the embedded userspace implementation", "reason", err)
	}
	u, err := createUserspace(t.cfg, t.uapiName())
	if err != nil {
		return err
	}
	t.impl, t.user = "userspace", u
	return nil
}

func (t *Tunnel) createKernel() error {
	wh, err := netns.Handle(t.cfg.WANNS)
	if err != nil {
		return err
	}
	defer wh.Close()
	link := &netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: t.cfg.Iface, MTU: t.cfg.MTU}}
	if err := wh.LinkAdd(link); err != nil {
		return fmt.Errorf("create kernel WireGuard %s in netns %s: %w", t.cfg.Iface, t.cfg.WANNS, err)
	}
	return moveLink(wh, t.cfg.WANNS, t.cfg.Iface, t.cfg.VPNNS)
}

func moveLink(from *netlink.Handle, fromNS, name, to string) error {
	if to == fromNS {
		return nil // a relay's tunnel stays where it is made
	}
	l, err := from.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	fd, err := netns.Open(to)
	if err != nil {
		return err
	}
	defer fd.Close()
	if err := from.LinkSetNsFd(l, int(fd)); err != nil {
		return fmt.Errorf("move %s to netns %s: %w", name, to, err)
	}
	return nil
}

// client returns a wgctrl client that sees the device: for kernel
// WireGuard it must talk generic netlink inside the vpn namespace; for
// userspace it finds the UAPI socket by name.
func (t *Tunnel) client() (*wgctrl.Client, error) {
	var c *wgctrl.Client
	err := netns.Do(t.cfg.VPNNS, func() (err error) {
		c, err = wgctrl.New()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("wgctrl: %w", err)
	}
	return c, nil
}

// configure sets key, port and peers through wgctrl, only when they differ
// from what the device has: an identical reconfiguration would still drop
// the session.
func (t *Tunnel) configure(ctx context.Context) error {
	c, err := t.client()
	if err != nil {
		return err
	}
	defer c.Close()
	dev, err := c.Device(t.DeviceName())
	if err != nil {
		return fmt.Errorf("read WireGuard device %s: %w", t.DeviceName(), err)
	}
	want := wgtypes.Config{PrivateKey: &t.key, ReplacePeers: true}
	port := t.cfg.ListenPort
	want.ListenPort = &port
	fwmark := t.cfg.FirewallMark
	want.FirewallMark = &fwmark
	for _, p := range t.cfg.Peers {
		pc := wgtypes.PeerConfig{PublicKey: p.PublicKey, ReplaceAllowedIPs: true}
		ka := p.Keepalive
		pc.PersistentKeepaliveInterval = &ka
		for _, a := range p.AllowedIPs {
			pc.AllowedIPs = append(pc.AllowedIPs, *netns.IPNet(a))
		}
		if p.PresharedKeyFile != "" {
			b, err := os.ReadFile(p.PresharedKeyFile)
			if err != nil {
				return fmt.Errorf("read preshared key: %w", err)
			}
			psk, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
			if err != nil {
				return fmt.Errorf("preshared key %s: %w", p.PresharedKeyFile, err)
			}
			pc.PresharedKey = &psk
		}
		if p.Endpoint == (config.Endpoint{}) {
			want.Peers = append(want.Peers, pc) // it dials in
			continue
		}
		ep, err := t.resolve(ctx, p.Endpoint)
		if err != nil {
			t.cfg.Log.Warn("resolve VPN endpoint; will retry", "endpoint", p.Endpoint, "err", err)
		} else {
			pc.Endpoint = ep
			t.mu.Lock()
			t.endpoints[p.PublicKey] = ep.AddrPort()
			t.mu.Unlock()
		}
		want.Peers = append(want.Peers, pc)
	}
	if sameConfig(dev, &want) {
		return nil
	}
	if err := c.ConfigureDevice(t.DeviceName(), want); err != nil {
		return fmt.Errorf("configure WireGuard %s: %w", t.DeviceName(), err)
	}
	return nil
}

// sameConfig reports whether the device already has want's settings.
func sameConfig(dev *wgtypes.Device, want *wgtypes.Config) bool {
	if dev.PrivateKey != *want.PrivateKey || (*want.ListenPort != 0 && dev.ListenPort != *want.ListenPort) || len(dev.Peers) != len(want.Peers) {
		return false
	}
	byKey := map[wgtypes.Key]wgtypes.Peer{}
	for _, d := range dev.Peers {
		byKey[d.PublicKey] = d
	}
	for _, p := range want.Peers {
		d, ok := byKey[p.PublicKey]
		if !ok || d.PersistentKeepaliveInterval != *p.PersistentKeepaliveInterval {
			return false
		}
		if p.Endpoint != nil && (d.Endpoint == nil || d.Endpoint.String() != p.Endpoint.String()) {
			return false
		}
		if (p.PresharedKey != nil && d.PresharedKey != *p.PresharedKey) || (p.PresharedKey == nil && d.PresharedKey != (wgtypes.Key{})) {
			return false
		}
		var have, wantIPs []string
		for _, a := range d.AllowedIPs {
			have = append(have, a.String())
		}
		for _, a := range p.AllowedIPs {
			wantIPs = append(wantIPs, a.String())
		}
		slices.Sort(have)
		slices.Sort(wantIPs)
		if !slices.Equal(have, wantIPs) {
			return false
		}
	}
	return true
}

// ensureLink gives the interface its MTU, addresses, up state, sysctls and
// the routes for the peers' allowed IPs, in the vpn namespace.
func (t *Tunnel) ensureLink() error {
	h, l, err := netns.HandleLink(t.cfg.VPNNS, t.cfg.Iface)
	if err != nil {
		return err
	}
	defer h.Close()
	if t.cfg.MTU != 0 && l.Attrs().MTU != t.cfg.MTU {
		if err := h.LinkSetMTU(l, t.cfg.MTU); err != nil {
			return fmt.Errorf("set MTU of %s: %w", t.cfg.Iface, err)
		}
	}
	if _, err := netns.SetSysctls([]netns.Sysctl{
		{NS: t.cfg.VPNNS, Key: "net/ipv6/conf/" + t.cfg.Iface + "/accept_ra", Value: "0"},
		{NS: t.cfg.VPNNS, Key: "net/ipv4/conf/" + t.cfg.Iface + "/rp_filter", Value: "1"},
	}); err != nil {
		return err
	}
	if _, err := netns.SyncAddrs(h, l, t.cfg.Addresses, true); err != nil {
		return err
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", t.cfg.Iface, err)
		}
	}
	return t.syncRoutes(h, l.Attrs().Index)
}

func (t *Tunnel) syncRoutes(h *netlink.Handle, index int) error {
	want := map[netip.Prefix]bool{}
	for _, p := range t.cfg.Peers {
		for _, a := range p.AllowedIPs {
			want[a.Masked()] = true
		}
	}
	have, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: RouteProto, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list tunnel routes: %w", err)
	}
	present := map[netip.Prefix]bool{}
	for i := range have {
		p := prefixOf(have[i].Dst, have[i].Family)
		if want[p] && have[i].LinkIndex == index && !present[p] {
			present[p] = true
			continue
		}
		if err := h.RouteDel(&have[i]); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete stale tunnel route %s: %w", p, err)
		}
	}
	var errs []error
	for p := range want {
		if present[p] {
			continue
		}
		fam := netlink.FAMILY_V4
		if p.Addr().Is6() {
			fam = netlink.FAMILY_V6
		}
		r := &netlink.Route{LinkIndex: index, Dst: netns.IPNet(p),
			Protocol: RouteProto, Scope: netlink.SCOPE_LINK, Family: fam}
		if err := h.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("route %s dev %s: %w", p, t.cfg.Iface, err))
		}
	}
	return errors.Join(errs...)
}

func prefixOf(n *net.IPNet, fam int) netip.Prefix {
	if n == nil {
		if fam == netlink.FAMILY_V6 {
			return netip.MustParsePrefix("::/0")
		}
		return netip.MustParsePrefix("0.0.0.0/0")
	}
	return netns.PrefixOf(n)
}

func (t *Tunnel) setErr(err error) {
	t.mu.Lock()
	t.err = err
	t.mu.Unlock()
}

// resolve turns host:port into an address, asking DNS from a socket in the
// wan namespace: the main namespace's resolver may route through the
// tunnel this very endpoint is needed for.
func (t *Tunnel) resolve(ctx context.Context, ep config.Endpoint) (*net.UDPAddr, error) {
	if ep.Addr.IsValid() {
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ep.Addr, ep.Port)), nil
	}
	host := ep.Host
	var servers []netip.AddrPort
	if t.cfg.DNS != nil {
		servers = t.cfg.DNS()
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("no DNS server known yet to resolve %s", host)
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var c net.Conn
		var lastErr error
		for _, s := range servers {
			err := netns.Do(t.cfg.WANNS, func() (err error) {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, s.String())
				return err
			})
			if err == nil {
				return c, nil
			}
			lastErr = err
		}
		return nil, lastErr
	}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s has no address", host)
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrs[0].Unmap(), ep.Port)), nil
}

// PeerStatus is one peer in status.
type PeerStatus = status.Peer

// Status is the tunnel's state for routerctl status.
type Status = status.VPN

// Endpoints are the peers' endpoint addresses: as the device has them (a
// peer that roamed is where its packets come from), else as last resolved.
func (t *Tunnel) Endpoints() []netip.Addr {
	var out []netip.Addr
	if c, err := t.client(); err == nil {
		defer c.Close()
		if dev, err := c.Device(t.DeviceName()); err == nil {
			for _, p := range dev.Peers {
				if p.Endpoint != nil {
					out = append(out, p.Endpoint.AddrPort().Addr().Unmap())
				}
			}
			return out
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ap := range t.endpoints {
		out = append(out, ap.Addr())
	}
	return out
}

// Status reads the device through wgctrl.
func (t *Tunnel) Status() Status {
	st := Status{Interface: t.cfg.Iface, Implementation: t.impl, PublicKey: t.key.PublicKey().String()}
	t.mu.Lock()
	if t.err != nil {
		st.Error = t.err.Error()
	}
	t.mu.Unlock()
	c, err := t.client()
	if err != nil {
		st.Error = err.Error()
		return st
	}
	defer c.Close()
	dev, err := c.Device(t.DeviceName())
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.ListenPort = dev.ListenPort
	for _, p := range dev.Peers {
		ps := PeerStatus{PublicKey: p.PublicKey.String(), LastHandshake: p.LastHandshakeTime, RxBytes: p.ReceiveBytes, TxBytes: p.TransmitBytes}
		if p.Endpoint != nil {
			ps.Endpoint = p.Endpoint.String()
		}
		if fresh(p.LastHandshakeTime) {
			st.Up = true
		}
		st.Peers = append(st.Peers, ps)
	}
	return st
}
