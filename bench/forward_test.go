package bench

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// iperf3 runs a client in ns against dst:port for 3 seconds and returns
// TCP throughput in Mbit/s, or with udp64 the 64-byte UDP packets per
// second that arrived.
func iperf3(b *testing.B, ns *lab.NS, bind netip.Addr, dst netip.Addr, port int, udp64 bool) float64 {
	b.Helper()
	args := []string{"iperf3", "-c", dst.String(), "-p", fmt.Sprint(port), "-t", "3", "-J"}
	if bind.IsValid() {
		args = append(args, "-B", bind.String())
	}
	if udp64 {
		args = append(args, "-u", "-l", "64", "-b", "0")
	}
	var res lab.Iperf3Result
	// The server takes one test at a time and is briefly away between
	// them: a refused or busy attempt is tried again.
	var out string
	err := lab.Poll(30*time.Second, func() error {
		out, _ = ns.Run(args...)
		var err error
		if res, err = lab.ParseIperf3(out); err != nil {
			return err
		}
		if udp64 && res.End.Sum.Seconds == 0 {
			return fmt.Errorf("iperf3 udp: no result")
		}
		return nil
	})
	if err != nil {
		b.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	if udp64 {
		s := res.End.Sum
		// As fast as iperf3 sends, this is what an overloaded path lets
		// through: the loss says how overloaded.
		b.Logf("udp64 to %s: sent %.0f/s, lost %.0f%%", dst, s.Packets/s.Seconds, 100*s.LostPackets/s.Packets)
		return (s.Packets - s.LostPackets) / s.Seconds
	}
	return res.End.SumReceived.BitsPerSecond / 1e6
}

// iperfServer runs iperf3's server in ns, bound to bind when it is valid:
// on a namespace with several addresses, UDP answers must come from the
// address the client asked, or NAT on the way back cannot match them.
func iperfServer(ns *lab.NS, bind netip.Addr, port int) *lab.Proc {
	var args []string
	if bind.IsValid() {
		args = []string{"-B", bind.String()}
	}
	return ns.StartIperf3(port, args...)
}

// target is where a path is measured from: iperf3 -c in ns (bound to bind
// when valid) to dst:5201, in lab l.
type target struct {
	l    *lab.Lab
	ns   *lab.NS
	bind netip.Addr
	dst  netip.Addr
}

func (x target) tcp(b *testing.B) float64 { return iperf3(b, x.ns, x.bind, x.dst, 5201, false) }
func (x target) udp64(b *testing.B) float64 {
	return iperf3(b, x.ns, x.bind, x.dst, 5201, true)
}

// measure is one result: a path's TCP or 64-byte UDP.
type measure struct {
	key string
	t   target
	fn  func(target, *testing.B) float64
}

// takeTurns runs every measure once per round, in turn, and reports the
// median of each: what else the machine does moves single runs by more
// than the paths differ (under qemu TCG by ±50%), and taking turns gives
// each path the same minutes. While one path is measured the other labs'
// processes are paused: their routerds and daemons would take the CPUs
// the measured path shares with its iperf3s, and more from a path that
// crosses more namespaces.
func takeTurns(b *testing.B, rounds int, ms []measure) map[string]float64 {
	runs := map[string][]float64{}
	for r := range rounds {
		for _, m := range ms {
			for _, o := range ms {
				if o.t.l != m.t.l {
					o.t.l.Pause()
				}
			}
			m.t.l.Resume()
			v := m.fn(m.t, b)
			runs[m.key] = append(runs[m.key], v)
			b.Logf("round %d: %-26s %10.0f", r+1, m.key, v)
		}
	}
	for _, m := range ms {
		m.t.l.Resume()
	}
	res := map[string]float64{}
	for _, m := range ms {
		vs := runs[m.key]
		slices.Sort(vs)
		res[m.key] = vs[len(vs)/2]
		b.Logf("%-26s median %10.0f  (%.0f–%.0f)", m.key, res[m.key], vs[0], vs[len(vs)-1])
	}
	return res
}

// BenchmarkForwarding measures the data paths, each against what it
// replaces or stands on, taking turns over five rounds:
//
//   - home: a LAN client through routerd's three namespaces to the ISP, TCP
//     and 64-byte UDP, against the same lab with plain forwarding (no
//     firewall, no NAT) in the router's namespace; and with a 500k-prefix
//     force list loaded (only a connection's first packet looks it up);
//   - vpn: a LAN client through routerd's tunnel, against a host on the
//     ISP running wireguard-go itself to the same VPN provider;
//   - relay: an internet host through routerd [relay] and routerd's
//     [[publish]] to a LAN host, against the same path with seed 000's
//     hand-written rules (a rule per port and protocol) on the relay; both
//     relays carry 1000 other forwards.
//
// On a kernel with flowtables and kernel WireGuard, routerd uses them:
// BenchmarkForwardingKernel measures that, in the VM lab.
func BenchmarkForwarding(b *testing.B) {
	lab.Require(b, "iperf3", "nsenter", "nft", "wireguard-go", "wg", "dnsmasq")
	res := forwarding(b, false, func() []measure {
		forced, _ := setupHome(b, false, "", 500_000)
		return []measure{{"home_force500k_tcp_mbps", forced, target.tcp}, {"home_force500k_udp64_pps", forced, target.udp64}}
	})
	report(b, res, [][3]string{
		{"home_tcp_vs_plain", "home_tcp_mbps", "plain_tcp_mbps"},
		{"home_udp64_vs_plain", "home_udp64_pps", "plain_udp64_pps"},
		{"force500k_udp64_vs_none", "home_force500k_udp64_pps", "home_udp64_pps"},
		{"force500k_tcp_vs_none", "home_force500k_tcp_mbps", "home_tcp_mbps"},
		{"vpn_tcp_vs_wireguard_go", "vpn_tcp_mbps", "wg_alone_tcp_mbps"},
		{"relay_tcp_vs_seed000", "relay_tcp_mbps", "seed000_tcp_mbps"},
		{"relay_udp64_vs_seed000", "relay_udp64_pps", "seed000_udp64_pps"},
	})
}

// BenchmarkForwardingKernel is BenchmarkForwarding as routerd runs on the
// image's kernel: flow offload and kernel WireGuard (at both ends, and on
// the reference host), in the VM lab where this kernel lacks them. The
// home path is measured with offload and with firewall.flow_offload =
// false. Under qemu TCG every packet costs far more than on hardware and
// the sender shares the two CPUs with every hop: only the ratios mean
// anything.
func BenchmarkForwardingKernel(b *testing.B) {
	if lab.RequireKernel(b, "wireguard", "nf_flow_table", "nf_flow_table_inet", "nft_flow_offload") {
		return
	}
	lab.Require(b, "iperf3", "nsenter", "nft", "wg", "dnsmasq")
	res := forwarding(b, true, func() []measure {
		slow, _ := setupHome(b, true, "[firewall]\nflow_offload = false\n", 0)
		return []measure{{"home_nooffload_tcp_mbps", slow, target.tcp}, {"home_nooffload_udp64_pps", slow, target.udp64}}
	})
	report(b, res, [][3]string{
		{"home_tcp_vs_plain", "home_tcp_mbps", "plain_tcp_mbps"},
		{"home_udp64_vs_plain", "home_udp64_pps", "plain_udp64_pps"},
		{"home_tcp_vs_no_offload", "home_tcp_mbps", "home_nooffload_tcp_mbps"},
		{"home_udp64_vs_no_offload", "home_udp64_pps", "home_nooffload_udp64_pps"},
		{"no_offload_tcp_vs_plain", "home_nooffload_tcp_mbps", "plain_tcp_mbps"},
		{"no_offload_udp64_vs_plain", "home_nooffload_udp64_pps", "plain_udp64_pps"},
		{"vpn_tcp_vs_wireguard_kernel", "vpn_tcp_mbps", "wg_alone_tcp_mbps"},
		{"relay_tcp_vs_seed000", "relay_tcp_mbps", "seed000_tcp_mbps"},
		{"relay_udp64_vs_seed000", "relay_udp64_pps", "seed000_udp64_pps"},
	})
}

// forwarding sets up the paths both forwarding benchmarks measure (and
// more's), each in a lab of its own, and measures them in turns: plain
// forwarding, the home path and the tunnel, WireGuard alone, the relay and
// seed 000's.
func forwarding(b *testing.B, kernel bool, more func() []measure) map[string]float64 {
	plain := setupPlain(b)
	home, vpn := setupHome(b, kernel, "", 0)
	ms := []measure{
		{"plain_tcp_mbps", plain, target.tcp}, {"plain_udp64_pps", plain, target.udp64},
		{"home_tcp_mbps", home, target.tcp}, {"home_udp64_pps", home, target.udp64},
	}
	ms = append(ms, more()...)
	alone := setupWireGuardAlone(b, kernel)
	relay := setupRelay(b, kernel, false)
	seed := setupRelay(b, kernel, true)
	return takeTurns(b, 5, append(ms,
		measure{"vpn_tcp_mbps", vpn, target.tcp}, measure{"wg_alone_tcp_mbps", alone, target.tcp},
		measure{"relay_tcp_mbps", relay, target.tcp}, measure{"relay_udp64_pps", relay, target.udp64},
		measure{"seed000_tcp_mbps", seed, target.tcp}, measure{"seed000_udp64_pps", seed, target.udp64}))
}

// report reports every result and each ratio {name, a, z} = a / z.
func report(b *testing.B, res map[string]float64, ratios [][3]string) {
	for k, v := range res {
		b.ReportMetric(v, k)
	}
	for _, r := range ratios {
		name, a, z := r[0], r[1], r[2]
		if res[z] > 0 {
			b.ReportMetric(res[a]/res[z], name)
			b.Logf("%-28s %10.0f vs %10.0f  = %.2f×", name, res[a], res[z], res[a]/res[z])
		}
	}
}

// setupPlain: the reference for the home path: the same lab (a client on
// the LAN switch, the ISP's bridge and iperf3) with the router's namespace
// doing plain IPv4 forwarding between its two NICs, where routerd would
// be: no firewall, no NAT (the ISP routes the LAN back to it).
func setupPlain(b *testing.B) target {
	l := lab.New(b)
	isp := l.NewISP(lab.ISPOptions{})
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	c := lan.AddClient()
	c.SetStatic(50)
	wan := netip.MustParseAddr("203.0.113.2")
	r.NS.MustRun("ip", "addr", "add", lan.Router4().String(), "dev", lan.NIC)
	r.NS.MustRun("ip", "addr", "add", wan.String()+"/24", "dev", "eth0")
	for _, nic := range []string{"eth0", lan.NIC} {
		r.NS.MustRun("ip", "link", "set", "dev", nic, "up")
	}
	r.NS.MustRun("ip", "route", "add", "default", "via", lab.ISPDown4.Addr().String())
	r.NS.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
	isp.NS.MustRun("ip", "route", "add", lan.Subnet4.String(), "via", wan.String())
	iperfServer(isp.NS, lab.Echo4, 5201)
	return target{l: l, ns: c.NS, dst: lab.Echo4}
}

// setupHome: routerd on the lab, a LAN client that takes the WAN path to
// the ISP's iperf3 and one that takes the tunnel. extra is more config;
// force loads a force list of that many prefixes first.
func setupHome(b *testing.B, kernel bool, extra string, force int) (wan, vpn target) {
	l := lab.New(b)
	isp := l.NewISP(lab.ISPOptions{})
	var vp *lab.VPNProvider
	impl := "userspace"
	if kernel {
		vp, impl = l.NewKernelVPNProvider(isp), "kernel"
	} else {
		vp = l.NewVPNProvider(isp)
	}
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	c := lan.AddClient()
	c4, _ := c.SetStatic(50)
	v := lan.AddClient()
	v.SetStatic(60)
	list := filepath.Join(l.Dir, "force.txt")
	if force > 0 {
		rnd := rand.New(rand.NewPCG(uint64(force), 1))
		entries := make([]string, force)
		for i := range entries {
			entries[i] = entry(rnd)
		}
		writeList(b, list, "", entries)
	} else {
		os.WriteFile(list, nil, 0o644)
	}
	cfg := fmt.Sprintf(`
[[routing.policy]]
name = "direct"
sources = ["%s"]
via = "wan"

[[blocklist]]
name = "force"
file = %q
format = "lines"
via = "vpn"
`, c4, list) + extra
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{VPN: vp, VPNImpl: impl, Default: "vpn", NoDHCP: true, Extra: cfg}))
	rd.WaitTunnel(time.Minute)
	iperfServer(isp.NS, lab.Echo4, 5201)
	return target{l: l, ns: c.NS, dst: lab.Echo4}, target{l: l, ns: v.NS, dst: lab.Echo4}
}

