package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/dns"
	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/blocklist"
)

// blockNames is the size of the DNS block list the benchmark loads: the
// issue's "a 1,000,000-domain list".
const blockNames = 1_000_000

func blockName(i int) string {
	return fmt.Sprintf("ad%d-x%d.tracker%d.example", i, i*7919%100003, i%997)
}

// dnsBlockChild loads the hosts list at BENCH_FILE as routerd does (a
// [[dns.block]] list: parse, save the last good copy, hand the resolver
// its set) and reports the time it took; with BENCH_FILE unset it only
// starts, for the RSS of a routerd without the list.
func dnsBlockChild() error {
	file := os.Getenv("BENCH_FILE")
	blocks := dns.NewBlocklists(nil)
	cfg := blocklist.Config{NS: os.Getenv("BENCH_NS"), Dir: os.Getenv("BENCH_DIR"), LANIfaces: []string{"lan0"}, Mask: 0xff,
		Protect: func() *blocklist.Protected { return blocklist.NewProtected(blocklist.Bogons...) }, Blocks: blocks,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if file != "" {
		cfg.Lists = []blocklist.List{{Name: "ads", File: file, Format: "hosts", Block: true, Refresh: time.Hour, MinRatio: 0.5,
			Timeout: time.Minute, MaxSize: 1 << 30, MaxEntries: 2 * blockNames}}
	}
	ctx := context.Background()
	m := blocklist.New(cfg)
	if err := m.Start(ctx); err != nil {
		return err
	}
	defer m.Stop(ctx)
	res := childResult{}
	if file != "" {
		t0 := time.Now()
		sts, err := m.RefreshNow(ctx, "ads")
		if err != nil {
			return err
		}
		if sts[0].LastResult != "updated" {
			return fmt.Errorf("refresh: %s %s", sts[0].LastResult, sts[0].LastError)
		}
		res["load_ms"] = ms(time.Since(t0))
		res["names"] = float64(sts[0].Domains)
		if _, ok := blocks.Block([]byte(blockName(blockNames-1)), "lan0"); !ok {
			return fmt.Errorf("the last name is not blocked")
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// BenchmarkDNSBlock loads a 1,000,000-name hosts list with routerd's loader
// ([[dns.block]]), with dnsmasq (addn-hosts) and with unbound (a
// local-zone always_nxdomain per name), and reports each one's time until
// the list answers and its peak memory (routerd's as added to a routerd
// without the list). The cache-hit path with the list loaded against
// without it is dns's BenchmarkHitBlocking.
func BenchmarkDNSBlock(b *testing.B) {
	lab.Require(b, "dnsmasq", "unbound", "dig", "nsenter")
	l := lab.New(b)
	hosts, zones := filepath.Join(l.Dir, "hosts.txt"), filepath.Join(l.Dir, "zones.conf")
	hf, _ := os.Create(hosts)
	zf, _ := os.Create(zones)
	hw, zw := bufio.NewWriter(hf), bufio.NewWriter(zf)
	for i := range blockNames {
		n := blockName(i)
		fmt.Fprintf(hw, "0.0.0.0 %s\n", n)
		fmt.Fprintf(zw, "  local-zone: \"%s.\" always_nxdomain\n", n)
	}
	hw.Flush()
	zw.Flush()
	hf.Close()
	zf.Close()
	last := blockName(blockNames - 1)
	res := map[string]float64{}

	ns := l.NewNS("rd")
	child := func(file string) childResult {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=dnsblock", "BENCH_NS="+ns.Name, "BENCH_DIR="+filepath.Join(l.Dir, "state"), "BENCH_FILE="+file)
		wall, rss, out := run(b, cmd)
		cr := childResult{}
		if err := json.Unmarshal(out, &cr); err != nil {
			b.Fatalf("child: %v: %s", err, out)
		}
		cr["wall_ms"], cr["MiB"] = ms(wall), rss
		return cr
	}
	base, loaded := child(""), child(hosts)
	res["routerd_load_ms"], res["routerd_added_MiB"] = loaded["load_ms"], loaded["MiB"]-base["MiB"]

	// The peers: started on loopback in a namespace of their own, timed
	// until they answer the list's last name as listed.
	peer := func(name string, argv []string, want string) (float64, float64) {
		pns := l.NewNS(name)
		pns.MustRun("ip", "link", "set", "lo", "up")
		t0 := time.Now()
		p := pns.Start(name, argv...)
		deadline := time.Now().Add(5 * time.Minute)
		for {
			out, _ := pns.Run("dig", "@127.0.0.1", "-p", "5301", "+time=1", "+tries=1", last)
			if strings.Contains(out, want) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s did not answer %s with %s in 5 minutes:\n%s", name, last, want, out)
			}
			time.Sleep(5 * time.Millisecond) // polling: the load time is known to within this
		}
		wall := time.Since(t0)
		mib := peakMiB(b, p.Cmd.Process.Pid)
		p.Stop()
		return ms(wall), mib
	}
	res["dnsmasq_load_ms"], res["dnsmasq_MiB"] = peer("dnsmasq", []string{"dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--no-resolv", "--no-hosts", "--pid-file=" + filepath.Join(l.Dir, "dm-block.pid"), "--listen-address=127.0.0.1",
		"--bind-interfaces", "--port=5301", "--user=root", "--addn-hosts=" + hosts}, "0.0.0.0")
	conf := filepath.Join(l.Dir, "unbound-block.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("server:\n  interface: 127.0.0.1@5301\n  username: \"\"\n  chroot: \"\"\n  directory: %q\n  pidfile: %q\n  use-syslog: no\n  do-ip6: no\n  include: %q\nremote-control:\n  control-enable: no\n",
		l.Dir, filepath.Join(l.Dir, "unbound-block.pid"), zones)), 0o644)
	res["unbound_load_ms"], res["unbound_MiB"] = peer("unbound", []string{"unbound", "-d", "-c", conf}, "NXDOMAIN")

	for k, v := range res {
		b.ReportMetric(v, k)
	}
	b.ReportMetric(res["routerd_load_ms"]/res["dnsmasq_load_ms"], "load_ratio_vs_dnsmasq")
	b.ReportMetric(res["routerd_load_ms"]/res["unbound_load_ms"], "load_ratio_vs_unbound")
	b.Logf("%d names: routerd loads in %.0f ms, +%.1f MiB; dnsmasq answers after %.0f ms, %.1f MiB; unbound after %.0f ms, %.1f MiB",
		blockNames, res["routerd_load_ms"], res["routerd_added_MiB"], res["dnsmasq_load_ms"], res["dnsmasq_MiB"], res["unbound_load_ms"], res["unbound_MiB"])
}

// peakMiB is a running process's peak resident memory (VmHWM).
func peakMiB(b *testing.B, pid int) float64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatalf("no VmHWM for %d", pid)
	return 0
}
