package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// BenchmarkDNSTail measures the tail of cache-hit latency from a LAN
// client, as a household sees it: routerd as users run it (its firewall,
// DHCP, a DNS block list) against unbound at its better of one and two
// threads, dnsperf at a fixed rate (2000 and 20,000 q/s) for
// ROUTERD_TAIL_SECS (30) seconds, ROUTERD_TAIL_REPS (5) times, taking
// turns; each round trip as dnsperf -v reports it. Then routerd's tail at
// 2000 q/s while it does other work: its DNS block list refreshed every
// second (a new list each time), and a DHCP burst (perfdhcp at 200
// exchanges/s). Medians of the repetitions, with their spread.
func BenchmarkDNSTail(b *testing.B) {
	lab.Require(b, "dnsperf", "unbound", "perfdhcp", "nsenter")
	secs, reps := envInt("ROUTERD_TAIL_SECS", 30), envInt("ROUTERD_TAIL_REPS", 5)
	d := newDNSLab(b)
	// A block list of 200,000 names, rewritten before each refresh.
	blockFile := filepath.Join(d.l.Dir, "block.txt")
	lists := []string{blockFile + ".0", blockFile + ".1"}
	writeBlockList(b, lists[0], 0)
	writeBlockList(b, lists[1], 1)
	if err := os.Link(lists[0], blockFile); err != nil {
		b.Fatal(err)
	}
	routerdCfg := d.r.Config(lab.ConfigOptions{Upstreams: []string{d.upstream + ":53"}, Pool4: [2]int{20, 250},
		Extra: fmt.Sprintf("[[dns.block]]\nname = \"ads\"\nfile = %q\nformat = \"hosts\"\n", blockFile)})
	var rd *lab.Routerd // the one running
	servers := []struct {
		name  string
		start func() *lab.Proc
	}{
		{"routerd", func() *lab.Proc { rd = d.r.StartRouterd(routerdCfg); return rd.Proc }},
		{"unbound1t", d.unbound(1)},
		{"unbound2t", d.unbound(2)},
	}
	type key struct{ server, load string }
	tails := map[key][]tail{}
	measure := func(start func() *lab.Proc, qps int, disturb func(ctx context.Context)) tail {
		p := start()
		defer p.Stop()
		waitDNS(b, d.c, d.gw)
		runDNSPerf(b, d.c, d.gw, d.hits, 2) // the cache warm, the CPUs awake
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		if disturb != nil {
			go func() { defer close(done); disturb(ctx) }()
		} else {
			close(done)
		}
		if path := os.Getenv("ROUTERD_TAIL_TRACE"); path != "" && rd != nil && p == rd.Proc {
			// An execution trace of routerd during the run's first
			// seconds: go tool trace -pprof=sched FILE shows where its
			// goroutines waited for a CPU.
			go saveTrace(d.r.Sock, fmt.Sprintf("%s.%d", path, qps), min(secs, 10))
		}
		gcBefore := strings.Count(p.Log.String(), "\ngc ")
		t := hitTail(b, d.c, d.gw.String(), d.hits, qps, secs)
		t.gcs = strings.Count(p.Log.String(), "\ngc ") - gcBefore // with GODEBUG=gctrace=1 in the environment
		cancel()
		<-done
		return t
	}
	// For a closer look at one case: ROUTERD_TAIL_ONLY=routerd (or a
	// peer) and ROUTERD_TAIL_RATES=2000 narrow the runs; the disturbed runs
	// are routerd's.
	only, rates := os.Getenv("ROUTERD_TAIL_ONLY"), []int{2000, 20000}
	if v := envInt("ROUTERD_TAIL_RATES", 0); v > 0 {
		rates = []int{v}
	}
	for rep := range reps {
		for _, qps := range rates {
			for _, s := range servers {
				if only != "" && s.name != only {
					continue
				}
				t := measure(s.start, qps, nil)
				tails[key{s.name, strconv.Itoa(qps)}] = append(tails[key{s.name, strconv.Itoa(qps)}], t)
				if testing.Verbose() { // each run (-test.v; a benchmark's log is cut at ten lines)
					b.Logf("rep %d %-9s %5d q/s: %s", rep, s.name, qps, t)
				}
			}
		}
		if only != "" && only != "routerd" || os.Getenv("ROUTERD_TAIL_QUIET") != "" {
			continue
		}
		n := 0
		refresh := func(ctx context.Context) {
			// A refresh a second, each a new list (two prepared ones
			// taking turns, so that making them costs nothing here).
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				n++
				if err := os.Link(lists[n%2], blockFile+".new"); err != nil {
					b.Error(err)
					return
				}
				if err := os.Rename(blockFile+".new", blockFile); err != nil {
					b.Error(err)
					return
				}
				if out, err := rd.Ctl("blocklist", "refresh", "ads"); err != nil && ctx.Err() == nil {
					b.Errorf("blocklist refresh: %v\n%s", err, out)
					return
				}
			}
		}
		t := measure(servers[0].start, 2000, refresh)
		tails[key{"routerd", "refresh"}] = append(tails[key{"routerd", "refresh"}], t)
		if testing.Verbose() {
			b.Logf("rep %d routerd    2000 q/s, block list refreshed %d times: %s", rep, n, t)
		}
		burst := func(ctx context.Context) {
			_, _ = d.load.NS.RunContext(ctx, "perfdhcp", "-4", "-l", "eth0", "-r", "200", "-R", "5000", "-p", strconv.Itoa(secs), d.gw.String())
		}
		t = measure(servers[0].start, 2000, burst)
		tails[key{"routerd", "dhcp"}] = append(tails[key{"routerd", "dhcp"}], t)
		if testing.Verbose() {
			b.Logf("rep %d routerd    2000 q/s, DHCP burst: %s", rep, t)
		}
	}
	for _, load := range []string{"2000", "20000", "refresh", "dhcp"} {
		for _, s := range []string{"routerd", "unbound1t", "unbound2t"} {
			ts := tails[key{s, load}]
			if len(ts) == 0 {
				continue
			}
			m := medianTail(ts)
			b.Logf("%-8s %-9s median of %d: %s (p99 %s, p99.9 %s)", load, s, len(ts), m, spread(ts, func(t tail) time.Duration { return t.p99 }),
				spread(ts, func(t tail) time.Duration { return t.p999 }))
			for _, q := range []struct {
				name string
				v    time.Duration
			}{{"p50", m.p50}, {"p99", m.p99}, {"p999", m.p999}, {"max", m.max}} {
				b.ReportMetric(float64(q.v.Microseconds()), s+"_"+load+"_"+q.name+"_us")
			}
		}
	}
	for _, load := range []string{"2000", "20000"} {
		if len(tails[key{"routerd", load}]) == 0 || len(tails[key{"unbound1t", load}]) == 0 || len(tails[key{"unbound2t", load}]) == 0 {
			continue // narrowed by ROUTERD_TAIL_ONLY or _RATES
		}
		u1, u2 := medianTail(tails[key{"unbound1t", load}]), medianTail(tails[key{"unbound2t", load}])
		r := medianTail(tails[key{"routerd", load}])
		b.ReportMetric(float64(r.p99)/float64(min(u1.p99, u2.p99)), "p99_ratio_"+load)
		b.ReportMetric(float64(r.p999)/float64(min(u1.p999, u2.p999)), "p999_ratio_"+load)
	}
}

