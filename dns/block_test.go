package dns

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/routerd/routerd/internal/domainset"
)

// newTestBlocker blocks its names (and their subdomains) on lan0, with
// null answers under null.example, and never ok.ads.example.
func newTestBlocker(names ...string) *Blocklists {
	var b, null, except domainset.Builder
	for _, n := range names {
		if strings.HasPrefix(n, "null.") {
			null.Add(n)
		} else {
			b.Add(n)
		}
	}
	except.Add("ok.ads.example")
	bl := NewBlocklists([]string{"allowed.ads.example"})
	bl.Set([]BlockList{
		{Blocked: Blocked{List: "ads"}, LANs: []string{"lan0"}, Names: b.Set(), Except: except.Set()},
		{Blocked: Blocked{List: "null", Null: true}, LANs: []string{"lan0"}, Names: null.Set()},
	})
	return bl
}

func TestBlock(t *testing.T) {
	up := startUpstream(t)
	r := testResolver(up.addr)
	r.cfg.Blocker = newTestBlocker("ads.example", "edge.example", "null.example")
	askOn := func(iface, name string, qtype uint16) *dns.Msg {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion(name, qtype)
		q.SetEdns0(1232, false)
		resp := r.Answer(q, lanClient, iface, false)
		if resp == nil {
			t.Fatalf("%s: no answer", name)
		}
		return resp
	}
	if m := askOn("lan0", "x.ads.example.", dns.TypeA); m.Rcode != dns.RcodeNameError || ede(m) != dns.ExtendedErrorCodeBlocked {
		t.Errorf("blocked name: rcode %s, EDE %d; want NXDOMAIN with EDE Blocked", dns.RcodeToString[m.Rcode], ede(m))
	}
	for _, n := range []string{"ok.ads.example.", "x.allowed.ads.example."} {
		if m := askOn("lan0", n, dns.TypeA); m.Rcode != dns.RcodeSuccess {
			t.Errorf("%s (an exception, an allowed name): rcode %s", n, dns.RcodeToString[m.Rcode])
		}
	}
	upBefore := up.asked.Load()
	if m := askOn("lan0", "null.example.", dns.TypeAAAA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || !strings.Contains(m.Answer[0].String(), "\t::") {
		t.Errorf("null answer: %v", m)
	}
	if up.asked.Load() != upBefore {
		t.Errorf("upstream asked for a blocked name")
	}
	// cdn.* answers with a CNAME to edge.example, which is listed.
	if m := askOn("lan0", "cdn.example.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("a CNAME to a blocked name: rcode %s, want NXDOMAIN", dns.RcodeToString[m.Rcode])
	}
	// The same name on a LAN without blocking: the real answer, then from
	// the cache; back on the blocked LAN the cached chain is checked too.
	if m := askOn("open0", "cdn.example.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 2 {
		t.Errorf("unblocked LAN: %v", m)
	}
	if m := askOn("lan0", "cdn.example.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("a cached CNAME to a blocked name: rcode %s, want NXDOMAIN", dns.RcodeToString[m.Rcode])
	}
	q := new(dns.Msg)
	q.SetQuestion("cdn.example.", dns.TypeA)
	b, _ := q.Pack()
	if n := r.answerCached(b, lanClient, "lan0", Route{}, make([]byte, 1500)); n != 0 {
		t.Error("the fast path served a cached CNAME chain on a LAN with blocking")
	}
	if n := r.answerCached(b, lanClient, "open0", Route{}, make([]byte, 1500)); n == 0 {
		t.Error("the fast path did not serve a cached answer on a LAN without blocking")
	}
	top := r.Top(0)
	if len(top.Clients) != 1 || top.Clients[0].Blocked != 4 || top.Clients[0].Queries < 8 {
		t.Errorf("per-client counts %+v, want one client with 4 blocked of at least 6", top.Clients)
	}
	if len(top.Blocked) == 0 || top.Blocked[0].Name != "edge.example" || top.Blocked[0].Count != 2 {
		t.Errorf("top blocked %+v, want edge.example twice first", top.Blocked)
	}
	if st := r.Status(); st.Blocked != 4 {
		t.Errorf("status blocked %d, want 4", st.Blocked)
	}
}

func ede(m *dns.Msg) uint16 {
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if x, ok := e.(*dns.EDNS0_EDE); ok {
				return x.InfoCode
			}
		}
	}
	return 0xffff
}

// TestBlockHitAllocs: with blocking on, a cache hit still allocates nothing.
func TestBlockHitAllocs(t *testing.T) {
	up := startUpstream(t)
	r := testResolver(up.addr)
	names := make([]string, 10000)
	for i := range names {
		names[i] = "ad" + strings.Repeat("x", i%7) + ".example" + string(rune('a'+i%26))
	}
	r.cfg.Blocker = newTestBlocker(names...)
	ask(t, r, "hit.example", dns.TypeA)
	q := new(dns.Msg)
	q.SetQuestion("hit.example.", dns.TypeA)
	b, _ := q.Pack()
	out := make([]byte, 1500)
	client := netip.MustParseAddr("192.168.1.50")
	if n := r.answerCached(b, client, "lan0", Route{}, out); n == 0 {
		t.Fatal("not served from the cache")
	}
	if a := testing.AllocsPerRun(200, func() { r.answerCached(b, client, "lan0", Route{}, out) }); a != 0 {
		t.Errorf("a cache hit with blocking on allocates %v times", a)
	}
}

func TestQueryLog(t *testing.T) {
	up := startUpstream(t)
	r := testResolver(up.addr)
	r.cfg.Blocker = newTestBlocker("ads.example")
	if _, _, _, ok := r.QueryLog(netip.Addr{}, false); ok {
		t.Fatal("a query log without dns.query_log")
	}
	r.qlog = newQueryLog(time.Hour)
	_, next, stop, _ := r.QueryLog(netip.Addr{}, true)
	defer stop()
	ask(t, r, "a.example", dns.TypeA)
	ask(t, r, "a.example", dns.TypeA)
	ask(t, r, "x.ads.example", dns.TypeA)
	ask(t, r, "printer.lan", dns.TypeA)
	q := new(dns.Msg)
	q.SetQuestion("b.example.", dns.TypeA)
	r.Answer(q, netip.MustParseAddr("203.0.113.5"), "wan0", false)
	past, _, _, _ := r.QueryLog(lanClient, false)
	var got []string
	for _, e := range past {
		got = append(got, e.Name+" "+e.Answer+" "+e.List+" "+e.Rcode)
	}
	want := []string{"a.example. upstream  NOERROR", "a.example. cache  NOERROR", "x.ads.example. blocked ads NXDOMAIN", "printer.lan. local  NOERROR"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("log of %s:\n%s\nwant\n%s", lanClient, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	all, _, _, _ := r.QueryLog(netip.Addr{}, false)
	if len(all) != 5 || all[4].Answer != "refused" {
		t.Errorf("whole log %+v, want the refused stranger last", all)
	}
	if len(next) != 5 {
		t.Errorf("the follower got %d entries, want 5", len(next))
	}
}
