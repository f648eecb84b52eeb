package dns

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/routerd/routerd/internal/via"
)

func rr(s string) dns.RR {
	r, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return r
}

func packed(m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

// upstreamSeeds are answers an upstream may send for q: plain, a CNAME
// chain, a CNAME loop, NXDOMAIN with an SOA, truncated, oversized, with a
// mismatched question or ID.
func upstreamSeeds(q dns.Question) [][]byte {
	mk := func(f func(m *dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion(q.Name, q.Qtype)
		m.Response, m.RecursionAvailable = true, true
		f(m)
		return packed(m)
	}
	big := func(m *dns.Msg) {
		for i := range 200 {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A: net.IPv4(198, 18, byte(i>>8), byte(i))})
		}
	}
	return [][]byte{
		mk(func(m *dns.Msg) { m.Answer = []dns.RR{rr(q.Name + " 300 IN A 192.0.2.7")} }),
		mk(func(m *dns.Msg) {
			m.Answer = []dns.RR{rr(q.Name + " 600 IN CNAME edge.example."), rr("edge.example. 30 IN A 198.18.0.1")}
		}),
		mk(func(m *dns.Msg) {
			m.Answer = []dns.RR{rr(q.Name + " 600 IN CNAME loop.example."), rr("loop.example. 600 IN CNAME " + q.Name)}
		}),
		mk(func(m *dns.Msg) {
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{rr("example. 300 IN SOA ns.example. h.example. 1 2 3 4 30")}
		}),
		mk(func(m *dns.Msg) { m.Truncated = true }),
		mk(big),
		mk(func(m *dns.Msg) {
			m.Question[0].Name = "other.example."
			m.Answer = []dns.RR{rr("other.example. 1 IN A 192.0.2.66")}
		}),
		mk(func(m *dns.Msg) { m.Id ^= 0xffff }),
		mk(func(m *dns.Msg) {
			m.Answer = []dns.RR{rr(q.Name + " 4294967295 IN AAAA 2001:db8::1")}
			m.SetEdns0(65535, true)
		}),
	}
}

// FuzzUpstreamResponse: whatever an upstream sends (truncated, oversized,
// CNAME loops, mismatched IDs and questions) is taken into the cache and
// served to a client without a panic, as an answer to the client's own
// question that fits its buffer, with no TTL beyond the cap.
func FuzzUpstreamResponse(f *testing.F) {
	q := dns.Question{Name: "www.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET}
	for _, b := range upstreamSeeds(q) {
		f.Add(b, false)
		f.Add(b, true)
	}
	var hooked []netip.Addr
	r := testResolver()
	r.cfg.OnAnswer = func(_ via.Path, names []string, addrs []netip.Addr, ttl time.Duration) { hooked = addrs }
	f.Fuzz(func(t *testing.T, b []byte, edns bool) {
		m := upstreamResponse(b)
		if m == nil {
			return
		}
		q := m.Question[0] // what the exchange matched it to
		if _, ok := dns.IsDomainName(q.Name); !ok || q.Qclass != dns.ClassINET {
			return
		}
		now := time.Now()
		key := keyOf(Route{Path: via.WAN}, q, false)
		hooked = nil
		r.accept(key, q, m, now)
		for _, a := range hooked {
			if !a.IsValid() {
				t.Fatalf("blocklist hook got an invalid address from %v", m)
			}
		}
		cached := r.cache.get(key, now.Add(time.Second))
		if cached == nil {
			return // not cacheable
		}
		for _, sec := range [][]dns.RR{cached.Answer, cached.Ns, cached.Extra} {
			for _, x := range sec {
				if time.Duration(x.Header().Ttl)*time.Second > maxTTL {
					t.Fatalf("TTL %d beyond the cap in %v", x.Header().Ttl, x)
				}
			}
		}
		req := new(dns.Msg)
		req.SetQuestion(q.Name, q.Qtype)
		if edns {
			req.SetEdns0(1232, false)
		}
		out := r.finish(req, cached, false)
		wire, err := out.Pack()
		if err != nil {
			return // the server drops what does not pack; no crash is the point
		}
		limit := dns.MinMsgSize
		if edns {
			limit = 1232
		}
		if len(wire) > limit {
			t.Fatalf("answer of %d bytes to a client that takes %d", len(wire), limit)
		}
		if len(out.Question) != 1 || !strings.EqualFold(out.Question[0].Name, q.Name) || out.Id != req.Id {
			t.Fatalf("answer %v does not match the question %v", out, req)
		}
	})
}

// FuzzMDNSResponse: whatever a host on the LAN sends in answer to an mDNS
// question becomes an answer with only .local records (or the question's
// own name), never a panic.
func FuzzMDNSResponse(f *testing.F) {
	q := dns.Question{Name: "nas.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET}
	mk := func(rrs ...dns.RR) []byte {
		m := new(dns.Msg)
		m.Response, m.Authoritative = true, true
		m.Answer = rrs
		return packed(m)
	}
	f.Add(mk(rr("nas.local. 120 IN A 192.168.1.20")))
	f.Add(mk(rr("nas.local. 120 IN A 192.168.1.20"), rr("nas.local. 120 IN AAAA fd00::20")))
	f.Add(mk(rr("_http._tcp.local. 4500 IN PTR web._http._tcp.local."), rr("web._http._tcp.local. 120 IN SRV 0 0 80 nas.local.")))
	f.Add(mk(rr("nas.local. 120 IN A 192.168.1.20"), rr("bank.example. 86400 IN A 203.0.113.66")))
	f.Add(mk(rr("nas.local. 120 IN CNAME www.example.")))
	f.Fuzz(func(t *testing.T, b []byte) {
		rrs := mdnsRecords(b)
		resp := mdnsAnswer(q, append(rrs, mdnsRecords(b)...)) // two responders saying the same
		seen := map[string]bool{}
		for _, sec := range [][]dns.RR{resp.Answer, resp.Extra} {
			for _, x := range sec {
				h := x.Header()
				if !isLocalName(h.Name) && !strings.EqualFold(h.Name, q.Name) {
					t.Fatalf("record outside .local passed on: %v", x)
				}
				if h.Class&(1<<15) != 0 {
					t.Fatalf("cache-flush bit passed on: %v", x)
				}
				if seen[x.String()] {
					t.Fatalf("duplicate record: %v", x)
				}
				seen[x.String()] = true
			}
		}
		resp.SetReply(&dns.Msg{Question: []dns.Question{q}})
		resp.Truncate(dns.MinMsgSize)
		resp.Pack()
	})
}
