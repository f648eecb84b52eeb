package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/netns"
)

// chaosDurations are how long TestChaos disturbs routerd and then watches
// it idle under load: short in make test, a minute and ten in make chaos
// (ROUTERD_CHAOS=1m ROUTERD_SOAK=10m).
func chaosDurations(t *testing.T) (chaos, soak time.Duration) {
	chaos, soak = 25*time.Second, 20*time.Second
	for _, v := range []struct {
		env string
		d   *time.Duration
	}{{"ROUTERD_CHAOS", &chaos}, {"ROUTERD_SOAK", &soak}} {
		if s := os.Getenv(v.env); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				t.Fatalf("%s=%q: %v", v.env, s, err)
			}
			*v.d = d
		}
	}
	return chaos, soak
}

// transfer is an endless download on one path that the test watches.
type transfer struct {
	name     string
	c        *lab.Client
	port     int
	file     string
	proc     *lab.Proc
	restarts int
}

func (x *transfer) start(t *testing.T) {
	x.file = filepath.Join(t.TempDir(), x.name+".bin")
	x.proc = x.c.NS.Start(x.name, "curl", "-sS", "--limit-rate", "512K", "-o", x.file,
		fmt.Sprintf("http://%s:%d/bytes?n=%d", lab.Echo4, x.port, int64(1)<<40))
}

