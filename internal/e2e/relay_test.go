package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/status"
)

// The internet host that uses published services: an address on the ISP
// that nothing else in these tests talks to or from.
var (
	inetHost4 = lab.EchoAlt4[0]
	inetHost6 = lab.EchoAlt6[0]
)

const relayForwards = `
[[relay.forward]]
name = "web"
proto = "tcp"
ports = "8443"
to = "10.64.0.2"

[[relay.forward]]
name = "web6"
proto = "tcp"
ports = "8443"
to = "fd55:aaaa::2"

[[relay.forward]]
name = "alt"
proto = "tcp"
ports = "2222"
to = "10.64.0.2"
to_port = 8443

[[relay.forward]]
name = "game"
proto = "udp"
ports = "7000-7010"
to = "10.64.0.2"

[[relay.forward]]
name = "game6"
proto = "udp"
ports = "7000-7010"
to = "fd55:aaaa::2"
`

// udpEcho answers each datagram with the source address it came from, on
// a socket the test keeps (to send from it later).
func udpEcho(t *testing.T, l *lab.Lab, ns *lab.NS, port int) *net.UDPConn {
	t.Helper()
	var pc net.PacketConn
	if err := netns.Do(ns.Name, func() (err error) {
		pc, err = net.ListenPacket("udp", fmt.Sprintf("[::]:%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	conn := pc.(*net.UDPConn)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if string(buf[:n]) == "quiet" {
				continue
			}
			conn.WriteToUDPAddrPort([]byte(from.Addr().Unmap().String()), from)
		}
	}()
	l.OnCleanup(func() { conn.Close() })
	return conn
}

// udpAsk sends one datagram from src (in namespace ns) to dst and returns
// the answer.
func udpAsk(ns *lab.NS, src netip.Addr, dst netip.AddrPort) (string, error) {
	conn, err := udpFrom(ns, src)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return askOn(conn, dst)
}

// askOn sends one datagram on conn to dst and returns the answer.
func askOn(conn *net.UDPConn, dst netip.AddrPort) (string, error) {
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.WriteToUDPAddrPort([]byte("hello"), dst); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	return string(buf[:n]), err
}

// udpFrom opens a UDP socket on src, any port, in namespace ns.
func udpFrom(ns *lab.NS, src netip.Addr) (conn *net.UDPConn, err error) {
	err = netns.Do(ns.Name, func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		return err
	})
	return conn, err
}

// TestRelay is seeds 002 and 000 end to end: routerd as the relay on a VPS,
// routerd at home publishing LAN services through it. The internet host
// is on the ISP; the published server is a LAN host whose own policy is
// the WAN. Both ends' tunnels are userspace WireGuard.
func TestRelay(t *testing.T) { testRelay(t, false) }

// TestKernelRelay is TestRelay with kernel WireGuard at both ends (the
// home's by implementation = "kernel", the relay's by auto) and flow
// offload: the published service and the relay's egress forwarded by the
// flowtables of the relay and of the home's namespaces.
func TestKernelRelay(t *testing.T) {
	if lab.RequireKernel(t, "wireguard", "nf_flow_table", "nf_flow_table_inet", "nft_flow_offload") {
		return
	}
	testRelay(t, true)
}

