package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/status"
)

// skeleton is a router with one LAN and a WAN on the ISP, without a VPN.
type skeleton struct {
	l   *lab.Lab
	isp *lab.ISP
	r   *lab.Router
	lan *lab.Switch
}

func newSkeleton(t *testing.T) *skeleton {
	lab.Require(t, "dnsmasq", "dig", "nsenter", "udhcpc")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	return &skeleton{l: l, isp: isp, r: r, lan: lan}
}

func (s *skeleton) wanNS() *lab.NS { return s.l.ExistingNS(s.l.Prefix + "-wan") }
func (s *skeleton) vpnNS() *lab.NS { return s.l.ExistingNS(s.l.Prefix + "-vpn") }

// waitConverged waits until every component runs and reports that its last
// apply changed nothing.
func waitConverged(t *testing.T, l *lab.Lab, rd *lab.Routerd) *status.Status {
	t.Helper()
	var st *status.Status
	l.Eventually(30*time.Second, "components running", func() (err error) {
		if st, err = getStatus(rd); err != nil {
			return err
		}
		for _, c := range st.Components {
			if c.State != status.Running {
				return fmt.Errorf("%s is %s: %s", c.Name, c.State, c.Error)
			}
		}
		return nil
	})
	return st
}

// lastChanges returns what each apply-style component says its last apply
// changed.
func lastChanges(st *status.Status) map[string]int {
	m := map[string]int{}
	if st.Netns != nil {
		m["netns"] = st.Netns.LastChanges
	}
	if st.NICs != nil {
		m["nics"] = st.NICs.LastChanges
	}
	if st.Routing != nil {
		m["routing"] = st.Routing.LastChanges
	}
	return m
}

func TestTopologyGolden(t *testing.T) {
	s := newSkeleton(t)
	rd := s.r.StartRouterd(s.r.Config(lab.ConfigOptions{SetMAC: "02:42:ac:00:00:55"}))
	waitConverged(t, s.l, rd)
	waitWANLease(t, s.l, rd, nil)
	golden(t, "topology-main.golden", snapshot(t, s.l, s.r.NS))
	golden(t, "topology-wan.golden", snapshot(t, s.l, s.wanNS()))
	golden(t, "topology-vpn.golden", snapshot(t, s.l, s.vpnNS()))

	text, err := rd.Ctl("status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NICs", "wan0", "02:42:ac:00:00:55", s.l.Prefix + "-wan", "Namespaces and transit links",
		"transit0 UP 10.254.0.3/29", "tr-vpn UP", "Routing", "fwmark 0x2/0xff lookup 102", "unreachable default"} {
		if !strings.Contains(text, want) {
			t.Errorf("routerctl status lacks %q:\n%s", want, text)
		}
	}
}

// monitor records link and rule events in one namespace. (Addresses may
// legitimately change on restart: the WAN lease is confirmed and its
// lifetime refreshed. Duplicates of anything show up in the snapshots.)
type monitor struct {
	ns   *lab.NS
	proc *lab.Proc
	from int
}

func startMonitor(t *testing.T, l *lab.Lab, ns *lab.NS) *monitor {
	t.Helper()
	m := &monitor{ns: ns, proc: ns.Start("ip-monitor-"+ns.Name, "ip", "monitor", "link", "rule")}
	// Prove the monitor listens before trusting its silence: make an event
	// and wait to see it.
	probe := "probe" + fmt.Sprint(time.Now().UnixNano()%1000)
	l.Eventually(10*time.Second, "ip monitor sees a probe link", func() error {
		ns.Run("ip", "link", "add", "name", probe, "type", "veth", "peer", "name", probe+"p")
		ns.Run("ip", "link", "del", probe)
		if !strings.Contains(m.proc.Log.String(), probe) {
			return errors.New("no probe event yet")
		}
		return nil
	})
	// Wait for the deletion event too, then start counting from there.
	l.Eventually(10*time.Second, "probe deletion seen", func() error {
		if !strings.Contains(m.proc.Log.String(), "Deleted") {
			return errors.New("no deletion event yet")
		}
		return nil
	})
	m.from = len(m.proc.Log.String())
	return m
}

