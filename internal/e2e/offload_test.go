package e2e

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// offloadExtra is TestKernelPolicyPaths's blocklist: forced through the
// VPN, served by the ISP, harmless until a subtest lists the echo.
var offloadExtra = fmt.Sprintf(`
[[blocklist]]
name = "force"
url = %q
via = "vpn"
`, lab.ListURL("force.txt"))

// offloadedIn says whether conntrack(8) lists the connection that args
// select (conntrack -L filters) as offloaded in namespace ns.
func offloadedIn(ns *lab.NS, args ...string) error {
	out, err := ns.Run(append([]string{"conntrack", "-L"}, args...)...)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "[OFFLOAD]") {
			return nil
		}
	}
	return fmt.Errorf("not offloaded in %s:\n%s", ns.Name, out)
}

// waitOffloaded waits until each namespace lists the connection as
// offloaded.
func waitOffloaded(t *testing.T, a *appliance, what string, args []string, nss ...*lab.NS) {
	t.Helper()
	a.l.Eventually(15*time.Second, what+" offloaded", func() error {
		for _, ns := range nss {
			if err := offloadedIn(ns, args...); err != nil {
				return err
			}
		}
		return nil
	})
}

// waitReplies waits until the stream has had n replies since t0 and
// returns them.
func waitReplies(t *testing.T, a *appliance, s *lab.Stream, since time.Time, n int, timeout time.Duration) []lab.Reply {
	t.Helper()
	var rs []lab.Reply
	a.l.Eventually(timeout, fmt.Sprintf("%d replies", n), func() error {
		if rs = s.Since(since); len(rs) < n {
			return fmt.Errorf("%d replies", len(rs))
		}
		return nil
	})
	return rs
}

// bySource counts replies by the source the echo saw: "203.0.113.157 ×12".
func bySource(rs []lab.Reply) string {
	n := map[string]int{}
	var order []string
	for _, r := range rs {
		if n[r.Source] == 0 {
			order = append(order, r.Source)
		}
		n[r.Source]++
	}
	var parts []string
	for _, s := range order {
		parts = append(parts, fmt.Sprintf("%s ×%d", s, n[s]))
	}
	return strings.Join(parts, ", ")
}

