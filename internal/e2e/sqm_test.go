package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// The lab's line: a cable modem's rates with a deep buffer in each
// direction (the ISP's tbf), as most home lines are.
const (
	lineDownMbit = 10.0
	lineUpMbit   = 3.0
	lineBufferMs = 600
)

// TestSQM: bufferbloat control on both paths. Two LAN hosts saturate the
// line both ways, one on the WAN path and one through the tunnel, while a
// third pings the ISP by each path. Without [sqm] the line's buffer shows
// as added latency; with it (the same routerd, reloaded) the added latency
// at the 95th percentile stays within 15 ms on both paths with at least
// 85% of the line used (each the median of three rounds), and a host with 16 upload flows gets no more of
// the line than a host with one (per host, seen through NAT and the
// tunnel). routerctl status shows the shapers. DSCP marks and
// [[sqm.class]] (a host, a port) put packets in their tins.
func TestSQM(t *testing.T) {
	if lab.RequireKernelAlone(t, "sch_cake", "ifb", "act_mirred", "cls_matchall", "sch_tbf", "wireguard", "cls_flower", "act_skbedit") {
		return
	}
	lab.Require(t, "iperf3", "ping", "tc")
	var bulkWAN, bulkVPN, probe, classed *lab.Client
	var classedAddr netip.Addr
	extra := fmt.Sprintf(`
[wan.backup]
name = "wan1"
match_mac = %q
ipv4 = "dhcp"
ipv6 = "off"
probe = [%q]
probe_interval = "2s"
probe_up = 2

[[routing.policy]]
name = "bulk-vpn"
sources = [%q]
via = "vpn"

[[routing.policy]]
name = "probe-vpn"
destinations = [%q]
via = "vpn"
`, lab.BackupMAC, lab.Echo4, "02:42:ac:01:01:02", lab.EchoAlt4[0])
	a := newApplianceOn(t, true, lab.ConfigOptions{Default: "wan"}, extra, func(a *appliance) {
		bulkWAN, bulkVPN, probe, classed = a.lan.AddClient(), a.lan.AddClient(), a.lan.AddClient(), a.lan.AddClient()
		for i, c := range []*lab.Client{bulkWAN, bulkVPN, probe} {
			c.SetStatic(50 + i)
		}
		classedAddr, _ = classed.SetStatic(53)
		a.isp.ServeBackup()
		a.r.AddBackupWAN()
		a.isp.ShapeLine(a.r.WANPort, lineDownMbit, lineUpMbit, lineBufferMs)
	})
	for _, port := range []int{5201, 5202, 5203} {
		a.isp.NS.StartLoad(port)
	}
	if got := a.echo(t, bulkVPN, lab.Echo4, 80); got == a.wan.String() {
		t.Fatalf("the VPN host's traffic left by the WAN (%s)", got)
	}

	// The bloat shows in seconds: one short round.
	before := figures(loadOnce(t, a, bulkWAN, bulkVPN, probe, 8, true))
	t.Logf("without [sqm]: %s", before)
	if before.addedWAN < 50*time.Millisecond {
		t.Fatalf("the lab's line is not bloated (%s): the test would prove nothing", before)
	}

	// The shaper at 95% of the line, with the line's own overhead: the
	// ISP's tbf counts each frame's Ethernet header and nothing else (no
	// preamble, gap or FCS, which the "ethernet" preset adds for a real
	// cable).
	cfg := a.cfg + fmt.Sprintf("\n[sqm]\nupload = \"%dkbit\"\ndownload = \"%dkbit\"\noverhead = 14\n", int(lineUpMbit*950), int(lineDownMbit*950)) +
		fmt.Sprintf("\n[[sqm.class]]\ntin = \"bulk\"\nhosts = [%q]\n\n[[sqm.class]]\ntin = \"voice\"\nports = [\"tcp/5203\"]\n", classedAddr) +
		"\n[sqm.backup]\nupload = \"1mbit\"\ndownload = \"4mbit\"\n"
	a.r.WriteConfig(cfg)
	if out, err := a.rd.Ctl("reload"); err != nil {
		t.Fatalf("reload with [sqm]: %v: %s", err, out)
	}
	a.l.Eventually(30*time.Second, "the shapers in status", func() error {
		st, err := getStatus(a.rd)
		if err != nil {
			return err
		}
		if st.SQM == nil || st.SQM.Upload == nil || st.SQM.Download == nil || st.SQM.Error != "" {
			return fmt.Errorf("sqm %+v", st.SQM)
		}
		return nil
	})
	a.waitVPN(t)
	after := loadedLatency(t, "with [sqm]", a, bulkWAN, bulkVPN, probe, 3)
	t.Logf("with [sqm], the three rounds together: %s", after)
	for _, c := range []struct {
		path  string
		added time.Duration
	}{{"WAN", after.addedWAN}, {"VPN", after.addedVPN}} {
		if c.added > 15*time.Millisecond {
			t.Errorf("with [sqm], the %s path's latency under load: +%s at p95, want at most +15ms", c.path, c.added)
		}
	}
	if after.down < 0.85 || after.up < 0.85 {
		t.Errorf("with [sqm], %.0f%% of the line used down and %.0f%% up, want at least 85%%", 100*after.down, 100*after.up)
	}
	// A loaded line is not a dead one: its probes, answered late through
	// the bloated buffer (up to 1.2 s without [sqm]), must not have
	// moved the household to the backup. (When a round waited at most
	// ¾ of a 1 s interval, they did once, and every connection NATed to
	// the primary was cut; TestBackupUplink has answers 2 s late.)
	if st, err := getStatus(a.rd); err != nil {
		t.Error(err)
	} else if f := st.WAN.Failover; f == nil || f.Count != 0 {
		t.Errorf("the loads moved the traffic between uplinks: %+v", f)
	}
	text, _ := a.rd.Ctl("status")
	if !strings.Contains(text, "SQM") || !strings.Contains(text, "best effort:") {
		t.Errorf("routerctl status does not show the shapers' tins:\n%s", text)
	}

	// Per host: 16 upload flows against 1, on different paths.
	shares := uploadShares(t, a, map[*lab.Client]int{bulkWAN: 16, bulkVPN: 1})
	t.Logf("upload shares, 16 flows against 1: %.0f%% / %.0f%%", 100*shares[bulkWAN], 100*shares[bulkVPN])
	for c, s := range shares {
		if s < 0.40 || s > 0.60 {
			t.Errorf("%s got %.0f%% of the upload, want 40-60%% (per host, not per flow)", c.NS.Name, 100*s)
		}
	}

	// Tins: an EF-marked ping (a call's voice) in voice; the classed
	// host's upload in bulk (whatever its marks); an upload to port 5203
	// in voice (a class by port), on the VPN path.
	for _, c := range []struct {
		what, tin string
		min       uint32
		send      func()
	}{
		{"20 echoes marked EF (DSCP 46)", "voice", 20, func() {
			bulkWAN.NS.MustRun("ping", "-n", "-c", "20", "-i", "0.05", "-Q", "0xb8", lab.Echo4.String())
		}},
		{"an upload from the classed host", "bulk", 200, func() {
			classed.NS.MustRun("iperf3", "-c", lab.Echo4.String(), "-p", "5201", "-t", "2")
		}},
		{"an upload to port 5203 through the tunnel", "voice", 200, func() {
			bulkVPN.NS.MustRun("iperf3", "-c", lab.Echo4.String(), "-p", "5203", "-t", "2")
		}},
	} {
		before := tinPackets(t, a, c.tin)
		c.send()
		if got := tinPackets(t, a, c.tin) - before; got < c.min {
			t.Errorf("%s: %d packets in the upload's %s tin, want at least %d", c.what, got, c.tin, c.min)
		} else {
			t.Logf("%s: %d packets in the upload's %s tin", c.what, got, c.tin)
		}
	}

	// The backup uplink's rates ([sqm.backup]) while it carries the
	// traffic, the primary's again after.
	rates := func(what, uplink string, up, down uint64) {
		t.Helper()
		a.l.Eventually(30*time.Second, what, func() error {
			st, err := getStatus(a.rd)
			if err != nil {
				return err
			}
			if q := st.SQM; q == nil || q.Uplink != uplink || q.Upload.Rate != up || q.Download.Rate != down {
				return fmt.Errorf("sqm %+v", q)
			}
			return nil
		})
	}
	a.r.UplinkDown(a.r.WANPort)
	rates("the backup's rates with the primary's cable out", "backup", 1e6, 4e6)
	t.Logf("the cable out: the shapers at [sqm.backup]'s rates")
	a.r.UplinkUp(a.r.WANPort)
	rates("the primary's rates with it back", "primary", uint64(lineUpMbit*950)*1000, uint64(lineDownMbit*950)*1000)
}