// events returns what the monitor saw since it was ready.
func (m *monitor) events() string { return m.proc.Log.String()[m.from:] }

// TestRestartConverges: a restart (graceful or kill -9) makes no netlink
// change in any namespace, reports zero changes, and leaves no duplicates.
func TestRestartConverges(t *testing.T) {
	s := newSkeleton(t)
	rd := s.r.StartRouterd(s.r.Config(lab.ConfigOptions{SetMAC: "02:42:ac:00:00:55"}))
	waitConverged(t, s.l, rd)
	waitWANLease(t, s.l, rd, nil)
	before := map[string]string{}
	nss := []*lab.NS{s.r.NS, s.wanNS(), s.vpnNS()}
	for _, ns := range nss {
		before[ns.Name] = snapshot(t, s.l, ns)
	}

	for _, how := range []string{"SIGTERM", "kill -9"} {
		t.Run(how, func(t *testing.T) {
			var mons []*monitor
			for _, ns := range nss {
				mons = append(mons, startMonitor(t, s.l, ns))
			}
			if how == "kill -9" {
				rd.Proc.Kill()
			} else {
				rd.Proc.Signal(syscall.SIGTERM)
				<-rd.Proc.Done()
			}
			rd.Start()
			st := waitConverged(t, s.l, rd)
			waitWANLease(t, s.l, rd, nil)
			for c, n := range lastChanges(st) {
				if n != 0 {
					t.Errorf("after %s, %s's apply made %d changes, want 0", how, c, n)
				}
			}
			for _, m := range mons {
				if ev := m.events(); ev != "" {
					t.Errorf("after %s, netlink events in %s (flaps or rewrites):\n%s", how, m.ns.Name, ev)
				}
				m.proc.Stop()
			}
			for _, ns := range nss {
				if d := diff(before[ns.Name], snapshot(t, s.l, ns)); d != "" {
					t.Errorf("after %s, %s changed (-before +after):\n%s", how, ns.Name, d)
				}
			}
		})
	}
}

// TestWANNICReset deletes the WAN NIC and recreates it with the same MAC in
// the main namespace, as a USB RTL8153 that resets does: routerd re-adopts
// it into the wan namespace under its name and MAC.
func TestWANNICReset(t *testing.T) {
	s := newSkeleton(t)
	rd := s.r.StartRouterd(s.r.Config(lab.ConfigOptions{SetMAC: "02:42:ac:00:00:55"}))
	waitConverged(t, s.l, rd)

	s.wanNS().MustRun("ip", "link", "del", "wan0")
	s.l.Eventually(10*time.Second, "status shows the WAN NIC missing", func() error {
		st, err := getStatus(rd)
		if err != nil {
			return err
		}
		if n := st.NICs.NICs[0]; n.State != "missing" {
			return fmt.Errorf("wan0 is %s", n.State)
		}
		return nil
	})
	// The USB NIC comes back: a new link with the permanent MAC, in main.
	s.isp.Attach(s.r.NS, "eth7", lab.WANMAC)
	s.l.Eventually(10*time.Second, "WAN NIC re-adopted", func() error {
		st, err := getStatus(rd)
		if err != nil {
			return err
		}
		n := st.NICs.NICs[0]
		if n.State != "up" || n.Readopted != 1 || n.CurrentMAC != "02:42:ac:00:00:55" || !strings.HasSuffix(n.Namespace, "-wan") {
			return fmt.Errorf("wan0 = %+v", n)
		}
		return nil
	})
	out := s.wanNS().MustRun("ip", "-br", "link", "show", "wan0")
	if !strings.Contains(out, "02:42:ac:00:00:55") || !strings.Contains(out, "UP") {
		t.Errorf("wan0 in the wan namespace: %s", out)
	}
	if out, err := s.r.NS.Run("ip", "link", "show", "eth7"); err == nil {
		t.Errorf("the new NIC is still in main as eth7: %s", out)
	}
}

