package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// TestPrefixDelegation: the ISP delegates a /56 (kea); the LAN with
// pd_subnet = 1 gets prefix:1::/64. Its hosts get global addresses by SLAAC
// and by DHCPv6, reach the internet with them on the WAN path (no NAT66)
// and through the tunnel on the VPN path, and the router answers for its
// own global address. When the ISP renumbers, the LAN follows by itself:
// the new prefix is advertised, the old one deprecated, and connectivity
// returns.
func TestPrefixDelegation(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "kea-dhcp6", "wireguard-go", "wg", "curl", "rdisc6", "dhclient", "dig")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{PD: true, LeaseTime: 2 * time.Minute, T1: 10 * time.Second, T2: 20 * time.Second})
	vp := l.NewVPNProvider(isp)
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	direct, tunnelled, dhcp6 := lan.AddClient(), lan.AddClient(), lan.AddClient()
	cfg := r.Config(lab.ConfigOptions{VPN: vp, Default: "vpn", WANIPv6: "dhcp", Extra: fmt.Sprintf(`
[[routing.policy]]
name = "direct"
sources = [%q]
via = "wan"

[[firewall.pinhole]]
name = "direct-web"
to = %[1]q
ports = ["tcp/8080"]
`, direct.MAC)})
	lab.ServeEcho(l, direct.NS, 8080, 8081) // 8080 pinholed, 8081 not
	cfg = strings.Replace(cfg, fmt.Sprintf("addresses = [%q, %q]\n", lan.Router4(), lan.Router6()),
		fmt.Sprintf("addresses = [%q, %q]\npd_subnet = 1\n", lan.Router4(), lan.Router6()), 1)
	cfg = strings.Replace(cfg, "\n[dns]\n", "[lan.ra]\nmanaged = true\nother = true\nautonomous = true\n\n[dns]\n", 1)
	rd := r.StartRouterd(cfg)

	// The ISP routes each delegated prefix to the router, as a real one
	// does for its customers.
	routeToRouter := func(p netip.Prefix) {
		t.Helper()
		var wan6 string
		l.Eventually(30*time.Second, "the router's WAN IPv6 address", func() error {
			st, err := getStatus(rd)
			if err != nil {
				return err
			}
			if st.WAN == nil || st.WAN.DHCP6 == nil || st.WAN.DHCP6.Address == "" {
				return fmt.Errorf("WAN = %+v", st.WAN)
			}
			wan6 = st.WAN.DHCP6.Address
			return nil
		})
		isp.NS.MustRun("ip", "-6", "route", "replace", p.String(), "via", wan6, "dev", "dn")
	}
	waitSubnet := func(not netip.Prefix) (delegated, subnet netip.Prefix) {
		t.Helper()
		l.Eventually(90*time.Second, "a delegated prefix on the LAN", func() error {
			st, err := getStatus(rd)
			if err != nil {
				return err
			}
			pd := st.WAN.PD
			if pd == nil || pd.Current == nil || len(pd.Current.Subnets) != 1 {
				return fmt.Errorf("prefix delegation = %+v", pd)
			}
			delegated = netip.MustParsePrefix(pd.Current.Prefix)
			subnet = netip.MustParsePrefix(pd.Current.Subnets[0].Prefix)
			if delegated == not {
				return fmt.Errorf("still %s", delegated)
			}
			return nil
		})
		return delegated, subnet
	}
	delegated, subnet := waitSubnet(netip.Prefix{})
	if !lab.ISPDelegation.Contains(delegated.Addr()) || delegated.Bits() != 56 {
		t.Errorf("delegated %s, want a /56 of %s", delegated, lab.ISPDelegation)
	}
	if want, _ := delegatedSubnet(delegated, 1); subnet != want {
		t.Errorf("LAN subnet %s, want %s", subnet, want)
	}
	routeToRouter(delegated)

	// SLAAC: the clients form global addresses in the LAN's subnet.
	slaac := func(c *lab.Client, in netip.Prefix) netip.Addr {
		t.Helper()
		var got netip.Addr
		l.Eventually(30*time.Second, c.NS.Name+" has a SLAAC address in "+in.String(), func() error {
			out, err := c.NS.Run("ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global", "-deprecated")
			if err != nil {
				return err
			}
			for _, f := range strings.Fields(out) {
				if p, err := netip.ParsePrefix(f); err == nil && in.Contains(p.Addr()) {
					got = p.Addr()
					return nil
				}
			}
			return fmt.Errorf("none yet:\n%s", out)
		})
		return got
	}
	a1 := slaac(direct, subnet)
	slaac(tunnelled, subnet)
	t.Logf("delegated %s; the LAN has %s; the WAN-path client formed %s", delegated, subnet, a1)

	// The WAN path keeps the client's own global address; the VPN path
	// leaves through the tunnel.
	echo6 := func(c *lab.Client) string {
		t.Helper()
		var got string
		l.Eventually(20*time.Second, c.NS.Name+" reaches the echo over IPv6", func() (err error) {
			got, err = c.Echo(lab.Echo6, 80)
			return err
		})
		return got
	}
	if got := echo6(direct); got != a1.String() {
		t.Errorf("WAN-path client seen as %s, want its own global address %s", got, a1)
	}
	if got := echo6(tunnelled); got != lab.VPNPublic6.Addr().String() {
		t.Errorf("VPN-path client seen as %s, want the VPN's %s", got, lab.VPNPublic6.Addr())
	}
	pinhole := func(a netip.Addr) {
		t.Helper()
		url := func(port int) string { return fmt.Sprintf("http://[%s]:%d/", a, port) }
		var got string
		l.Eventually(30*time.Second, "the ISP reaches the pinholed port at "+a.String(), func() error {
			out, err := isp.NS.Run("curl", "-sS", "--max-time", "3", url(8080))
			got = strings.TrimSpace(out)
			return err
		})
		if from, err := netip.ParseAddr(got); err != nil || !lab.ISPDown6.Contains(from) {
			t.Errorf("the pinholed service saw %q, want the ISP host's own address (in %s)", got, lab.ISPDown6)
		}
		if out, err := isp.NS.Run("curl", "-sS", "--max-time", "3", url(8081)); err == nil {
			t.Errorf("the ISP reached port 8081, which no pinhole opens: %s", out)
		}
	}
	pinhole(a1)
	if c := counters(mustStatus(t, rd), "main"); c["pinhole_direct-web"] == 0 {
		t.Errorf("main counters %v: the pinhole counted nothing", c)
	}

	// DHCPv6 hands out an address in the subnet too (beside the ULA one).
	_, file := dhcp6.StartDhclient(true)
	if _, err := dhcp6.WaitLease(file, 40*time.Second); err != nil {
		t.Fatalf("dhclient -6: %v", err)
	}
	l.Eventually(10*time.Second, "a DHCPv6 lease in the delegated subnet", func() error {
		b, _ := os.ReadFile(strings.TrimSuffix(file, ".lease") + ".leases")
		for _, f := range strings.Fields(string(b)) {
			if a, err := netip.ParseAddr(strings.TrimSuffix(f, ";")); err == nil && subnet.Contains(a) {
				return nil
			}
		}
		return fmt.Errorf("dhclient's leases:\n%s", b)
	})

	// The router answers for its own global address.
	gw := subnet.Addr().Next()
	if got := digShort(t, direct, lan.Router6().Addr(), "gw.lan", "AAAA"); !strings.Contains(strings.Join(got, " "), gw.String()) {
		t.Errorf("gw.lan AAAA = %v, want it to include %s", got, gw)
	}
	if text, _ := rd.Ctl("status"); !strings.Contains(text, subnet.String()) {
		t.Errorf("routerctl status does not show the LAN's subnet %s:\n%s", subnet, text)
	}

	// A restart keeps the prefix: it is remembered and asked for again.
	if b, err := os.ReadFile(r.State + "/wan-dhcp6-prefix"); err != nil || strings.TrimSpace(string(b)) != delegated.String() {
		t.Errorf("remembered prefix %q, %v; want %s", b, err, delegated)
	}
	rd.Restart()
	if again, _ := waitSubnet(netip.Prefix{}); again != delegated {
		t.Errorf("after a restart the LAN has %s, want %s again", again, delegated)
	}

	// The ISP renumbers: a new pool, its leases forgotten.
	newPool := netip.MustParsePrefix("2001:db8:d000::/40")
	isp.RestartKea6(newPool)
	delegated2, subnet2 := waitSubnet(delegated)
	if !newPool.Contains(delegated2.Addr()) {
		t.Errorf("after renumbering: %s, want a prefix of %s", delegated2, newPool)
	}
	routeToRouter(delegated2)
	st := mustStatus(t, rd)
	if pd := st.WAN.PD; len(pd.Deprecated) != 1 || pd.Deprecated[0].Prefix != delegated.String() ||
		time.Until(pd.Deprecated[0].ValidUntil) > 2*time.Hour || time.Until(pd.Deprecated[0].PreferredUntil) > 0 {
		t.Errorf("the old prefix is not deprecated as it should be: %+v", pd.Deprecated)
	}
	// The LAN hears of both at once: the new prefix, and the old one with
	// a preferred lifetime of 0.
	var ra string
	l.Eventually(20*time.Second, "RA with the new prefix and the old one deprecated", func() (err error) {
		ra, err = direct.NS.Run("rdisc6", "-1", "-w", "1500", "eth0")
		if err != nil {
			return err
		}
		if !strings.Contains(ra, subnet2.String()) || !strings.Contains(ra, subnet.String()) {
			return fmt.Errorf("rdisc6:\n%s", ra)
		}
		return nil
	})
	if i := strings.Index(ra, subnet.String()); i < 0 || !strings.Contains(squeeze(ra[i:min(len(ra), i+300)]), "Pref. time : 0 (0x00000000) seconds") {
		t.Errorf("the old prefix is not advertised with preferred lifetime 0:\n%s", ra)
	}
	a2 := slaac(direct, subnet2)
	t.Logf("renumbered to %s; the LAN has %s; the client formed %s", delegated2, subnet2, a2)
	pinhole(a2) // the pinhole followed the renumbering
	l.Eventually(30*time.Second, "the WAN-path client back online with its new address", func() error {
		got, err := direct.Echo(lab.Echo6, 80)
		if err != nil {
			return err
		}
		if got != a2.String() {
			return fmt.Errorf("seen as %s, want %s", got, a2)
		}
		return nil
	})
}

// delegatedSubnet is the n-th /64 of a /56, the way the router computes it.
func delegatedSubnet(p netip.Prefix, n int) (netip.Prefix, bool) {
	b := p.Masked().Addr().As16()
	b[7] |= byte(n)
	return netip.PrefixFrom(netip.AddrFrom16(b), 64), p.Bits() == 56 && n < 256
}
