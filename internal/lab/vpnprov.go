package lab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// The VPN provider's addressing: it reaches the ISP from its own public
// address, so the echo tells VPN egress (VPNPublic4) from WAN egress.
var (
	VPNPublic4   = netip.MustParsePrefix("198.51.100.7/24")
	VPNPublic6   = netip.MustParsePrefix("2001:db8:200::7/64")
	VPNISPSide4  = netip.MustParsePrefix("198.51.100.1/24")
	VPNISPSide6  = netip.MustParsePrefix("2001:db8:200::1/64")
	VPNPort      = 51820
	VPNTunnel4   = netip.MustParsePrefix("10.64.0.1/24")
	VPNTunnel6   = netip.MustParsePrefix("fd55:aaaa::1/64")
	VPNClient4   = netip.MustParsePrefix("10.64.0.2/32") // the tunnel address the provider gives the router
	VPNClient6   = netip.MustParsePrefix("fd55:aaaa::2/128")
	vpnTableName = "labvpn"
)

// VPNProvider is a WireGuard peer (wireguard-go, userspace; or the
// kernel's, see NewKernelVPNProvider) that NATs its clients to the ISP
// from VPNPublic4/6.
type VPNProvider struct {
	NS        *NS
	Kernel    bool   // kernel WireGuard instead of wireguard-go
	Dev       string // the device name (wireguard-go's is global: its UAPI socket is in /var/run/wireguard)
	Key       wgtypes.Key
	ClientKey wgtypes.Key // the key the provider expects its client (the router) to use
	Proc      *Proc
	lab       *Lab
	endpoint  string // "": VPNPublic4:VPNPort
	dns       *Proc
}

// VPNDNSAnswer is what the provider's own DNS server (StartDNS) answers for
// every name under vpn.example; the ISP's knows none of them.
var VPNDNSAnswer = netip.MustParseAddr("10.64.0.99")

// NewVPNProvider builds the provider's namespace behind isp and starts its
// WireGuard device with one peer, the router, whose key it generates.
func (l *Lab) NewVPNProvider(isp *ISP) *VPNProvider {
	l.T.Helper()
	return l.newVPNProvider(isp, false)
}

// NewKernelVPNProvider is NewVPNProvider with kernel WireGuard (a test that
// uses it needs the module: lab.RequireKernel(t, "wireguard")).
func (l *Lab) NewKernelVPNProvider(isp *ISP) *VPNProvider {
	l.T.Helper()
	return l.newVPNProvider(isp, true)
}

func (l *Lab) newVPNProvider(isp *ISP, kernel bool) *VPNProvider {
	l.T.Helper()
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		l.T.Fatalf("lab: %v", err)
	}
	ckey, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		l.T.Fatalf("lab: %v", err)
	}
	v := &VPNProvider{NS: l.NewNS("vpnprov"), Kernel: kernel, Dev: l.Prefix + "p", Key: key, ClientKey: ckey, lab: l}
	n := v.NS
	veth(l, isp.NS, "vp0", n, "up0", "")
	isp.NS.MustRun("ip", "addr", "add", VPNISPSide4.String(), "dev", "vp0")
	isp.NS.MustRun("ip", "addr", "add", VPNISPSide6.String(), "dev", "vp0", "nodad")
	isp.NS.MustRun("ip", "link", "set", "dev", "vp0", "up")
	n.MustRun("ip", "addr", "add", VPNPublic4.String(), "dev", "up0")
	n.MustRun("ip", "addr", "add", VPNPublic6.String(), "dev", "up0", "nodad")
	n.MustRun("ip", "route", "add", "default", "via", VPNISPSide4.Addr().String())
	n.MustRun("ip", "-6", "route", "add", "default", "via", VPNISPSide6.Addr().String())
	n.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	nat := fmt.Sprintf(`table inet %s {
	chain post { type nat hook postrouting priority srcnat; oifname "up0" masquerade; }
}`, vpnTableName)
	v.nft(nat)
	v.Start()
	return v
}

func (v *VPNProvider) nft(ruleset string) {
	v.lab.T.Helper()
	cmd := v.NS.Cmd("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		v.lab.T.Fatalf("lab: nft in %s: %v: %s", v.NS.Name, err, out)
	}
}

// Start (re)starts the provider's WireGuard device: the tunnel comes up.
func (v *VPNProvider) Start() {
	v.lab.T.Helper()
	if v.Kernel {
		v.NS.MustRun("ip", "link", "add", "dev", v.Dev, "type", "wireguard")
	} else {
		sock := filepath.Join("/var/run/wireguard", v.Dev+".sock")
		os.Remove(sock)
		v.Proc = v.NS.Start("vpnprov-wireguard-go", "wireguard-go", "-f", v.Dev)
		v.lab.Eventually(10*time.Second, "wireguard-go UAPI socket", func() error {
			_, err := os.Stat(sock)
			return err
		})
		v.lab.OnCleanup(func() { os.Remove(sock) })
	}
	keyFile := filepath.Join(v.lab.Dir, "vpnprov.key")
	os.WriteFile(keyFile, []byte(v.Key.String()+"\n"), 0o600)
	v.NS.MustRun("wg", "set", v.Dev, "private-key", keyFile, "listen-port", fmt.Sprint(VPNPort),
		"peer", v.ClientKey.PublicKey().String(), "allowed-ips", VPNClient4.String()+","+VPNClient6.String())
	v.NS.MustRun("ip", "addr", "add", VPNTunnel4.String(), "dev", v.Dev)
	v.NS.MustRun("ip", "addr", "add", VPNTunnel6.String(), "dev", v.Dev, "nodad")
	v.NS.MustRun("ip", "link", "set", "dev", v.Dev, "up")
}