// TestLANNICReset: a LAN NIC that comes back gets its name and addresses,
// and the routes that point at it return.
func TestLANNICReset(t *testing.T) {
	s := newSkeleton(t)
	rd := s.r.StartRouterd(s.r.Config(lab.ConfigOptions{}))
	waitConverged(t, s.l, rd)
	before := snapshot(t, s.l, s.r.NS)

	s.r.NS.MustRun("ip", "link", "del", "lan0")
	s.lan.NS.MustRun("ip", "link", "add", "name", "uplink2", "type", "veth", "peer", "name", "eth9", "netns", s.r.NS.Name, "address", lab.LANMAC(1))
	s.lan.NS.MustRun("ip", "link", "set", "dev", "uplink2", "master", "br", "up")
	s.l.Eventually(10*time.Second, "LAN NIC re-adopted with its routes", func() error {
		st, err := getStatus(rd)
		if err != nil {
			return err
		}
		if n := st.NICs.NICs[1]; n.Readopted != 1 || n.State != "up" {
			return fmt.Errorf("lan0 = %+v", n)
		}
		if d := diff(before, snapshot(t, s.l, s.r.NS)); d != "" {
			return fmt.Errorf("main namespace differs from before the reset:\n%s", d)
		}
		return nil
	})
	// The LAN's DHCP server listens on the new NIC.
	c := s.lan.AddClient()
	if l, err := c.UDHCPC("after-reset"); err != nil || !s.lan.Subnet4.Contains(l.IP) {
		t.Errorf("DHCP after the LAN NIC reset: %+v, %v", l, err)
	}
}

// TestTeardown: --teardown leaves the router namespace as the lab made it
// and removes the namespaces routerd created.
func TestTeardown(t *testing.T) {
	s := newSkeleton(t)
	pristine := snapshot(t, s.l, s.r.NS)
	rd := s.r.StartRouterd(s.r.Config(lab.ConfigOptions{SetMAC: "02:42:ac:00:00:55"}))
	waitConverged(t, s.l, rd)
	rd.Proc.Stop()
	// Forwarding state survives a stop: namespaces and links are still there.
	if out := s.wanNS().MustRun("ip", "-br", "link", "show", "wan0"); !strings.Contains(out, "UP") {
		t.Errorf("after routerd stopped, wan0 = %q, want it left up", out)
	}
	routerd, _ := lab.Binaries(t)
	if out, err := s.r.NS.NetCmd(routerd, "--config", rd.ConfigPath, "--teardown").CombinedOutput(); err != nil {
		t.Fatalf("teardown: %v\n%s", err, out)
	}
	// The kernel settles operstate and link-local addresses after a link
	// comes up (linkwatch), so poll for the pristine picture.
	s.l.Eventually(10*time.Second, "router namespace as the lab made it", func() error {
		if d := diff(pristine, snapshot(t, s.l, s.r.NS)); d != "" {
			return fmt.Errorf("differs (-lab +after):\n%s", d)
		}
		return nil
	})
	out, _ := s.r.NS.Run("ip", "netns", "list")
	for _, ns := range []string{s.l.Prefix + "-wan", s.l.Prefix + "-vpn"} {
		if strings.Contains(out, ns) {
			t.Errorf("namespace %s left after teardown", ns)
		}
	}
	// A second teardown has nothing to do and succeeds.
	if out, err := s.r.NS.NetCmd(routerd, "--config", rd.ConfigPath, "--teardown").CombinedOutput(); err != nil {
		t.Errorf("second teardown: %v\n%s", err, out)
	}
}

// TestMissingNIC: a NIC that never appears fails the nics component with a
// clear error after wan.wait, and everything else still starts.
func TestMissingNIC(t *testing.T) {
	s := newSkeleton(t)
	cfg := s.r.Config(lab.ConfigOptions{WANWait: 2 * time.Second})
	cfg = strings.Replace(cfg, `match_mac = "`+lab.WANMAC+`"`, `match_mac = "02:42:ac:00:00:99"`, 1)
	rd := s.r.StartRouterd(cfg)
	st, err := getStatus(rd)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Components {
		switch c.Name {
		case "nics":
			if c.State != status.Failed || !strings.Contains(c.Error, "02:42:ac:00:00:99") || !strings.Contains(c.Error, "not found within 2s") {
				t.Errorf("nics = %+v, want failed naming the missing MAC and the wait", c)
			}
		default:
			if c.State != status.Running {
				t.Errorf("%s = %+v, want running despite the missing WAN NIC", c.Name, c)
			}
		}
	}
	if out := s.r.NS.MustRun("ip", "-br", "addr", "show", "lan0"); !strings.Contains(out, s.lan.Router4().String()) {
		t.Errorf("LAN not configured without the WAN NIC: %s", out)
	}
}

