package rules

import (
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/routerd/routerd/internal/lab"
)

var update = flag.Bool("update", false, "rewrite golden files")

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func testMain() *Main {
	mac, _ := net.ParseMAC("aa:bb:cc:00:00:02")
	return &Main{
		LANIfaces: []string{"lan0", "wlan0", "guest", "iot"},
		LAN4:      pfx("192.168.1.0/24", "192.168.2.0/24", "192.168.30.0/24", "192.168.20.0/24"),
		LAN6:      pfx("fd00:1::/64", "fd00:2::/64", "fd00:20::/64"),
		Segments:  []Segment{{"lan0", AccessAll}, {"wlan0", AccessAll}, {"guest", AccessInternet}, {"iot", AccessIsolated}},
		Rules: []Rule{
			{Name: "guests-print", From: RuleMatch{Ifaces: []string{"guest"}}, To: RuleMatch{Net4: pfx("192.168.1.20/32")},
				Ports: []Port{{"tcp", 631, 631}}, Action: "accept"},
			{Name: "tv-offline", From: RuleMatch{MACs: []net.HardwareAddr{mac}}, To: RuleMatch{WAN: true}, Action: "reject"},
			{Name: "nas-smb", From: RuleMatch{Ifaces: []string{"wlan0"}}, To: RuleMatch{Hosts: true, Host4: []netip.Addr{netip.MustParseAddr("192.168.1.10")}},
				Ports: []Port{{"tcp", 445, 445}}, Action: "reject"},
			{Name: "no-nas6", From: RuleMatch{Net4: pfx("192.168.2.0/24"), Net6: pfx("fd00:2::/64")}, To: RuleMatch{Net6: pfx("fd00:1::10/128")}, Action: "drop"},
		},
		LANServices: []Port{{"udp", 123, 123}},
		Transit:     "br0", Mask: 0xff, MarkWAN: 1, MarkVPN: 2, Default: 2,
		Admin: []string{"lan0"}, AdminPort: 22,
		Sources: []LANSource{{Iface: "lan0", Prefixes: pfx("192.168.1.0/24", "fd00:1::/64")},
			{Iface: "wlan0", Prefixes: pfx("192.168.2.0/24", "fd00:2::/64")}},
		Policies: []Policy{
			{Name: "tv-direct", Src4: pfx("192.168.1.50/32"), MACs: []net.HardwareAddr{mac}, Mark: 1},
			{Name: "smtp-out", Ports: []Port{{"tcp", 25, 25}}, Mark: 2},
			{Name: "bank", Ifaces: []string{"wlan0"}, Dst4: pfx("198.18.0.0/15"), Mark: 1},
		},
		LANInput: []Port{{"tcp", 22, 22}},
		Forwards: []Forward{{"tcp", 8443, netip.MustParseAddrPort("192.168.1.10:443")}},
		Publish:  testPublish(), VPNMAC: net.HardwareAddr{2, 0x72, 0x64, 0, 0, 2},
		Local: []LocalPolicy{{Name: "torrent", UIDs: []uint32{65534}, Cgroups: []Cgroup{{Path: "x", Level: 1, ID: 4242}},
			Mark: 2, Refuse6: true}},
	}
}

func testPublish() []Publish {
	return []Publish{{Name: "web", Protos: []string{"tcp", "udp"}, Port: 443,
		To4: netip.MustParseAddrPort("192.168.1.10:8443"), To6: netip.MustParseAddrPort("[fd00:1::10]:8443")}}
}

func testWAN() *WAN {
	return &WAN{Uplinks: []string{"wan0"}, Transit: "transit0", LAN4: pfx("192.168.1.0/24"), LAN6: pfx("fd00:1::/64"),
		Own4: pfx("10.254.0.0/29", "127.0.0.0/8"), Own6: pfx("fd01::/64", "::1/128"),
		Harden: true, ICMPRate: 10, ICMPUnit: "second", WGPort: 51820, ScanBan: time.Hour,
		Forwards: []Forward{{"tcp", 8443, netip.MustParseAddrPort("192.168.1.10:443")}}}
}

