package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/status"
)

// TestClients: who is using the line. Two LAN hosts transfer at a paced
// 12 Mbit/s, one uploading by the WAN path and one downloading through the
// tunnel; routerctl clients shows each (named by its DHCP lease) at iperf3's rate (±10%) on its
// path, and their totals since midnight; a restart keeps the totals.
func TestClients(t *testing.T) {
	// With flow offload (the default), the connections' packets skip the
	// forward chain: the counts must come from where they still pass.
	if lab.RequireKernel(t, "wireguard", "nf_flow_table", "nf_flow_table_inet", "nft_flow_offload") {
		return
	}
	lab.Require(t, "iperf3")
	var up, down *lab.Client
	var upAddr, downAddr netip.Addr
	a := newApplianceOn(t, true, lab.ConfigOptions{Default: "wan"}, `
[[routing.policy]]
name = "down-vpn"
sources = ["02:42:ac:01:01:02"]
via = "vpn"
`, func(a *appliance) {
		up, down = a.lan.AddClient(), a.lan.AddClient()
		downAddr, _ = down.SetStatic(61)
	})
	// The uploading host takes a lease: routerctl clients names it by it.
	l, err := up.UDHCPC("laptop")
	if err != nil {
		t.Fatalf("udhcpc: %v", err)
	}
	upAddr = l.IP
	a.isp.NS.StartIperf3(5201)
	a.isp.NS.StartIperf3(5202)

	clients := func() status.Clients {
		t.Helper()
		out, err := a.rd.Ctl("clients", "--json")
		var cl status.Clients
		if err != nil || json.Unmarshal([]byte(out), &cl) != nil {
			t.Fatalf("routerctl clients --json: %v: %s", err, out)
		}
		return cl
	}
	find := func(cl status.Clients, addr netip.Addr) *status.ClientUsage {
		for i, h := range cl.Hosts {
			for _, s := range h.Addresses {
				if s == addr.String() {
					return &cl.Hosts[i]
				}
			}
		}
		return nil
	}

	const secs, rate = 16, 12e6
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// routerctl clients -f --json meanwhile: a table every 2 s, each rate
	// the last 3 s.
	type sample struct {
		at time.Time
		cl status.Clients
	}
	var samples []sample
	var smu sync.Mutex
	follow, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	followed := make(chan error, 1)
	go func() {
		followed <- a.rd.CtlLines(follow, func(line string) {
			var cl status.Clients
			if json.Unmarshal([]byte(line), &cl) == nil {
				smu.Lock()
				samples = append(samples, sample{time.Now(), cl})
				smu.Unlock()
			}
		}, "clients", "-f", "--json")
	}()
	start := time.Now()
	var wg sync.WaitGroup
	iperf := map[netip.Addr]float64{}
	var mu sync.Mutex
	for _, r := range []struct {
		c    *lab.Client
		addr netip.Addr
		port int
		args []string
	}{{up, upAddr, 5201, nil}, {down, downAddr, 5202, []string{"-R"}}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bps, err := iperfReceived(ctx, r.c, append([]string{"-p", fmt.Sprint(r.port), "-t", fmt.Sprint(secs), "-b", fmt.Sprintf("%dK", int(rate/1e3))}, r.args...)...)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			iperf[r.addr] = bps
			mu.Unlock()
		}()
	}
	// The flowtable carries both transfers: status counts the offloaded
	// connections (polled while they run).
	offloaded := 0
	for offloaded < 2 && time.Since(start) < (secs-2)*time.Second {
		if st, err := getStatus(a.rd); err == nil && st.Firewall != nil && st.Firewall.Conntrack != nil {
			offloaded = max(offloaded, st.Firewall.Conntrack.Offloaded["main"])
		}
	}
	wg.Wait()
	stopFollow()
	if err := <-followed; err != nil {
		t.Errorf("routerctl clients -f: %v", err)
	}
	if t.Failed() {
		return
	}
	if offloaded < 2 {
		t.Errorf("at most %d connections offloaded in main: the transfers did not take the flowtable", offloaded)
	}
	// The rates from 5 s in (a rate is the last 3 s: the ramp is over) to
	// the transfers' last second.
	var upRates, downRates []float64
	var paths [2]string
	for _, s := range samples {
		if d := s.at.Sub(start); d < 5*time.Second || d > (secs-1)*time.Second {
			continue
		}
		if h := find(s.cl, upAddr); h != nil {
			upRates, paths[0] = append(upRates, h.UpRate), h.Path
		}
		if h := find(s.cl, downAddr); h != nil {
			downRates, paths[1] = append(downRates, h.DownRate), h.Path
		}
	}
	for _, c := range []struct {
		what  string
		addr  netip.Addr
		rates []float64
		path  string
		want  string
	}{{"the uploading host's rate up", upAddr, upRates, paths[0], "wan"}, {"the downloading host's rate down", downAddr, downRates, paths[1], "vpn"}} {
		if len(c.rates) < 3 {
			t.Errorf("%s: %d of routerctl clients' tables during the transfer showed it, want at least 3", c.what, len(c.rates))
			continue
		}
		got, ref := median(c.rates), iperf[c.addr]
		t.Logf("%s: routerctl clients %.1f Mbit/s (median of %d), iperf3 %.1f Mbit/s; path %s", c.what, got/1e6, len(c.rates), ref/1e6, c.path)
		if ref < 0.8*rate || got < 0.9*ref || got > 1.1*ref {
			t.Errorf("%s: %.2f Mbit/s, iperf3 measured %.2f: want within 10%%", c.what, got/1e6, ref/1e6)
		}
		if c.path != c.want {
			t.Errorf("%s: path %q, want %q", c.what, c.path, c.want)
		}
	}
	before := clients()
	u, d := find(before, upAddr), find(before, downAddr)
	minBytes := uint64(0.8 * rate / 8 * secs)
	if u == nil || d == nil || u.UpToday < minBytes || d.DownToday < minBytes {
		t.Fatalf("totals today after %d s at 12 Mbit/s: %+v / %+v, want at least %d bytes each", secs, u, d, minBytes)
	}
	if u.Name != "laptop" || u.Segment != "lan0" {
		t.Errorf("the uploading host: name %q, segment %q; want its lease's \"laptop\" on lan0", u.Name, u.Segment)
	}
	text, _ := a.rd.Ctl("clients")
	t.Logf("routerctl clients:\n%s", text)

	// A restart keeps today's totals.
	a.rd.Restart()
	a.l.Eventually(30*time.Second, "today's totals after a restart", func() error {
		out, err := a.rd.Ctl("clients", "--json")
		if err != nil {
			return err
		}
		var cl status.Clients
		if err := json.Unmarshal([]byte(out), &cl); err != nil {
			return err
		}
		if h := find(cl, upAddr); h == nil || h.UpToday < u.UpToday {
			return fmt.Errorf("the uploading host after the restart: %+v, want at least %d bytes up", h, u.UpToday)
		}
		return nil
	})
}