// tinPackets is how many packets the upload shaper's tin has sent.
func tinPackets(t *testing.T, a *appliance, tin string) uint32 {
	t.Helper()
	st, err := getStatus(a.rd)
	if err != nil || st.SQM == nil || st.SQM.Upload == nil {
		t.Fatalf("status: %v", err)
	}
	for _, x := range st.SQM.Upload.Tins {
		if x.Name == tin {
			return x.Packets
		}
	}
	t.Fatalf("no tin %q in %+v", tin, st.SQM.Upload.Tins)
	return 0
}

// loaded is a measurement of latency under load.
type loaded struct {
	baseWAN, baseVPN   time.Duration // idle, median
	addedWAN, addedVPN time.Duration // under load, p95 minus idle
	down, up           float64       // share of the line's rate used
}

func (l loaded) String() string {
	return fmt.Sprintf("idle %s / %s, added under load at p95: WAN path +%s, VPN path +%s; line used %.0f%% down, %.0f%% up",
		l.baseWAN.Round(100*time.Microsecond), l.baseVPN.Round(100*time.Microsecond),
		l.addedWAN.Round(100*time.Microsecond), l.addedVPN.Round(100*time.Microsecond), 100*l.down, 100*l.up)
}

// loadRound is what one round of load measured: the echoes' round trips
// idle and under load (after the ramp), and the line's bytes meanwhile.
type loadRound struct {
	idleWAN, idleVPN, wan, vpn []time.Duration
	down, up                   uint64 // bytes
	secs                       float64
}

