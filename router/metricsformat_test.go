package router

import (
	"bufio"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/router/status"
)

// TestMetricsFormat holds the hand-written exposition to the text format:
// label values escape backslash, quote and line feed only (UTF-8 as it
// is), HELP escapes backslash and line feed, and each family is one group,
// HELP and TYPE before its samples, every sample line well-formed.
func TestMetricsFormat(t *testing.T) {
	m := &metricWriter{families: map[string]*family{}}
	m.emit("x", "gauge", "a help \\ with\na line feed", 1, "name", "a\"b\\c\nd é\tf")
	var b strings.Builder
	m.flush(&b)
	want := "# HELP routerd_x a help \\\\ with\\na line feed\n# TYPE routerd_x gauge\nrouterd_x{name=\"a\\\"b\\\\c\\nd é\tf\"} 1\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}

	st := &status.Status{Uptime: 12.5, Components: []status.Component{{Name: "dns", State: status.Running}, {Name: "wan", State: status.Failed}},
		WAN: &status.WAN{DHCP: &status.DHCP4{State: status.DHCPBound}, PPPoE: &status.PPPoE{State: "up", Reconnects: 2, EchoRTT: 3 * time.Millisecond},
			Failover: &status.Failover{Active: "backup", Count: 1, Uplinks: []status.UplinkHealth{
				{Uplink: "primary", State: "down", Loss: 1}, {Uplink: "backup", State: "up", RTT: 40 * time.Millisecond}}}}}
	b.Reset()
	writeMetrics(st, &b)
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})? [-+0-9.eEInfNa]+$`)
	seen := map[string]bool{}
	cur, typed := "", false
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# HELP "):
			name := strings.Fields(line)[2]
			if seen[name] {
				t.Errorf("line %d: family %s a second time", n, name)
			}
			seen[name], cur, typed = true, name, false
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if f[2] != cur || (f[3] != "gauge" && f[3] != "counter") {
				t.Errorf("line %d: %q after HELP of %s", n, line, cur)
			}
			typed = true
		default:
			mm := sample.FindStringSubmatch(line)
			if mm == nil {
				t.Errorf("line %d: not a sample: %q", n, line)
				continue
			}
			if mm[1] != cur || !typed {
				t.Errorf("line %d: sample of %s in family %s (typed %v)", n, mm[1], cur, typed)
			}
		}
	}
	if !seen["routerd_component_up"] || !strings.Contains(b.String(), `routerd_wan_dhcp_bound 1`) ||
		!strings.Contains(b.String(), "routerd_wan_pppoe_up 1\n") || !strings.Contains(b.String(), `routerd_wan_uplink_active{uplink="backup"} 1`) ||
		!strings.Contains(b.String(), `routerd_wan_uplink_up{uplink="primary"} 0`) || !strings.Contains(b.String(), "routerd_wan_failovers_total 1\n") || !strings.Contains(b.String(), "routerd_wan_pppoe_echo_rtt_seconds 0.003\n") {
		t.Errorf("metrics lack the components or the WAN lease:\n%s", b.String())
	}
}
