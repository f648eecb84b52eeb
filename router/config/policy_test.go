package config

import (
	"net"
	"net/netip"
	"testing"

	"github.com/routerd/routerd/internal/via"
)

func TestPathOf(t *testing.T) {
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	r := Routing{
		Default: via.VPN,
		Policies: []Policy{
			{Name: "tv", SourceMACs: []net.HardwareAddr{mac("02:00:00:00:00:0a")}, Via: via.WAN},
			{Name: "guest", SourceIfaces: []string{"guest0"}, SourceAddrs: []netip.Prefix{netip.MustParsePrefix("192.168.1.64/26")}, Via: via.WAN},
			{Name: "mail", DestinationPorts: []PortRange{{Proto: "tcp", From: 25, To: 25}}, Via: via.WAN},
			{Name: "bank", SourceAddrs: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")},
				Destinations: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, Via: via.WAN},
		},
	}
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		f    Flow
		want via.Path
	}{
		{"nothing matches: default", Flow{Src: a("192.168.1.10"), Iface: "lan0"}, via.VPN},
		{"by MAC", Flow{Src: a("192.168.1.10"), MAC: mac("02:00:00:00:00:0a")}, via.WAN},
		{"by interface", Flow{Src: a("10.9.0.5"), Iface: "guest0"}, via.WAN},
		{"by address, any source matcher", Flow{Src: a("192.168.1.70"), Iface: "lan0"}, via.WAN},
		{"IPv4-mapped source", Flow{Src: a("::ffff:192.168.1.70")}, via.WAN},
		{"port policy, port known", Flow{Src: a("192.168.1.10"), Proto: "tcp", Port: 25}, via.WAN},
		{"port policy, other protocol", Flow{Src: a("192.168.1.10"), Proto: "udp", Port: 25}, via.VPN},
		{"port policy, port unknown (the resolver's question)", Flow{Src: a("192.168.1.10")}, via.VPN},
		{"source and destination both match", Flow{Src: a("192.168.1.10"), Dst: a("203.0.113.9")}, via.WAN},
		{"destination matches, source does not", Flow{Src: a("192.168.2.10"), Dst: a("203.0.113.9")}, via.VPN},
		{"destination unknown", Flow{Src: a("192.168.1.10")}, via.VPN},
	} {
		if got := r.PathOf(tc.f); got != tc.want {
			t.Errorf("%s: PathOf(%+v) = %v, want %v", tc.name, tc.f, got, tc.want)
		}
	}
}
