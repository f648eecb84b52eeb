package dns

import (
	"crypto"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/routerd/routerd/dns/dnssec"
)

// signedUpstream serves sec.test., signed with one key that is also the
// trust anchor: www has a good signature, bad a signature over other data.
// Names outside sec.test. get an unsigned answer.
func signedUpstream(t *testing.T) (netip.AddrPort, *dnssec.Validator, *atomic.Int64) {
	t.Helper()
	key := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "sec.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	priv, err := key.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sign := func(rrs ...dns.RR) *dns.RRSIG {
		h := rrs[0].Header()
		sig := &dns.RRSIG{Hdr: dns.RR_Header{Name: h.Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: h.Ttl},
			TypeCovered: h.Rrtype, Algorithm: key.Algorithm, Labels: uint8(dns.CountLabel(h.Name)), OrigTtl: h.Ttl,
			Expiration: uint32(now.Add(time.Hour).Unix()), Inception: uint32(now.Add(-time.Hour).Unix()), KeyTag: key.KeyTag(), SignerName: "sec.test."}
		if err := sig.Sign(priv.(crypto.Signer), rrs); err != nil {
			t.Fatal(err)
		}
		return sig
	}
	www := rr("www.sec.test. 300 IN A 192.0.2.1")
	bad := rr("bad.sec.test. 300 IN A 192.0.2.66")
	badSig := sign(rr("bad.sec.test. 300 IN A 192.0.2.2"))
	answers := map[string][]dns.RR{
		"sec.test.":     {key, sign(key)},
		"www.sec.test.": {www, sign(www)},
		"bad.sec.test.": {bad, badSig},
	}
	var asked atomic.Int64
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		asked.Add(1)
		q := req.Question[0]
		m := new(dns.Msg)
		m.SetReply(req)
		m.SetEdns0(1232, true)
		if rrs, ok := answers[strings.ToLower(q.Name)]; ok { // names are case-insensitive (0x20 mixes them)
			m.Answer = rrs
			// Unsigned extras a validated answer must not vouch for.
			m.Ns = []dns.RR{rr("sec.test. 300 IN NS ns.evil.example.")}
			m.Extra = []dns.RR{rr("ns.evil.example. 300 IN A 203.0.113.66")}
		} else {
			m.Answer = []dns.RR{rr(q.Name + " 300 IN A 192.0.2.7")}
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: h}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	v, err := dnssec.New([]dns.RR{key})
	if err != nil {
		t.Fatal(err)
	}
	return netip.MustParseAddrPort(pc.LocalAddr().String()), v, &asked
}

func vquery(name string, qtype uint16, do, ad, cd bool) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.AuthenticatedData, q.CheckingDisabled = ad, cd
	q.SetEdns0(1232, do)
	return q
}

func hasRRSIG(m *dns.Msg) bool {
	return slices.ContainsFunc(m.Answer, func(r dns.RR) bool { return r.Header().Rrtype == dns.TypeRRSIG })
}

func TestValidatingResolver(t *testing.T) {
	addr, v, asked := signedUpstream(t)
	r := New(Config{Domain: "lan", Clients: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")},
		Records:   []Record{{Name: "printer.lan", Addrs: []netip.Addr{netip.MustParseAddr("192.168.1.9")}}},
		Upstreams: []Upstream{{Addr: addr}}, CacheSize: 100, Validator: v, Log: quiet})
	answer := func(q *dns.Msg) *dns.Msg { return r.Answer(q, lanClient, "lan0", false) }

	for _, tc := range []struct {
		what       string
		q          *dns.Msg
		rcode      int
		ad, rrsig  bool
		ede        int // -1: none
		answerAddr string
	}{
		{"secure, DO", vquery("www.sec.test.", dns.TypeA, true, false, false), dns.RcodeSuccess, true, true, -1, "192.0.2.1"},
		{"secure, AD asked", vquery("www.sec.test.", dns.TypeA, false, true, false), dns.RcodeSuccess, true, false, -1, "192.0.2.1"},
		{"secure, neither", vquery("www.sec.test.", dns.TypeA, false, false, false), dns.RcodeSuccess, false, false, -1, "192.0.2.1"},
		{"bogus", vquery("bad.sec.test.", dns.TypeA, true, false, false), dns.RcodeServerFailure, false, false, int(dns.ExtendedErrorCodeDNSBogus), ""},
		{"bogus, again (cached)", vquery("bad.sec.test.", dns.TypeA, true, false, false), dns.RcodeServerFailure, false, false, int(dns.ExtendedErrorCodeDNSBogus), ""},
		{"bogus, CD", vquery("bad.sec.test.", dns.TypeA, true, false, true), dns.RcodeSuccess, false, true, -1, "192.0.2.66"},
		{"insecure (no anchor)", vquery("other.example.", dns.TypeA, true, true, false), dns.RcodeSuccess, false, false, -1, "192.0.2.7"},
		{"local name", vquery("printer.lan.", dns.TypeA, true, true, false), dns.RcodeSuccess, false, false, -1, "192.168.1.9"},
	} {
		m := answer(tc.q)
		ede := -1
		if o := m.IsEdns0(); o != nil {
			for _, e := range o.Option {
				if e, ok := e.(*dns.EDNS0_EDE); ok {
					ede = int(e.InfoCode)
				}
			}
		}
		got := ""
		for _, a := range m.Answer {
			if a, ok := a.(*dns.A); ok {
				got = a.A.String()
			}
		}
		if m.AuthenticatedData && (len(m.Ns) > 0 || len(m.Extra) > 1) {
			t.Errorf("%s: AD with records the validator did not judge: %v", tc.what, m)
		}
		if m.Rcode != tc.rcode || m.AuthenticatedData != tc.ad || hasRRSIG(m) != tc.rrsig || ede != tc.ede || got != tc.answerAddr {
			t.Errorf("%s: rcode %s AD %v RRSIG %v EDE %d answer %q; want %s %v %v %d %q", tc.what, dns.RcodeToString[m.Rcode],
				m.AuthenticatedData, hasRRSIG(m), ede, got, dns.RcodeToString[tc.rcode], tc.ad, tc.rrsig, tc.ede, tc.answerAddr)
		}
	}
	st := r.Status().DNSSEC
	if st == nil || st.Secure != 2 || st.Bogus != 2 || st.Insecure != 1 || st.LastBogus == "" {
		t.Errorf("status %+v", st)
	}

	// The cache's wire path sets AD for DO or AD questions only.
	n := asked.Load()
	for _, tc := range []struct {
		do, ad, want bool
	}{{true, false, true}, {false, true, true}, {false, false, false}} {
		b, _ := vquery("www.sec.test.", dns.TypeA, tc.do, tc.ad, false).Pack()
		out := make([]byte, 1500)
		l := r.answerCached(b, lanClient, "lan0", Route{}, out)
		if l == 0 {
			t.Fatalf("do %v ad %v: not answered from the cache", tc.do, tc.ad)
		}
		m := new(dns.Msg)
		if err := m.Unpack(out[:l]); err != nil {
			t.Fatal(err)
		}
		if m.AuthenticatedData != tc.want {
			t.Errorf("wire path, DO %v AD %v: AD %v, want %v", tc.do, tc.ad, m.AuthenticatedData, tc.want)
		}
	}
	if b, _ := vquery("bad.sec.test.", dns.TypeA, true, false, true).Pack(); r.answerCached(b, lanClient, "lan0", Route{}, make([]byte, 1500)) != 0 {
		t.Error("the wire path answered a CD question")
	}
	if asked.Load() != n {
		t.Errorf("the upstream was asked %d more times", asked.Load()-n)
	}
}