func offloadSubtests(t *testing.T, a *appliance, lists *lab.ListServer, c1, c2 *lab.Client) {
	mainNS := a.r.NS
	wanNS := a.l.ExistingNS(a.l.Prefix + "-wan")
	vpnNS := a.l.ExistingNS(a.l.Prefix + "-vpn")
	vpn4 := lab.VPNPublic4.Addr().String()
	echoUDP := func(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, uint16(lab.EchoUDP)) }

	t.Run("WireGuard socket in wan, interface in vpn", func(t *testing.T) {
		if out := vpnNS.MustRun("ip", "-d", "link", "show", "wg0"); !strings.Contains(out, "wireguard") {
			t.Errorf("wg0 in the vpn namespace is not kernel WireGuard:\n%s", out)
		}
		port := strings.TrimSpace(vpnNS.MustRun("wg", "show", "wg0", "listen-port"))
		for _, tc := range []struct {
			ns   *lab.NS
			want bool
		}{{wanNS, true}, {vpnNS, false}, {mainNS, false}} {
			out := tc.ns.MustRun("ss", "-Hlun", "sport = :"+port)
			if got := strings.TrimSpace(out) != ""; got != tc.want {
				t.Errorf("UDP socket on the tunnel's port %s in %s: %v, want %v\n%s", port, tc.ns.Name, got, tc.want, out)
			}
		}
	})

	t.Run("flows offloaded on every path", func(t *testing.T) {
		// c1 goes by the WAN (tv-direct), c2 by the VPN (the default).
		s1 := a.l.StartStream(c1.NS, echoUDP(lab.Echo4), 50*time.Millisecond)
		s2 := a.l.StartStream(c2.NS, echoUDP(lab.Echo4), 50*time.Millisecond)
		defer s1.Stop()
		defer s2.Stop()
		start := time.Now()
		if r := waitReplies(t, a, s1, start, 3, 20*time.Second); r[len(r)-1].Source != a.wan.String() {
			t.Errorf("c1's stream seen as %s, want the WAN's %s", r[len(r)-1].Source, a.wan)
		}
		if r := waitReplies(t, a, s2, start, 3, 20*time.Second); r[len(r)-1].Source != vpn4 {
			t.Errorf("c2's stream seen as %s, want the VPN's %s", r[len(r)-1].Source, vpn4)
		}
		waitOffloaded(t, a, "the WAN path", []string{"-p", "udp", "--sport", fmt.Sprint(s1.LocalPort())}, mainNS, wanNS)
		waitOffloaded(t, a, "the VPN path", []string{"-p", "udp", "--sport", fmt.Sprint(s2.LocalPort())}, mainNS, vpnNS)
		// TCP: a port forward from the internet to c1, and the same
		// from c2 through the router's public address (NAT loopback).
		bytes := fmt.Sprintf("http://%s:8080/bytes?n=%d", a.wan, 1<<30)
		fwd := a.isp.NS.Start("forward-transfer", "curl", "-sS", "--limit-rate", "2M", "-o", "/dev/null", bytes)
		defer fwd.Stop()
		loop := c2.NS.Start("loopback-transfer", "curl", "-sS", "--limit-rate", "2M", "-o", "/dev/null", bytes)
		defer loop.Stop()
		waitOffloaded(t, a, "the port forward", []string{"-p", "tcp", "--dport", "8080", "-s", lab.ISPDown4.Addr().String()}, wanNS, mainNS)
		waitOffloaded(t, a, "NAT loopback", []string{"-p", "tcp", "--dport", "8080", "-s", "192.168.11.60"}, wanNS, mainNS)
		st := mustStatus(t, a.rd)
		ct := st.Firewall.Conntrack
		if !st.Firewall.Offload.Enabled || ct == nil || ct.Offloaded["main"] < 3 || ct.Offloaded["wan"] < 3 || ct.Offloaded["vpn"] < 1 {
			t.Errorf("status: offload %+v, conntrack %+v; want the flows above counted", st.Firewall.Offload, ct)
		}
		if devs := st.Firewall.Offload.Devices["vpn"]; !strings.Contains(strings.Join(devs, " "), "wg0") {
			t.Errorf("the vpn namespace's flowtable spans %v, want the tunnel too", devs)
		}
		if text, _ := a.rd.Ctl("status"); !regexp.MustCompile(`(?m)^flow offload\s+[1-9]\d* connections \(main `).MatchString(text) {
			t.Errorf("routerctl status does not show flow offload:\n%s", text)
		}
		// The counters that count connections still count them.
		if m := counters(st, "main"); m["policy_tv-direct"] == 0 || m["default_vpn"] == 0 || m["port_forward"] == 0 {
			t.Errorf("main counters %v", m)
		}
	})

	t.Run("a blocklist refresh moves an offloaded flow", func(t *testing.T) {
		dst := lab.EchoAlt4[0]
		s := a.l.StartStream(c1.NS, echoUDP(dst), 50*time.Millisecond)
		defer s.Stop()
		if r := waitReplies(t, a, s, time.Now(), 3, 20*time.Second); r[len(r)-1].Source != a.wan.String() {
			t.Fatalf("c1's stream to %s seen as %s before the list has it, want the WAN's %s", dst, r[len(r)-1].Source, a.wan)
		}
		waitOffloaded(t, a, "the stream", []string{"-p", "udp", "--sport", fmt.Sprint(s.LocalPort())}, mainNS, wanNS)
		leak := a.isp.CountMatch(netip.PrefixFrom(a.wan, 32), netip.PrefixFrom(dst, 32), "udp dport 7")
		lists.Set("force.txt", "198.18.99.99\n"+dst.String()+"\n")
		refreshed := time.Now()
		if out, err := a.rd.Ctl("blocklist", "refresh", "force"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var moved time.Time
		a.l.Eventually(10*time.Second, "the stream through the VPN", func() error {
			for _, r := range s.Since(refreshed) {
				if r.Source == vpn4 {
					moved = r.At
					return nil
				}
			}
			return fmt.Errorf("replies since the refresh, by the source the echo saw: %s", bySource(s.Since(refreshed)))
		})
		t.Logf("the offloaded flow took the VPN %s after the refresh began", moved.Sub(refreshed).Round(time.Millisecond))
		// Nothing of it leaves by the WAN any more: while 20 more of its
		// datagrams go through the VPN, the ISP counts none from the WAN.
		n := leak.Packets()
		for _, r := range waitReplies(t, a, s, moved, 20, 10*time.Second) {
			if r.Source != vpn4 {
				t.Errorf("after the move a reply saw %s", r.Source)
			}
		}
		if m := leak.Packets(); m != n {
			t.Errorf("%d packets to %s left by the WAN after the flow moved to the VPN", m-n, dst)
		}
		waitOffloaded(t, a, "the moved stream", []string{"-p", "udp", "--sport", fmt.Sprint(s.LocalPort())}, mainNS, vpnNS)
	})

	t.Run("kill switch with offloaded flows", func(t *testing.T) {
		s := a.l.StartStream(c2.NS, echoUDP(lab.Echo4), 50*time.Millisecond)
		defer s.Stop()
		if r := waitReplies(t, a, s, time.Now(), 3, 20*time.Second); r[len(r)-1].Source != vpn4 {
			t.Fatalf("c2's stream seen as %s, want the VPN's %s", r[len(r)-1].Source, vpn4)
		}
		waitOffloaded(t, a, "the stream", []string{"-p", "udp", "--sport", fmt.Sprint(s.LocalPort())}, mainNS, vpnNS)
		leak := a.isp.CountMatch(netip.PrefixFrom(a.wan, 32), netip.PrefixFrom(lab.Echo4, 32), "udp dport 7")
		// The tunnel's interface goes from under routerd.
		vpnNS.MustRun("ip", "link", "del", "dev", "wg0")
		gone, sent := time.Now(), s.Sent()
		a.l.Eventually(10*time.Second, "40 more datagrams sent", func() error {
			if n := s.Sent() - sent; n < 40 {
				return fmt.Errorf("%d sent", n)
			}
			return nil
		})
		if rs := s.Since(gone.Add(200 * time.Millisecond)); len(rs) > 0 {
			t.Errorf("with the tunnel gone, the stream still had %d replies, seen as %s", len(rs), rs[0].Source)
		}
		if n := leak.Packets(); n != 0 {
			t.Errorf("%d packets to the echo left by the WAN with the tunnel gone", n)
		}
		// routerd makes the tunnel again when it starts; the vpn
		// namespace's flowtable takes it in, and the flow resumes.
		a.rd.Restart()
		a.waitVPN(t)
		back := time.Now()
		if r := waitReplies(t, a, s, back, 3, 30*time.Second); r[len(r)-1].Source != vpn4 {
			t.Errorf("after the restart c2's stream is seen as %s, want the VPN's %s", r[len(r)-1].Source, vpn4)
		}
		waitOffloaded(t, a, "the resumed stream", []string{"-p", "udp", "--sport", fmt.Sprint(s.LocalPort())}, mainNS, vpnNS)
		if n := leak.Packets(); n != 0 {
			t.Errorf("%d packets to the echo left by the WAN", n)
		}
	})
}

