package dns

import (
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
