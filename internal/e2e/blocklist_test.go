package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/blocklist"
)

// rknCSV renders addresses as the registry's CSV does: a date line, then
// "ip;domain;url;org;number;date" rows, several addresses joined by '|'.
func rknCSV(addrs ...string) string {
	var b strings.Builder
	b.WriteString("Updated: 2026-11-22 08:00:00 +0000\n")
	for i, a := range addrs {
		fmt.Fprintf(&b, "%s;site%d.example;http://site%d.example/;Court;%d-2026;2026-01-01\n", a, i, i, i)
	}
	return b.String()
}

// filler is n /24s in 100.64.0.0/10's neighbour 45.0.0.0/8, shifted by
// offset, so that two fillers differ entirely.
func filler(n, offset int) []string {
	var out []string
	for i := range n {
		j := i + offset
		out = append(out, fmt.Sprintf("45.%d.%d.0/24", (j>>8)&0xff, j&0xff))
	}
	return out
}

func listStatus(t *testing.T, a *appliance, name string) blocklist.Status {
	t.Helper()
	st, err := getStatus(a.rd)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blocklists != nil {
		for _, l := range st.Blocklists.Lists {
			if l.Name == name {
				return l
			}
		}
	}
	t.Fatalf("no blocklist %q in status", name)
	return blocklist.Status{}
}

