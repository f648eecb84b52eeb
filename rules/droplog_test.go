package rules

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/routerd/routerd/internal/lab"
)

// TestDropLogTwins: with the drop log on, each counted drop is preceded by
// a rate-limited NFLOG twin carrying its reason; off, there is none.
func TestDropLogTwins(t *testing.T) {
	lab.Require(t, "nft")
	l := lab.New(t)
	ns := l.NewNS("fw")
	ns.MustRun("ip", "link", "add", "name", "lan0", "type", "veth", "peer", "name", "lan0p")
	SetDropLog(true)
	defer SetDropLog(false)
	if err := ApplyLANIngress(ns.Name, &LANIngress{Ifaces: []string{"lan0"}}); err != nil {
		t.Fatal(err)
	}
	out := ns.MustRun("nft", "list", "table", "netdev", LANIngressTable)
	want := `tcp flags fin,syn / fin,syn limit rate 5/second burst 10 packets log prefix "syn_fin_lan0" group 8273`
	if !strings.Contains(out, want) {
		t.Errorf("no sampling twin %q in:\n%s", want, out)
	}
	SetDropLog(false)
	if err := ApplyLANIngress(ns.Name, &LANIngress{Ifaces: []string{"lan0"}}); err != nil {
		t.Fatal(err)
	}
	if out := ns.MustRun("nft", "list", "table", "netdev", LANIngressTable); strings.Contains(out, " log ") {
		t.Errorf("drop log off, yet:\n%s", out)
	}
}

func TestParseDropped(t *testing.T) {
	syn := []byte{0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 192, 168, 11, 50, 192, 0, 2, 10,
		0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x03, 0xff, 0xff, 0, 0, 0, 0}
	d, ok := ParseDropped(syn)
	if !ok || d.Proto != "tcp" || d.Src != netip.MustParseAddr("192.168.11.50") || d.Dst != netip.MustParseAddr("192.0.2.10") ||
		d.SPort != 40000 || d.DPort != 80 || d.Flags != "FS" {
		t.Errorf("ParseDropped = %+v, %v", d, ok)
	}
	for _, bad := range [][]byte{nil, {0x45}, {0x60, 0, 0}, {0x4f, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}} {
		if _, ok := ParseDropped(bad); ok {
			t.Errorf("ParseDropped(%x) ok", bad)
		}
	}
}

func FuzzParseDropped(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 53, 0, 53, 0, 8, 0, 0})
	f.Add(make([]byte, 48))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, ok := ParseDropped(b)
		if ok && (!d.Src.IsValid() || !d.Dst.IsValid() || d.Proto == "") {
			t.Fatalf("ok without addresses or protocol: %+v", d)
		}
	})
}