// wgDevice makes a WireGuard device in ns, named dev: kernel WireGuard, or
// wireguard-go.
func wgDevice(l *lab.Lab, ns *lab.NS, dev string, kernel bool) {
	if kernel {
		ns.MustRun("ip", "link", "add", "dev", dev, "type", "wireguard")
		return
	}
	sock := filepath.Join("/var/run/wireguard", dev+".sock")
	ns.Start("wireguard-go", "wireguard-go", "-f", dev)
	l.Eventually(10*time.Second, "wireguard-go socket", func() error { _, err := os.Stat(sock); return err })
	l.OnCleanup(func() { os.Remove(sock) })
}

// waitHandshake waits until the WireGuard device dev in ns has had one.
func waitHandshake(l *lab.Lab, ns *lab.NS, dev string) {
	l.Eventually(time.Minute, "a handshake on "+dev, func() error {
		out, err := ns.Run("wg", "show", dev, "latest-handshakes")
		if err != nil {
			return err
		}
		if f := strings.Fields(out); len(f) < 2 || f[1] == "0" {
			return fmt.Errorf("none yet: %q", out)
		}
		return nil
	})
}

// setupWireGuardAlone: the tunnel without routerd, its reference: a host
// on the ISP's link, where the router's WAN would be, running WireGuard
// itself to the same VPN provider and on to the same echo server.
func setupWireGuardAlone(b *testing.B, kernel bool) target {
	l := lab.New(b)
	isp := l.NewISP(lab.ISPOptions{})
	var vp *lab.VPNProvider
	if kernel {
		vp = l.NewKernelVPNProvider(isp)
	} else {
		vp = l.NewVPNProvider(isp)
	}
	h := l.NewNS("wghost")
	isp.Attach(h, "eth0", "02:42:ac:99:00:02")
	h.MustRun("ip", "addr", "add", "203.0.113.250/24", "dev", "eth0")
	h.MustRun("ip", "route", "add", "default", "via", lab.ISPDown4.Addr().String())
	dev := l.Prefix + "wgh"
	wgDevice(l, h, dev, kernel)
	kf := filepath.Join(l.Dir, "wghost.key")
	os.WriteFile(kf, []byte(vp.ClientKey.String()), 0o600)
	h.MustRun("wg", "set", dev, "private-key", kf, "peer", vp.Key.PublicKey().String(),
		"endpoint", vp.Endpoint(), "allowed-ips", "0.0.0.0/0", "persistent-keepalive", "5")
	h.MustRun("ip", "addr", "add", lab.VPNClient4.String(), "dev", dev)
	h.MustRun("ip", "link", "set", dev, "mtu", "1420", "up")
	h.MustRun("ip", "route", "add", lab.Echo4.String()+"/32", "dev", dev)
	waitHandshake(l, h, dev)
	iperfServer(isp.NS, lab.Echo4, 5201)
	return target{l: l, ns: h, dst: lab.Echo4}
}