// TestBlocklists: lists served by the ISP force destinations onto a path
// whatever the client's policy; a change applies on refresh without any
// probe ever taking the wrong path; a failed download keeps the last good
// list; a restart with the list server down forces from the saved copy;
// a domain list routes a name's addresses before the client has them.
func TestBlocklists(t *testing.T) {
	var ls *lab.ListServer
	var wanClient, vpnClient *lab.Client
	listed, other, direct := lab.EchoAlt4[0], lab.EchoAlt4[1], lab.Echo4
	setup := func(a *appliance) {
		ls = a.isp.ServeLists()
		ls.Set("rkn.csv", rknCSV(append(filler(2000, 0), listed.String()+" | "+listed.String())...))
		ls.Set("direct.txt", "# banks\n"+direct.String()+"\n")
		ls.Set("names.txt", "www.blocked.example\n")
		wanClient, vpnClient = a.lan.AddClient(), a.lan.AddClient()
		wanClient.SetStatic(50)
		vpnClient.SetStatic(60)
	}
	extra := fmt.Sprintf(`
[[routing.policy]]
name = "to-vpn"
sources = ["192.168.11.60"]
via = "vpn"

[[blocklist]]
name = "rkn"
url = %q
format = "rkn-csv"
via = "vpn"

[[blocklist]]
name = "direct"
url = %q
via = "wan"

[[blocklist]]
name = "names"
url = %q
format = "domains"
via = "vpn"
`, lab.ListURL("rkn.csv"), lab.ListURL("direct.txt"), lab.ListURL("names.txt"))
	a := newAppliance(t, lab.ConfigOptions{NoDHCP: true, Default: "wan", Metrics: "192.168.11.1:9100"}, extra, setup)
	wan, vpn := a.wan.String(), lab.VPNPublic4.Addr().String()
	a.l.Eventually(30*time.Second, "every list downloaded", func() error {
		for _, n := range []string{"rkn", "direct", "names"} {
			if l := listStatus(t, a, n); l.LastSuccess.IsZero() || l.LastResult != "updated" {
				return fmt.Errorf("%s: %+v", n, l)
			}
		}
		return nil
	})
	if l := listStatus(t, a, "rkn"); l.Lines != 2001 || l.Prefixes4 != 2 || l.Format != "rkn-csv" {
		t.Errorf("rkn status: %d lines, %d v4 prefixes, format %s; want 2001 lines merged into 2 prefixes, rkn-csv",
			l.Lines, l.Prefixes4, l.Format)
	}

	paths := func(when string, want map[*lab.Client]map[netip.Addr]string) {
		t.Helper()
		for c, dsts := range want {
			for dst, path := range dsts {
				if got := a.echo(t, c, dst, 80); got != path {
					t.Errorf("%s: %s to %s seen as %s, want %s", when, c.NS.Name, dst, got, path)
				}
			}
		}
	}
	paths("initial lists", map[*lab.Client]map[netip.Addr]string{
		wanClient: {listed: vpn, other: wan, direct: wan},
		vpnClient: {listed: vpn, other: vpn, direct: wan},
	})

	st, err := getStatus(a.rd)
	if err != nil {
		t.Fatal(err)
	}
	if c := counters(st, "lists"); c["forced_vpn"] == 0 || c["forced_wan"] == 0 {
		t.Errorf("lists counters %v, want both paths forced at least once", c)
	}
	var text strings.Builder
	if err := st.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Blocklists", "rkn", "forced_vpn"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, text.String())
		}
	}

	t.Run("metrics", func(t *testing.T) {
		out, err := wanClient.NS.Run("curl", "-sS", "--max-time", "5", "http://192.168.11.1:9100/metrics")
		if err != nil {
			t.Fatalf("scrape from the LAN: %v\n%s", err, out)
		}
		for _, want := range []string{
			"# TYPE routerd_component_up gauge\nrouterd_component_up{component=\"netns\"} 1\n",
			`routerd_blocklist_prefixes{list="rkn",family="v4"} 2`,
			`routerd_nft_packets_total{table="lists",counter="forced_vpn"}`,
			`routerd_vpn_up 1`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("metrics lack %q:\n%s", want, out)
			}
		}
		// Every family is one group: no TYPE line twice.
		seen := map[string]bool{}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "# TYPE ") {
				if seen[line] {
					t.Errorf("family split: %s", line)
				}
				seen[line] = true
			}
		}
	})

	t.Run("refresh switches paths", func(t *testing.T) {
		ls.Set("rkn.csv", rknCSV(append(filler(2000, 0), other.String())...))
		if out, err := a.rd.Ctl("blocklist", "refresh", "rkn"); err != nil || !strings.Contains(out, "updated") {
			t.Fatalf("refresh: %v\n%s", err, out)
		}
		paths("after refresh", map[*lab.Client]map[netip.Addr]string{wanClient: {listed: wan, other: vpn}})
	})

	t.Run("no wrong path during a refresh", func(t *testing.T) {
		// Every filler prefix changes; the probed destination stays listed.
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var mu sync.Mutex
		var probes int
		var wrong []string
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := wanClient.Echo(other, 80)
				mu.Lock()
				probes++
				if err != nil || got != vpn {
					wrong = append(wrong, fmt.Sprintf("%q (%v)", got, err))
				}
				mu.Unlock()
			}
		}()
		// Refresh with ever new lists until enough probes ran across them.
		refreshes := 0
		deadline := time.Now().Add(60 * time.Second)
		for refreshes < 3 || (func() bool { mu.Lock(); defer mu.Unlock(); return probes < 30 })() {
			if time.Now().After(deadline) {
				t.Fatalf("only %d probes in %d refreshes", probes, refreshes)
			}
			refreshes++
			ls.Set("rkn.csv", rknCSV(append(filler(20000, 20000*refreshes), other.String())...))
			if out, err := a.rd.Ctl("blocklist", "refresh", "rkn"); err != nil || !strings.Contains(out, "updated") {
				t.Errorf("refresh %d: %v\n%s", refreshes, err, out)
			}
		}
		close(stop)
		wg.Wait()
		if len(wrong) > 0 || probes == 0 {
			t.Errorf("%d of %d probes took the wrong path: %v", len(wrong), probes, wrong)
		}
		t.Logf("%d probes through %d refreshes of 20000 changed entries, all via the VPN", probes, refreshes)
	})

	t.Run("failed download keeps the list", func(t *testing.T) {
		ls.Fail(503)
		out, err := a.rd.Ctl("blocklist", "refresh", "rkn")
		if err != nil || !strings.Contains(out, "kept last good copy") || !strings.Contains(out, "503") {
			t.Errorf("refresh against a failing server: %v\n%s", err, out)
		}
		ls.Fail(0)
		ls.Set("rkn.csv", "<html>maintenance</html>\n<p>back soon</p>\n")
		out, err = a.rd.Ctl("blocklist", "refresh", "rkn")
		if err != nil || !strings.Contains(out, "garbage") {
			t.Errorf("refresh of garbage: %v\n%s", err, out)
		}
		paths("after failed refreshes", map[*lab.Client]map[netip.Addr]string{wanClient: {other: vpn, listed: wan}})
	})

	t.Run("restart offline forces from the saved list", func(t *testing.T) {
		a.rd.Proc.Stop()
		// As after a reboot: the kernel's sets are gone.
		a.r.NS.MustRun("nft", "delete", "table", "inet", "routerd_lists")
		ls.Fail(503)
		hits := ls.Hits()
		a.rd.Start()
		l := listStatus(t, a, "rkn")
		if l.Prefixes4 == 0 || l.LastSuccess.IsZero() {
			t.Errorf("after restart: %+v, want the saved list loaded", l)
		}
		out := a.r.NS.MustRun("nft", "list", "set", "inet", "routerd_lists", "vpn4")
		if !strings.Contains(out, other.String()) {
			t.Errorf("after restart the vpn4 set lacks %s:\n%.400s", other, out)
		}
		paths("restarted offline", map[*lab.Client]map[netip.Addr]string{wanClient: {other: vpn}})
		a.l.Eventually(20*time.Second, "the failed download in status", func() error {
			if l := listStatus(t, a, "rkn"); !strings.Contains(l.LastError, "503") || ls.Hits() == hits {
				return fmt.Errorf("rkn: %+v", l)
			}
			return nil
		})
		ls.Fail(0)
	})

	t.Run("domain list", func(t *testing.T) {
		// cdn.blocked.example is a CNAME for the listed www.blocked.example.
		out, err := wanClient.Dig(a.lan.Router4().Addr(), "+short", "cdn.blocked.example", "A")
		if err != nil || !strings.Contains(out, lab.EchoAlt4[2].String()) {
			t.Fatalf("dig: %v\n%s", err, out)
		}
		// No waiting: the address must be in the set by the time dig has it.
		set := a.r.NS.MustRun("nft", "list", "set", "inet", "routerd_lists", "vpn4_dns")
		if !strings.Contains(set, lab.EchoAlt4[2].String()+" timeout 1h") {
			t.Errorf("vpn4_dns after dig:\n%s", set)
		}
		paths("domain list", map[*lab.Client]map[netip.Addr]string{wanClient: {lab.EchoAlt4[2]: vpn}})
	})

	t.Run("a domain added to a list is routed from the cache at once", func(t *testing.T) {
		inSet := func() bool {
			return strings.Contains(a.r.NS.MustRun("nft", "list", "set", "inet", "routerd_lists", "vpn4_dns"), lab.CachedName4.String())
		}
		dig := func() {
			t.Helper()
			if out, err := wanClient.Dig(a.lan.Router4().Addr(), "+short", "cached.example", "A"); err != nil || !strings.Contains(out, lab.CachedName4.String()) {
				t.Fatalf("dig cached.example: %v\n%s", err, out)
			}
		}
		dig() // not listed yet: cached, not routed
		if inSet() {
			t.Fatal("cached.example routed before any list names it")
		}
		ls.Set("names.txt", "www.blocked.example\ncached.example\n")
		if out, err := a.rd.Ctl("blocklist", "refresh", "names"); err != nil {
			t.Fatalf("refresh: %v\n%s", err, out)
		}
		dig() // from the cache: the client's answer has not expired
		if !inSet() {
			t.Error("a cached answer for a newly listed domain was not routed")
		}
		if n := strings.Count(a.isp.DNSLog(), "query[a] cached.example"); n != 1 {
			t.Errorf("the ISP was asked %d times, want 1 (the second answer came from the cache)", n)
		}
	})
}
