package dns

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkAnswerCacheMiss is the resolver's own cost for a question it
// must forward (a fresh name each time), with the upstream on loopback.
func BenchmarkAnswerCacheMiss(b *testing.B) {
	up := startUpstream(b)
	r := testResolver(up.addr)
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			q := new(dns.Msg)
			q.SetQuestion(fmt.Sprintf("m%d.example.", n.Add(1)), dns.TypeA)
			if m := r.Answer(q, lanClient, "lan0", false); len(m.Answer) != 1 {
				b.Fatal("no answer")
			}
		}
	})
}