// setupRelay: an internet host through a relay and routerd's [[publish]]
// to a LAN host. The relay is routerd [relay], or (seed) seed 000's
// hand-written rules: WireGuard and one DNAT rule per port and protocol,
// the measured port last. Both carry 1000 other forwards.
func setupRelay(b *testing.B, kernel, seed bool) target {
	l := lab.New(b)
	isp := l.NewISP(lab.ISPOptions{})
	relay := l.NewRelay(isp)
	if seed {
		seedRelay(l, relay, kernel)
	} else {
		var fwd strings.Builder
		for p := 10000; p < 11000; p++ {
			fmt.Fprintf(&fwd, "[[relay.forward]]\nproto = \"tcp+udp\"\nports = \"%d\"\nto = \"10.64.0.2\"\n\n", p)
		}
		fwd.WriteString("[[relay.forward]]\nproto = \"tcp+udp\"\nports = \"5201\"\nto = \"10.64.0.2\"\n")
		relay.StartRouterd(relay.Config("", fwd.String()))
	}
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	s := lan.AddClient()
	s4, _ := s.SetStatic(10)
	impl := "userspace"
	if kernel {
		impl = "kernel"
	}
	extra := fmt.Sprintf("[[publish]]\nname = \"iperf\"\nproto = \"tcp+udp\"\nport = 5201\nto = \"%s:5201\"\n", s4)
	home := r.StartRouterd(r.Config(lab.ConfigOptions{VPN: relay.Provider(), VPNImpl: impl, Default: "vpn", NoDHCP: true, Extra: extra}))
	home.WaitTunnel(time.Minute)
	iperfServer(s.NS, netip.Addr{}, 5201)
	return target{l: l, ns: isp.NS, bind: lab.EchoAlt4[0], dst: lab.RelayPublic4.Addr()}
}