// relayOffload: with kernel WireGuard at both ends, a published service
// and the relay's egress are offloaded at the relay and at home.
func relayOffload(t *testing.T, l *lab.Lab, isp *lab.ISP, relay *lab.Relay, relayRD *lab.Routerd, r *lab.Router, rd *lab.Routerd, client *lab.Client) {
	t.Run("kernel WireGuard at both ends", func(t *testing.T) {
		if v := mustStatus(t, rd).VPN; v == nil || v.Implementation != "kernel" {
			t.Errorf("home tunnel %+v, want kernel", v)
		}
		if rs := mustStatus(t, relayRD).Relay; rs == nil || rs.Implementation != "kernel" {
			t.Errorf("relay %+v, want kernel (auto)", rs)
		}
	})
	t.Run("published service and relay egress offloaded", func(t *testing.T) {
		homeVPN := l.ExistingNS(l.Prefix + "-vpn")
		a := &appliance{l: l, rd: rd}
		// Published: a long download from the internet host, by the
		// relay's public port into the tunnel and on to the LAN server.
		dl := isp.NS.Start("published-transfer", "curl", "-sS", "--limit-rate", "2M", "-o", "/dev/null",
			"--interface", inetHost4.String(), fmt.Sprintf("http://%s:8443/bytes?n=%d", lab.RelayPublic4.Addr(), 1<<30))
		defer dl.Stop()
		args := []string{"-p", "tcp", "-s", inetHost4.String()}
		waitOffloaded(t, a, "the published download", args, relay.NS, homeVPN, r.NS)
		// Egress: the client's stream leaves by one of the relay's
		// addresses (its own, or the SNAT pool's after "snat pool").
		s := l.StartStream(client.NS, netip.AddrPortFrom(lab.Echo4, uint16(lab.EchoUDP)), 50*time.Millisecond)
		defer s.Stop()
		relayAddrs := append([]netip.Addr{lab.RelayPublic4.Addr()}, lab.RelayPool4...)
		rs := waitReplies(t, a, s, time.Now(), 3, 20*time.Second)
		if seen, err := netip.ParseAddr(rs[len(rs)-1].Source); err != nil || !slices.Contains(relayAddrs, seen) {
			t.Errorf("the client's stream is seen as %s, want one of the relay's %v", rs[len(rs)-1].Source, relayAddrs)
		}
		waitOffloaded(t, a, "the egress stream", []string{"-p", "udp", "-s", lab.VPNClient4.Addr().String(), "--dport", fmt.Sprint(lab.EchoUDP)}, relay.NS)
		ct := mustStatus(t, relayRD).Relay.Conntrack
		if ct.Offloaded["relay"] < 2 {
			t.Errorf("relay status counts %v offloaded, want the two flows above", ct.Offloaded)
		}
		if text, _ := relayRD.Ctl("status"); !regexp.MustCompile(`(?m)^flow offload\s+[1-9]\d* connections`).MatchString(text) {
			t.Errorf("the relay's status does not show offloaded connections:\n%s", text)
		}
	})
}
