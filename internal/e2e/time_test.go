package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/status"
)

// TestTimeSync: routerd takes its time from the ISP's NTP server (chrony),
// found by name through its own resolver, and ignores an unsynchronised
// one; a LAN client is told of the router as its NTP server (DHCP option
// 42) and gets the time from it with ntpdig, at the ISP's stratum + 1, over
// IPv4 and IPv6. The lab's routerd shares the host's clock, so it measures
// and serves (set_clock = false); stepping a real clock is the image
// test's (TestImageBoots boots with the RTC in 2020).
func TestTimeSync(t *testing.T) {
	lab.Require(t, "dnsmasq", "chronyd", "ntpdig", "udhcpc")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	isp.ServeNTP()
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	c := lan.AddClient()
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{Extra: fmt.Sprintf(`[time]
servers = [%q, %q]
serve = true
set_clock = false
`, lab.NTPName, lab.NTPUnsync4)}))
	waitWANLease(t, l, rd, nil)

	var st *status.Status
	l.Eventually(60*time.Second, "routerd synchronised with the ISP", func() (err error) {
		if st, err = getStatus(rd); err != nil {
			return err
		}
		if st.Time == nil || !st.Time.Synced {
			return fmt.Errorf("time = %+v", st.Time)
		}
		return nil
	})
	tm := st.Time
	if tm.Server != lab.NTPName || tm.Stratum != 1 || tm.SetsClock {
		t.Errorf("synchronised to %q stratum %d (sets clock %v), want %s stratum 1, measuring only", tm.Server, tm.Stratum, tm.SetsClock, lab.NTPName)
	}
	if len(tm.Servers) != 2 || tm.Servers[0].Addr != lab.NTP4.String() || !tm.Servers[0].Used || tm.Servers[1].Error == "" || tm.Servers[1].Used {
		t.Errorf("servers %+v: want %s used (%s) and the unsynchronised %s refused with a reason", tm.Servers, lab.NTPName, lab.NTP4, lab.NTPUnsync4)
	}
	if text, _ := rd.Ctl("status"); !strings.Contains(text, "synchronised to "+lab.NTPName) {
		t.Errorf("routerctl status lacks the sync:\n%s", text)
	}

	lease, err := c.UDHCPC("clock")
	if err != nil {
		t.Fatal(err)
	}
	gw4, gw6 := lan.Router4().Addr().String(), lan.Router6().Addr().String()
	if lease.NTP != gw4 {
		t.Errorf("DHCP option 42 = %q, want the router %s", lease.NTP, gw4)
	}
	c.SetStatic(77) // and an IPv6 address
	for _, server := range []string{gw4, gw6} {
		var got struct {
			Stratum int     `json:"stratum"`
			Leap    string  `json:"leap"`
			Offset  float64 `json:"offset"`
		}
		l.Eventually(20*time.Second, "ntpdig "+server, func() error {
			out, err := c.NS.Run("ntpdig", "-j", "-t", "2", server)
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &got)
		})
		// The same clock on both sides: the offset is the measurement's
		// own error, well under a second.
		if got.Stratum != 2 || got.Leap != "no-leap" || got.Offset > 0.5 || got.Offset < -0.5 {
			t.Errorf("ntpdig %s: stratum %d leap %q offset %.3f s; want stratum 2 (the ISP's 1 + 1), no-leap, about 0", server, got.Stratum, got.Leap, got.Offset)
		}
	}
	if st, _ := getStatus(rd); st == nil || st.Time.Served < 2 || len(st.Time.Serving) == 0 {
		t.Errorf("the NTP server's counters: %+v", st.Time)
	}
}
