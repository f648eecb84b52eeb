package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// TestPublishHostServices is seed 002's home end as a server: a service
// on the routerd host itself (to = "host:9090") and one in a container
// on a local bridge (to = "172.30.0.2:9191") are published through the
// relay; the internet host's own address is what they see, over IPv4 and
// IPv6, and not one reply leaves by the WAN (their replies are routed
// back by the connection's path, the tunnel).
func TestPublishHostServices(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "curl", "nft", "wireguard-go", "wg")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{SLAAC: true})
	relay := l.NewRelay(isp)
	relay.StartRouterd(relay.Config("", `
[[relay.forward]]
proto = "tcp"
ports = "9090-9191"
to = "10.64.0.2"

[[relay.forward]]
proto = "tcp"
ports = "9090"
to = "fd55:aaaa::2"
`))
	r := l.NewRouter(isp)
	r.AddLAN()
	// The host's own service, and a container behind a bridge of the host.
	lab.ServeEcho(l, r.NS, 9090)
	ctr := l.NewNS("ctr")
	r.NS.MustRun("ip", "link", "add", "ctr0", "type", "bridge")
	r.NS.MustRun("ip", "addr", "add", "172.30.0.1/24", "dev", "ctr0")
	r.NS.MustRun("ip", "link", "set", "ctr0", "up")
	r.NS.MustRun("ip", "link", "add", "ctrv", "type", "veth", "peer", "name", "eth0", "netns", ctr.Name)
	r.NS.MustRun("ip", "link", "set", "ctrv", "master", "ctr0", "up")
	ctr.MustRun("ip", "addr", "add", "172.30.0.2/24", "dev", "eth0")
	ctr.MustRun("ip", "link", "set", "eth0", "up")
	ctr.MustRun("ip", "route", "add", "default", "via", "172.30.0.1")
	lab.ServeEcho(l, ctr, 9191)

	cfg := r.Config(lab.ConfigOptions{VPN: relay.Provider(), VPNImpl: "userspace", Default: "vpn", WANIPv6: "slaac", Extra: `
[[publish]]
name = "hostsvc"
proto = "tcp"
port = 9090
to = "host:9090"

[[publish]]
name = "ctr"
proto = "tcp"
port = 9191
to = "172.30.0.2:9191"
`})
	rd := r.StartRouterd(cfg)
	st := waitWANLease(t, l, rd, nil)
	wan := netip.MustParsePrefix(st.WAN.DHCP.Address).Addr()
	(&appliance{l: l, rd: rd}).waitVPN(t)
	// Replies that would leave by the WAN: from the router's WAN address,
	// from the published ports.
	leaks := isp.CountMatch(netip.PrefixFrom(wan, 32), netip.Prefix{}, "tcp sport { 9090, 9191 }")

	for _, tc := range []struct {
		src netip.Addr
		url string
	}{
		{inetHost4, fmt.Sprintf("http://%s:9090/", lab.RelayPublic4.Addr())},
		{inetHost6, fmt.Sprintf("http://[%s]:9090/", lab.RelayPublic6.Addr())},
		{inetHost4, fmt.Sprintf("http://%s:9191/", lab.RelayPublic4.Addr())},
	} {
		var got string
		l.Eventually(20*time.Second, tc.url, func() error {
			out, err := isp.NS.Run("curl", "-sS", "--max-time", "5", "--interface", tc.src.String(), tc.url)
			got = strings.TrimSpace(out)
			return err
		})
		if got != tc.src.String() {
			t.Errorf("%s from %s: the service saw %q, want the internet host's own address", tc.url, tc.src, got)
		}
	}
	if n := leaks.Packets(); n != 0 {
		t.Errorf("%d replies of the published services left by the WAN", n)
	}
	st, err := getStatus(rd)
	if err != nil {
		t.Fatal(err)
	}
	if c := counters(st, "main"); c["publish_hostsvc"] == 0 || c["publish_ctr"] == 0 {
		t.Errorf("publish counters: %v", c)
	}
	// The container's routes (a throw in each path table) converge: a
	// restart changes nothing.
	rd.Restart()
	for c, n := range lastChanges(waitConverged(t, l, rd)) {
		if n != 0 {
			t.Errorf("after a restart, %s's apply made %d changes, want 0", c, n)
		}
	}
}