// TestRulesetsGolden applies each ruleset in a namespace and compares what
// nft reads back with testdata: the firewall as a person reads it.
func TestRulesetsGolden(t *testing.T) {
	lab.Require(t, "nft")
	l := lab.New(t)
	ns := l.NewNS("fw")
	ns.MustRun("ip", "link", "add", "name", "wan0", "type", "veth", "peer", "name", "wan0p")
	if err := ApplyMain(ns.Name, testMain()); err != nil {
		t.Fatalf("ApplyMain: %v", err)
	}
	if err := SetWANAddrs(ns.Name, []netip.Addr{netip.MustParseAddr("203.0.113.7")}); err != nil {
		t.Fatalf("SetWANAddrs: %v", err)
	}
	goldenTable(t, ns, "inet", Table, "main.golden")
	if err := ApplyWAN(ns.Name, testWAN()); err != nil {
		t.Fatalf("ApplyWAN: %v", err)
	}
	goldenTable(t, ns, "inet", Table, "wan.golden")
	goldenTable(t, ns, "netdev", IngressTable, "wan-ingress.golden")
	// A backup uplink (wwan0 here, plugged in): both uplinks NAT and
	// take DHCP and the WireGuard port; each has an ingress chain, with
	// the loose reverse-path check.
	ns.MustRun("ip", "link", "add", "name", "wwan0", "type", "veth", "peer", "name", "wwan0p")
	wb := testWAN()
	wb.Uplinks = append(wb.Uplinks, "wwan0")
	if err := ApplyWAN(ns.Name, wb); err != nil {
		t.Fatalf("ApplyWAN with a backup: %v", err)
	}
	goldenTable(t, ns, "inet", Table, "wan-backup.golden")
	goldenTable(t, ns, "netdev", IngressTable, "wan-backup-ingress.golden")
	// The LAN interfaces' checks: one chain per interface there (wlan0 is
	// not: its NIC is unplugged).
	ns.MustRun("ip", "link", "add", "name", "lan0", "type", "veth", "peer", "name", "lan0p")
	if err := ApplyLANIngress(ns.Name, &LANIngress{Ifaces: []string{"lan0", "wlan0"}}); err != nil {
		t.Fatalf("ApplyLANIngress: %v", err)
	}
	goldenTable(t, ns, "netdev", LANIngressTable, "lan-ingress.golden")
	if err := ApplyVPN(ns.Name, &VPN{Iface: "wg0", Transit: "transit0", MSS4: 1380, MSS6: 1360, Publish: testPublish()}); err != nil {
		t.Fatalf("ApplyVPN: %v", err)
	}
	goldenTable(t, ns, "inet", Table, "vpn.golden")
	if err := ApplyRelay(ns.Name, testRelay()); err != nil {
		t.Fatalf("ApplyRelay: %v", err)
	}
	goldenTable(t, ns, "inet", Table, "relay.golden")
	counts, err := RelayForwardCounts(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(counts), 4; got != want {
		t.Errorf("RelayForwardCounts = %+v, want %d forwards", counts, want)
	}
}

func testRelay() *Relay {
	a := netip.MustParseAddr
	return &Relay{Public: []string{"eth0", "eth1"}, Tunnel: "wg0", Own: []netip.Addr{a("10.64.0.1"), a("fd55:aaaa::1")},
		Forwards: []RelayForward{
			{Protos: []string{"tcp"}, From: 443, To: 443, Target: a("10.64.0.2")},
			{Protos: []string{"tcp"}, From: 2222, To: 2222, Target: a("10.64.0.2"), ToPort: 22},
			{Protos: []string{"tcp", "udp"}, From: 60000, To: 60100, Target: a("fd55:aaaa::2")},
			{Protos: []string{"tcp"}, From: 8443, To: 8443, Target: a("10.64.0.3"), ToPort: 443, SNATPool: true,
				MatchIPs: []netip.Addr{a("203.0.113.20")}, Index: 4},
			{Protos: []string{"udp"}, From: 51821, To: 51821, Target: a("fd55:aaaa::3")},
		},
		Pool4: []netip.Addr{a("203.0.113.20"), a("203.0.113.21")}, Masquerade: false,
		MSS4: 1380, MSS6: 1360, ForwardDrop: true, TunnelPool4: []netip.Addr{a("10.64.0.1"), a("10.64.0.10")}}
}

var reHandle = regexp.MustCompile(`(?m) # handle \d+$`)

func goldenTable(t *testing.T, ns *lab.NS, family, table, file string) {
	t.Helper()
	got := ns.MustRun("nft", "list", "table", family, table)
	got = reHandle.ReplaceAllString(got, "")
	path := filepath.Join("testdata", file)
	if *update {
		os.WriteFile(path, []byte(got), 0o644)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs; got:\n%s", file, got)
	}
}

// TestReplaceIsAtomicAndKeepsOthers: a failing apply leaves the previous
// ruleset, a foreign table is never touched, counters survive a reapply.
func TestReplaceIsAtomicAndKeepsOthers(t *testing.T) {
	lab.Require(t, "nft")
	l := lab.New(t)
	ns := l.NewNS("fw")
	cmd := ns.Cmd("nft", "-f", "-")
	cmd.Stdin = strings.NewReader("table ip docker {\n chain c {\n type filter hook forward priority 0; counter accept\n }\n}\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := ApplyMain(ns.Name, testMain()); err != nil {
		t.Fatal(err)
	}
	// Make a counter non-zero, then reapply: it keeps its value.
	ns.MustRun("ping", "-c", "1", "-W", "1", "127.0.0.1")
	before := counterValue(t, ns.Name, "drop_input")
	ns.MustRun("ip", "link", "set", "dev", "lo", "up")
	bad := testMain()
	bad.Policies[0].Name = strings.Repeat("x", 300) // set names this long are refused by the kernel
	if err := ApplyMain(ns.Name, bad); err == nil {
		t.Fatal("ApplyMain with an invalid set name succeeded")
	}
	if out := ns.MustRun("nft", "list", "table", "inet", Table); !strings.Contains(out, "policy_tv-direct") {
		t.Errorf("failed apply did not leave the previous ruleset:\n%s", out)
	}
	if err := ApplyMain(ns.Name, testMain()); err != nil {
		t.Fatal(err)
	}
	if after := counterValue(t, ns.Name, "drop_input"); after < before {
		t.Errorf("drop_input went from %d to %d across a reapply", before, after)
	}
	if out := ns.MustRun("nft", "list", "tables"); !strings.Contains(out, "table ip docker") {
		t.Errorf("foreign table gone:\n%s", out)
	}
}

func counterValue(t *testing.T, ns, name string) uint64 {
	t.Helper()
	cs, err := Counters(ns, nftables.TableFamilyINet, Table)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Name == name {
			return c.Packets
		}
	}
	t.Fatalf("no counter %s in %v", name, cs)
	return 0
}

