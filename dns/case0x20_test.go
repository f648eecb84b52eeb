package dns

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// caseUpstream answers every question on loopback. With forge, a forged
// answer (the question's case flipped, another address) goes first; with
// lower, the question comes back lower-cased, as some middleboxes do.
type caseUpstream struct {
	addr netip.AddrPort
	mu   sync.Mutex
	seen []string
	// set before questions are sent
	forge, lower bool
}

// udpUpstream is a DNS server on loopback: handle gets each question and
// a send for as many answers as it likes. It stops with the test.
func udpUpstream(t *testing.T, handle func(req *dns.Msg, send func(*dns.Msg))) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var req dns.Msg
			if req.Unpack(buf[:n]) != nil {
				continue
			}
			handle(&req, func(m *dns.Msg) {
				b, _ := m.Pack()
				pc.WriteTo(b, from)
			})
		}
	}()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// answerA is the answer to req naming name, with one A record.
func answerA(req *dns.Msg, name string, a net.IP) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Question[0].Name = name
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: a}}
	return m
}

func startCaseUpstream(t *testing.T) *caseUpstream {
	u := &caseUpstream{}
	u.addr = udpUpstream(t, func(req *dns.Msg, send func(*dns.Msg)) {
		u.mu.Lock()
		u.seen = append(u.seen, req.Question[0].Name)
		forge, lower := u.forge, u.lower
		u.mu.Unlock()
		name := req.Question[0].Name
		if lower {
			name = strings.ToLower(name)
		}
		if forge {
			send(answerA(req, flipCase(name), net.IPv4(203, 0, 113, 66)))
		}
		send(answerA(req, name, net.IPv4(192, 0, 2, 7)))
	})
	return u
}

func flipCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		if l := c | 0x20; l >= 'a' && l <= 'z' {
			b[i] = c ^ 0x20
		}
	}
	return string(b)
}

func onlyA(t *testing.T, m *dns.Msg) string {
	t.Helper()
	if len(m.Answer) != 1 {
		t.Fatalf("answer %v", m.Answer)
	}
	return m.Answer[0].(*dns.A).A.String()
}

// TestCase0x20: questions go upstream in mixed case and come back to the
// client in the case asked; once the upstream has shown it keeps the case,
// an answer in another case (a forger who guessed port and ID) is dropped
// and the genuine one taken; an upstream that does not keep the case is
// asked in the case given after a few answers, and still answers.
func TestCase0x20(t *testing.T) {
	up := startCaseUpstream(t)
	r := testResolver(up.addr)
	if got := onlyA(t, ask(t, r, "abcdefghijklmnopqrst.example", dns.TypeA)); got != "192.0.2.7" {
		t.Fatalf("first answer %s", got)
	}
	up.mu.Lock()
	sent := up.seen[0]
	up.mu.Unlock()
	if sent == strings.ToLower(sent) {
		t.Errorf("asked upstream as %q: not in mixed case", sent)
	}
	m := ask(t, r, "second.example", dns.TypeA)
	if m.Question[0].Name != "second.example." || m.Answer[0].Header().Name != "second.example." {
		t.Errorf("the client got %q / %q, want the name as asked", m.Question[0].Name, m.Answer[0].Header().Name)
	}

	up.mu.Lock()
	up.forge = true
	up.mu.Unlock()
	if got := onlyA(t, ask(t, r, "forged-name-here.example", dns.TypeA)); got != "192.0.2.7" {
		t.Errorf("with a forged answer in another case first, the client got %s", got)
	}

	lower := startCaseUpstream(t)
	lower.mu.Lock()
	lower.lower = true
	lower.mu.Unlock()
	r2 := testResolver(lower.addr)
	for i, name := range []string{"one.example", "two.example", "three.example", "four.example", "five.example"} {
		if got := onlyA(t, ask(t, r2, name, dns.TypeA)); got != "192.0.2.7" {
			t.Fatalf("question %d to an upstream that lower-cases: %s", i, got)
		}
	}
	lower.mu.Lock()
	last := lower.seen[len(lower.seen)-1]
	lower.mu.Unlock()
	if last != "five.example." {
		t.Errorf("after three lower-cased answers the upstream was asked %q, want the case given", last)
	}
}