func testRelay(t *testing.T, kernel bool) {
	lab.Require(t, "dnsmasq", "nsenter", "curl", "nft", "ip")
	impl := "userspace"
	if kernel {
		impl = "kernel"
	}
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{SLAAC: true})
	relay := l.NewRelay(isp)
	relayCfg := relay.Config("max_connections = 64", relayForwards)
	relayRD := relay.StartRouterd(relayCfg)

	r := l.NewRouter(isp)
	lan := r.AddLAN()
	server := lan.AddClient()
	s4, s6 := server.SetStatic(10)
	client := lan.AddClient()
	client.SetStatic(20)
	lab.ServeEcho(l, server.NS, 80)
	game := udpEcho(t, l, server.NS, 7005)
	extra := fmt.Sprintf(`
[[publish]]
name = "web"
proto = "tcp"
port = 8443
to = "%s:80"
to6 = "[%s]:80"

[[publish]]
name = "game"
proto = "udp"
port = 7005
to = "%s:7005"
to6 = "[%s]:7005"

[[routing.policy]]
name = "server-direct"
sources = ["%s", "%s"]
via = "wan"
`, s4, s6, s4, s6, s4, s6)
	cfg := r.Config(lab.ConfigOptions{VPN: relay.Provider(), VPNImpl: impl, Default: "vpn", WANIPv6: "slaac", Extra: extra})
	rd := r.StartRouterd(cfg)
	st := waitWANLease(t, l, rd, nil)
	wan := netip.MustParsePrefix(st.WAN.DHCP.Address).Addr()
	(&appliance{l: l, rd: rd}).waitVPN(t)

	curl := func(src netip.Addr, url string) (string, error) {
		out, err := isp.NS.Run("curl", "-sS", "--max-time", "5", "--interface", src.String(), url)
		return strings.TrimSpace(out), err
	}
	t.Run("published with the client's address", func(t *testing.T) {
		for _, tc := range []struct {
			src netip.Addr
			url string
		}{
			{inetHost4, fmt.Sprintf("http://%s:8443/", lab.RelayPublic4.Addr())},
			{inetHost6, fmt.Sprintf("http://[%s]:8443/", lab.RelayPublic6.Addr())},
			{inetHost4, fmt.Sprintf("http://%s:2222/", lab.RelayPublic4.Addr())}, // to_port
		} {
			var got string
			l.Eventually(20*time.Second, tc.url, func() (err error) {
				got, err = curl(tc.src, tc.url)
				return err
			})
			if got != tc.src.String() {
				t.Errorf("%s from %s: the LAN server saw %q, want the internet host's own address", tc.url, tc.src, got)
			}
		}
		for _, tc := range []struct {
			src netip.Addr
			dst netip.AddrPort
		}{
			{inetHost4, netip.AddrPortFrom(lab.RelayPublic4.Addr(), 7005)},
			{inetHost6, netip.AddrPortFrom(lab.RelayPublic6.Addr(), 7005)},
		} {
			got, err := udpAsk(isp.NS, tc.src, tc.dst)
			if err != nil || got != tc.src.String() {
				t.Errorf("udp %s from %s: %q, %v; want the internet host's own address", tc.dst, tc.src, got, err)
			}
		}
	})

	t.Run("egress through the relay", func(t *testing.T) {
		a := &appliance{l: l, rd: rd}
		if got := a.echo(t, client, lab.Echo4, 80); got != lab.RelayPublic4.Addr().String() {
			t.Errorf("the vpn-path client is seen as %s, want the relay's %s", got, lab.RelayPublic4.Addr())
		}
		if got := a.echo(t, server, lab.Echo4, 80); got != wan.String() {
			t.Errorf("the wan-path server is seen as %s, want the WAN's %s", got, wan)
		}
	})

	t.Run("a LAN client uses the public address", func(t *testing.T) {
		// Through the tunnel and back (the relay's NAT loopback): the
		// server sees the relay's tunnel address.
		got, err := client.Echo(lab.RelayPublic4.Addr(), 8443)
		if err != nil || got != lab.VPNTunnel4.Addr().String() {
			t.Errorf("client → relay:8443 = %q, %v; want an answer seen from %s", got, err, lab.VPNTunnel4.Addr())
		}
		// By the WAN (the server's own policy): the relay sees the home's
		// WAN address, and so does the server.
		got, err = server.Echo(lab.RelayPublic4.Addr(), 8443)
		if err != nil || got != wan.String() {
			t.Errorf("server → relay:8443 = %q, %v; want %s", got, err, wan)
		}
	})

	t.Run("relay status", func(t *testing.T) {
		st := mustStatus(t, relayRD)
		rs := st.Relay
		if rs == nil || len(rs.Peers) != 1 || rs.Peers[0].LastHandshake.IsZero() {
			t.Fatalf("relay status = %+v, want the home peer with a handshake", rs)
		}
		byName := map[string]status.RelayForward{}
		for _, f := range rs.Forwards {
			byName[f.Name] = f
		}
		for _, name := range []string{"web", "web6", "alt", "game", "game6"} {
			if byName[name].Packets == 0 || byName[name].Peer != "home" {
				t.Errorf("forward %s = %+v, want packets counted and peer home", name, byName[name])
			}
		}
		if rs.NAT != "masquerade" || rs.MSS4 != 1380 || rs.MSS6 != 1360 {
			t.Errorf("nat %q, mss %d/%d", rs.NAT, rs.MSS4, rs.MSS6)
		}
		text, err := relayRD.Ctl("status")
		if err != nil || !regexp.MustCompile(`(?m)^web: tcp 8443 → 10\.64\.0\.2\s+home\s+[1-9]`).MatchString(text) {
			t.Errorf("routerctl status on the relay:\n%s", text)
		}
	})

	t.Run("conntrack fill", func(t *testing.T) {
		// 60 flows from distinct ports: with max_connections 64 the table
		// is past 80%, and status says so.
		for i := 0; i < 60; i++ {
			if _, err := udpAsk(isp.NS, inetHost4, netip.AddrPortFrom(lab.RelayPublic4.Addr(), 7005)); err != nil {
				t.Fatalf("flow %d: %v", i, err)
			}
		}
		ct := mustStatus(t, relayRD).Relay.Conntrack
		if ct.Count < 60 || ct.Capacity != 64 || ct.Fill < 0.8 {
			t.Errorf("conntrack = %+v, want at least 60 of 64", ct)
		}
		text, _ := relayRD.Ctl("status")
		if !strings.Contains(text, "WARNING") || !strings.Contains(text, "conntrack table") {
			t.Errorf("no conntrack warning in status:\n%s", text)
		}
		metrics := relay.NS.MustRun("curl", "-sS", "http://127.0.0.1:9100/metrics")
		fill := regexp.MustCompile(`(?m)^routerd_relay_conntrack_fill_ratio (\S+)$`).FindStringSubmatch(metrics)
		if fill == nil || parseFloat(fill[1]) < 0.8 {
			t.Errorf("metrics: conntrack fill %v, want ≥ 0.8", fill)
		}
		if !regexp.MustCompile(`(?m)^routerd_relay_forward_packets_total\{forward="udp 7000-7010 → 10\.64\.0\.2",peer="home"\} [1-9]`).MatchString(metrics) {
			t.Errorf("metrics lack the game forward's packets:\n%s", grepLines(metrics, "relay_"))
		}
	})

	t.Run("snat pool", func(t *testing.T) {
		relay.WriteConfig(strings.Replace(relayCfg, "max_connections = 64",
			fmt.Sprintf("max_connections = 64\nsnat_pool = [%q, %q]", lab.RelayPool4[0], lab.RelayPool4[1]), 1))
		if _, err := relayRD.Ctl("reload"); err != nil {
			t.Fatal(err)
		}
		a := &appliance{l: l, rd: rd}
		first := a.echo(t, client, lab.Echo4, 80)
		if !slices.Contains(lab.RelayPool4, netip.MustParseAddr(first)) {
			t.Fatalf("with snat_pool the client is seen as %s, want one of %v", first, lab.RelayPool4)
		}
		for i := 0; i < 3; i++ {
			if got := a.echo(t, client, lab.Echo4, 80); got != first {
				t.Errorf("seen as %s, then %s: the pool address is not stable per source", first, got)
			}
		}
	})

	if kernel {
		relayOffload(t, l, isp, relay, relayRD, r, rd, client)
	}

	t.Run("tunnel down", func(t *testing.T) {
		// A published flow, then the relay goes away: the server's further
		// packets on that flow must not leave by the WAN, though its own
		// policy is the WAN.
		conn, err := udpFrom(isp.NS, inetHost4)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.WriteToUDPAddrPort([]byte("hello"), netip.AddrPortFrom(lab.RelayPublic4.Addr(), 7005))
		buf := make([]byte, 100)
		if _, err := conn.Read(buf); err != nil {
			t.Fatalf("the published flow did not answer: %v", err)
		}
		peer := netip.MustParseAddrPort(conn.LocalAddr().String())
		leak := isp.Count(netip.PrefixFrom(wan, 32), netip.PrefixFrom(inetHost4, 32))
		if kernel {
			// Kernel WireGuard outlives routerd's process (a restart
			// must not flap it): the tunnel goes down with its interface.
			relay.NS.MustRun("ip", "link", "del", "dev", "wg0")
		} else {
			relayRD.Proc.Stop()
		}
		txBefore := linkTX(t, r.NS, st.Netns, "wg0")
		for i := 0; i < 5; i++ {
			if _, err := game.WriteToUDPAddrPort([]byte("after"), peer); err != nil {
				t.Fatal(err)
			}
		}
		l.Eventually(5*time.Second, "the server's packets into the tunnel", func() error {
			if n := linkTX(t, r.NS, st.Netns, "wg0"); n < txBefore+5 {
				return fmt.Errorf("wg0 sent %d packets, want %d more than %d", n, 5, txBefore)
			}
			return nil
		})
		if n := leak.Packets(); n != 0 {
			t.Errorf("%d packets of the published flow left by the WAN with the tunnel down", n)
		}
		if _, err := curl(inetHost4, fmt.Sprintf("http://%s:8443/", lab.RelayPublic4.Addr())); err == nil {
			t.Error("the published service answered with the relay down")
		}
	})
}

// linkTX is a link's transmitted packets, in the router's vpn namespace.
func linkTX(t *testing.T, ns *lab.NS, nsst *status.Netns, link string) int {
	t.Helper()
	vpnNS := ""
	for _, n := range nsst.Namespaces {
		if n.Role == "vpn" {
			vpnNS = n.Name
		}
	}
	out, err := ns.Run("ip", "-n", vpnNS, "-s", "-j", "link", "show", "dev", link)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var links []struct {
		Stats struct {
			TX struct{ Packets int } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s -j link: %v: %s", err, out)
	}
	return links[0].Stats.TX.Packets
}

func parseFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}