// TestLargeSets: a set or map bigger than one netlink attribute holds
// (64 KiB) arrives whole. It once arrived a third full, without an error.
func TestLargeSets(t *testing.T) {
	lab.Require(t, "nft")
	l := lab.New(t)
	ns := l.NewNS("fw")
	rl := testRelay()
	rl.Forwards = nil
	for p := 10000; p < 11000; p++ {
		rl.Forwards = append(rl.Forwards, RelayForward{Protos: []string{"tcp", "udp"}, From: uint16(p), To: uint16(p), Target: netip.MustParseAddr("10.64.0.2")})
	}
	if err := ApplyRelay(ns.Name, rl); err != nil {
		t.Fatal(err)
	}
	counts, err := RelayForwardCounts(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(counts), 1000; got != want {
		t.Errorf("%d forwards in the map, want %d", got, want)
	}
	m := testMain()
	for i := 0; i < 5000; i++ {
		m.Policies[0].Src4 = append(m.Policies[0].Src4, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), 32))
	}
	if err := ApplyMain(ns.Name, m); err != nil {
		t.Fatal(err)
	}
	out := ns.MustRun("nft", "-j", "list", "set", "inet", Table, "policy_tv-direct_src4")
	if got := strings.Count(out, `"10.`); got != 5000 {
		t.Errorf("policy set holds %d of the 5000 10.x addresses", got)
	}
}