// tail is one run's latency distribution.
type tail struct {
	n                   int
	lost                int
	gcs                 int // garbage collections meanwhile (GODEBUG=gctrace=1), else 0
	p50, p99, p999, max time.Duration
}

func (t tail) String() string {
	s := fmt.Sprintf("%d answers (%d lost), p50 %s p99 %s p99.9 %s max %s", t.n, t.lost, us(t.p50), us(t.p99), us(t.p999), us(t.max))
	if t.gcs > 0 {
		s += fmt.Sprintf(", %d GCs", t.gcs)
	}
	return s
}

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d.Nanoseconds())/1000) }

// hitTail runs dnsperf at qps for secs with every round trip reported
// (-v) and returns their distribution.
func hitTail(b *testing.B, c *lab.Client, server, file string, qps, secs int) tail {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+60)*time.Second)
	defer cancel()
	out, err := c.NS.RunContext(ctx, "dnsperf", "-s", server, "-d", file, "-l", strconv.Itoa(secs), "-Q", strconv.Itoa(qps),
		"-c", "4", "-T", "2", "-q", "2000", "-v")
	var rtts []time.Duration
	lost := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 5 && f[0] == ">":
			s, err := strconv.ParseFloat(f[4], 64)
			if err == nil {
				rtts = append(rtts, time.Duration(s*float64(time.Second)))
			}
		case strings.HasPrefix(sc.Text(), "[Timeout]"):
			lost++
		}
	}
	if len(rtts) < qps*secs/2 {
		b.Fatalf("dnsperf: %d answers of %d: %v\n%.2000s", len(rtts), qps*secs, err, out)
	}
	slices.Sort(rtts)
	at := func(q float64) time.Duration { return rtts[min(len(rtts)-1, int(math.Ceil(q*float64(len(rtts))))-1)] }
	return tail{n: len(rtts), lost: lost, p50: at(0.5), p99: at(0.99), p999: at(0.999), max: rtts[len(rtts)-1]}
}

// medianTail is each quantile's median over the runs.
func medianTail(ts []tail) tail {
	med := func(f func(tail) time.Duration) time.Duration {
		v := make([]time.Duration, len(ts))
		for i, t := range ts {
			v[i] = f(t)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return tail{n: ts[0].n, p50: med(func(t tail) time.Duration { return t.p50 }), p99: med(func(t tail) time.Duration { return t.p99 }),
		p999: med(func(t tail) time.Duration { return t.p999 }), max: med(func(t tail) time.Duration { return t.max })}
}

// spread is the range of one quantile over the runs.
func spread(ts []tail, f func(tail) time.Duration) string {
	lo, hi := f(ts[0]), f(ts[0])
	for _, t := range ts {
		lo, hi = min(lo, f(t)), max(hi, f(t))
	}
	return us(lo) + "–" + us(hi)
}

// writeBlockList writes a hosts-format list of 200,000 names; gen changes
// one name in a hundred, so that every refresh is a new list.
func writeBlockList(b *testing.B, path string, gen int) {
	b.Helper()
	f, err := os.Create(path + ".tmp")
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range 200_000 {
		if i%100 == 0 {
			fmt.Fprintf(w, "0.0.0.0 ad%d-%d.block.example\n", i, gen)
		} else {
			fmt.Fprintf(w, "0.0.0.0 ad%d.block.example\n", i)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	if err := os.Rename(path+".tmp", path); err != nil {
		b.Fatal(err)
	}
}

// saveTrace saves an execution trace of secs seconds from routerd's
// control socket at sock.
func saveTrace(sock, path string, secs int) {
	hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get(fmt.Sprintf("http://routerd/debug/pprof/trace?seconds=%d", secs))
	if err != nil {
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
