package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// TestSQMAutorate: the line's rate changes under routerd, as an LTE
// cell's does: 20/5 Mbit/s, then 8/2, then 20/5 again, behind a deep
// buffer. A LAN host saturates both directions throughout and a second
// pings the ISP 10 times a second. With both rates "auto", the added
// latency from 5 s after each change stays within 30 ms at the 95th
// percentile, and the shapers' rates (routerctl status) follow the line
// within 20 s.
func TestSQMAutorate(t *testing.T) {
	if lab.RequireKernelAlone(t, "sch_cake", "ifb", "act_mirred", "cls_matchall", "sch_tbf", "wireguard") {
		return
	}
	lab.Require(t, "iperf3", "ping", "tc")
	const bufferMs = 400
	type line struct{ down, up float64 }
	phases := []line{{20, 5}, {8, 2}, {20, 5}}
	var bulk, probe *lab.Client
	a := newApplianceOn(t, true, lab.ConfigOptions{Default: "wan"}, `
[sqm]
upload = "auto"
upload_min = "1mbit"
upload_max = "8mbit"
download = "auto"
download_min = "4mbit"
download_max = "30mbit"
`, func(a *appliance) {
		bulk, probe = a.lan.AddClient(), a.lan.AddClient()
		bulk.SetStatic(50)
		probe.SetStatic(51)
		a.isp.ShapeLine(a.r.WANPort, phases[0].down, phases[0].up, bufferMs)
	})
	a.isp.NS.StartLoad(5201)
	idle := quantile(pings(t, probe, lab.Echo4, 20), 0.5)

	// The rates, as status shows them, every half second.
	type rates struct {
		at       time.Time
		down, up float64 // Mbit/s
	}
	var mu sync.Mutex
	var seen []rates
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil {
			if st, err := getStatus(a.rd); err == nil && st.SQM != nil && st.SQM.Download != nil && st.SQM.Upload != nil {
				mu.Lock()
				seen = append(seen, rates{time.Now(), float64(st.SQM.Download.Rate) / 1e6, float64(st.SQM.Upload.Rate) / 1e6})
				mu.Unlock()
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
	}()
	latest := func() rates {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return rates{}
		}
		return seen[len(seen)-1]
	}

	// The load, both ways, for the whole test.
	bg.Add(1)
	go func() {
		defer bg.Done()
		out, err := bulk.NS.RunContext(ctx, append(slices.Clone(lab.Nice), "iperf3", "-c", lab.Echo4.String(), "-p", "5201", "-t", "150", "--bidir")...)
		if err != nil && ctx.Err() == nil {
			t.Errorf("iperf3: %v: %s", err, out)
		}
	}()
	defer bg.Wait()
	defer cancel()

	// From autorate's minimum up to the line.
	a.l.Eventually(40*time.Second, "the shapers' rates up to the line", func() error {
		r := latest()
		if r.down < 0.6*phases[0].down || r.up < 0.6*phases[0].up {
			return fmt.Errorf("down %.1f, up %.1f Mbit/s", r.down, r.up)
		}
		return nil
	})
	for i, ph := range phases {
		start := time.Now()
		// The echoes from 5 s after the change to 25 s after it, and
		// the shapers' rates from 20 s after it. The first phase has no
		// change: from 5 s after the rates reached the line, 10 s of
		// echoes, and the rates meanwhile.
		echoes, ratesFrom := 200, start.Add(20*time.Second)
		if i > 0 {
			a.isp.SetLine(a.r.WANPort, ph.down, ph.up, bufferMs)
		} else {
			echoes, ratesFrom = 100, start.Add(5*time.Second)
		}
		sleepUntil(t, start.Add(5*time.Second))
		rtts := pings(t, probe, lab.Echo4, echoes)
		added := quantile(rtts, 0.95) - idle
		lost := 0
		for _, r := range rtts {
			if r >= time.Second {
				lost++
			}
		}
		t.Logf("echoes: idle %s; p50 %s p90 %s, %d of %d lost", idle, quantile(rtts, 0.5), quantile(rtts, 0.9), lost, len(rtts))

		mu.Lock()
		var downs, ups []float64
		for _, r := range seen {
			if r.at.After(ratesFrom) {
				downs, ups = append(downs, r.down), append(ups, r.up)
			}
		}
		mu.Unlock()
		down, up := median(downs), median(ups)
		t.Logf("line %g/%g Mbit/s: added latency %s at p95 (from 5 s after the change, %d echoes); shapers from %s on: %.1f/%.1f Mbit/s",
			ph.down, ph.up, added.Round(100*time.Microsecond), echoes, ratesFrom.Sub(start).Round(time.Second), down, up)
		if added > 30*time.Millisecond {
			t.Errorf("line %g/%g: +%s at p95 from 5 s after the change, want at most +30ms", ph.down, ph.up, added)
		}
		// CAKE counts each packet 98 bytes longer than its IP length
		// (ethernet's 38 and, with a [vpn], WireGuard's 60), the lab's tbf
		// 14: at the line's full use the shaper reads over the line's
		// rate, the more so the more small packets (the download's ACKs
		// go up). A direction whose delay stays low may also sit above
		// what the line carries (busy: 85% of the rate used), harmlessly.
		if down < 0.6*ph.down || down > 1.4*ph.down || up < 0.6*ph.up || up > 1.4*ph.up {
			t.Errorf("line %g/%g: the shapers stood at %.1f/%.1f Mbit/s 20 s after the change, want 60-140%% of the line", ph.down, ph.up, down, up)
		}
	}
	text, _ := a.rd.Ctl("status")
	if !strings.Contains(text, "autorate") || !strings.Contains(text, "reflectors "+lab.ISPDown4.Addr().String()) {
		t.Errorf("routerctl status does not show autorate's adjustments:\n%s", text)
	}

	// A reload (any change to the file restarts every component) applies
	// the shaping again over itself, and autorate resumes where the
	// shapers stood, not at the minimum (4/1 Mbit/s).
	was := latest()
	a.r.WriteConfig(a.cfg + "\n# reloaded\n")
	if out, err := a.rd.Ctl("reload"); err != nil {
		t.Fatalf("reload: %v: %s", err, out)
	}
	st, err := getStatus(a.rd)
	if err != nil || st.SQM == nil || st.SQM.Download == nil || st.SQM.Upload == nil {
		t.Fatalf("status after the reload: %v", err)
	}
	for _, c := range st.Components {
		if c.Name == "sqm" && c.Error != "" {
			t.Errorf("the shaper after a reload: %s", c.Error)
		}
	}
	down, up := float64(st.SQM.Download.Rate)/1e6, float64(st.SQM.Upload.Rate)/1e6
	t.Logf("the shapers before the reload %.1f/%.1f Mbit/s, right after it %.1f/%.1f", was.down, was.up, down, up)
	// Autorate may have cut a rate since (down to half of what the line
	// carried, at worst), never to its minimum from near the line.
	if down < 1.5*4 || up < 1.5*1 {
		t.Errorf("after a reload the shapers at %.1f/%.1f Mbit/s, before it %.1f/%.1f: autorate started again from its minimum", down, up, was.down, was.up)
	}
}

// sleepUntil waits for a measurement window to open (the test's schedule,
// not a wait for something to happen).
func sleepUntil(t *testing.T, at time.Time) {
	t.Helper()
	time.Sleep(time.Until(at))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
