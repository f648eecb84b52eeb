package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// TestForgedScans: anyone on the internet can send a port scan in someone
// else's name. Scans forged from the DNS upstream, the VPN endpoint and the
// NTP server (known by name: learnt as the router talks to it) ban none of
// them, and DNS, the tunnel and time keep working. A scan forged from a
// server the household uses does ban it, but only its new connections are
// dropped: the household's own connections to it still get their replies.
// Stray ACKs and UDP that looks like late replies never count towards a ban.
func TestForgedScans(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "wireguard-go", "wg", "curl", "dig", "hping3", "chronyd", "conntrack")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	isp.ServeNTP()
	vp := l.NewVPNProvider(isp)
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	direct, tunnelled := lan.AddClient(), lan.AddClient()
	direct.SetStatic(50)
	tunnelled.SetStatic(51)
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{VPN: vp, Default: "wan", Extra: fmt.Sprintf(`[admin]
listen = [%q]
ban_time = "10m"

[time]
servers = [%q]
set_clock = false

[[routing.policy]]
name = "tunnelled"
sources = ["%s"]
via = "vpn"
`, lan.Name, lab.NTPName, tunnelled.MAC)}))
	st := waitWANLease(t, l, rd, nil)
	wan := st.WAN.DHCP.Address
	wanAddr := wan[:strings.IndexByte(wan, '/')]
	rd.WaitTunnel(60 * time.Second)
	l.Eventually(60*time.Second, "time synchronised with the ISP's server", func() error {
		st, err := getStatus(rd)
		if err != nil {
			return err
		}
		if st.Time == nil || !st.Time.Synced {
			return fmt.Errorf("time = %+v", st.Time)
		}
		return nil
	})
	gw := lan.Router4().Addr()
	n := 0
	resolves := func(c *lab.Client) error {
		n++
		out, err := c.Dig(gw, fmt.Sprintf("fresh%d.example", n))
		if err != nil || !strings.Contains(out, "status: NXDOMAIN") {
			return fmt.Errorf("dig a fresh name: %v\n%s", err, out)
		}
		return nil
	}
	vpnSeen := lab.VPNPublic4.Addr().String() // the provider masquerades
	paths := func() error {
		if got, err := direct.Echo(lab.Echo4, 80); err != nil || got != wanAddr {
			return fmt.Errorf("the direct client: %q %v, want %s", got, err, wanAddr)
		}
		if got, err := tunnelled.Echo(lab.Echo4, 80); err != nil || got != vpnSeen {
			return fmt.Errorf("the tunnelled client: %q %v, want %s", got, err, vpnSeen)
		}
		return nil
	}
	for _, c := range []*lab.Client{direct, tunnelled} {
		if err := resolves(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := paths(); err != nil {
		t.Fatal(err)
	}

	// 40 SYNs to distinct closed ports, and 40 UDP datagrams, in the name
	// of src: twice what bans a scanner.
	scan := func(src netip.Addr, extra ...string) {
		t.Helper()
		for _, proto := range [][]string{{"-S"}, {"-2"}} {
			args := append([]string{"hping3", "-q", "-a", src.String(), "-p", "++1000", "-c", "40", "-i", "u10000"}, proto...)
			args = append(append(args, extra...), wanAddr)
			isp.NS.Run(args...) // hping3 exits 1 when nothing answers
		}
	}
	banned := func() string {
		out, err := rd.Ctl("ban", "list")
		if err != nil {
			t.Fatalf("ban list: %v\n%s", err, out)
		}
		return out
	}
	needed := map[string]netip.Addr{"the DNS upstream": lab.ISPDNS4, "the VPN endpoint": lab.VPNPublic4.Addr(), "the NTP server": lab.NTP4}
	for _, a := range needed {
		scan(a)
	}
	// What a scan from the echo server's address bans is the control: the
	// rules do ban what is not needed.
	scan(lab.Echo4)
	list := banned()
	for what, a := range needed {
		if strings.Contains(list, a.String()+" ") {
			t.Errorf("a scan forged from %s (%s) banned it:\n%s", what, a, list)
		}
	}
	if !strings.Contains(list, lab.Echo4.String()+" ") {
		t.Fatalf("a scan from %s did not ban it:\n%s", lab.Echo4, list)
	}

	// Conntrack forgets the router's connections (a reboot of the ISP's
	// side, a long idle): what the upstream, endpoint and NTP server send
	// next is new to it, and must still pass.
	l.ExistingNS(l.Prefix+"-wan").MustRun("conntrack", "-F")
	l.Eventually(30*time.Second, "DNS, both paths and the tunnel after the forged scans", func() error {
		for _, c := range []*lab.Client{direct, tunnelled} {
			if err := resolves(c); err != nil {
				return err
			}
		}
		return paths()
	})
	if _, err := vp.LatestHandshake(); err != nil {
		t.Errorf("the provider's handshake: %v", err)
	}

	// The banned echo server still answers the household: its replies
	// belong to connections the household opened.
	if got, err := direct.Echo(lab.Echo4, 80); err != nil || got != wanAddr {
		t.Errorf("the direct client to the banned echo server: %q %v", got, err)
	}

	// Packets that look like replies whose connection conntrack forgot
	// (ACKs, UDP from a service port to an ephemeral one) never ban: sent
	// in the name of the second echo address, they leave it unbanned.
	alt := lab.EchoAlt4[0]
	for _, args := range [][]string{
		{"-A", "-p", "++1000"},
		{"-2", "-s", "53", "-k", "-p", "++40000"},
	} {
		isp.NS.Run(append([]string{"hping3", "-q", "-a", alt.String(), "-c", "40", "-i", "u10000"}, append(args, wanAddr)...)...)
	}
	if list := banned(); strings.Contains(list, alt.String()+" ") {
		t.Errorf("ACKs and reply-like UDP banned %s:\n%s", alt, list)
	}
}
