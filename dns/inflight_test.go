package dns

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestMergeInFlight: twenty clients asking the same question while it is
// on its way upstream cost one question upstream, and all get the answer.
func TestMergeInFlight(t *testing.T) {
	var asked atomic.Int64
	release := make(chan struct{})
	r := testResolver(udpUpstream(t, func(req *dns.Msg, send func(*dns.Msg)) {
		asked.Add(1)
		<-release // the answer waits until every client has asked
		send(answerA(req, req.Question[0].Name, net.IPv4(192, 0, 2, 7)))
	}))
	var wg sync.WaitGroup
	var got atomic.Int64
	for range 20 {
		q := new(dns.Msg)
		q.SetQuestion("merged.example.", dns.TypeA)
		wg.Add(1)
		if !r.forwardAsync(q, nil, lanClient, "lan0", Route{}, func(m *dns.Msg, _ []byte) {
			defer wg.Done()
			if m != nil && len(m.Answer) == 1 && m.Id == q.Id {
				got.Add(1)
			}
		}) {
			t.Fatal("forwardAsync declined a plain question")
		}
	}
	close(release)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not every client was answered")
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the upstream was asked %d times, want once", n)
	}
	if got.Load() != 20 {
		t.Errorf("%d of 20 clients got the answer", got.Load())
	}
}