// figures is the measurement of rounds taken together: the idle medians
// and the p95 under load of all their echoes, the line's use over all
// their time.
func figures(rounds ...loadRound) loaded {
	var all loadRound
	for _, r := range rounds {
		all.idleWAN, all.idleVPN = append(all.idleWAN, r.idleWAN...), append(all.idleVPN, r.idleVPN...)
		all.wan, all.vpn = append(all.wan, r.wan...), append(all.vpn, r.vpn...)
		all.down, all.up, all.secs = all.down+r.down, all.up+r.up, all.secs+r.secs
	}
	l := loaded{baseWAN: quantile(all.idleWAN, 0.5), baseVPN: quantile(all.idleVPN, 0.5)}
	l.addedWAN = quantile(all.wan, 0.95) - l.baseWAN
	l.addedVPN = quantile(all.vpn, 0.95) - l.baseVPN
	if all.secs > 0 {
		l.down = float64(all.down) * 8 / all.secs / (lineDownMbit * 1e6)
		l.up = float64(all.up) * 8 / all.secs / (lineUpMbit * 1e6)
	}
	return l
}

// loadedLatency measures rounds of load and returns them taken together
// (figures), logging each: a longer measurement than one round, whose p95
// one stall of the VM's CPUs (busy forwarding, under TCG) moves less. The
// idle round trips are measured before the first.
func loadedLatency(t *testing.T, what string, a *appliance, bulkWAN, bulkVPN, probe *lab.Client, n int) loaded {
	t.Helper()
	var rounds []loadRound
	for i := range n {
		r := loadOnce(t, a, bulkWAN, bulkVPN, probe, 16, i == 0)
		rounds = append(rounds, r)
		shown := r
		shown.idleWAN, shown.idleVPN = rounds[0].idleWAN, rounds[0].idleVPN
		t.Logf("%s, round %d of %d: %s", what, i+1, n, figures(shown))
	}
	return figures(rounds...)
}

