package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// TestStaticWAN: a line with static addressing on both families (a
// business line, or an ISP that hands them out on paper): the WAN's
// addresses and gateways from the config, and a routed /56 from which the
// LAN takes pd_subnet 1. The LAN reaches the ISP on IPv4 (NAT to the
// static address) and on IPv6 with its own global addresses.
func TestStaticWAN(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "curl", "rdisc6")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	c := lan.AddClient()
	c.SetStatic(50)
	wan4 := netip.MustParsePrefix("203.0.113.10/24")
	wan6 := netip.MustParsePrefix("2001:db8:100::2/64")
	routed := netip.MustParsePrefix("2001:db8:f100::/56")
	cfg := r.Config(lab.ConfigOptions{})
	cfg = strings.Replace(cfg, "ipv6 = \"off\"\n", fmt.Sprintf(`ipv4 = "static"
address = %q
gateway = %q
ipv6 = "static"
address6 = %q
gateway6 = %q
prefix6 = %q
`, wan4, lab.ISPDown4.Addr(), wan6, lab.ISPDown6.Addr(), routed), 1)
	cfg = strings.Replace(cfg, fmt.Sprintf("addresses = [%q, %q]\n", lan.Router4(), lan.Router6()),
		fmt.Sprintf("addresses = [%q, %q]\npd_subnet = 1\n", lan.Router4(), lan.Router6()), 1)
	cfg = strings.Replace(cfg, "\n[dns]\n", "[lan.ra]\nautonomous = true\n\n[dns]\n", 1)
	if !strings.Contains(cfg, `prefix6 = "2001:db8:f100::/56"`) || !strings.Contains(cfg, "pd_subnet = 1") {
		t.Fatalf("the config was not edited as meant:\n%s", cfg)
	}
	// The ISP routes the customer's prefix to the customer's address.
	isp.NS.MustRun("ip", "-6", "route", "replace", routed.String(), "via", wan6.Addr().String(), "dev", "dn")
	rd := r.StartRouterd(cfg)

	subnet := netip.MustParsePrefix("2001:db8:f100:1::/64")
	l.Eventually(30*time.Second, "the routed prefix's subnet on the LAN", func() error {
		st, err := getStatus(rd)
		if err != nil {
			return err
		}
		if st.WAN == nil || st.WAN.PD == nil || st.WAN.PD.Current == nil || len(st.WAN.PD.Current.Subnets) != 1 {
			return fmt.Errorf("WAN = %+v", st.WAN)
		}
		if got := st.WAN.PD.Current.Subnets[0].Prefix; got != subnet.String() {
			return fmt.Errorf("LAN subnet %s, want %s", got, subnet)
		}
		return nil
	})
	if text, _ := rd.Ctl("status"); !strings.Contains(text, wan6.String()) {
		t.Errorf("routerctl status does not show the static IPv6 address %s:\n%s", wan6, text)
	}

	var global netip.Addr
	l.Eventually(30*time.Second, "a SLAAC address in "+subnet.String(), func() error {
		out, err := c.NS.Run("ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(out) {
			if p, err := netip.ParsePrefix(f); err == nil && subnet.Contains(p.Addr()) {
				global = p.Addr()
				return nil
			}
		}
		return fmt.Errorf("none yet:\n%s", out)
	})
	for _, tc := range []struct {
		to   netip.Addr
		want string
	}{{lab.Echo4, wan4.Addr().String()}, {lab.Echo6, global.String()}} {
		var got string
		l.Eventually(20*time.Second, "the echo at "+tc.to.String(), func() (err error) {
			got, err = c.Echo(tc.to, 80)
			return err
		})
		if got != tc.want {
			t.Errorf("the echo at %s saw %s, want %s", tc.to, got, tc.want)
		}
	}
}
