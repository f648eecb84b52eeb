package dns

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

func query(name string, qtype uint16, edns bool, do bool) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.Id = 0x1234
	if edns {
		q.SetEdns0(1232, do)
	}
	return q
}

func wire(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAnswerCachedMatchesTheOrdinaryPath: for cached answers, the wire
// fast path answers what the ordinary path answers (flags, question case,
// records, TTLs, OPT); for everything else it declines.
func TestAnswerCachedMatchesTheOrdinaryPath(t *testing.T) {
	up := startUpstream(t)
	r := testResolver(up.addr)
	out := make([]byte, 4096)
	for _, tc := range []struct {
		name string
		req  *dns.Msg
	}{
		{"plain", query("hit.example.", dns.TypeA, false, false)},
		{"EDNS", query("edns.example.", dns.TypeA, true, false)},
		{"DO", query("do.example.", dns.TypeA, true, true)},
		{"mixed case", query("MiXeD.Example.", dns.TypeA, false, false)},
		{"CNAME chain", query("cdn.example.", dns.TypeA, true, false)},
		{"negative", query("nx.example.", dns.TypeA, false, false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.CheckingDisabled = tc.name == "DO"
			r.Answer(req.Copy(), lanClient, "lan0", false) // fills the cache
			want := r.Answer(req.Copy(), lanClient, "lan0", false)
			n := r.answerCached(wire(t, req), lanClient, "lan0", Route{}, out)
			if n == 0 {
				t.Fatal("the fast path declined a cached answer")
			}
			var got dns.Msg
			if err := got.Unpack(out[:n]); err != nil {
				t.Fatalf("unpack: %v", err)
			}
			if got.Id != req.Id || got.Question[0].Name != req.Question[0].Name {
				t.Errorf("id %x question %q, want %x %q", got.Id, got.Question[0].Name, req.Id, req.Question[0].Name)
			}
			g, w := got.MsgHdr, want.MsgHdr
			g.Id, w.Id = 0, 0
			if g != w {
				t.Errorf("header %+v, want %+v", g, w)
			}
			if got.String() != want.String() {
				t.Errorf("answer:\n%s\nwant:\n%s", got.String(), want.String())
			}
		})
	}

	r.Answer(query("hit.example.", dns.TypeA, false, false), lanClient, "lan0", false)
	for name, req := range map[string][]byte{
		"local domain": wire(t, query("printer.lan.", dns.TypeA, false, false)),
		"mDNS":         wire(t, query("box.local.", dns.TypeA, false, false)),
		"reverse":      wire(t, query("1.1.168.192.in-addr.arpa.", dns.TypePTR, false, false)),
		"not cached":   wire(t, query("miss.example.", dns.TypeA, false, false)),
		"a response": func() []byte {
			m := query("hit.example.", dns.TypeA, false, false)
			m.Response = true
			return wire(t, m)
		}(),
		"EDNS version 1": func() []byte {
			m := query("hit.example.", dns.TypeA, true, false)
			m.IsEdns0().SetVersion(1)
			return wire(t, m)
		}(),
		"trailing bytes": append(wire(t, query("hit.example.", dns.TypeA, false, false)), 0),
	} {
		if n := r.answerCached(req, lanClient, "lan0", Route{}, out); n != 0 {
			t.Errorf("%s: answered by the fast path", name)
		}
	}
	if n := r.answerCached(wire(t, query("hit.example.", dns.TypeA, false, false)), netip.MustParseAddr("203.0.113.9"), "wan0", Route{}, out); n != 0 {
		t.Error("a client that may not ask was answered by the fast path")
	}
}

// TestAnswerCachedLeavesTruncationToTheOrdinaryPath: an answer over 512
// bytes for a client without EDNS is not sent whole.
func TestAnswerCachedLeavesTruncationToTheOrdinaryPath(t *testing.T) {
	up := startUpstream(t)
	r := testResolver(up.addr)
	big := query("many.example.", dns.TypeTXT, true, false)
	resp := new(dns.Msg)
	resp.SetReply(big)
	for i := range 10 {
		resp.Answer = append(resp.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: "many.example.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300},
			Txt: []string{strings.Repeat(string(rune('a'+i)), 100)}})
	}
	r.cache.put(keyOf(r.route(lanClient, "lan0", Route{}), big.Question[0], false), resp, time.Now())
	if n := r.answerCached(wire(t, query("many.example.", dns.TypeTXT, false, false)), lanClient, "lan0", Route{}, make([]byte, 4096)); n != 0 {
		t.Errorf("a %d-byte answer went to a client without EDNS", n)
	}
	if n := r.answerCached(wire(t, big), lanClient, "lan0", Route{}, make([]byte, 4096)); n == 0 {
		t.Error("the same answer was declined for a client with EDNS")
	}
}

func BenchmarkAnswerCachedWire(b *testing.B) {
	up := startUpstream(b)
	r := testResolver(up.addr)
	q := query("hit.example.", dns.TypeA, true, false)
	r.Answer(q.Copy(), lanClient, "lan0", false)
	req := wire(b, q)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		out := make([]byte, 4096)
		for pb.Next() {
			if r.answerCached(req, lanClient, "lan0", Route{}, out) == 0 {
				b.Fatal("not answered from the cache")
			}
		}
	})
}

func FuzzAnswerCached(f *testing.F) {
	for _, m := range []*dns.Msg{query("hit.example.", dns.TypeA, false, false), query("Hit.Example.", dns.TypeA, true, true)} {
		b, _ := m.Pack()
		f.Add(b)
	}
	up := startUpstream(f)
	r := testResolver(up.addr)
	r.Answer(query("hit.example.", dns.TypeA, true, false), lanClient, "lan0", false)
	out := make([]byte, 4096)
	f.Fuzz(func(t *testing.T, b []byte) {
		n := r.answerCached(b, lanClient, "lan0", Route{}, out)
		if n == 0 {
			return
		}
		var m dns.Msg
		if err := m.Unpack(out[:n]); err != nil || !m.Response || len(m.Question) != 1 {
			t.Fatalf("answered % x with % x (%v)", b, out[:n], err)
		}
	})
}

func TestPacketMark(t *testing.T) {
	oob := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SO_MARK
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], 0x2)
	if got := packetMark(oob); got != 2 {
		t.Errorf("packetMark = %d, want 2", got)
	}
	for _, bad := range [][]byte{nil, oob[:4], append([]byte{0xff, 0xff, 0xff, 0x7f}, oob[4:]...)} {
		if got := packetMark(bad); got != 0 {
			t.Errorf("packetMark(%x) = %d, want 0", bad, got)
		}
	}
}