// loadOnce saturates the line both ways from both bulk hosts (iperf3
// --bidir, secs) and pings the ISP from probe by each path meanwhile,
// leaving out the first 3 s (the flows ramping up); with idle, it pings
// both paths before the load too.
func loadOnce(t *testing.T, a *appliance, bulkWAN, bulkVPN, probe *lab.Client, secs int, idle bool) loadRound {
	t.Helper()
	var r loadRound
	if idle {
		r.idleWAN = pings(t, probe, lab.Echo4, 20)
		r.idleVPN = pings(t, probe, lab.EchoAlt4[0], 20)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for c, port := range map[*lab.Client]int{bulkWAN: 5201, bulkVPN: 5202} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			argv := append(slices.Clone(lab.Nice), "iperf3", "-c", lab.Echo4.String(), "-p", fmt.Sprint(port), "-t", fmt.Sprint(secs), "--bidir")
			if out, err := c.NS.RunContext(ctx, argv...); err != nil {
				t.Errorf("iperf3 from %s: %v: %s", c.NS.Name, err, out)
			}
		}()
	}
	// The line's counters 3 s in (the ramp over) and at the end, for the
	// rate it carried: read twice, not every second, because each reading
	// is a process started in the VM, whose CPU the pings would measure.
	type sample struct {
		at       time.Time // the middle of the reading
		down, up uint64
	}
	read := func() sample {
		t0 := time.Now()
		d, u := a.isp.LineBytes(a.r.WANPort)
		return sample{t0.Add(time.Since(t0) / 2), d, u}
	}
	var first sample
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		select {
		case <-time.After(3 * time.Second):
		case <-ctx.Done():
			return
		}
		first = read()
	}()
	var rttWAN, rttVPN []time.Duration
	var pw sync.WaitGroup
	pw.Add(2)
	n := (secs - 3) * 10
	go func() { defer pw.Done(); rttWAN = pings(t, probe, lab.Echo4, n) }()
	go func() { defer pw.Done(); rttVPN = pings(t, probe, lab.EchoAlt4[0], n) }()
	pw.Wait()
	last := read()
	<-sampled
	wg.Wait()
	skip := 30 // 3 s at 10/s
	r.wan, r.vpn = rttWAN[min(skip, len(rttWAN)):], rttVPN[min(skip, len(rttVPN)):]
	if !first.at.IsZero() {
		r.down, r.up, r.secs = last.down-first.down, last.up-first.up, last.at.Sub(first.at).Seconds()
	}
	return r
}

// pings sends n echoes 100 ms apart from c to dst and returns the round
// trips in order; an echo lost counts as a second.
func pings(t *testing.T, c *lab.Client, dst netip.Addr, n int) []time.Duration {
	t.Helper()
	out, _ := c.NS.Run("ping", "-n", "-c", fmt.Sprint(n), "-i", "0.1", "-W", "1", dst.String())
	got := map[int]time.Duration{}
	for _, line := range strings.Split(out, "\n") {
		_, seqs, ok1 := strings.Cut(line, "icmp_seq=")
		_, ms, ok2 := strings.Cut(line, "time=")
		if !ok1 || !ok2 {
			continue
		}
		seq, err1 := strconv.Atoi(strings.Fields(seqs)[0])
		v, err2 := strconv.ParseFloat(strings.Fields(ms)[0], 64)
		if err1 == nil && err2 == nil {
			got[seq] = time.Duration(v * float64(time.Millisecond))
		}
	}
	if len(got) == 0 {
		t.Fatalf("no echo from %s answered from %s:\n%s", dst, c.NS.Name, out)
	}
	rtts := make([]time.Duration, n)
	for i := range rtts {
		rtt, ok := got[i+1]
		if !ok {
			rtt = time.Second
		}
		rtts[i] = rtt
	}
	return rtts
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// uploadShares runs an upload of flows[c] parallel flows from each client
// for 12 s at once and returns each client's share of what arrived.
func uploadShares(t *testing.T, a *appliance, flows map[*lab.Client]int) map[*lab.Client]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var mu sync.Mutex
	got := map[*lab.Client]float64{}
	var wg sync.WaitGroup
	port := 5201
	for c, n := range flows {
		wg.Add(1)
		go func(port int) {
			defer wg.Done()
			bps, err := iperfReceived(ctx, c, "-p", fmt.Sprint(port), "-t", "12", "-P", fmt.Sprint(n))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got[c] = bps
			mu.Unlock()
		}(port)
		port++
	}
	wg.Wait()
	total := 0.0
	for _, v := range got {
		total += v
	}
	shares := map[*lab.Client]float64{}
	for c, v := range got {
		if total > 0 {
			shares[c] = v / total
		}
	}
	return shares
}

// iperfReceived runs iperf3 from c to the ISP's echo host with args and
// returns the rate the receiving end measured (bits/s).
func iperfReceived(ctx context.Context, c *lab.Client, args ...string) (float64, error) {
	argv := append([]string{"iperf3", "-c", lab.Echo4.String(), "-J"}, args...)
	out, err := c.NS.RunContext(ctx, argv...)
	if err != nil {
		return 0, fmt.Errorf("iperf3 from %s: %v: %s", c.NS.Name, err, out)
	}
	res, err := lab.ParseIperf3(out)
	if err == nil && res.End.SumReceived.BitsPerSecond == 0 {
		err = fmt.Errorf("nothing received: %s", out)
	}
	if err != nil {
		return 0, fmt.Errorf("from %s: %w", c.NS.Name, err)
	}
	return res.End.SumReceived.BitsPerSecond, nil
}
