package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// dhcpBench is one LAN: the router's NIC (192.168.11.1) on a switch
// with a load client (perfdhcp, relaying from 192.168.11.2) and a real
// client (udhcpc).
type dhcpBench struct {
	l      *lab.Lab
	r      *lab.Router
	lan    *lab.Switch
	load   *lab.Client
	single *lab.Client
}

func newDHCPBench(b *testing.B) *dhcpBench {
	lab.Require(b, "perfdhcp", "dnsmasq", "udhcpc", "nsenter")
	d := &dhcpBench{l: lab.New(b)}
	d.r = d.l.NewRouter(nil)
	d.lan = d.r.AddLAN()
	d.load, d.single = d.lan.AddClient(), d.lan.AddClient()
	d.load.SetStatic(2)
	return d
}

var reRate = regexp.MustCompile(`Rate: ([0-9.]+) 4-way exchanges/second`)

// rate runs perfdhcp as fast as it can for 5 seconds over 200 clients.
func (d *dhcpBench) rate(b *testing.B) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, _ := d.load.NS.RunContext(ctx, "perfdhcp", "-4", "-l", "eth0", "-R", "200", "-p", "5", d.lan.Router4().Addr().String())
	m := reRate.FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("perfdhcp: no rate in\n%s", out)
	}
	r, _ := strconv.ParseFloat(m[1], 64)
	return r
}

// timeToLease is the median wall time of a real client (udhcpc) getting a
// new lease, over runs with a fresh MAC each.
func (d *dhcpBench) timeToLease(b *testing.B, runs int) time.Duration {
	var ts []time.Duration
	for i := range runs {
		d.single.NS.MustRun("ip", "link", "set", "dev", "eth0", "address", fmt.Sprintf("02:42:bb:00:%02x:%02x", i, time.Now().Nanosecond()%256))
		start := time.Now()
		if _, err := d.single.UDHCPC(""); err != nil {
			b.Fatalf("udhcpc: %v", err)
		}
		ts = append(ts, time.Since(start))
	}
	slices.Sort(ts)
	return ts[len(ts)/2]
}

// BenchmarkDHCPv4 compares routerd with dnsmasq as the LAN's DHCPv4
// server: exchanges per second (perfdhcp, 200 clients, leases on disk in
// both) and a real client's time to a new lease.
func BenchmarkDHCPv4(b *testing.B) {
	d := newDHCPBench(b)

	// dnsmasq on the router's LAN NIC, as a home router would run it.
	d.r.NS.MustRun("ip", "addr", "add", d.lan.Router4().String(), "dev", d.lan.NIC)
	dir := filepath.Join(d.l.Dir, "dnsmasq")
	os.MkdirAll(dir, 0o755)
	args := []string{"dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
		"--pid-file=" + filepath.Join(dir, "pid"), "--dhcp-leasefile=" + filepath.Join(dir, "leases"),
		"--interface=" + d.lan.NIC, "--bind-interfaces", "--dhcp-authoritative",
		"--dhcp-range=192.168.11.10,192.168.11.250,255.255.255.0,12h"}
	results := map[string]float64{}
	for _, mode := range []struct {
		name  string
		extra []string
	}{{"dnsmasq", nil}, {"dnsmasq-no-ping", []string{"--no-ping"}}} {
		p := d.r.NS.Start(mode.name, append(slices.Clone(args), mode.extra...)...)
		lab.Poll(5*time.Second, func() error {
			_, err := os.Stat(filepath.Join(dir, "pid"))
			return err
		})
		// Time to lease before the flood: a backlog would distort it.
		results[mode.name+"_lease_ms"] = float64(d.timeToLease(b, 3).Milliseconds())
		// Throughput without the ping: with it every new client waits 3s
		// and perfdhcp (1s drop time) sees nothing at all.
		if mode.name == "dnsmasq-no-ping" {
			results["dnsmasq_dora/s"] = d.rate(b)
		}
		p.Stop()
		os.Remove(filepath.Join(dir, "pid"))
	}

	// kea, the reference the design sets for throughput, leases on disk
	// (memfile, persist) as in a real deployment.
	if _, err := exec.LookPath("kea-dhcp4"); err == nil {
		kdir := filepath.Join(d.l.Dir, "kea")
		os.MkdirAll(kdir, 0o755)
		conf := fmt.Sprintf(`{"Dhcp4": {
  "interfaces-config": {"interfaces": [%q], "dhcp-socket-type": "raw"},
  "lease-database": {"type": "memfile", "persist": true, "name": %q, "lfc-interval": 0},
  "valid-lifetime": 43200,
  "subnet4": [{"id": 1, "subnet": "192.168.11.0/24", "pools": [{"pool": "192.168.11.10 - 192.168.11.250"}],
               "option-data": [{"name": "routers", "data": "192.168.11.1"}]}],
  "loggers": [{"name": "kea-dhcp4", "severity": "INFO", "output_options": [{"output": "stdout"}]}]
}}`, d.lan.NIC, filepath.Join(kdir, "leases.csv"))
		os.WriteFile(filepath.Join(kdir, "kea.json"), []byte(conf), 0o644)
		k := d.r.NS.Start("kea", "env", "KEA_PIDFILE_DIR="+kdir, "KEA_LOCKFILE_DIR="+kdir, "kea-dhcp4", "-c", filepath.Join(kdir, "kea.json"))
		d.l.Eventually(10*time.Second, "kea started", func() error {
			if !strings.Contains(k.Log.String(), "DHCP4_STARTED") {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		results["kea_lease_ms"] = float64(d.timeToLease(b, 3).Milliseconds())
		results["kea_dora/s"] = d.rate(b)
		k.Stop()
	}
	d.r.NS.MustRun("ip", "addr", "flush", "dev", d.lan.NIC)

	// routerd on the same NIC.
	d.r.StartRouterd(d.r.Config(lab.ConfigOptions{Pool4: [2]int{10, 250}}))
	results["routerd_lease_ms"] = float64(d.timeToLease(b, 3).Milliseconds())
	results["routerd_dora/s"] = d.rate(b)

	for k, v := range results {
		b.ReportMetric(v, k)
	}
	b.ReportMetric(results["routerd_dora/s"]/results["dnsmasq_dora/s"], "rate_ratio_vs_dnsmasq")
	if results["kea_dora/s"] > 0 {
		b.ReportMetric(results["routerd_dora/s"]/results["kea_dora/s"], "rate_ratio_vs_kea")
		b.Logf("DHCPv4: kea %.0f DORA/s (routerd x%.2f), time to lease %.0f ms", results["kea_dora/s"],
			results["routerd_dora/s"]/results["kea_dora/s"], results["kea_lease_ms"])
	}
	b.ReportMetric(results["dnsmasq_lease_ms"]/results["routerd_lease_ms"], "lease_speedup_vs_dnsmasq")
	b.Logf("DHCPv4: routerd %.0f DORA/s vs dnsmasq %.0f (x%.1f); time to lease routerd %.0f ms, dnsmasq %.0f ms (%.0f ms with --no-ping)",
		results["routerd_dora/s"], results["dnsmasq_dora/s"], results["routerd_dora/s"]/results["dnsmasq_dora/s"],
		results["routerd_lease_ms"], results["dnsmasq_lease_ms"], results["dnsmasq-no-ping_lease_ms"])
}
