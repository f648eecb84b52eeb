package dns

import (
	"fmt"
	"github.com/routerd/routerd/internal/domainset"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkAnswerCacheHit is the resolver's own cost for a cached answer,
// without sockets.
func BenchmarkAnswerCacheHit(b *testing.B) {
	up := startUpstream(b)
	r := testResolver(up.addr)
	q := new(dns.Msg)
	q.SetQuestion("hit.example.", dns.TypeA)
	r.Answer(q, lanClient, "lan0", false)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if m := r.Answer(q, lanClient, "lan0", false); len(m.Answer) != 1 {
				b.Fatal("no answer")
			}
		}
	})
}

// BenchmarkHitBlocking is the cache-hit fast path (a packed answer for a
// packed question, as the UDP reader serves it) without block lists and
// with a list of a million names on the client's LAN: what blocking costs
// every cached answer.
func BenchmarkHitBlocking(b *testing.B) {
	up := startUpstream(b)
	for _, names := range []int{0, 1_000_000} {
		b.Run(fmt.Sprintf("%dnames", names), func(b *testing.B) {
			r := testResolver(up.addr)
			if names > 0 {
				var set domainset.Builder
				for i := range names {
					set.Add(fmt.Sprintf("ad%d.tracker%d.example", i, i%997))
				}
				bl := NewBlocklists(nil)
				bl.Set([]BlockList{{Blocked: Blocked{List: "ads"}, Names: set.Set()}})
				r.cfg.Blocker = bl
			}
			ask(b, r, "www.hit.example", dns.TypeA)
			q := new(dns.Msg)
			q.SetQuestion("www.hit.example.", dns.TypeA)
			wire, _ := q.Pack()
			out := make([]byte, 1500)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if r.answerCached(wire, lanClient, "lan0", Route{}, out) == 0 {
					b.Fatal("not a cache hit")
				}
			}
		})
	}
}
