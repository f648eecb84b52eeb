package bench

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// BenchmarkDNSSEC compares routerd validating (dns.dnssec) with unbound
// validating ("validator iterator", as seed 003 runs it), each in turn on
// the router's LAN address, both trusting the lab's test. anchor and
// forwarding to the ISP's nsd (zones signed by ldns-signzone): validated
// misses per second (a fresh name of a signed zone each time, each with a
// signature of its own to check) and CPU time per validated miss, and the
// same for validated cache hits.
func BenchmarkDNSSEC(b *testing.B) {
	lab.Require(b, "dnsperf", "unbound", "nsd", "ldns-keygen", "ldns-signzone", "nsenter")
	l := lab.New(b)
	isp := l.NewISP(lab.ISPOptions{})
	_, anchor := isp.ServeSigned(100000)
	anchors := filepath.Join(l.Dir, "anchors.ds")
	os.WriteFile(anchors, []byte(anchor), 0o644)
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	c := lan.AddClient()
	c.SetStatic(50)
	gw := lan.Router4().Addr()

	hits := namesFile(b, l.Dir, "hits.txt", "h%d.wild.secure.test", 100)
	misses := namesFile(b, l.Dir, "misses.txt", "m%d.many.test", 100000)

	results := map[string]float64{}
	measure := func(name string, pid int) {
		waitValidated(b, c, gw)
		loads(b, c, gw, pid, hits, misses, name, results)
		results[name+"_rss_mb"] = rssMB(pid)
	}

	rd := r.StartRouterd(r.Config(lab.ConfigOptions{Upstreams: []string{lab.Auth4.String() + ":53"}, NoDHCP: true,
		DNSExtra: fmt.Sprintf("dnssec = true\ntrust_anchors = %q\n", anchors)}))
	measure("routerd", rd.Proc.Cmd.Process.Pid)
	rd.Proc.Stop()

	for _, threads := range []int{1, 2} {
		ub := startUnbound(b, r, l.Dir, gw, threads, fmt.Sprintf(`  trust-anchor-file: %q
  aggressive-nsec: yes
  local-zone: "test." nodefault
  module-config: "validator iterator"
remote-control:
  control-enable: no
forward-zone:
  name: "test."
  forward-addr: %s
`, anchors, lab.Auth4))
		name := fmt.Sprintf("unbound%dt", threads)
		measure(name, ub.Cmd.Process.Pid)
		ub.Stop()
	}
	best := "unbound1t"
	if results["unbound2t_miss_qps"] > results["unbound1t_miss_qps"] {
		best = "unbound2t"
	}
	b.Logf("unbound compared at its best here: %s", best)
	for k, v := range results {
		b.ReportMetric(v, k)
	}
	b.ReportMetric(results["routerd_miss_qps"]/results[best+"_miss_qps"], "miss_ratio_vs_unbound")
	b.ReportMetric(results["routerd_miss_cpu_us"]/results[best+"_miss_cpu_us"], "miss_cpu_ratio_vs_unbound")
	b.ReportMetric(results["routerd_hit_qps"]/results[best+"_hit_qps"], "hit_ratio_vs_unbound")
	for _, s := range []string{"routerd", "unbound1t", "unbound2t"} {
		b.Logf("%-9s validated hits %7.0f q/s (%4.1f µs CPU each)  validated misses %7.0f q/s (%5.1f µs CPU each)  RSS %.1f MB", s,
			results[s+"_hit_qps"], results[s+"_hit_cpu_us"], results[s+"_miss_qps"], results[s+"_miss_cpu_us"], results[s+"_rss_mb"])
	}
}

// waitValidated waits until the resolver at server answers a name of the
// signed zone with AD set.
func waitValidated(b *testing.B, c *lab.Client, gw netip.Addr) {
	b.Helper()
	err := lab.Poll(30*time.Second, func() error {
		out, err := c.Dig(gw, "+dnssec", "x.wild.secure.test", "A")
		if err != nil {
			return err
		}
		if !strings.Contains(out, " ad;") && !strings.Contains(out, " ad ") {
			return fmt.Errorf("no AD:\n%s", out)
		}
		return nil
	})
	if err != nil {
		b.Fatalf("validating resolver at %s: %v", gw, err)
	}
}
