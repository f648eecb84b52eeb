package e2e

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/config"
)

// TestConntrackSizing: routerd, as on the appliance in the machine's own
// network namespace, sizes the conntrack table (from the machine's memory,
// or firewall.max_connections), never lowers the kernel's limit, and warns
// in status, /metrics and the log when the fullest namespace's table passes
// 80% of the capacity.
func TestConntrackSizing(t *testing.T) {
	if lab.RequireOwnMachine(t) || lab.RequireKernel(t, "nf_conntrack") {
		return
	}
	lab.Require(t, "dnsmasq", "nsenter", "curl")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	r := l.NewRouterInInitNS(isp)
	lan := r.AddLAN()
	c := lan.AddClient()
	src, _ := c.SetStatic(50)
	mem := memTotal(t)
	capacity := config.MaxConnectionsFor(mem)
	before := procInt(t, "/proc/sys/net/netfilter/nf_conntrack_max")
	cfg := r.Config(lab.ConfigOptions{NoDHCP: true, Metrics: "192.168.11.1:9100"})
	rd := r.StartRouterd(cfg)

	t.Run("sized from memory", func(t *testing.T) {
		want := max(before, capacity)
		ct := mustStatus(t, rd).Firewall.Conntrack
		if ct == nil || ct.Capacity != capacity || ct.Max != want || ct.NotApplied != "" {
			t.Fatalf("conntrack %+v, want capacity %d (for %d MiB), kernel max %d, applied", ct, capacity, mem>>20, want)
		}
		if got := procInt(t, "/proc/sys/net/netfilter/nf_conntrack_max"); got != want {
			t.Errorf("nf_conntrack_max is %d, want %d", got, want)
		}
		if before < capacity {
			if got := procInt(t, "/proc/sys/net/netfilter/nf_conntrack_buckets"); got < capacity/4 {
				t.Errorf("nf_conntrack_buckets %d, want at least a quarter of %d", got, capacity)
			}
		}
		t.Logf("%d MiB: capacity %d (nf_conntrack_max was %d)", mem>>20, capacity, before)
	})

	t.Run("filling up warns", func(t *testing.T) {
		r.WriteConfig(cfg + "\n[firewall]\nmax_connections = 64\n")
		if _, err := rd.Ctl("reload"); err != nil {
			t.Fatal(err)
		}
		kernelMax := procInt(t, "/proc/sys/net/netfilter/nf_conntrack_max")
		// Under TCG the 52 flows take about as long as a UDP entry lives
		// (30 s): the first would be gone before the count. Longer
		// timeouts for the test, in both namespaces, put back after.
		for _, ns := range []string{"", l.Prefix + "-wan"} {
			for _, key := range []string{"nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"} {
				get := []string{"sysctl", "-n", "net.netfilter." + key}
				if ns != "" {
					get = append([]string{"ip", "netns", "exec", ns}, get...)
				}
				old, err := exec.Command(get[0], get[1:]...).Output()
				if err != nil {
					t.Fatalf("%v: %v", get, err)
				}
				set := func(v string) []string {
					a := []string{"sysctl", "-qw", "net.netfilter." + key + "=" + v}
					if ns != "" {
						a = append([]string{"ip", "netns", "exec", ns}, a...)
					}
					return a
				}
				if out, err := exec.Command(set("600")[0], set("600")[1:]...).CombinedOutput(); err != nil {
					t.Fatalf("%v: %s", err, out)
				}
				back := set(strings.TrimSpace(string(old)))
				t.Cleanup(func() { exec.Command(back[0], back[1:]...).Run() })
			}
		}
		// 52 flows from distinct ports, each tracked in the main and the
		// wan namespace: over 80% of 64, with room left for the box's
		// own few connections (at 64 the kernel evicts an unreplied
		// entry to make room, and a flow goes missing from the count).
		// The sockets stay open until the count: closed, the kernel could
		// give the next one the same port (about one run in twenty for
		// 52), and two asks would be one flow.
		echo := netip.AddrPortFrom(lab.Echo4, uint16(lab.EchoUDP))
		for i := range 52 {
			conn, err := udpFrom(c.NS, src)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			if _, err := askOn(conn, echo); err != nil {
				t.Fatalf("flow %d: %v", i, err)
			}
		}
		st := mustStatus(t, rd)
		ct := st.Firewall.Conntrack
		if ct.Capacity != 64 || ct.Limit != 64 || ct.Count < 52 || ct.Fill < 0.8 || ct.Namespaces["main"] < 52 || ct.Namespaces["wan"] < 52 {
			t.Errorf("conntrack %+v, want at least 52 of 64 in main and wan", ct)
		}
		if ct.Max != kernelMax || kernelMax < capacity {
			t.Errorf("kernel max %d (status %d): a smaller capacity must not lower it", kernelMax, ct.Max)
		}
		if len(st.Firewall.Warnings) == 0 || !strings.Contains(st.Firewall.Warnings[0], "conntrack table") {
			t.Errorf("status warnings %q, want the conntrack table's fill", st.Firewall.Warnings)
		}
		if text, _ := rd.Ctl("status"); !regexp.MustCompile(`(?m)^WARNING\s+conntrack table \d+% full`).MatchString(text) {
			t.Errorf("routerctl status does not warn:\n%s", text)
		}
		metrics := c.NS.MustRun("curl", "-sS", "http://192.168.11.1:9100/metrics")
		fill := regexp.MustCompile(`(?m)^routerd_conntrack_fill_ratio (\S+)$`).FindStringSubmatch(metrics)
		if fill == nil || parseFloat(fill[1]) < 0.8 || !regexp.MustCompile(`(?m)^routerd_conntrack_entries\{namespace="wan"\} [1-9]`).MatchString(metrics) {
			t.Errorf("metrics: %s", grepLines(metrics, "conntrack"))
		}
		l.Eventually(15*time.Second, "the warning in the log", func() error {
			if !strings.Contains(rd.Proc.Log.String(), "conntrack table filling up") {
				return fmt.Errorf("not yet")
			}
			return nil
		})
	})
}

func procInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// memTotal is the machine's memory as /proc/meminfo says.
func memTotal(t *testing.T) uint64 {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb uint64
		if _, err := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}
