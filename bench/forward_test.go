package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
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
	var res struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			Sum struct {
				Packets     float64 `json:"packets"`
				LostPackets float64 `json:"lost_packets"`
				Seconds     float64 `json:"seconds"`
			} `json:"sum"`
		} `json:"end"`
	}
	// The server takes one test at a time and is briefly away between
	// them: a refused or busy attempt is tried again.
	var out string
	err := lab.Poll(30*time.Second, func() error {
		out, _ = ns.Run(args...)
		res.Error, res.End.Sum.Seconds = "", 0
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			return fmt.Errorf("iperf3 output: %v: %s", err, out)
		}
		if res.Error != "" {
			return fmt.Errorf("iperf3: %s", res.Error)
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
	args := []string{"iperf3", "-s", "-p", fmt.Sprint(port)}
	if bind.IsValid() {
		args = append(args, "-B", bind.String())
	}
	return ns.Start("iperf3-server", args...)
}

// BenchmarkForwarding measures the data paths, each against what it
// replaces or stands on, in one run:
//
//   - home: a LAN client through routerd's three namespaces to the ISP, TCP
//     and 64-byte UDP, against plain forwarding by one namespace between
//     two others; and with a 500k-prefix force list loaded (only a
//     connection's first packet looks it up);
//   - vpn: a LAN client through routerd's tunnel, against wireguard-go run
//     standalone between two namespaces;
//   - relay: an internet host through routerd [relay] and routerd's
//     [[publish]] to a LAN host, against the same path with seed 000's
//     hand-written rules (a rule per port and protocol) on the relay; both
//     relays carry 1000 other forwards.
func BenchmarkForwarding(b *testing.B) {
	lab.Require(b, "iperf3", "nsenter", "nft", "wireguard-go", "wg", "dnsmasq")
	res := map[string]float64{}

	b.Run("plain", func(b *testing.B) {
		l := lab.New(b)
		cl, fw, sv := l.NewNS("cl"), l.NewNS("fw"), l.NewNS("sv")
		for _, x := range []struct {
			ns             *lab.NS
			link, peerLink string
			addr, peerAddr string
		}{{cl, "eth0", "c0", "10.9.1.2/24", "10.9.1.1/24"}, {sv, "eth0", "s0", "10.9.2.2/24", "10.9.2.1/24"}} {
			x.ns.MustRun("ip", "link", "add", x.link, "type", "veth", "peer", "name", x.peerLink, "netns", fw.Name)
			x.ns.MustRun("ip", "addr", "add", x.addr, "dev", x.link)
			x.ns.MustRun("ip", "link", "set", x.link, "up")
			fw.MustRun("ip", "addr", "add", x.peerAddr, "dev", x.peerLink)
			fw.MustRun("ip", "link", "set", x.peerLink, "up")
			x.ns.MustRun("ip", "route", "add", "default", "via", strings.Split(x.peerAddr, "/")[0])
		}
		fw.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
		iperfServer(sv, netip.Addr{}, 5201)
		dst := netip.MustParseAddr("10.9.2.2")
		res["plain_tcp_mbps"] = iperf3(b, cl, netip.Addr{}, dst, 5201, false)
		res["plain_udp64_pps"] = iperf3(b, cl, netip.Addr{}, dst, 5201, true)
	})

	b.Run("home", func(b *testing.B) {
		l := lab.New(b)
		isp := l.NewISP(lab.ISPOptions{})
		vp := l.NewVPNProvider(isp)
		r := l.NewRouter(isp)
		lan := r.AddLAN()
		c := lan.AddClient()
		c4, _ := c.SetStatic(50)
		v := lan.AddClient()
		v.SetStatic(60)
		list := filepath.Join(l.Dir, "force.txt")
		os.WriteFile(list, nil, 0o644)
		extra := fmt.Sprintf(`
[[routing.policy]]
name = "direct"
sources = ["%s"]
via = "wan"

[[blocklist]]
name = "force"
file = %q
format = "lines"
via = "vpn"
`, c4, list)
		rd := r.StartRouterd(r.Config(lab.ConfigOptions{VPN: vp, Default: "vpn", NoDHCP: true, Extra: extra}))
		iperfServer(isp.NS, lab.Echo4, 5201)
		res["home_tcp_mbps"] = iperf3(b, c.NS, netip.Addr{}, lab.Echo4, 5201, false)
		res["home_udp64_pps"] = iperf3(b, c.NS, netip.Addr{}, lab.Echo4, 5201, true)
		res["vpn_tcp_mbps"] = iperf3(b, v.NS, netip.Addr{}, lab.Echo4, 5201, false)

		rnd := rand.New(rand.NewPCG(500_000, 1))
		entries := make([]string, 500_000)
		for i := range entries {
			entries[i] = entry(rnd)
		}
		writeList(b, list, "", entries)
		if _, err := rd.Ctl("blocklist", "refresh", "force"); err != nil {
			b.Fatal(err)
		}
		res["home_force500k_udp64_pps"] = iperf3(b, c.NS, netip.Addr{}, lab.Echo4, 5201, true)
		res["home_force500k_tcp_mbps"] = iperf3(b, c.NS, netip.Addr{}, lab.Echo4, 5201, false)
	})

	b.Run("wireguard-go", func(b *testing.B) {
		l := lab.New(b)
		a, z := l.NewNS("wga"), l.NewNS("wgz")
		a.MustRun("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", z.Name)
		for i, n := range []*lab.NS{a, z} {
			n.MustRun("ip", "addr", "add", fmt.Sprintf("10.9.0.%d/24", i+1), "dev", "eth0")
			n.MustRun("ip", "link", "set", "eth0", "up")
			n.MustRun("ip", "link", "set", "lo", "up")
		}
		keys := [2]wgtypes.Key{}
		for i := range keys {
			keys[i], _ = wgtypes.GeneratePrivateKey()
		}
		for i, n := range []*lab.NS{a, z} {
			dev := fmt.Sprintf("%swg%d", l.Prefix, i)
			sock := filepath.Join("/var/run/wireguard", dev+".sock")
			n.Start("wireguard-go", "wireguard-go", "-f", dev)
			l.Eventually(10*time.Second, "wireguard-go socket", func() error { _, err := os.Stat(sock); return err })
			l.OnCleanup(func() { os.Remove(sock) })
			kf := filepath.Join(l.Dir, fmt.Sprintf("k%d", i))
			os.WriteFile(kf, []byte(keys[i].String()), 0o600)
			other := 1 - i
			n.MustRun("wg", "set", dev, "private-key", kf, "listen-port", "51820", "peer", keys[other].PublicKey().String(),
				"endpoint", fmt.Sprintf("10.9.0.%d:51820", other+1), "allowed-ips", fmt.Sprintf("10.8.0.%d/32", other+1))
			n.MustRun("ip", "addr", "add", fmt.Sprintf("10.8.0.%d/24", i+1), "dev", dev)
			n.MustRun("ip", "link", "set", dev, "mtu", "1420", "up")
		}
		iperfServer(z, netip.Addr{}, 5201)
		res["wggo_tcp_mbps"] = iperf3(b, a, netip.Addr{}, netip.MustParseAddr("10.8.0.2"), 5201, false)
	})

	b.Run("relay", func(b *testing.B) {
		l := lab.New(b)
		isp := l.NewISP(lab.ISPOptions{})
		relay := l.NewRelay(isp)
		var fwd strings.Builder
		for p := 10000; p < 11000; p++ {
			fmt.Fprintf(&fwd, "[[relay.forward]]\nproto = \"tcp+udp\"\nports = \"%d\"\nto = \"10.64.0.2\"\n\n", p)
		}
		fwd.WriteString("[[relay.forward]]\nproto = \"tcp+udp\"\nports = \"5201\"\nto = \"10.64.0.2\"\n")
		relayRD := relay.StartRouterd(relay.Config("", fwd.String()))
		r := l.NewRouter(isp)
		lan := r.AddLAN()
		s := lan.AddClient()
		s4, _ := s.SetStatic(10)
		extra := fmt.Sprintf("[[publish]]\nname = \"iperf\"\nproto = \"tcp+udp\"\nport = 5201\nto = \"%s:5201\"\n", s4)
		r.StartRouterd(r.Config(lab.ConfigOptions{VPN: relay.Provider(), Default: "vpn", NoDHCP: true, Extra: extra}))
		iperfServer(s.NS, netip.Addr{}, 5201)
		inet := lab.EchoAlt4[0]
		res["relay_tcp_mbps"] = iperf3(b, isp.NS, inet, lab.RelayPublic4.Addr(), 5201, false)
		res["relay_udp64_pps"] = iperf3(b, isp.NS, inet, lab.RelayPublic4.Addr(), 5201, true)

		// The same relay by hand, as seed 000 writes it: wireguard-go, and
		// one DNAT rule per port and protocol, the measured port last.
		relayRD.Proc.Stop()
		bin, _ := lab.Binaries(b)
		if out, err := relay.NS.NetCmd(bin, "--config", relayRD.ConfigPath, "--teardown").CombinedOutput(); err != nil {
			b.Fatalf("teardown: %v: %s", err, out)
		}
		dev := l.Prefix + "seed"
		sock := filepath.Join("/var/run/wireguard", dev+".sock")
		relay.NS.Start("seed-wireguard-go", "wireguard-go", "-f", dev)
		l.Eventually(10*time.Second, "wireguard-go socket", func() error { _, err := os.Stat(sock); return err })
		l.OnCleanup(func() { os.Remove(sock) })
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
			b.Fatalf("nft: %v: %s", err, out)
		}
		res["seed000_tcp_mbps"] = iperf3(b, isp.NS, inet, lab.RelayPublic4.Addr(), 5201, false)
		res["seed000_udp64_pps"] = iperf3(b, isp.NS, inet, lab.RelayPublic4.Addr(), 5201, true)
	})

	for k, v := range res {
		b.ReportMetric(v, k)
	}
	ratio := func(name, a, z string) {
		if res[z] > 0 {
			b.ReportMetric(res[a]/res[z], name)
			b.Logf("%-28s %10.0f vs %10.0f  = %.2f×", name, res[a], res[z], res[a]/res[z])
		}
	}
	ratio("home_tcp_vs_plain", "home_tcp_mbps", "plain_tcp_mbps")
	ratio("home_udp64_vs_plain", "home_udp64_pps", "plain_udp64_pps")
	ratio("force500k_udp64_vs_none", "home_force500k_udp64_pps", "home_udp64_pps")
	ratio("force500k_tcp_vs_none", "home_force500k_tcp_mbps", "home_tcp_mbps")
	ratio("vpn_tcp_vs_wireguard_go", "vpn_tcp_mbps", "wggo_tcp_mbps")
	ratio("relay_tcp_vs_seed000", "relay_tcp_mbps", "seed000_tcp_mbps")
	ratio("relay_udp64_vs_seed000", "relay_udp64_pps", "seed000_udp64_pps")
}

func seqPorts(from, to int) []int {
	var out []int
	for p := from; p < to; p++ {
		out = append(out, p)
	}
	return out
}
