package dns

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
	"github.com/routerd/routerd/internal/via"
)

// TestViews: a policy's clients ask its own servers and no other, their
// answers cached apart from everyone else's; its servers down, they get
// SERVFAIL rather than an answer from the configured or the ISP's.
func TestViews(t *testing.T) {
	def, own := startUpstream(t), startUpstream(t)
	policyClient := netip.MustParseAddr("192.168.1.60")
	r := testResolverWith(Config{Upstreams: []Upstream{{Addr: def.addr}}})
	r.cfg.Views = []View{{Name: "torrent", Upstreams: []Upstream{{Addr: own.addr}}}}
	r.views = []*forwarder{newForwarder(r.cfg.Views[0].Upstreams, nil, &r.run)}
	r.cfg.RouteOf = func(client netip.Addr, _ string) Route {
		if client == policyClient {
			return Route{Path: via.VPN, View: 1}
		}
		return Route{Path: via.WAN}
	}
	askFrom := func(client netip.Addr, name string) *dns.Msg {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		resp := r.Answer(q, client, "lan0", false)
		if resp == nil {
			t.Fatalf("%s from %s: no answer", name, client)
		}
		return resp
	}
	counts := func(step string, wantDef, wantOwn int64) {
		t.Helper()
		if d, o := def.asked.Load(), own.asked.Load(); d != wantDef || o != wantOwn {
			t.Errorf("%s: configured upstream asked %d times, the policy's %d; want %d, %d", step, d, o, wantDef, wantOwn)
		}
	}
	askFrom(lanClient, "a.example.")
	counts("an ordinary client", 1, 0)
	askFrom(policyClient, "a.example.")
	counts("the policy's client, same name", 1, 1)
	askFrom(policyClient, "a.example.")
	counts("the policy's client again (cached)", 1, 1)
	askFrom(lanClient, "a.example.")
	counts("the ordinary client again (cached)", 1, 1)

	own.stop()
	r.SetISPServers([]netip.Addr{def.addr.Addr()})
	if m := askFrom(policyClient, "b.example."); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("the policy's servers down: rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	counts("the policy's servers down", 1, 1)
	st := r.Status()
	var sources []string
	for _, u := range st.Upstreams {
		sources = append(sources, u.Source)
	}
	if want := []string{"config", "isp", "policy torrent"}; !slices.Equal(sources, want) {
		t.Errorf("status upstream sources %q, want %q", sources, want)
	}
}

// TestWireKeyRoute: the cache's packed index tells routes apart, so the
// fast path never serves one view's answer to another's client.
func TestWireKeyRoute(t *testing.T) {
	q := dns.Question{Name: "a.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET}
	seen := map[string]Route{}
	for _, rt := range []Route{{Path: via.WAN}, {Path: via.VPN}, {Path: via.WAN, View: 1}, {Path: via.VPN, View: 1}, {Path: via.VPN, View: 2}} {
		k := wireKey(keyOf(rt, q, false))
		if o, dup := seen[k]; dup {
			t.Errorf("routes %+v and %+v share the wire key %q", o, rt, k)
		}
		seen[k] = rt
	}
}