// TestRulesetsGoldenOffload: with flow offload, each namespace's table has
// a flowtable over the devices that are there (a missing one is left out,
// not an error) and its forward chain offloads established TCP and UDP
// after every rule that drops or marks them. Needs a kernel with
// flowtables: elsewhere it runs in the VM lab.
func TestRulesetsGoldenOffload(t *testing.T) {
	if lab.RequireKernel(t, "nf_flow_table", "nf_flow_table_inet", "nft_flow_offload") {
		return
	}
	lab.Require(t, "nft")
	if err := FlowOffloadSupported(""); err != nil {
		t.Fatalf("FlowOffloadSupported on a kernel with flowtables: %v", err)
	}
	l := lab.New(t)
	ns := l.NewNS("fw")
	for _, pair := range [][2]string{{"lan0", "lan0p"}, {"wlan0", "wlan0p"}, {"wan0", "wan0p"}, {"transit0", "transit0p"}, {"eth0", "eth0p"}} {
		ns.MustRun("ip", "link", "add", "name", pair[0], "type", "veth", "peer", "name", pair[1])
	}
	ns.MustRun("ip", "link", "add", "name", "br0", "type", "bridge")
	m := testMain()
	m.Offload = Offload{Devices: []string{"lan0", "wlan0", "br0", "usb0"}} // usb0 is not plugged in
	if err := ApplyMain(ns.Name, m); err != nil {
		t.Fatalf("ApplyMain: %v", err)
	}
	goldenTable(t, ns, "inet", Table, "main-offload.golden")
	w := testWAN()
	w.Offload = Offload{Devices: []string{"wan0", "transit0"}}
	if err := ApplyWAN(ns.Name, w); err != nil {
		t.Fatalf("ApplyWAN: %v", err)
	}
	goldenTable(t, ns, "inet", Table, "wan-offload.golden")
	// The tunnel is not up yet: the flowtable has the transit veth alone.
	if err := ApplyVPN(ns.Name, &VPN{Iface: "wg0", Transit: "transit0", MSS4: 1380, MSS6: 1360,
		Offload: Offload{Devices: []string{"wg0", "transit0"}}}); err != nil {
		t.Fatalf("ApplyVPN: %v", err)
	}
	goldenTable(t, ns, "inet", Table, "vpn-offload.golden")
	rl := testRelay()
	rl.Offload = Offload{Devices: []string{"eth0", "wg0"}}
	if err := ApplyRelay(ns.Name, rl); err != nil {
		t.Fatalf("ApplyRelay: %v", err)
	}
	goldenTable(t, ns, "inet", Table, "relay-offload.golden")
}

// TestOffloadWithoutFlowtables: on a kernel without flowtables, a ruleset
// asked to offload is applied as it is without offload, and the probe
// says why.
func TestOffloadWithoutFlowtables(t *testing.T) {
	lab.Require(t, "nft")
	l := lab.New(t)
	ns := l.NewNS("fw")
	ns.MustRun("ip", "link", "add", "name", "lan0", "type", "veth", "peer", "name", "lan0p")
	if FlowOffloadSupported(ns.Name) == nil {
		t.Skip("this kernel has flowtables: TestRulesetsGoldenOffload covers it")
	}
	if err := FlowOffloadSupported(ns.Name); !strings.Contains(err.Error(), "no flowtables") {
		t.Errorf("FlowOffloadSupported: %v, want it to say the kernel has no flowtables", err)
	}
	m := testMain()
	m.Offload = Offload{Devices: []string{"lan0"}}
	if err := ApplyMain(ns.Name, m); err != nil {
		t.Fatalf("ApplyMain with offload on a kernel without flowtables: %v", err)
	}
	if err := SetWANAddrs(ns.Name, []netip.Addr{netip.MustParseAddr("203.0.113.7")}); err != nil {
		t.Fatalf("SetWANAddrs: %v", err)
	}
	goldenTable(t, ns, "inet", Table, "main.golden")
}