// StartDNS runs a DNS server at the provider's tunnel address, reachable
// only through the tunnel (a VPN provider's own resolver, seed 001's
// dnsServer): it answers VPNDNSAnswer under vpn.example and NXDOMAIN for
// the rest of example, and logs every question.
func (v *VPNProvider) StartDNS() {
	v.lab.T.Helper()
	v.dns = v.NS.Start("vpnprov-dnsmasq", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--pid-file="+filepath.Join(v.lab.Dir, "vpnprov-dnsmasq.pid"), "--no-resolv", "--no-hosts",
		"--bind-dynamic", "--listen-address="+VPNTunnel4.Addr().String(), "--except-interface=lo",
		"--log-queries", "--log-facility=-", "--local=/example/",
		"--address=/vpn.example/"+VPNDNSAnswer.String())
	v.lab.Eventually(10*time.Second, "the provider's dnsmasq answers", func() error {
		out, err := v.NS.Run("dig", "+short", "+time=1", "+tries=1", "@"+VPNTunnel4.Addr().String(), "ready.vpn.example")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != VPNDNSAnswer.String() {
			return fmt.Errorf("dig ready.vpn.example = %q", out)
		}
		return nil
	})
}

// DNSLog is the provider's DNS server's log in lower case (as ISP.DNSLog).
func (v *VPNProvider) DNSLog() string { return strings.ToLower(v.dns.Log.String()) }

// Stop takes the tunnel down: the provider's WireGuard device disappears
// (wireguard-go's process exits).
func (v *VPNProvider) Stop() {
	if v.Kernel {
		v.NS.MustRun("ip", "link", "del", "dev", v.Dev)
		return
	}
	v.Proc.Stop()
}

// Endpoint is the provider's WireGuard endpoint as the router configures it.
func (v *VPNProvider) Endpoint() string {
	if v.endpoint != "" {
		return v.endpoint
	}
	return fmt.Sprintf("%s:%d", VPNPublic4.Addr(), VPNPort)
}

// LatestHandshake returns when the provider last completed a handshake with
// its client, as the provider's own wg tool reports it.
func (v *VPNProvider) LatestHandshake() (time.Time, error) {
	out, err := v.NS.Run("wg", "show", v.Dev, "latest-handshakes")
	if err != nil {
		return time.Time{}, err
	}
	var pub string
	var ts int64
	if _, err := fmt.Sscan(out, &pub, &ts); err != nil {
		return time.Time{}, fmt.Errorf("parse %q: %w", out, err)
	}
	if ts == 0 {
		return time.Time{}, nil
	}
	return time.Unix(ts, 0), nil
}

// Count returns a counter of the packets from src to dst (either may be
// the zero Prefix for "any") entering the isp namespace.
func (isp *ISP) Count(src, dst netip.Prefix) *Counter {
	isp.lab.T.Helper()
	return isp.CountMatch(src, dst, "")
}

// CountTCP is Count for TCP to destination port dport (0: any protocol and
// port).
func (isp *ISP) CountTCP(src, dst netip.Prefix, dport int) *Counter {
	isp.lab.T.Helper()
	if dport == 0 {
		return isp.CountMatch(src, dst, "")
	}
	return isp.CountMatch(src, dst, fmt.Sprintf("tcp dport %d", dport))
}

// CountMatch is Count for packets that also match an nft expression
// ("udp dport 7", "meta l4proto icmp"; "": any).
func (isp *ISP) CountMatch(src, dst netip.Prefix, expr string) *Counter {
	isp.lab.T.Helper()
	c := &Counter{ns: isp.NS, name: fmt.Sprintf("c%d", isp.ports), lab: isp.lab}
	isp.ports++
	var match []string
	for _, m := range []struct {
		p   netip.Prefix
		dir string
	}{{src, "saddr"}, {dst, "daddr"}} {
		if !m.p.IsValid() {
			continue
		}
		fam := "ip"
		if m.p.Addr().Is6() {
			fam = "ip6"
		}
		match = append(match, fmt.Sprintf("%s %s %s", fam, m.dir, m.p))
	}
	if expr != "" {
		match = append(match, expr)
	}
	rs := fmt.Sprintf(`table inet labcount_%[1]s {
	counter %[1]s {}
	chain pre { type filter hook prerouting priority -300; %[2]s counter name %[1]s; }
}`, c.name, strings.Join(match, " "))
	cmd := isp.NS.Cmd("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rs)
	if out, err := cmd.CombinedOutput(); err != nil {
		isp.lab.T.Fatalf("lab: nft counter: %v: %s", err, out)
	}
	return c
}

// Counter is an nft packet counter in a lab namespace.
type Counter struct {
	ns   *NS
	name string
	lab  *Lab
}

// Packets returns the counter's packet count.
func (c *Counter) Packets() int {
	c.lab.T.Helper()
	out := c.ns.MustRun("nft", "list", "counter", "inet", "labcount_"+c.name, c.name)
	i := strings.Index(out, "packets ")
	if i < 0 {
		c.lab.T.Fatalf("lab: no packets in %q", out)
	}
	var n int
	fmt.Sscan(out[i+len("packets "):], &n)
	return n
}
