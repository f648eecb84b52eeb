package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/status"
)

// TestDNSBlock: ad blocking by DNS for the household. A hosts list (null
// answers, one LAN only) and an adblock list (NXDOMAIN, every LAN, with an
// "@@" exception) are downloaded from the ISP's list server; dns.allow
// passes a listed name; a name whose CNAME leads to a blocked one is
// blocked; the other LAN is not touched by the hosts list. Per-client
// counts (routerctl dns top) and the query log (routerctl dns log) say
// who asked what and what was blocked.
func TestDNSBlock(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "dig")
	l := lab.New(t)
	alt := lab.EchoAlt4[1].String()
	isp := l.NewISP(lab.ISPOptions{Records: map[string]string{
		"ads.example": alt, "allowed.ads.example": alt, "x.tracker.example": alt, "ok.tracker.example": alt}})
	ls := isp.ServeLists()
	ls.Set("hosts.txt", "# a hosts list\n127.0.0.1 localhost\n0.0.0.0 ads.example\n")
	ls.Set("adblock.txt", "[Adblock Plus 2.0]\n! tracking\n||tracker.example^\n@@||ok.tracker.example^\n||www.blocked.example^\nexample.org##.banner\n")
	r := l.NewRouter(isp)
	lan0, lan1 := r.AddLAN(), r.AddLAN()
	c0, c1 := lan0.AddClient(), lan1.AddClient()
	c0addr, _ := c0.SetStatic(50)
	c1.SetStatic(50)
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{NoDHCP: true,
		DNSExtra: "allow = [\"allowed.ads.example\"]\nquery_log = \"1h\"\n",
		Extra: fmt.Sprintf(`
[[dns.block]]
name = "hosts"
url = %q
format = "hosts"
answer = "null"
lans = ["lan0"]

[[dns.block]]
name = "ads"
url = %q
`, lab.ListURL("hosts.txt"), lab.ListURL("adblock.txt"))}))
	waitWANLease(t, l, rd, nil)
	l.Eventually(30*time.Second, "both block lists downloaded", func() error {
		st, err := getStatus(rd)
		if err != nil {
			return err
		}
		n := 0
		for _, b := range st.Blocklists.Lists {
			if b.LastResult == "updated" {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("lists %+v", st.Blocklists.Lists)
		}
		return nil
	})
	gw0, gw1 := lan0.Router4().Addr(), lan1.Router4().Addr()
	for _, tc := range []struct {
		c          *lab.Client
		name, want string
	}{
		{c0, "ads.example", "0.0.0.0"},           // hosts list, answer = "null"
		{c0, "sub.ads.example", "0.0.0.0"},       // an entry covers its subdomains
		{c0, "allowed.ads.example", alt},         // dns.allow
		{c0, "ok.tracker.example", alt},          // the adblock list's @@ exception
		{c0, "echo.example", lab.Echo4.String()}, // not listed
		{c1, "ads.example", alt},                 // the hosts list is lan0's only
	} {
		gw := gw0
		if tc.c == c1 {
			gw = gw1
		}
		if got := strings.Join(digShort(t, tc.c, gw, tc.name), " "); got != tc.want {
			t.Errorf("%s asks %s: %q, want %q", tc.c.NS.Name, tc.name, got, tc.want)
		}
	}
	if got := strings.Join(digShort(t, c0, gw0, "AAAA", "ads.example"), " "); got != "::" {
		t.Errorf("ads.example AAAA: %q, want ::", got)
	}
	for _, tc := range []struct {
		c    *lab.Client
		gw   netip.Addr
		name string
	}{
		{c0, gw0, "x.tracker.example"},
		{c1, gw1, "x.tracker.example"},   // the adblock list is every LAN's
		{c0, gw0, "cdn.blocked.example"}, // a CNAME to www.blocked.example
		{c0, gw0, "cdn.blocked.example"}, // again: the cached chain is checked too
	} {
		out, err := tc.c.Dig(tc.gw, tc.name)
		if err != nil {
			t.Fatalf("dig %s: %v", tc.name, err)
		}
		if !strings.Contains(out, "status: NXDOMAIN") || !strings.Contains(out, "EDE: 15 (Blocked)") {
			t.Errorf("%s asks %s: want NXDOMAIN with EDE 15 (Blocked):\n%s", tc.c.NS.Name, tc.name, out)
		}
	}
	// Blocked names never leave the router (ads.example does, for lan1).
	if log := isp.DNSLog(); strings.Contains(log, "x.tracker.example") || strings.Contains(log, "sub.ads.example") || strings.Contains(log, "query[aaaa] ads.example") {
		t.Errorf("a blocked name was asked upstream:\n%s", log)
	}

	out, err := rd.Ctl("dns", "top", "--json")
	if err != nil {
		t.Fatalf("routerctl dns top: %v\n%s", err, out)
	}
	var top status.DNSTop
	if err := json.Unmarshal([]byte(out), &top); err != nil {
		t.Fatalf("dns top: %v\n%s", err, out)
	}
	var mine *status.DNSClient
	for i := range top.Clients {
		if top.Clients[i].Address == c0addr.String() {
			mine = &top.Clients[i]
		}
	}
	if mine == nil || mine.Blocked != 6 || mine.Queries < 9 {
		t.Errorf("dns top: client %s %+v, want 6 blocked of at least 9 questions (all: %+v)", c0addr, mine, top.Clients)
	}
	counts := map[string]uint64{}
	for _, b := range top.Blocked {
		counts[b.Name] = b.Count
	}
	if counts["ads.example"] != 2 || counts["x.tracker.example"] != 2 || counts["www.blocked.example"] != 2 || counts["sub.ads.example"] != 1 {
		t.Errorf("dns top: blocked names %+v", top.Blocked)
	}
	out, err = rd.Ctl("dns", "log", "--client", c0addr.String())
	if err != nil {
		t.Fatalf("routerctl dns log: %v\n%s", err, out)
	}
	for _, want := range []string{"ads.example. blocked (hosts) NOERROR", "x.tracker.example. blocked (ads) NXDOMAIN", "echo.example. upstream NOERROR"} {
		if !strings.Contains(out, want) {
			t.Errorf("dns log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "192.168.12.") {
		t.Errorf("dns log --client %s shows another client:\n%s", c0addr, out)
	}
	st := mustStatus(t, rd)
	if st.DNS.Blocked != 7 {
		t.Errorf("status: %d blocked, want 7", st.DNS.Blocked)
	}
	for _, b := range st.Blocklists.Lists {
		if b.Name == "ads" && (b.Format != "adblock" || b.Domains != 2 || b.Exceptions != 1) {
			t.Errorf("status of list ads: %+v, want adblock with 2 names and 1 exception", b)
		}
	}
}
