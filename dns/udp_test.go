package dns

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// silentUpstream takes questions and never answers.
func silentUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// listenLoopback opens r's UDP and TCP listeners on a free loopback port.
func listenLoopback(t *testing.T, r *Resolver) (*listener, netip.AddrPort) {
	t.Helper()
	probe, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.cfg.Port = probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	l, err := r.listen(netip.MustParseAddr("127.0.0.1"), "lo")
	if err != nil {
		t.Fatal(err)
	}
	return l, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(r.cfg.Port))
}

// serveLoopback is listenLoopback, closed at the test's end.
func serveLoopback(t *testing.T, r *Resolver) netip.AddrPort {
	t.Helper()
	l, addr := listenLoopback(t, r)
	t.Cleanup(l.close)
	return addr
}

// TestUDPServer asks over real sockets: many cache misses at once (the
// upstream answers handed straight back, no goroutine each), a truncated
// answer fetched again over TCP, an upstream that never answers or fails
// replaced by the next, and a closed server's port free at once.
func TestUDPServer(t *testing.T) {
	up := startUpstream(t)
	r := testResolver(silentUpstream(t), up.addr)
	addr := serveLoopback(t, r)
	c := &dns.Client{Timeout: 5 * time.Second}
	q := func(name string) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		resp, _, err := c.Exchange(m, addr.String())
		return resp, err
	}
	// The first question waits out the silent upstream, then the next
	// answers; the silent one is then asked last.
	if resp, err := q("first.example."); err != nil || len(resp.Answer) != 1 {
		t.Fatalf("past a silent upstream: %v %v", resp, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("m%d.example.", i)
			resp, err := q(name)
			switch {
			case err != nil:
				errs <- fmt.Errorf("%s: %v", name, err)
			case len(resp.Answer) != 1 || resp.Answer[0].Header().Name != name:
				errs <- fmt.Errorf("%s: %v", name, resp)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A forwarded answer keeps the question's case and the client's EDNS
	// buffer size, as a cached one does.
	m := new(dns.Msg)
	m.SetQuestion("MiXeD.Example.", dns.TypeA)
	m.SetEdns0(1400, true)
	if resp, _, err := c.Exchange(m, addr.String()); err != nil || resp.Question[0].Name != "MiXeD.Example." ||
		resp.IsEdns0() == nil || resp.IsEdns0().UDPSize() != 1400 || !resp.IsEdns0().Do() || len(resp.Answer) != 1 {
		t.Errorf("mixed case, EDNS: %v %v", resp, err)
	}
	if resp, err := q("big.example."); err != nil || len(resp.Answer) != 1 {
		t.Errorf("truncated upstream answer, fetched over TCP: %v %v", resp, err)
	}
	if st := r.Status(); st.Forwarded < 203 || st.ServFail != 0 {
		t.Errorf("status: forwarded %d, servfail %d", st.Forwarded, st.ServFail)
	}
}

// TestUDPServerUpstreamFails: when the only upstream stops answering, the
// client gets SERVFAIL, not silence.
func TestUDPServerUpstreamFails(t *testing.T) {
	r := testResolver(silentUpstream(t))
	addr := serveLoopback(t, r)
	m := new(dns.Msg)
	m.SetQuestion("lost.example.", dns.TypeA)
	resp, _, err := (&dns.Client{Timeout: 10 * time.Second}).Exchange(m, addr.String())
	if err != nil || resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("got %v, %v; want SERVFAIL", resp, err)
	}
}

// A closed listener lets go of its port: binding it again (without
// SO_REUSEPORT) works at once.
func TestUDPServerCloses(t *testing.T) {
	l, addr := listenLoopback(t, testResolver())
	l.close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pc, err := net.ListenPacket("udp", addr.String())
		if err == nil {
			pc.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("port still held after close: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lossyUpstream answers each question only the second time it comes
// (the first copy is lost on the way), with 192.0.2.8, and counts the
// copies it got.
func lossyUpstream(t *testing.T) (netip.AddrPort, *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var got atomic.Int64
	go func() {
		seen := map[string]bool{}
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			got.Add(1)
			var q dns.Msg
			if q.Unpack(buf[:n]) != nil || len(q.Question) != 1 {
				continue
			}
			k := fmt.Sprint(q.Id, q.Question[0].Name)
			if !seen[k] {
				seen[k] = true
				continue
			}
			m := new(dns.Msg)
			m.SetReply(&q)
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A: net.IPv4(192, 0, 2, 8)}}
			b, _ := m.Pack()
			pc.WriteTo(b, from)
		}
	}()
	return netip.MustParseAddrPort(pc.LocalAddr().String()), &got
}

// TestResend: a question whose datagram is lost is sent to the same
// upstream again, well before the next upstream's turn, by the UDP
// server's path and the general one alike.
func TestResend(t *testing.T) {
	lossy, copies := lossyUpstream(t)
	other := startUpstream(t) // answers 192.0.2.7
	r := testResolver(lossy, other.addr)
	addr := serveLoopback(t, r)

	c := &dns.Client{Timeout: 5 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion("lost.example.", dns.TypeA)
	resp, _, err := c.Exchange(q, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(resp.Answer), "[lost.example.\t60\tIN\tA\t192.0.2.8]"; got != want {
		t.Errorf("UDP server: answer %s, want %s (from the lossy upstream, asked again)", got, want)
	}
	if a := ask(t, r, "lost2.example", dns.TypeA); len(a.Answer) != 1 || a.Answer[0].(*dns.A).A.String() != "192.0.2.8" {
		t.Errorf("general path: answer %v, want 192.0.2.8", a.Answer)
	}
	if got, want := copies.Load(), int64(4); got != want {
		t.Errorf("lossy upstream got %d datagrams, want %d (two questions, each sent twice)", got, want)
	}
	if n := other.asked.Load(); n != 0 {
		t.Errorf("the other upstream was asked %d times, want 0", n)
	}
	st := r.Status().Upstreams[0]
	if st.Resent != 2 || !st.Healthy {
		t.Errorf("status of the lossy upstream: %+v, want 2 resent and healthy", st)
	}
}

func TestRTO(t *testing.T) {
	for _, tt := range []struct {
		name    string
		samples []time.Duration
		want    time.Duration
	}{
		{"no answer yet", nil, initialRTO},
		{"nearby upstream", []time.Duration{time.Millisecond, 2 * time.Millisecond}, minRTO},
		{"steady 40 ms", []time.Duration{40 * time.Millisecond, 40 * time.Millisecond, 40 * time.Millisecond}, 85 * time.Millisecond}, // 40 + 4 × 11.25
		{"satellite", []time.Duration{700 * time.Millisecond}, maxRTO},
	} {
		var r rttEstimator
		for _, s := range tt.samples {
			r.sample(s)
		}
		if got := r.rto(); got != tt.want {
			t.Errorf("%s: rto = %v, want %v", tt.name, got, tt.want)
		}
	}
}
