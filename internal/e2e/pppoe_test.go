package e2e

import (
	"fmt"
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
func pppoeWAN(t *testing.T, r *lab.Router, user, password string) string {
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
	cfg = strings.Replace(cfg, "[wan]\n", "[wan]\nvlan = 7\nipv4 = \"pppoe\"\n", 1)
	return cfg + fmt.Sprintf("\n[wan.pppoe]\nusername = %q\npassword_file = %q\n", user, file)
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
// hangs up and routerd dials again; the password never shows in status.
func TestPPPoE(t *testing.T) {
	if lab.RequireKernel(t, "8021q", "pppoe", "ppp_generic") {
		return
	}
	lab.Require(t, "pppoe-server", "pppd", "pkill", "pgrep", "curl", "udhcpc")
	for _, auth := range []string{"chap", "pap"} {
		t.Run(auth, func(t *testing.T) {
			l := lab.New(t)
			isp := l.NewISP(lab.ISPOptions{})
			srv := isp.ServePPPoE(lab.PPPoEOptions{VLAN: 7, Auth: auth, User: "user@isp.example", Password: "s3cret-" + auth, ACName: "bras-" + auth})
			r := l.NewRouter(isp)
			pc := r.AddLAN().AddClient()
			rd := r.StartRouterd(pppoeWAN(t, r, "user@isp.example", "s3cret-"+auth))
			p := waitPPPoE(t, l, rd, 60*time.Second, "PPPoE session up", pppoeUp)
			if p.Address != lab.PPPoEClient4.String() || p.Peer != lab.PPPoEGateway4.String() || p.AC != "bras-"+auth || p.MTU != 1492 {
				t.Errorf("session %+v: want address %s, peer %s, AC bras-%s, MTU 1492", *p, lab.PPPoEClient4, lab.PPPoEGateway4, auth)
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
			if auth != "chap" {
				return
			}
			// The ISP hangs up: routerd sees it (PADT, LCP terminate) and
			// dials again.
			start := time.Now()
			srv.HangUp()
			p = waitPPPoE(t, l, rd, 60*time.Second, "PPPoE redialled", func(p *status.PPPoE) error {
				if p.Reconnects < 1 {
					return fmt.Errorf("no reconnect yet: %+v", *p)
				}
				return pppoeUp(p)
			})
			t.Logf("hung up by the ISP (%q): up again after %s", p.LastEnd, time.Since(start).Round(time.Millisecond))
			if !strings.Contains(p.LastEnd, "ISP") {
				t.Errorf("last end %q does not say the ISP ended it", p.LastEnd)
			}
			echoFrom(t, l, pc, lab.Echo4, 80)
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
	cfg := strings.Replace(pppoeWAN(t, r, "user@isp.example", "wrong"), "vlan = 7\n", "", 1)
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
