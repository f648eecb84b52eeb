package dns

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/routerd/routerd/internal/via"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeUpstream is a DNS server on loopback answering from a table, counting
// questions; names starting with "big" answer with TC over UDP.
type fakeUpstream struct {
	addr  netip.AddrPort
	asked atomic.Int64
	stop  func()
}

func startUpstream(t testing.TB) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		f.asked.Add(1)
		q := req.Question[0]
		name := strings.ToLower(q.Name) // as a real server: case-insensitive, the question's case kept (0x20)
		m := new(dns.Msg)
		m.SetReply(req)
		switch {
		case strings.HasPrefix(name, "nx."):
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
				Ns: "ns.example.", Mbox: "h.example.", Minttl: 30}}
		case strings.HasPrefix(name, "cdn."):
			m.Answer = []dns.RR{
				&dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 600}, Target: "edge.example."},
				&dns.A{Hdr: dns.RR_Header{Name: "edge.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 120}, A: net.IPv4(198, 18, 0, 1)},
			}
		case strings.HasPrefix(name, "big.") && w.RemoteAddr().Network() == "udp":
			m.Truncated = true
		default:
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, 7)}}
		}
		w.WriteMsg(m)
	})
	// The same port for UDP and TCP: the UDP port the kernel picks may be
	// one a TCP socket holds (CI failed once so), hence a few tries.
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	u := &dns.Server{PacketConn: pc, Handler: h}
	s := &dns.Server{Listener: ln, Handler: h}
	go u.ActivateAndServe()
	go s.ActivateAndServe()
	f.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	f.stop = func() { u.Shutdown(); s.Shutdown() }
	t.Cleanup(f.stop)
	return f
}

var lanClient = netip.MustParseAddr("192.168.1.50")

func testResolver(addrs ...netip.AddrPort) *Resolver {
	var ups []Upstream
	for _, a := range addrs {
		ups = append(ups, Upstream{Addr: a})
	}
	return testResolverWith(Config{Upstreams: ups})
}

// testResolverWith is the test resolver with cfg's upstreams and roots.
func testResolverWith(cfg Config) *Resolver {
	r := New(Config{
		Domain: "lan", Hostname: "gw", Clients: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")},
		RouterAddrs: []netip.Addr{netip.MustParseAddr("192.168.1.1")},
		Records:     []Record{{Name: "printer.lan", Addrs: []netip.Addr{netip.MustParseAddr("192.168.1.9"), netip.MustParseAddr("fd00::9")}}},
		Upstreams:   cfg.Upstreams, TLSRoots: cfg.TLSRoots, CacheSize: 100, Log: quiet,
	})
	return r
}

func ask(t testing.TB, r *Resolver, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	resp := r.Answer(q, lanClient, "lan0", false)
	if resp == nil {
		t.Fatalf("%s %s: no answer", name, dns.TypeToString[qtype])
	}
	return resp
}

func TestLocalNames(t *testing.T) {
	r := testResolver()
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  string
	}{
		{"printer.lan", dns.TypeA, dns.RcodeSuccess, "192.168.1.9"},
		{"PRINTER.lan", dns.TypeAAAA, dns.RcodeSuccess, "fd00::9"},
		{"gw.lan", dns.TypeA, dns.RcodeSuccess, "192.168.1.1"},
		{"gw.lan", dns.TypeAAAA, dns.RcodeSuccess, ""}, // NODATA
		{"nosuch.lan", dns.TypeA, dns.RcodeNameError, ""},
		{"9.1.168.192.in-addr.arpa", dns.TypePTR, dns.RcodeSuccess, "printer.lan."},
		{"77.1.168.192.in-addr.arpa", dns.TypePTR, dns.RcodeNameError, ""}, // ours, unknown
		{"5.0.0.10.in-addr.arpa", dns.TypePTR, dns.RcodeNameError, ""},     // private: never upstream
		{"x.local", dns.TypeA, dns.RcodeNameError, ""},                     // mDNS off: never upstream
	} {
		resp := ask(t, r, tc.name, tc.qtype)
		got := ""
		if len(resp.Answer) > 0 {
			f := strings.Fields(resp.Answer[0].String())
			got = f[len(f)-1]
		}
		if resp.Rcode != tc.rcode || got != tc.want {
			t.Errorf("%s %s = %s %q, want %s %q", tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[resp.Rcode], got,
				dns.RcodeToString[tc.rcode], tc.want)
		}
		if tc.rcode == dns.RcodeNameError && strings.HasSuffix(tc.name, ".lan") && (len(resp.Ns) == 0 || !resp.Authoritative) {
			t.Errorf("%s: NXDOMAIN without SOA or not authoritative: %v", tc.name, resp)
		}
	}
	// Lease names come and go.
	r.SetName("lease:aa", "laptop", netip.MustParseAddr("192.168.1.100"))
	if resp := ask(t, r, "laptop.lan", dns.TypeA); len(resp.Answer) != 1 {
		t.Errorf("lease name not answered: %v", resp)
	}
	if resp := ask(t, r, "100.1.168.192.in-addr.arpa", dns.TypePTR); len(resp.Answer) != 1 || !strings.Contains(resp.Answer[0].String(), "laptop.lan.") {
		t.Errorf("lease PTR: %v", resp)
	}
	r.RemoveName("lease:aa")
	if resp := ask(t, r, "laptop.lan", dns.TypeA); resp.Rcode != dns.RcodeNameError {
		t.Errorf("expired lease name still answered: %v", resp)
	}
}