// seedRelay sets the relay's namespace up as seed 000 writes it.
func seedRelay(l *lab.Lab, relay *lab.Relay, kernel bool) {
	dev := l.Prefix + "seed"
	wgDevice(l, relay.NS, dev, kernel)
	kf := filepath.Join(l.Dir, "seed.key")
	os.WriteFile(kf, []byte(relay.Key.String()), 0o600)
	relay.NS.MustRun("wg", "set", dev, "private-key", kf, "listen-port", fmt.Sprint(lab.VPNPort), "peer", relay.HomeKey.PublicKey().String(),
		"allowed-ips", lab.VPNClient4.String())
	relay.NS.MustRun("ip", "addr", "add", lab.VPNTunnel4.String(), "dev", dev)
	relay.NS.MustRun("ip", "link", "set", dev, "mtu", "1420", "up")
	relay.NS.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
	var nft strings.Builder
	fmt.Fprintf(&nft, "table inet wormhole {\n chain prerouting { type nat hook prerouting priority dstnat; }\n chain postrouting { type nat hook postrouting priority srcnat; }\n chain forward { type filter hook forward priority filter; }\n}\n")
	for _, p := range append(seqPorts(10000, 11000), 5201) {
		for _, proto := range []string{"tcp", "udp"} {
			fmt.Fprintf(&nft, "add rule inet wormhole prerouting iif \"eth0\" %s dport %d dnat ip to %s:%d\n", proto, p, lab.VPNClient4.Addr(), p)
		}
	}
	// Seed 000's SNAT to its tunnel address pool, here of one.
	fmt.Fprintf(&nft, "add rule inet wormhole postrouting oif %q ip saddr != %s snat ip to %s\n", dev, lab.VPNTunnel4.Addr(), lab.VPNTunnel4.Addr())
	fmt.Fprintf(&nft, "add rule inet wormhole forward iif \"eth0\" oif %q ip protocol tcp tcp flags syn tcp option maxseg size set 1380\n", dev)
	fmt.Fprintf(&nft, "add rule inet wormhole forward iif %q oif \"eth0\" ip protocol tcp tcp flags syn tcp option maxseg size set 1380\n", dev)
	fmt.Fprintf(&nft, "add rule inet wormhole forward iif \"eth0\" oif %q accept\nadd rule inet wormhole forward iif %q oif \"eth0\" accept\n", dev, dev)
	cmd := relay.NS.Cmd("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(nft.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		l.T.Fatalf("nft: %v: %s", err, out)
	}
}

func seqPorts(from, to int) []int {
	var out []int
	for p := from; p < to; p++ {
		out = append(out, p)
	}
	return out
}