// TestNameClash: a foreign link already named like a configured NIC is
// moved out of the way.
func TestNameClash(t *testing.T) {
	s := newSkeleton(t)
	s.r.NS.MustRun("ip", "link", "add", "name", "lan0", "type", "veth", "peer", "name", "other0")
	rd := s.r.StartRouterd(s.r.Config(lab.ConfigOptions{}))
	waitConverged(t, s.l, rd)
	out := s.r.NS.MustRun("ip", "-br", "link", "show", "lan0")
	if !strings.Contains(out, lab.LANMAC(1)) {
		t.Errorf("lan0 is not the configured NIC: %s", out)
	}
	if out := s.r.NS.MustRun("ip", "-br", "link"); !strings.Contains(out, "rdtmp") {
		t.Errorf("the clashing link was not renamed out of the way:\n%s", out)
	}
}

// TestStatusWhileWaitingForNIC: while routerd waits wan.wait for a WAN NIC
// that is not there, status answers at once, says routerd is starting and
// shows the NIC it waits for; stopping it mid-wait is clean.
func TestStatusWhileWaitingForNIC(t *testing.T) {
	s := newSkeleton(t)
	cfg := s.r.Config(lab.ConfigOptions{WANWait: 5 * time.Minute})
	cfg = strings.Replace(cfg, `match_mac = "`+lab.WANMAC+`"`, `match_mac = "02:42:ac:00:00:99"`, 1)
	rd := s.r.LaunchRouterd(cfg)
	c := control.NewClient(s.r.Sock)
	const budget = 200 * time.Millisecond
	for i := 0; i < 10; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		var st status.Status
		t0 := time.Now()
		err := c.Do(ctx, "GET", "/v1/status", &st, nil)
		cancel()
		if err != nil {
			t.Fatalf("status %d while waiting for the WAN NIC: no answer within %v: %v", i, budget, err)
		}
		if st.Phase != status.PhaseStarting {
			t.Fatalf("status %d after %v: phase %q, want %q (the wait is 5 minutes)", i, time.Since(t0), st.Phase, status.PhaseStarting)
		}
		if st.NICs == nil {
			t.Fatalf("status %d: no NICs section while waiting for a NIC", i)
		}
		for _, n := range st.NICs.NICs {
			if n.Role == "wan" && n.State != "missing" {
				t.Errorf("status %d: WAN NIC %+v, want missing", i, n)
			}
		}
	}
	if out, err := rd.Ctl("status"); err != nil || !strings.Contains(out, ", starting\n") {
		t.Errorf("routerctl status while starting: %v\n%s", err, out)
	}
	if _, err := rd.Ctl("leases"); err == nil || !strings.Contains(err.Error(), "not running (routerd is starting)") {
		t.Errorf("routerctl leases while starting: %v, want an error saying routerd is starting", err)
	}
	// SIGTERM mid-wait: routerd stops by itself (Proc.Stop would SIGKILL
	// after a while and hide a hang).
	stopped := time.Now()
	rd.Proc.Signal(syscall.SIGTERM)
	var exitErr error
	if err := lab.Poll(30*time.Second, func() error {
		done, err := rd.Proc.Exited()
		if !done {
			return errors.New("still running")
		}
		exitErr = err
		return nil
	}); err != nil {
		t.Fatalf("routerd did not stop on SIGTERM while waiting for a NIC: %v", err)
	}
	if exitErr != nil {
		t.Errorf("routerd exited with %v after SIGTERM, want a clean exit", exitErr)
	}
	t.Logf("stopped mid-wait in %v", time.Since(stopped).Round(time.Millisecond))
}
