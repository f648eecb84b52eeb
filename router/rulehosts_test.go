package router

import (
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/router/config"
)

// TestResolveHosts: a rule's host named by MAC is every address it is
// known by: its reservation, its DHCPv4 lease, its DHCPv6 lease by a DUID
// carrying the MAC, and SLAAC addresses the neighbour table saw; never a
// link-local address, nor another host's.
func TestResolveHosts(t *testing.T) {
	cfg, err := config.Parse([]byte(exampleWith(t, `
[[firewall.rule]]
name = "to-nas"
to = ["aa:bb:cc:00:00:01"]
action = "drop"
`)))
	if err != nil {
		t.Fatal(err)
	}
	leases := []dhcp.Lease{
		{Iface: "lan0", Addr: netip.MustParseAddr("192.168.1.77"), MAC: "aa:bb:cc:00:00:01"},
		{Iface: "lan0", Addr: netip.MustParseAddr("fd00:1::101"), DUID: "00030001aabbcc000001"},             // DUID-LL
		{Iface: "lan0", Addr: netip.MustParseAddr("fd00:1::102"), DUID: "000100012a2b3c4daabbcc000001"},     // DUID-LLT
		{Iface: "lan0", Addr: netip.MustParseAddr("fd00:1::103"), DUID: "0002000000090c0000000000000000aa"}, // DUID-EN: unknown
		{Iface: "lan0", Addr: netip.MustParseAddr("192.168.1.78"), MAC: "aa:bb:cc:00:00:02"},
	}
	neigh := map[string][]netip.Addr{
		"aa:bb:cc:00:00:01": {netip.MustParseAddr("fd00:1::a8bb:ccff:fe00:1"), netip.MustParseAddr("fe80::a8bb:ccff:fe00:1")},
	}
	got := resolveHosts(cfg, leases, neigh)["to-nas"]
	want := "[192.168.1.10 192.168.1.77 fd00:1::101 fd00:1::102 fd00:1::a8bb:ccff:fe00:1]"
	if fmt.Sprint(got) != want {
		t.Errorf("hosts = %v, want %s", got, want)
	}
}

// exampleWith is docs/config.example.toml with extra appended.
func exampleWith(t *testing.T, extra string) string {
	t.Helper()
	data, err := os.ReadFile("../docs/config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	return string(data) + extra
}

// TestPinholeAddrs: a pinhole's host by MAC is its known addresses in the
// delegated prefixes (not its ULA or an address outside them) and its
// EUI-64 address in each delegated subnet; by interface identifier, that
// identifier in each.
func TestPinholeAddrs(t *testing.T) {
	cfg, err := config.Parse([]byte(exampleWith(t, `
[[firewall.pinhole]]
name = "by-iid"
to = "::10"
ports = ["tcp/22"]
`)))
	if err != nil {
		t.Fatal(err)
	}
	d := delegated{prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:f000::/56")},
		byLAN: map[string][]netip.Prefix{"lan0": {netip.MustParsePrefix("2001:db8:f000:1::/64")}}}
	byMAC := map[string][]netip.Addr{"aa:bb:cc:00:00:01": {netip.MustParseAddr("2001:db8:f000:1::77"),
		netip.MustParseAddr("fd00:1::77"), netip.MustParseAddr("2001:db8:9999::1"), netip.MustParseAddr("192.168.1.10")}}
	got := pinholeAddrs(cfg, d, byMAC)
	if want := "[2001:db8:f000:1::77 2001:db8:f000:1:a8bb:ccff:fe00:1]"; fmt.Sprint(got["nas-https"]) != want {
		t.Errorf("by MAC: %v, want %s", got["nas-https"], want)
	}
	if want := "[2001:db8:f000:1::10]"; fmt.Sprint(got["by-iid"]) != want {
		t.Errorf("by interface identifier: %v, want %s", got["by-iid"], want)
	}
}
