package dns

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

// TestStopLeavesNoGoroutine: a resolver that has served questions over
// UDP and TCP, from its cache and through an upstream socket, leaves no
// goroutine behind once Stop returns: every one it started (listeners'
// readers, the TCP server, upstream readers, questions waiting upstream)
// ran under its lifecycle group.
func TestStopLeavesNoGoroutine(t *testing.T) {
	up := startUpstream(t)
	ignore := goleak.IgnoreCurrent()
	port := freePort(t)
	r := New(Config{Domain: "lan", Hostname: "gw", Port: port, CacheSize: 100, Log: quiet,
		RouterAddrs: []netip.Addr{netip.MustParseAddr("192.168.1.1")},
		Upstreams:   []Upstream{{Addr: up.addr}}})
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for _, net := range []string{"udp", "tcp"} {
		for _, name := range []string{"gw.lan.", "www.example.", "www.example."} { // local, miss, hit
			c := &dns.Client{Net: net, Timeout: 5 * time.Second}
			q := new(dns.Msg)
			q.SetQuestion(name, dns.TypeA)
			resp, _, err := c.Exchange(q, addr)
			if err != nil || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) == 0 {
				t.Fatalf("%s %s: %v %v", net, name, resp, err)
			}
		}
	}
	// The address watch, a UDP reader per socket and a TCP server on
	// each loopback address, the upstream socket's reader: all counted.
	if n, want := r.run.Running(), 1+2*(1+max(runtime.NumCPU()/2, 1))+1; n < want {
		t.Errorf("%d goroutines under the resolver's group, want at least %d", n, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if n := r.run.Running(); n != 0 {
		t.Errorf("%d goroutines still running after Stop", n)
	}
	goleak.VerifyNone(t, ignore)
}

// freePort is a port free for TCP and UDP on loopback, both families.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		free := true
		for _, a := range []string{"127.0.0.1", "::1"} {
			pc, err := net.ListenPacket("udp", net.JoinHostPort(a, strconv.Itoa(port)))
			if err != nil {
				free = false
				break
			}
			pc.Close()
		}
		if free {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}