func TestRefusedAndMalformed(t *testing.T) {
	r := testResolver()
	q := new(dns.Msg)
	q.SetQuestion("printer.lan.", dns.TypeA)
	if resp := r.Answer(q, netip.MustParseAddr("203.0.113.9"), "wan0", false); resp.Rcode != dns.RcodeRefused {
		t.Errorf("outside client: %s, want REFUSED", dns.RcodeToString[resp.Rcode])
	}
	two := new(dns.Msg)
	two.Question = []dns.Question{{Name: "a.", Qtype: 1, Qclass: 1}, {Name: "b.", Qtype: 1, Qclass: 1}}
	if resp := r.Answer(two, lanClient, "lan0", false); resp.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: %s, want FORMERR", dns.RcodeToString[resp.Rcode])
	}
	ans := new(dns.Msg)
	ans.SetQuestion("a.", 1)
	ans.Response = true
	if resp := r.Answer(ans, lanClient, "lan0", false); resp != nil {
		t.Errorf("answered a response: %v", resp)
	}
	if st := r.Status(); st.Refused != 1 || st.FormErr != 1 {
		t.Errorf("status = %+v", st)
	}
}

func TestForwardAndCache(t *testing.T) {
	up := startUpstream(t)
	r := testResolver(up.addr)
	resp := ask(t, r, "echo.example", dns.TypeA)
	if len(resp.Answer) != 1 || resp.Answer[0].Header().Ttl != 300 {
		t.Fatalf("forwarded answer: %v", resp)
	}
	ask(t, r, "echo.example", dns.TypeA)
	if n := up.asked.Load(); n != 1 {
		t.Errorf("upstream asked %d times, want 1 (the second from cache)", n)
	}
	// Negative answers are cached (RFC 2308) for the SOA minimum.
	ask(t, r, "nx.example", dns.TypeA)
	if resp := ask(t, r, "nx.example", dns.TypeA); resp.Rcode != dns.RcodeNameError {
		t.Errorf("cached NXDOMAIN: %v", resp)
	}
	if n := up.asked.Load(); n != 2 {
		t.Errorf("upstream asked %d times, want 2", n)
	}
	// Truncated over UDP: asked again over TCP.
	if resp := ask(t, r, "big.example", dns.TypeA); len(resp.Answer) != 1 {
		t.Errorf("TCP retry: %v", resp)
	}
	// Cached entries age.
	k := keyOf(Route{Path: via.WAN}, dns.Question{Name: "echo.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, false)
	if m := r.cache.get(k, time.Now().Add(100*time.Second)); m == nil || m.Answer[0].Header().Ttl > 200 {
		t.Errorf("aged TTL = %v", m)
	}
	if m := r.cache.get(k, time.Now().Add(301*time.Second)); m != nil {
		t.Errorf("expired entry returned: %v", m)
	}
}

func TestFailover(t *testing.T) {
	dead := netip.MustParseAddrPort("127.0.0.1:1") // nothing listens
	up := startUpstream(t)
	r := testResolver(dead, up.addr)
	if resp := ask(t, r, "a.example", dns.TypeA); len(resp.Answer) != 1 {
		t.Fatalf("failover: %v", resp)
	}
	st := r.Status()
	if st.Upstreams[0].Healthy || !st.Upstreams[1].Healthy {
		t.Errorf("upstream health = %+v", st.Upstreams)
	}
	// The next question goes to the healthy one first.
	before := up.asked.Load()
	ask(t, r, "b.example", dns.TypeA)
	if up.asked.Load() != before+1 {
		t.Errorf("healthy upstream not asked")
	}
	if got := r.fwd.order(time.Now()); got[0].Addr != up.addr {
		t.Errorf("order = %v, want the healthy upstream first", got)
	}
}

func TestOnAnswerSeesCNAMEChain(t *testing.T) {
	up := startUpstream(t)
	r := testResolver(up.addr)
	var mu sync.Mutex
	var names []string
	var addrs []netip.Addr
	r.cfg.OnAnswer = func(path via.Path, n []string, a []netip.Addr, ttl time.Duration) {
		mu.Lock()
		names, addrs = n, a
		mu.Unlock()
	}
	ask(t, r, "cdn.blocked.example", dns.TypeA)
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(names, ",") != "cdn.blocked.example,edge.example" || len(addrs) != 1 {
		t.Errorf("OnAnswer got %v %v", names, addrs)
	}
}

func TestTruncateForClient(t *testing.T) {
	r := testResolver()
	for i := range 60 {
		r.SetName("lease:"+string(rune('a'+i)), "many", netip.AddrFrom4([4]byte{192, 168, 1, byte(100 + i)}))
	}
	// 60 owners of one name: more A records than 512 bytes hold.
	for i := range 60 {
		r.zone.add("x"+string(rune(i)), "many.lan", netip.AddrFrom4([4]byte{192, 168, 1, byte(100 + i)}))
	}
	q := new(dns.Msg)
	q.SetQuestion("many.lan.", dns.TypeA)
	udp := r.Answer(q, lanClient, "lan0", false)
	if !udp.Truncated || udp.Len() > 512 {
		t.Errorf("UDP answer without EDNS0: TC=%v len=%d, want TC within 512 bytes", udp.Truncated, udp.Len())
	}
	tcp := r.Answer(q, lanClient, "lan0", true)
	if tcp.Truncated || len(tcp.Answer) < 60 {
		t.Errorf("TCP answer: TC=%v answers=%d", tcp.Truncated, len(tcp.Answer))
	}
}

// FuzzAnswer: any bytes that parse as a DNS message go through the whole
// query path (local names, no upstream): never a panic, always an answer
// for a query.
func FuzzAnswer(f *testing.F) {
	for _, name := range []string{"printer.lan.", "9.1.168.192.in-addr.arpa.", "x.local.", "example.com."} {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		q.SetEdns0(4096, true)
		b, _ := q.Pack()
		f.Add(b)
	}
	r := testResolver()
	f.Fuzz(func(t *testing.T, b []byte) {
		var m dns.Msg
		if m.Unpack(b) != nil {
			return
		}
		resp := r.Answer(&m, lanClient, "lan0", false)
		if resp == nil && !m.Response {
			t.Fatalf("no answer to a query: %v", &m)
		}
		if resp != nil {
			if _, err := resp.Pack(); err != nil {
				t.Fatalf("answer does not pack: %v", err)
			}
		}
	})
}

// An answer served from the cache goes through the hook again once the
// lists change (a domain was added), and only then.
func TestHookRerunsOnCachedAnswersWhenListsChange(t *testing.T) {
	up := startUpstream(t)
	r := testResolver(up.addr)
	var gen atomic.Uint64
	var calls atomic.Int64
	r.cfg.HookGeneration = gen.Load
	r.cfg.OnAnswer = func(via.Path, []string, []netip.Addr, time.Duration) { calls.Add(1) }
	for i, want := range []int64{1, 1, 1} { // asked upstream, then twice from the cache
		ask(t, r, "cdn.blocked.example", dns.TypeA)
		if got := calls.Load(); got != want {
			t.Fatalf("query %d: hook ran %d times, want %d", i, got, want)
		}
	}
	gen.Add(1) // a list now names the domain
	ask(t, r, "cdn.blocked.example", dns.TypeA)
	ask(t, r, "cdn.blocked.example", dns.TypeA)
	if got := calls.Load(); got != 2 {
		t.Errorf("after the lists changed: hook ran %d times in all, want 2 (once more, from the cache)", got)
	}
	if up.asked.Load() != 1 {
		t.Errorf("upstream asked %d times, want 1: the answers came from the cache", up.asked.Load())
	}
}
