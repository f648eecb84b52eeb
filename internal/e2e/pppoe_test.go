package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/status"
)

// pppoeWAN is the [wan] of a PPPoE line on VLAN 7 (Deutsche Telekom's
// setup), with the password in a file beside the config.
func pppoeWAN(t *testing.T, r *lab.Router, user, password string, ipv6 bool) string {
	t.Helper()
	// In the state directory: it outlives the test's own temporary
	// directory, until the lab's teardown has read the config.
	file := filepath.Join(r.State, "pppoe.secret")
	if err := os.MkdirAll(r.State, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := r.Config(lab.ConfigOptions{WANIPv6: "off"})
	if ipv6 {
		// DHCPv6 over the session; the first LAN takes subnet 1 of the
		// delegated prefix and announces it.
		cfg = r.Config(lab.ConfigOptions{WANIPv6: "dhcp"})
		lan := r.LANs[0]
		cfg = strings.Replace(cfg, fmt.Sprintf("addresses = [%q, %q]\n", lan.Router4(), lan.Router6()),
			fmt.Sprintf("addresses = [%q, %q]\npd_subnet = 1\n", lan.Router4(), lan.Router6()), 1)
		cfg = strings.Replace(cfg, "\n[dns]\n", "[lan.ra]\nautonomous = true\n\n[dns]\n", 1)
	}
	cfg = strings.Replace(cfg, "[wan]\n", "[wan]\nvlan = 7\nipv4 = \"pppoe\"\n", 1)
	// Echoes every 2 s: a silent ISP is noticed in seconds, not the
	// default's half minute.
	return cfg + fmt.Sprintf("\n[wan.pppoe]\nusername = %q\npassword_file = %q\nlcp_echo = \"2s\"\n", user, file)
}

// waitPPPoE polls status until the session is in state and cond holds.
func waitPPPoE(t *testing.T, l *lab.Lab, rd *lab.Routerd, timeout time.Duration, what string, cond func(*status.PPPoE) error) *status.PPPoE {
	t.Helper()
	var p *status.PPPoE
	l.Eventually(timeout, what, func() error {
		st, err := getStatus(rd)
		if err != nil {
			return err
		}
		if st.WAN == nil || st.WAN.PPPoE == nil {
			return fmt.Errorf("no PPPoE in status: %+v", st.WAN)
		}
		p = st.WAN.PPPoE
		return cond(p)
	})
	return p
}

func pppoeUp(p *status.PPPoE) error {
	if p.State != "up" {
		return fmt.Errorf("PPPoE %+v", *p)
	}
	return nil
}

// TestPPPoE (full kernel: 802.1Q, PPPoE, PPP): routerd dials a PPPoE line
// on VLAN 7 with CHAP and with PAP, against Debian's pppoe-server and
// pppd; a LAN client reaches the ISP from the session's address; the ISP
// hangs up and routerd dials again; the password never shows in status;
// [sqm] with an "auto" download measures against the session's peer.
func TestPPPoE(t *testing.T) {
	if lab.RequireKernel(t, "8021q", "pppoe", "ppp_generic", "sch_cake", "ifb", "act_mirred", "cls_matchall") {
		return
	}
	lab.Require(t, "pppoe-server", "pppd", "pkill", "pgrep", "curl", "udhcpc")
	for _, auth := range []string{"chap", "pap"} {
		t.Run(auth, func(t *testing.T) {
			l := lab.New(t)
			isp := l.NewISP(lab.ISPOptions{})
			srv := isp.ServePPPoE(lab.PPPoEOptions{VLAN: 7, Auth: auth, User: "user@isp.example", Password: "s3cret-" + auth, ACName: "bras-" + auth,
				IPv6: auth == "chap"})
			r := l.NewRouter(isp)
			pc := r.AddLAN().AddClient()
			cfg := pppoeWAN(t, r, "user@isp.example", "s3cret-"+auth, auth == "chap")
			if auth == "pap" {
				// RFC 4638 asked for: routerd makes room for it on the
				// NIC and its VLAN (1508), and, as this AC does not
				// agree to it, runs the session at 1492.
				cfg += "mtu = 1500\n"
				// Bufferbloat control on a PPPoE line: the download
				// follows the line, measured against the session's peer.
				cfg += "\n[sqm]\nupload = \"5mbit\"\ndownload = \"auto\"\ndownload_min = \"5mbit\"\ndownload_max = \"50mbit\"\noverhead = \"pppoe-ptm\"\n"
			}
			rd := r.StartRouterd(cfg)
			p := waitPPPoE(t, l, rd, 60*time.Second, "PPPoE session up", pppoeUp)
			if p.Address != lab.PPPoEClient4.String() || p.Peer != lab.PPPoEGateway4.String() || p.AC != "bras-"+auth || p.MTU != 1492 {
				t.Errorf("session %+v: want address %s, peer %s, AC bras-%s, MTU 1492", *p, lab.PPPoEClient4, lab.PPPoEGateway4, auth)
			}
			if auth == "pap" {
				l.Eventually(20*time.Second, "autorate's answers from the session's peer", func() error {
					st, err := getStatus(rd)
					if err != nil {
						return err
					}
					if q := st.SQM; q == nil || q.Autorate == nil || len(q.Autorate.Reflectors) != 1 ||
						q.Autorate.Reflectors[0] != lab.PPPoEGateway4.String() || q.Autorate.LastAnswer.IsZero() {
						return fmt.Errorf("sqm %+v", q)
					}
					return nil
				})
				wan := l.ExistingNS(l.Prefix + "-wan")
				for _, link := range []string{"wan0", "wan0.7"} {
					if out := wan.MustRun("ip", "-o", "link", "show", link); !strings.Contains(out, "mtu 1508") {
						t.Errorf("RFC 4638 asked for, but %s is not ready for baby-jumbo frames: %s", link, out)
					}
				}
			}
			if !strings.Contains(srv.PPPDLog(), "rcvd [IPCP ConfAck") {
				t.Errorf("the ISP's pppd did not log an agreed IPCP:\n%s", srv.PPPDLog())
			}
			if _, err := pc.UDHCPC(""); err != nil {
				t.Fatal(err)
			}
			// The LAN client's SYN leaves with an MSS for the PPP link's
			// MTU (1492 - 40), not its own 1460; the ISP sees it.
			syn := isp.NS.Start("isp-tcpdump", "tcpdump", "-l", "-n", "-i", "any", "-c", "1",
				"tcp[tcpflags] & tcp-syn != 0 and src host "+lab.PPPoEClient4.String())
			l.Eventually(10*time.Second, "tcpdump listening", func() error {
				if !strings.Contains(syn.Log.String(), "listening") {
					return fmt.Errorf("not yet")
				}
				return nil
			})
			if got := echoFrom(t, l, pc, lab.Echo4, 80); got != lab.PPPoEClient4.String() {
				t.Fatalf("the ISP saw the LAN client as %q, want the session's address %s", got, lab.PPPoEClient4)
			}
			l.Eventually(10*time.Second, "the client's SYN at the ISP", func() error {
				if !strings.Contains(syn.Log.String(), "mss ") {
					return fmt.Errorf("tcpdump: %s", syn.Log.String())
				}
				return nil
			})
			if !strings.Contains(syn.Log.String(), "mss 1452") {
				t.Errorf("the LAN client's SYN reached the ISP without an MSS clamped to the PPP MTU (1452):\n%s", syn.Log.String())
			}
			out, _ := rd.Ctl("status")
			if strings.Contains(out, "s3cret") || !strings.Contains(out, "pppoe") || !strings.Contains(out, lab.PPPoEClient4.String()) {
				t.Errorf("status shows the password or no session:\n%s", out)
			}
			if auth == "pap" {
				// The ISP's side goes silent (no terminate, no PADT):
				// LCP echoes notice, and routerd dials again.
				redialled(t, l, rd, pc, "the ISP went silent", srv.Freeze, "echo")
				return
			}
			pppoeIPv6(t, l, isp, srv, rd, pc)
			// The ISP hangs up: routerd sees it (PADT, LCP terminate) and
			// dials again.
			redialled(t, l, rd, pc, "hung up by the ISP", srv.HangUp, "ISP")
		})
	}
}

// TestPPPoEWrongPassword: a refused password is reported in status and
// retried with backoff, not hammered.
func TestPPPoEWrongPassword(t *testing.T) {
	if lab.RequireKernel(t, "pppoe", "ppp_generic") {
		return
	}
	lab.Require(t, "pppoe-server", "pppd", "pkill", "pgrep")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	isp.ServePPPoE(lab.PPPoEOptions{Auth: "chap", User: "user@isp.example", Password: "right"})
	r := l.NewRouter(isp)
	r.AddLAN()
	cfg := strings.Replace(pppoeWAN(t, r, "user@isp.example", "wrong", false), "vlan = 7\n", "", 1)
	rd := r.StartRouterd(cfg)
	p := waitPPPoE(t, l, rd, 60*time.Second, "the refusal in status", func(p *status.PPPoE) error {
		if !strings.Contains(p.LastEnd, "refused") || p.State != "waiting" {
			return fmt.Errorf("PPPoE %+v", *p)
		}
		return nil
	})
	if wait := time.Until(p.NextTry); wait < 5*time.Second {
		t.Errorf("next try in %s after a refused password; want a backoff of seconds", wait)
	}
	if strings.Contains(p.LastEnd, "wrong") {
		t.Errorf("status shows the password: %q", p.LastEnd)
	}
}

// pppoeIPv6: IPv6CP, then DHCPv6 over the session: the router gets an
// address and a delegated prefix, the LAN a subnet of it, and a LAN client
// reaches the ISP from its own global address.
func pppoeIPv6(t *testing.T, l *lab.Lab, isp *lab.ISP, srv *lab.PPPoEServer, rd *lab.Routerd, pc *lab.Client) {
	t.Helper()
	iface := srv.ServeDHCPv6()
	var subnet netip.Prefix
	l.Eventually(90*time.Second, "a delegated prefix over PPPoE on the LAN", func() error {
		st, err := getStatus(rd)
		if err != nil {
			return err
		}
		pd := st.WAN.PD
		if pd == nil || pd.Current == nil || len(pd.Current.Subnets) != 1 {
			return fmt.Errorf("prefix delegation = %+v, dhcpv6 = %+v", pd, st.WAN.DHCP6)
		}
		delegated := netip.MustParsePrefix(pd.Current.Prefix)
		if !lab.ISPDelegation.Contains(delegated.Addr()) {
			return fmt.Errorf("delegated %s, not from %s", delegated, lab.ISPDelegation)
		}
		// The ISP routes the delegated prefix over the session.
		isp.NS.MustRun("ip", "-6", "route", "replace", delegated.String(), "dev", iface)
		subnet = netip.MustParsePrefix(pd.Current.Subnets[0].Prefix)
		return nil
	})
	var addr netip.Addr
	l.Eventually(30*time.Second, "the LAN client has an address in "+subnet.String(), func() error {
		out, err := pc.NS.Run("ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global", "-deprecated")
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(out) {
			if p, err := netip.ParsePrefix(f); err == nil && subnet.Contains(p.Addr()) {
				addr = p.Addr()
				return nil
			}
		}
		return fmt.Errorf("none yet:\n%s", out)
	})
	if got := echoFrom(t, l, pc, lab.Echo6, 80); got != addr.String() {
		t.Errorf("over IPv6 the ISP saw the LAN client as %q, want its own address %s", got, addr)
	}
}

// redialled ends the session from the ISP's side with end, waits for
// routerd to dial again (printing how long it took), checks that status
// says why (reason in its last end), and that the LAN reaches the ISP.
func redialled(t *testing.T, l *lab.Lab, rd *lab.Routerd, pc *lab.Client, what string, end func(), reason string) {
	t.Helper()
	start := time.Now()
	end()
	p := waitPPPoE(t, l, rd, 90*time.Second, "PPPoE redialled after "+what, func(p *status.PPPoE) error {
		if p.Reconnects < 1 {
			return fmt.Errorf("no reconnect yet: %+v", *p)
		}
		return pppoeUp(p)
	})
	t.Logf("%s (%q): up again after %s", what, p.LastEnd, time.Since(start).Round(time.Millisecond))
	if !strings.Contains(p.LastEnd, reason) {
		t.Errorf("last end %q does not say why (%q)", p.LastEnd, reason)
	}
	echoFrom(t, l, pc, lab.Echo4, 80)
}