func (x *transfer) size() int64 {
	fi, err := os.Stat(x.file)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// flowing reports whether the download grew by at least 64 KiB within
// window.
func (x *transfer) flowing(window time.Duration) bool {
	before := x.size()
	deadline := time.Now().Add(window)
	for time.Now().Before(deadline) {
		if x.size()-before >= 64<<10 {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// usage is routerd's resource use at one moment.
type usage struct {
	goroutines, fds int
	rssKiB          int64
}

func sampleUsage(t *testing.T, a *appliance) usage {
	t.Helper()
	pid := a.rd.Proc.Cmd.Process.Pid // nsenter execs routerd in place
	var u usage
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("routerd's fds: %v", err)
	}
	u.fds = len(ents)
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			u.rssKiB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	f.Close()
	hc := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", a.r.Sock)
		}}}
	resp, err := hc.Get("http://routerd/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatalf("goroutine profile: %v", err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	fmt.Sscanf(line, "goroutine profile: total %d", &u.goroutines)
	return u
}

// TestChaos disturbs a loaded appliance the ways a home router is
// disturbed (power cuts as kill -9, config edits, a flapping tunnel, a USB
// NIC that resets, a LAN cable pulled) and checks what a user would: no
// acknowledged lease lost, not one packet of a VPN-path client out of the
// WAN, downloads still running (re-established only where the WAN NIC
// itself went away), and afterwards, idling under load, no growth of
// goroutines, file descriptors or memory.
func TestChaos(t *testing.T) {
	lab.Require(t, "dnsperf")
	chaos, soak := chaosDurations(t)
	var c1, c2, relay *lab.Client
	var relayAddr netip.Addr
	a := newAppliance(t, lab.ConfigOptions{Pool4: [2]int{100, 250}}, policyExtra, func(a *appliance) {
		c1, c2, relay = a.lan.AddClient(), a.lan.AddClient(), a.lan.AddClient()
		c1.SetStatic(50) // tv-direct: the WAN path
		c2.SetStatic(60) // the default: the VPN path
		relayAddr, _ = relay.SetStatic(2)
	})
	wanNS := a.l.ExistingNS(a.l.Prefix + "-wan")
	// VPN-path traffic (tcp/25 is always the VPN's, by smtp-out) seen
	// arriving from the ISP's customer side would be a leak.
	leak := a.isp.CountTCP(lab.ISPDown4.Masked(), netip.PrefixFrom(lab.Echo4, 32), 25)

	// Load: downloads on both paths, DNS, DHCP churn through a relay.
	wanDL := &transfer{name: "wan-download", c: c1, port: 80}
	vpnDL := &transfer{name: "vpn-download", c: c2, port: 25}
	for _, x := range []*transfer{wanDL, vpnDL} {
		x.start(t)
		if !x.flowing(20 * time.Second) {
			t.Fatalf("%s never started", x.name)
		}
	}
	queries := filepath.Join(a.l.Dir, "queries.txt")
	os.WriteFile(queries, []byte("echo.example A\ngw.lan A\nexample.net AAAA\n"), 0o644)
	dnsLoad := c1.NS.Start("dnsperf", "dnsperf", "-s", a.lan.Router4().Addr().String(), "-d", queries,
		"-l", strconv.Itoa(int((chaos+soak+2*time.Minute)/time.Second)), "-Q", "300", "-q", "20")
	defer dnsLoad.Stop()

	var conn net.PacketConn
	if err := netns.Do(relay.NS.Name, func() (err error) {
		conn, err = net.ListenPacket("udp4", netip.AddrPortFrom(relayAddr, 67).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	acked := map[string]string{}
	churn, stopChurn := context.WithCancel(context.Background())
	churned := make(chan struct{})
	go func() {
		defer close(churned)
		server := a.lan.Router4().Addr()
		for i := 0; churn.Err() == nil; i++ {
			m := net.HardwareAddr{0x02, 0x98, byte(i >> 16), byte(i >> 8), byte(i), byte(rand.IntN(256))}
			if ip, ok := relayDORA(conn, relayAddr, server, m); ok {
				mu.Lock()
				acked[m.String()] = ip
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	defer func() { stopChurn(); <-churned }()

	// The disturbances, in turn, until the chaos time is up.
	cfgA := a.cfg
	cfgB := strings.Replace(a.cfg, "[dns]\n", "[dns]\ncache_size = 777\n", 1)
	if cfgB == cfgA {
		t.Fatal("no [dns] section to flip")
	}
	flipped := false
	nicResets := 0
	events := map[string]int{}
	disturb := []struct {
		name string
		do   func()
	}{
		{"kill -9", func() {
			a.rd.Proc.Kill()
			a.rd.Start()
		}},
		{"SIGHUP with a config flip", func() {
			flipped = !flipped
			a.r.WriteConfig(map[bool]string{true: cfgB, false: cfgA}[flipped])
			a.rd.Proc.Signal(syscall.SIGHUP)
		}},
		{"tunnel flap", func() {
			a.vp.Stop()
			time.Sleep(2 * time.Second)
			a.vp.Start()
		}},
		{"WAN NIC removed and replugged", func() {
			wanNS.MustRun("ip", "link", "del", "wan0")
			time.Sleep(time.Second)
			a.isp.Attach(a.r.NS, "eth7", lab.WANMAC)
			nicResets++
		}},
		{"LAN NIC flap", func() {
			a.r.NS.MustRun("ip", "link", "set", "dev", a.lan.Name, "down")
			time.Sleep(time.Second)
			a.r.NS.MustRun("ip", "link", "set", "dev", a.lan.Name, "up")
		}},
	}
	end := time.Now().Add(chaos)
	for i := 0; time.Now().Before(end); i++ {
		d := disturb[i%len(disturb)]
		d.do()
		events[d.name]++
		time.Sleep(3 * time.Second)
	}
	t.Logf("disturbances: %v", events)

	// The appliance comes back whole.
	a.l.Eventually(60*time.Second, "every component running", func() error {
		st, err := getStatus(a.rd)
		if err != nil {
			return err
		}
		if st.Phase != "ready" {
			return fmt.Errorf("phase %s", st.Phase)
		}
		for _, c := range st.Components {
			if c.State != "running" {
				return fmt.Errorf("%s is %s: %s", c.Name, c.State, c.Error)
			}
		}
		return nil
	})
	a.waitVPN(t)

	stopChurn()
	<-churned
	have := map[string]string{}
	for _, le := range leases(t, a.rd) {
		have[le.MAC] = le.Address
	}
	mu.Lock()
	lost := 0
	for m, ip := range acked {
		if have[m] != ip {
			lost++
		}
	}
	t.Logf("DHCP: %d leases acknowledged during the chaos, %d lost", len(acked), lost)
	if lost > 0 || len(acked) == 0 {
		t.Errorf("%d of %d acknowledged leases lost", lost, len(acked))
	}
	mu.Unlock()

	// Downloads: the VPN path's survives everything; the WAN path's may
	// have to be started again only if its NIC went away (the kernel
	// forgets a masqueraded connection when its interface does).
	for _, x := range []*transfer{wanDL, vpnDL} {
		if x.flowing(30 * time.Second) {
			t.Logf("%s: alive, %d MiB", x.name, x.size()>>20)
			continue
		}
		if x == vpnDL || nicResets == 0 {
			t.Errorf("%s stalled after the chaos (%d MiB)", x.name, x.size()>>20)
			continue
		}
		x.proc.Stop()
		x.restarts++
		x.start(t)
		if !x.flowing(30 * time.Second) {
			t.Errorf("%s not re-established after the WAN NIC came back", x.name)
		} else {
			t.Logf("%s: re-established after the WAN NIC reset", x.name)
		}
	}
	if n := leak.Packets(); n != 0 {
		t.Errorf("%d packets of the VPN path left by the WAN", n)
	}

	// Soak: idle but loaded, resources must not grow.
	if err := a.rd.Proc.Cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("routerd gone: %v", err)
	}
	time.Sleep(5 * time.Second) // let the last restart's start-up work settle before the baseline
	first := sampleUsage(t, a)
	peak := first
	var last usage
	for end := time.Now().Add(soak); time.Now().Before(end); {
		time.Sleep(min(10*time.Second, time.Until(end)+time.Millisecond))
		last = sampleUsage(t, a)
		peak.goroutines, peak.fds, peak.rssKiB = max(peak.goroutines, last.goroutines), max(peak.fds, last.fds), max(peak.rssKiB, last.rssKiB)
	}
	t.Logf("soak %v: goroutines %d -> %d (peak %d), fds %d -> %d (peak %d), RSS %d -> %d KiB (peak %d)",
		soak, first.goroutines, last.goroutines, peak.goroutines, first.fds, last.fds, peak.fds, first.rssKiB, last.rssKiB, peak.rssKiB)
	if last.goroutines > first.goroutines+20 || last.fds > first.fds+10 || last.rssKiB > first.rssKiB*3/2+8<<10 {
		t.Errorf("resources grew while idling: %+v -> %+v", first, last)
	}
}
