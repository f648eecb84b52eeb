package lab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// The relay's addressing: a VPS on its own link off the ISP, with two more
// public addresses for an SNAT pool. Its tunnel addresses are the VPN
// provider's (VPNTunnel4/6, the home router's VPNClient4/6).
var (
	RelayPublic4  = netip.MustParsePrefix("198.18.100.7/24")
	RelayPublic6  = netip.MustParsePrefix("2001:db8:300::7/64")
	RelayISPSide4 = netip.MustParsePrefix("198.18.100.1/24")
	RelayISPSide6 = netip.MustParsePrefix("2001:db8:300::1/64")
	RelayPool4    = []netip.Addr{netip.MustParseAddr("198.18.100.21"), netip.MustParseAddr("198.18.100.22")}
)

// Relay is a VPS for routerd's [relay]: a namespace with one public NIC
// (eth0) behind the ISP. It runs routerd itself (Router.StartRouterd on
// the Router it returns); the home router reaches it as its VPN provider.
type Relay struct {
	*Router
	Key     wgtypes.Key // the relay's WireGuard key (written to its state_dir)
	HomeKey wgtypes.Key // the key it expects the home router to use
}

// NewRelay builds the relay's namespace behind isp.
func (l *Lab) NewRelay(isp *ISP) *Relay {
	l.T.Helper()
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		l.T.Fatalf("lab: %v", err)
	}
	home, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		l.T.Fatalf("lab: %v", err)
	}
	dir := filepath.Join(l.Dir, "relay")
	r := &Relay{Key: key, HomeKey: home, Router: &Router{NS: l.NewNS("relay"), ISP: isp, lab: l,
		State: filepath.Join(dir, "state"), Sock: filepath.Join(dir, "routerd.sock"), Conf: filepath.Join(dir, "relay.toml")}}
	os.MkdirAll(r.State, 0o700)
	if err := os.WriteFile(filepath.Join(r.State, "wg0.key"), []byte(key.String()+"\n"), 0o600); err != nil {
		l.T.Fatalf("lab: %v", err)
	}
	n := r.NS
	veth(l, isp.NS, "rl0", n, "eth0", "")
	isp.NS.MustRun("ip", "addr", "add", RelayISPSide4.String(), "dev", "rl0")
	isp.NS.MustRun("ip", "addr", "add", RelayISPSide6.String(), "dev", "rl0", "nodad")
	isp.NS.MustRun("ip", "link", "set", "dev", "rl0", "up")
	n.MustRun("ip", "link", "set", "dev", "lo", "up")
	n.MustRun("ip", "addr", "add", RelayPublic4.String(), "dev", "eth0")
	n.MustRun("ip", "addr", "add", RelayPublic6.String(), "dev", "eth0", "nodad")
	for _, a := range RelayPool4 {
		n.MustRun("ip", "addr", "add", a.String()+"/24", "dev", "eth0")
	}
	n.MustRun("ip", "route", "add", "default", "via", RelayISPSide4.Addr().String())
	n.MustRun("ip", "-6", "route", "add", "default", "via", RelayISPSide6.Addr().String())
	return r
}

// Provider is the relay as the home router's config sees its VPN provider.
func (r *Relay) Provider() *VPNProvider {
	return &VPNProvider{NS: r.NS, Key: r.Key, ClientKey: r.HomeKey, lab: r.lab,
		endpoint: fmt.Sprintf("%s:%d", RelayPublic4.Addr(), VPNPort)}
}

// Config is a relay config with the home router as its one peer, and
// extra TOML (forwards, NAT) inside [relay] and after it.
func (r *Relay) Config(relayKeys, extra string) string {
	return fmt.Sprintf(`hostname = %q
state_dir = %q

[relay]
public = "eth0"
interface = "wg0"
listen_port = %d
addresses = [%q, %q]
%s

[[relay.peer]]
name = "home"
public_key = %q
allowed_ips = [%q, %q]

%s

[status]
socket = %q
metrics = "127.0.0.1:9100"
`, r.lab.Prefix+"relay", r.State, VPNPort, VPNTunnel4, VPNTunnel6, relayKeys, r.HomeKey.PublicKey().String(),
		VPNClient4, VPNClient6, extra, r.Sock)
}
