package dns

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/netns"
)

func packMsg(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReflectPacket: questions are relayed without the unicast-response
// bit (the answer must come back by multicast, through the reflector);
// announcements as they came; anything that is not an mDNS message not at
// all.
func TestReflectPacket(t *testing.T) {
	q := new(dns.Msg)
	q.Question = []dns.Question{{Name: "_googlecast._tcp.local.", Qtype: dns.TypePTR, Qclass: dns.ClassINET | 1<<15}}
	out, ok := ReflectPacket(packMsg(t, q))
	var got dns.Msg
	if !ok || got.Unpack(out) != nil || got.Question[0].Qclass != dns.ClassINET {
		t.Errorf("QU query relayed as %v (ok %v), want the QU bit cleared", got.Question, ok)
	}
	ann := new(dns.Msg)
	ann.Response = true
	ptr, _ := dns.NewRR("_googlecast._tcp.local. 120 IN PTR tv._googlecast._tcp.local.")
	ann.Answer = []dns.RR{ptr}
	b := packMsg(t, ann)
	if out, ok := ReflectPacket(b); !ok || string(out) != string(b) {
		t.Errorf("an announcement was changed or dropped")
	}
	for name, bad := range map[string][]byte{
		"empty":      {},
		"short":      {0, 1, 2},
		"garbage":    []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"no records": packMsg(t, new(dns.Msg)),
	} {
		if _, ok := ReflectPacket(bad); ok {
			t.Errorf("%s relayed", name)
		}
	}
}

// FuzzReflectPacket: whatever a LAN host sends, the reflector never
// panics, and what it relays is a DNS message without the QU bit.
func FuzzReflectPacket(f *testing.F) {
	q := new(dns.Msg)
	q.Question = []dns.Question{{Name: "tv.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET | 1<<15}}
	b, _ := q.Pack()
	f.Add(b)
	f.Add([]byte{0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, ok := ReflectPacket(b)
		if !ok {
			return
		}
		var m dns.Msg
		if err := m.Unpack(out); err != nil {
			t.Fatalf("relayed an unparseable message: %v", err)
		}
		for _, q := range m.Question {
			if q.Qclass&(1<<15) != 0 {
				t.Fatalf("relayed a QU question %v", q)
			}
		}
	})
}

// TestReflectorStops: a running reflector's Run returns when its context
// ends, and leaves no goroutine behind.
func TestReflectorStops(t *testing.T) {
	lab.Require(t)
	l := lab.New(t)
	ns := l.NewNS("rf")
	ns.MustRun("ip", "link", "add", "a0", "type", "veth", "peer", "name", "b0")
	ns.MustRun("ip", "link", "set", "a0", "up")
	ns.MustRun("ip", "link", "set", "b0", "up")
	before := runtime.NumGoroutine()
	r := NewReflector([]string{"a0", "b0"}, quiet)
	if err := netns.Do(ns.Name, r.Open); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if err := lab.Poll(5*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > before {
			return fmt.Errorf("%d goroutines, %d before", n, before)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
