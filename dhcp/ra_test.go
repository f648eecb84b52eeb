package dhcp

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

func testAdvertiser() *Advertiser {
	return NewAdvertiser(RAConfig{Iface: "lan0", Prefixes: []netip.Prefix{netip.MustParsePrefix("fd00:1::/64")},
		Other: true, Autonomous: true, DNS: []netip.Addr{netip.MustParseAddr("fd00:1::1")}, Domain: "lan", MTU: 1500,
		Log: slog.New(slog.DiscardHandler)})
}

func TestSolicitation(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1")
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 7}
	rs := &ndp.RouterSolicitation{Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}}}
	for _, tc := range []struct {
		name string
		m    ndp.Message
		hops int
		from netip.Addr
		want bool
		ctr  string
	}{
		{"a host's RS", rs, 255, ll, true, "in_rs"},
		{"hop limit unknown", rs, -1, ll, true, "in_rs"},
		{"routed from off-link", rs, 64, ll, false, "drop_rs_hop_limit"},
		{"unspecified source with a link-layer address", rs, 255, netip.IPv6Unspecified(), false, "drop_rs_unspecified_with_lladdr"},
		{"unspecified source without one", &ndp.RouterSolicitation{}, 255, netip.IPv6Unspecified(), true, "in_rs"},
		{"a neighbor solicitation", &ndp.NeighborSolicitation{TargetAddress: ll}, 255, ll, false, "drop_not_rs"},
	} {
		a := testAdvertiser()
		if got := a.solicitation(tc.m, tc.hops, tc.from); got != tc.want {
			t.Errorf("%s: solicitation = %v, want %v", tc.name, got, tc.want)
		}
		if a.Stats()[tc.ctr] != 1 {
			t.Errorf("%s: counters %v, want %s counted", tc.name, a.Stats(), tc.ctr)
		}
	}
}

// FuzzRASolicitation: any ICMPv6 bytes arriving at the advertiser (RS and
// NS among them) are parsed, judged and counted without a panic, and the
// advertisement sent in answer always marshals.
func FuzzRASolicitation(f *testing.F) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 7}
	for _, m := range []ndp.Message{
		&ndp.RouterSolicitation{Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}}},
		&ndp.RouterSolicitation{},
		&ndp.NeighborSolicitation{TargetAddress: netip.MustParseAddr("fd00:1::1"),
			Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}}},
		&ndp.RouterAdvertisement{RouterLifetime: 1800},
	} {
		b, err := ndp.MarshalMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(255), false)
	}
	a := testAdvertiser()
	f.Fuzz(func(t *testing.T, b []byte, hops uint8, unspecified bool) {
		m, err := ndp.ParseMessage(b)
		if err != nil {
			return
		}
		from := netip.MustParseAddr("fe80::1")
		if unspecified {
			from = netip.IPv6Unspecified()
		}
		if !a.solicitation(m, int(hops), from) {
			return
		}
		if _, err := ndp.MarshalMessage(a.Message(mac)); err != nil {
			t.Fatalf("advertisement does not marshal: %v", err)
		}
	})
}
