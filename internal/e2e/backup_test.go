package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/status"
)

// TestBackupUplink: a second line as the backup uplink. The primary's
// cable is pulled, and later its ISP goes silent with the link up: each
// time the household (its echo's source becomes the backup's address)
// and the VPN tunnel (port 25 goes through it) are back through the
// backup, in the time printed; when the primary recovers, the traffic
// moves back. Status tells the switches and why. Before that, probes
// answered late (a loaded line) move nothing.
func TestBackupUplink(t *testing.T) {
	var c *lab.Client
	extra := fmt.Sprintf(`
[wan.backup]
name = "wan1"
match_mac = %q
ipv4 = "dhcp"
ipv6 = "off"
probe = [%q, %q]
probe_interval = "1s"
probe_down = 3
probe_up = 3

[[routing.policy]]
name = "smtp-out"
destination_ports = ["tcp/25"]
via = "vpn"
`, lab.BackupMAC, lab.Echo4, lab.EchoAlt4[0])
	a := newAppliance(t, lab.ConfigOptions{Default: "wan"}, extra, func(a *appliance) {
		a.isp.ServeBackup()
		a.r.AddBackupWAN()
		c = a.lan.AddClient()
		c.SetStatic(50)
	})
	var backup netip.Addr
	a.l.Eventually(30*time.Second, "both uplinks up, the primary active", func() error {
		st, err := getStatus(a.rd)
		if err != nil {
			return err
		}
		f := st.WAN.Failover
		if f == nil || f.Active != "primary" || len(f.Uplinks) != 2 || f.Uplinks[1].State != "up" || f.Uplinks[1].Probes == 0 {
			return fmt.Errorf("failover %+v", f)
		}
		if b := st.WAN.Backup; b == nil || b.DHCP == nil || b.DHCP.Address == "" {
			return fmt.Errorf("backup %+v", st.WAN.Backup)
		} else {
			backup = netip.MustParsePrefix(b.DHCP.Address).Addr()
		}
		return nil
	})
	if !lab.BackupSubnet4.Contains(backup) {
		t.Fatalf("the backup's lease %s is not from the second line's %s", backup, lab.BackupSubnet4)
	}
	if got := a.echo(t, c, lab.Echo4, 80); got != a.wan.String() {
		t.Fatalf("before: the echo saw %s, want the primary's %s", got, a.wan)
	}
	tunnel := a.echo(t, c, lab.Echo4, 25)
	if tunnel == a.wan.String() || tunnel == backup.String() {
		t.Fatalf("port 25 left by the WAN (%s), not the tunnel", tunnel)
	}

	// back waits until the household's echo shows want and port 25 goes
	// through the tunnel again, and returns how long each took.
	back := func(what string, since time.Time, want netip.Addr) (household, vpn time.Duration) {
		t.Helper()
		a.l.Eventually(30*time.Second, what+": the echo sees "+want.String(), func() error {
			got, err := c.Echo(lab.Echo4, 80)
			if err != nil || got != want.String() {
				return fmt.Errorf("echo %q, %v", got, err)
			}
			return nil
		})
		household = time.Since(since)
		a.l.Eventually(30*time.Second, what+": port 25 through the tunnel", func() error {
			got, err := c.Echo(lab.Echo4, 25)
			if err != nil || got != tunnel {
				return fmt.Errorf("echo %q, %v", got, err)
			}
			return nil
		})
		return household, time.Since(since)
	}
	report := func(what string, household, vpn time.Duration) {
		t.Logf("%s: the household back after %s, the tunnel after %s", what, household.Round(100*time.Millisecond), vpn.Round(100*time.Millisecond))
		if household > 15*time.Second || vpn > 15*time.Second {
			t.Errorf("%s: back after %s (household) and %s (tunnel), want within 15s", what, household, vpn)
		}
	}
	lastSwitch := func(n int) status.FailoverSwitch {
		t.Helper()
		st, err := getStatus(a.rd)
		if err != nil {
			t.Fatal(err)
		}
		f := st.WAN.Failover
		if f.Count != n || len(f.Switches) != n {
			t.Fatalf("%d switches, want %d: %+v", f.Count, n, f.Switches)
		}
		return f.Switches[n-1]
	}

	// A loaded line is not a dead one: the primary's probes answered 2 s
	// late (longer than the 1 s interval: rounds overlap, each waiting up
	// to probe_timeout, 3 s) for ten rounds move nothing.
	slow := a.isp.SlowEchoes([]netip.Addr{lab.Echo4, lab.EchoAlt4[0]}, a.wan, 2*time.Second)
	var probes int
	a.l.Eventually(30*time.Second, "the primary's probes answered late", func() error {
		st, err := getStatus(a.rd)
		if err != nil {
			return err
		}
		p := st.WAN.Failover.Uplinks[0]
		if p.RTT < 1500*time.Millisecond {
			return fmt.Errorf("primary %+v", p)
		}
		probes = p.Probes
		return nil
	})
	a.l.Eventually(60*time.Second, "ten more rounds of late answers", func() error {
		st, err := getStatus(a.rd)
		if err != nil {
			return err
		}
		if p := st.WAN.Failover.Uplinks[0]; p.Probes < probes+20 {
			return fmt.Errorf("primary %+v", p)
		}
		return nil
	})
	slow()
	if st := mustStatus(t, a.rd); st.WAN.Failover.Count != 0 || st.WAN.Failover.Active != "primary" {
		t.Fatalf("answers 2 s late moved the household: %+v", st.WAN.Failover)
	}
	t.Logf("the primary's probes answered 2 s late for ten rounds: no switch")

	at := time.Now()
	a.r.UplinkDown(a.r.WANPort)
	h, v := back("cable pulled", at, backup)
	report("primary's cable pulled", h, v)
	if s := lastSwitch(1); s.From != "primary" || s.To != "backup" || !strings.Contains(s.Why, "lost its link") {
		t.Errorf("switch %+v, want primary -> backup for the lost link", s)
	}
	text, _ := a.rd.Ctl("status")
	if !strings.Contains(text, "backup active") || !strings.Contains(text, "lost its link") {
		t.Errorf("routerctl status does not tell the failover:\n%s", text)
	}

	at = time.Now()
	a.r.UplinkUp(a.r.WANPort)
	h, v = back("cable back", at, a.wan)
	t.Logf("primary's cable back: the household on it after %s, the tunnel after %s", h.Round(100*time.Millisecond), v.Round(100*time.Millisecond))
	if s := lastSwitch(2); s.From != "backup" || s.To != "primary" {
		t.Errorf("switch %+v, want backup -> primary", s)
	}

	at = time.Now()
	a.r.UplinkSilent(a.r.WANPort, true)
	h, v = back("ISP silent", at, backup)
	report("primary's ISP silent, its link up", h, v)
	s := lastSwitch(3)
	if !strings.Contains(s.Why, "unanswered") {
		t.Errorf("switch %+v, want it for the unanswered probes", s)
	}
	if s.Flushed == 0 {
		t.Errorf("switch %+v: no connection of the silent uplink reset (the tunnel's at least)", s)
	}

	// routerd restarted meanwhile (an update, a crash): the backup keeps
	// the traffic, no round trip through the dead primary.
	a.rd.Restart()
	st, err := getStatus(a.rd)
	if err != nil {
		t.Fatal(err)
	}
	if f := st.WAN.Failover; f.Active != "backup" || f.Uplinks[0].State != "down" {
		t.Errorf("after a restart: %+v, want the backup active and the primary down", f)
	}
	if got := a.echo(t, c, lab.Echo4, 80); got != backup.String() {
		t.Errorf("after a restart: the echo saw %s, want the backup's %s", got, backup)
	}

	at = time.Now()
	a.r.UplinkSilent(a.r.WANPort, false)
	h, v = back("ISP back", at, a.wan)
	t.Logf("primary's ISP back: the household on it after %s, the tunnel after %s", h.Round(100*time.Millisecond), v.Round(100*time.Millisecond))
	lastSwitch(1) // this process's first
}
