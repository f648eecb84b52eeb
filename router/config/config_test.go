package config

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/via"
)

func example(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExampleParses(t *testing.T) {
	c, err := Parse([]byte(example(t)))
	if err != nil {
		t.Fatalf("Parse(example) = %v", err)
	}
	if got, want := len(c.LAN), 5; got != want {
		t.Fatalf("len(LAN) = %d, want %d (four and [remote]'s)", got, want)
	}
	if r := c.LAN[4]; !r.Remote || r.Name != "wg1" || r.DHCP4 != nil || r.RA != nil || c.Remote == nil || len(c.Remote.Peers) != 1 {
		t.Errorf("[remote]'s LAN %+v, remote %+v", r, c.Remote)
	}
	l := c.LAN[0]
	if got, want := l.DHCP4.RangeStart, netip.MustParseAddr("192.168.1.100"); got != want {
		t.Errorf("lan[0].dhcp4.range[0] = %v, want %v", got, want)
	}
	if got, want := l.DHCP4.LeaseTime, 12*time.Hour; got != want {
		t.Errorf("lan[0].dhcp4.lease_time = %v, want %v", got, want)
	}
	if got, want := l.DHCP4.Reservations[0].Hostname, "nas"; got != want {
		t.Errorf("reservation hostname = %q, want %q", got, want)
	}
	if !l.RA.Managed || !l.RA.Other || l.RA.Autonomous {
		t.Errorf("lan[0].ra flags = %+v, want M=1 O=1 A=0", l.RA)
	}
	// wlan0 has an IPv6 address but no [lan.ra]: it gets a default RA.
	if ra := c.LAN[1].RA; ra == nil || len(ra.Prefixes) != 1 || ra.Prefixes[0] != netip.MustParsePrefix("fd00:2::/64") {
		t.Errorf("lan[1].ra = %+v, want a default RA for fd00:2::/64", ra)
	}
	if got, want := c.Netns.WANAddr4(), netip.MustParsePrefix("10.254.0.3/29"); got != want {
		t.Errorf("WANAddr4 = %v, want %v", got, want)
	}
	if got, want := c.Netns.VPNAddr6(), netip.MustParsePrefix("fd01::2/64"); got != want {
		t.Errorf("VPNAddr6 = %v, want %v", got, want)
	}
	if got, want := c.VPN.PrivateKeyFile, "/var/lib/routerd/wg0.key"; got != want {
		t.Errorf("PrivateKeyFile = %q, want %q", got, want)
	}
	p := c.Routing.Policies[0]
	if len(p.SourceAddrs) != 1 || len(p.SourceMACs) != 1 {
		t.Errorf("policy sources = %+v, want one IP and one MAC", p)
	}
	if got, want := c.Routing.Policies[1].DestinationPorts, []PortRange{{"tcp", 25, 25}}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("policy ports = %v, want %v", got, want)
	}
	if got, want := c.Firewall.ICMPRate, (Rate{5, "second"}); got != want {
		t.Errorf("icmp_rate = %v, want %v", got, want)
	}
	// Segments: lan0 is a bridge of two ports; iot and guest are VLANs on
	// it with their access; a rule, a route, DHCP options, the reflector.
	if got := c.LAN[0].Ports; len(got) != 2 || got[0].Name != "lan0p0" || got[1].Name != "lan0p1" || c.LAN[0].MatchMAC != nil {
		t.Errorf("lan[0].ports = %+v, want lan0p0 and lan0p1", got)
	}
	if iot := c.LAN[2]; iot.Parent != "lan0" || iot.VLAN != 20 || iot.Access != AccessIsolated || c.LAN[3].Access != AccessInternet || c.LAN[0].Access != AccessAll {
		t.Errorf("iot = %+v, guest access %q", iot, c.LAN[3].Access)
	}
	if r := c.Firewall.Rules; len(r) != 1 || r[0].From.LANs[0] != "guest" || r[0].To.Prefixes[0] != netip.MustParsePrefix("192.168.1.20/32") || r[0].Action != "accept" {
		t.Errorf("rules = %+v", r)
	}
	if r := c.Routes; len(r) != 1 || r[0].LAN != "lan0" || !r[0].Advertise {
		t.Errorf("routes = %+v", r)
	}
	if r := c.DNS.Reflect; len(r) != 2 || r[1] != "iot" {
		t.Errorf("mdns_reflect = %v", r)
	}
	if o := c.LAN[1].DHCP4.Options; len(o) != 2 || o[0].Code != 66 || string(o[0].Value) != "tftp.lan" || string(o[1].Value) != "pxelinux.0" {
		t.Errorf("wlan0 options = %+v", o)
	}
}

// TestRules breaks one rule per case and checks the error names the field.
func TestRules(t *testing.T) {
	tests := []struct {
		name     string
		old, new string // replace old with new in the example; old "" appends new
		path     string // wanted error path
		msg      string // wanted substring of the message
	}{
		{"unknown key", `hostname = "router"`, "hostname = \"router\"\nhostnme = \"x\"", "hostnme", "unknown key"},
		{"unknown nested key", `lease_time = "12h"`, "lease_time = \"12h\"\nleas = 1", "lan[0].dhcp4.leas", "unknown key"},
		{"wrong type", `mtu = 1500`, `mtu = "1500"`, "wan.mtu", "want an integer"},
		{"bad hostname", `hostname = "router"`, `hostname = "my_router!"`, "hostname", "not a valid host name"},
		{"relative state_dir", `state_dir = "/var/lib/routerd"`, `state_dir = "var/lib"`, "state_dir", "absolute"},
		{"same namespaces", `vpn = "vpn"`, `vpn = "wan"`, "netns.vpn", "must differ"},
		{"transit4 too small", `transit4 = "10.254.0.0/29"`, `transit4 = "10.254.0.0/30"`, "netns.transit4", "at least a /29"},
		{"transit4 family", `transit4 = "10.254.0.0/29"`, `transit4 = "fd09::/64"`, "netns.transit4", "not an IPv4 prefix"},
		{"transit6 syntax", `transit6 = "fd01::/64"`, `transit6 = "fd01::/200"`, "netns.transit6", "not an address with prefix length"},
		{"transit overlaps LAN", `transit4 = "10.254.0.0/29"`, `transit4 = "192.168.1.0/29"`, "netns.transit4", "overlaps 192.168.1.0/24"},
		{"transit overlaps VPN", `transit6 = "fd01::/64"`, `transit6 = "fd55:aaaa::/64"`, "netns.transit6", "overlaps vpn address"},
		{"bad match_mac", `match_mac = "00:e0:4c:68:00:01"`, `match_mac = "00:e0:4c:68:00"`, "wan.match_mac", "not a MAC"},
		{"duplicate match_mac", `match_mac = "00:0d:b9:33:33:33"`, `match_mac = "00:0d:b9:11:11:11"`, "lan[1].match_mac", "also matched by lan[0].ports[0].match_mac"},
		{"port in two LANs", `{ match_mac = "00:0d:b9:11:11:12" }`, `{ match_mac = "00:0d:b9:33:33:33" }`, "lan[1].match_mac", "also matched by lan[0].ports[1].match_mac"},
		{"vlan on a missing parent", `parent = "lan0"`, `parent = "lan9"`, "lan[2].parent", "not the name of a [[lan]]"},
		{"vlan id too big", `vlan = 20`, `vlan = 4095`, "lan[2].vlan", "outside 1-4094"},
		{"vlan id zero", `vlan = 30`, `vlan = 0`, "lan[3].vlan", "outside 1-4094"},
		{"same vlan twice", `vlan = 30`, `vlan = 20`, "lan[3].vlan", "already lan[2]"},
		{"vlan on a vlan", `parent = "lan0"                         # a VLAN`, `parent = "guest"                         # a VLAN`, "lan[2].parent", "itself a VLAN"},
		{"vlan and ports", `vlan = 30`, "vlan = 30\nmatch_mac = \"00:0d:b9:44:44:44\"", "lan[3]", "give one of"},
		{"bad access", `access = "isolated"`, `access = "guest"`, "lan[2].access", "not one of"},
		{"rule with an unknown LAN", `from = ["guest"]`, `from = ["guests"]`, "firewall.rule[0].from[0]", "not a [[lan]] name"},
		{"rule action", `action = "accept"                       # "accept"`, `action = "allow"                       # "accept"`, "firewall.rule[0].action", "not one of"},
		{"rule port", `ports = ["tcp/631"]`, `ports = ["631"]`, "firewall.rule[0].ports[0]", "tcp/PORT"},
		{"route via no LAN", `via = "192.168.1.2"`, `via = "192.168.9.2"`, "route[0].via", "on no LAN"},
		{"route via the router", `via = "192.168.1.2"`, `via = "192.168.1.1"`, "route[0].via", "router's own address"},
		{"route over a LAN", `to = "10.10.0.0/16"`, `to = "192.168.0.0/16"`, "route[0].to", "overlaps 192.168.1.0/24"},
		{"route default", `to = "10.10.0.0/16"`, `to = "0.0.0.0/0"`, "route[0].to", "routing.default"},
		{"route family", `to = "10.10.0.0/16"`, `to = "fd10::/48"`, "route[0].via", "different families"},
		{"dhcp option owned", `options = { 66 = "tftp.lan", 67 = "pxelinux.0" }`, `options = { 6 = "1.1.1.1" }`, "lan[1].dhcp4.options.6", "set by lan.dhcp4.dns"},
		{"dhcp option unknown", `options = { 66 = "tftp.lan", 67 = "pxelinux.0" }`, `options = { 100 = "x" }`, "lan[1].dhcp4.options.100", "does not know its format"},
		{"dhcp option type", `options = { 66 = "tftp.lan", 67 = "pxelinux.0" }`, `options = { 150 = "tftp.lan" }`, "lan[1].dhcp4.options.150", "not an IPv4 address"},
		{"dhcp option number", `options = { 66 = "tftp.lan", 67 = "pxelinux.0" }`, `options = { x = "tftp.lan" }`, "lan[1].dhcp4.options.x", "not a DHCP option number"},
		{"reflect unknown LAN", `mdns_reflect = ["lan0", "iot"]`, `mdns_reflect = ["lan0", "tv"]`, "dns.mdns_reflect[1]", "not the name of a [[lan]]"},
		{"reflect one LAN", `mdns_reflect = ["lan0", "iot"]`, `mdns_reflect = ["lan0"]`, "dns.mdns_reflect", "at least two"},
		{"long port name", `name = "lan0"`, `name = "livingroom0123"`, "lan[0].ports[0].name", "longer than 15 bytes"},
		{"multicast set_mac", `set_mac = "00:11:22:33:44:55"`, `set_mac = "01:11:22:33:44:55"`, "wan.set_mac", "multicast"},
		{"zero set_mac", `set_mac = "00:11:22:33:44:55"`, `set_mac = "00:00:00:00:00:00"`, "wan.set_mac", "all-zero"},
		{"long ifname", `name = "wan0"`, `name = "wan0-but-far-too-long"`, "wan.name", "1-15 bytes"},
		{"duplicate ifname", `name = "wlan0"`, `name = "lan0"`, "lan[1].name", "also the name of lan[0].name"},
		{"bad wait", `wait = "30s"`, `wait = "30"`, "wan.wait", "not a duration"},
		{"negative duration", `wait = "30s"`, `wait = "-5s"`, "wan.wait", "must be positive"},
		{"endless wait", `wait = "30s"`, `wait = "24h"`, "wan.wait", "longer than 10m0s"},
		{"static without address", `ipv4 = "dhcp"`, `ipv4 = "static"`, "wan.address", "required"},
		{"static gateway outside", `ipv4 = "dhcp"`, "ipv4 = \"static\"\naddress = \"203.0.113.10/24\"\ngateway = \"198.51.100.1\"", "wan.gateway", "outside 203.0.113.0/24"},
		{"bad ipv6 mode", `ipv6 = "dhcp"`, `ipv6 = "auto"`, "wan.ipv6", "not one of"},
		{"mtu range", `mtu = 1500`, `mtu = 100`, "wan.mtu", "outside"},
		{"pd_subnet range", `pd_subnet = 1 `, `pd_subnet = 70000 `, "lan[0].pd_subnet", "not a subnet id"},
		{"pd_subnet without DHCPv6 on the WAN", `ipv6 = "dhcp"`, "ipv6 = \"slaac\"", "lan[0].pd_subnet", `needs wan.ipv6 = "dhcp"`},
		{"static6 without address", `ipv6 = "dhcp"`, `ipv6 = "static"` + "\ngateway6 = \"fe80::1\"", "wan.address6", "required with ipv6 = \"static\""},
		{"static6 gateway outside", `ipv6 = "dhcp"`, `ipv6 = "static"` + "\naddress6 = \"2001:db8:0:1::2/64\"\ngateway6 = \"2001:db8:9::1\"\nprefix6 = \"2001:db8:100::/56\"", "wan.gateway6", "outside 2001:db8:0:1::/64"},
		{"static6 prefix host bits", `ipv6 = "dhcp"`, `ipv6 = "static"` + "\naddress6 = \"2001:db8:0:1::2/64\"\ngateway6 = \"fe80::1\"\nprefix6 = \"2001:db8:100::1/56\"", "wan.prefix6", "host bits"},
		{"static6 prefix too long", `ipv6 = "dhcp"`, `ipv6 = "static"` + "\naddress6 = \"2001:db8:0:1::2/64\"\ngateway6 = \"fe80::1\"\nprefix6 = \"2001:db8:100::/72\"", "wan.prefix6", "longer than a /64"},
		{"wan vlan out of range", `mtu = 1500`, "mtu = 1500\nvlan = 4095", "wan.vlan", "outside 1-4094"},
		{"pppoe without section", `ipv4 = "dhcp"`, `ipv4 = "pppoe"`, "wan.pppoe", "required with ipv4 = \"pppoe\""},
		{"backup on the primary's NIC", `mtu = 1500`, "mtu = 1500\n[wan.backup]\nname = \"wan0\"\nmatch_mac = \"00:e0:4c:68:00:09\"", "wan.backup.name", "also the name of wan.name"},
		{"backup probe", `mtu = 1500`, "mtu = 1500\n[wan.backup]\nmatch_mac = \"00:e0:4c:68:00:09\"\nprobe = [\"1.1.1.1\", \"fe80::1\", \"one\"]", "wan.backup.probe[1]", "unicast IPv4"},
		{"backup probe name", `mtu = 1500`, "mtu = 1500\n[wan.backup]\nmatch_mac = \"00:e0:4c:68:00:09\"\nprobe = [\"one\"]", "wan.backup.probe[0]", "not an IP address"},
		{"backup dhcpv6", `mtu = 1500`, "mtu = 1500\n[wan.backup]\nmatch_mac = \"00:e0:4c:68:00:09\"\nipv6 = \"dhcp\"", "wan.backup.ipv6", "the primary's delegation"},
		{"backup of a backup", `mtu = 1500`, "mtu = 1500\n[wan.backup]\nmatch_mac = \"00:e0:4c:68:00:09\"\n[wan.backup.backup]\nmatch_mac = \"00:e0:4c:68:00:0a\"", "wan.backup.backup", "no backup of its own"},
		{"backup interval", `mtu = 1500`, "mtu = 1500\n[wan.backup]\nmatch_mac = \"00:e0:4c:68:00:09\"\nprobe_interval = \"100ms\"", "wan.backup.probe_interval", "outside 500ms-1m"},
		{"backup timeout", `mtu = 1500`, "mtu = 1500\n[wan.backup]\nmatch_mac = \"00:e0:4c:68:00:09\"\nprobe_timeout = \"1m\"", "wan.backup.probe_timeout", "outside 500ms-30s"},
		{"backup pppoe password", `mtu = 1500`, "mtu = 1500\n[wan.backup]\nmatch_mac = \"00:e0:4c:68:00:09\"\nipv4 = \"pppoe\"\nipv6 = \"off\"\n[wan.backup.pppoe]\nusername = \"u\"", "wan.backup.pppoe.password_file", "required"},
		{"sqm rate", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"38 mbit\"\ndownload = \"95mbit\"", "sqm.upload", "not a rate"},
		{"sqm rate missing", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"38mbit\"", "sqm.download", "required"},
		{"sqm auto without bounds", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"auto\"\ndownload = \"95mbit\"", "sqm.upload", "give both"},
		{"sqm auto bounds", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"auto\"\nupload_min = \"9mbit\"\nupload_max = \"2mbit\"\ndownload = \"95mbit\"", "sqm.upload_max", "not above sqm.upload_min"},
		{"sqm bounds of a fixed rate", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"2mbit\"\nupload_max = \"9mbit\"\ndownload = \"95mbit\"", "sqm.upload_min", "for an \"auto\" rate"},
		{"sqm reflector", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"2mbit\"\ndownload = \"auto\"\ndownload_min = \"8mbit\"\ndownload_max = \"25mbit\"\nreflectors = [\"1.1.1.1\", \"10.0.0.300\"]", "sqm.reflectors[1]", "not an IP address"},
		{"sqm threshold", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"2mbit\"\ndownload = \"auto\"\ndownload_min = \"8mbit\"\ndownload_max = \"25mbit\"\nbloat_threshold = \"1ms\"", "sqm.bloat_threshold", "outside 2ms-1s"},
		{"sqm class tin", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"1mbit\"\ndownload = \"9mbit\"\n[[sqm.class]]\ntin = \"fast\"\nhosts = [\"192.168.1.5\"]", "sqm.class[0].tin", "is not one of"},
		{"sqm class empty", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"1mbit\"\ndownload = \"9mbit\"\n[[sqm.class]]\ntin = \"bulk\"", "sqm.class[0]", "needs hosts, ports or both"},
		{"sqm class port", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"1mbit\"\ndownload = \"9mbit\"\n[[sqm.class]]\ntin = \"voice\"\nports = [\"3074\"]", "sqm.class[0].ports[0]", "want tcp/PORT"},
		{"sqm class host", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"1mbit\"\ndownload = \"9mbit\"\n[[sqm.class]]\ntin = \"voice\"\nhosts = [\"console\"]", "sqm.class[0].hosts[0]", "not a LAN host's address"},
		{"sqm backup without backup", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"1mbit\"\ndownload = \"9mbit\"\n[sqm.backup]\nupload = \"1mbit\"\ndownload = \"4mbit\"", "sqm.backup", "no [wan.backup]"},
		{"sqm backup auto", `mtu = 1500`, "mtu = 1500\n[wan.backup]\nmatch_mac = \"00:e0:4c:68:00:09\"\n[sqm]\nupload = \"1mbit\"\ndownload = \"9mbit\"\n[sqm.backup]\nupload = \"1mbit\"\ndownload = \"auto\"", "sqm.backup.download", "give both"},
		{"sqm too slow", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"10kbit\"\ndownload = \"95mbit\"", "sqm.upload", "outside 64kbit-100gbit"},
		{"sqm overhead", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"1mbit\"\ndownload = \"9mbit\"\noverhead = \"adsl\"", "sqm.overhead", "not one of"},
		{"sqm overhead bytes", `mtu = 1500`, "mtu = 1500\n[sqm]\nupload = \"1mbit\"\ndownload = \"9mbit\"\noverhead = 300", "sqm.overhead", "outside -64-256"},
		{"probe without backup", `mtu = 1500`, "mtu = 1500\nprobe = [\"1.1.1.1\"]", "wan", "belong in [wan.backup]"},
		{"pppoe section without pppoe", `mtu = 1500`, "mtu = 1500\n[wan.pppoe]\nusername = \"u\"\npassword_file = \"p\"", "wan.pppoe", "only meaningful"},
		{"pd_subnet without prefix6", `ipv6 = "dhcp"`, `ipv6 = "static"` + "\naddress6 = \"2001:db8:0:1::2/64\"\ngateway6 = \"fe80::1\"", "lan[0].pd_subnet", "needs wan.prefix6"},
		{"address6 without static", `ipv6 = "dhcp"`, `ipv6 = "dhcp"` + "\naddress6 = \"2001:db8:0:1::2/64\"", "wan.address6", "only meaningful with ipv6 = \"static\""},
		{"pd_subnet twice", `addresses = ["192.168.2.1/24", "fd00:2::1/64"]`, "addresses = [\"192.168.2.1/24\", \"fd00:2::1/64\"]\npd_subnet = 1", "lan[1].pd_subnet", "already lan[0]'s (lan0)"},
		{"pd_subnet without IPv6", `addresses = ["192.168.2.1/24", "fd00:2::1/64"]`, "addresses = [\"192.168.2.1/24\"]\npd_subnet = 2", "lan[1].pd_subnet", "needs IPv6 on this LAN"},
		{"address syntax", `addresses = ["192.168.1.1/24", "fd00:1::1/64"]`, `addresses = ["192.168.1.300/24", "fd00:1::1/64"]`, "lan[0].addresses[0]", "not an address"},
		{"network address as interface address", `addresses = ["192.168.1.1/24", "fd00:1::1/64"]`, `addresses = ["192.168.1.0/24", "fd00:1::1/64"]`, "lan[0].addresses[0]", "network address"},
		{"LAN overlap", `addresses = ["192.168.2.1/24", "fd00:2::1/64"]`, `addresses = ["192.168.1.2/23", "fd00:2::1/64"]`, "lan[1].addresses[0]", "overlaps 192.168.1.0/24"},
		{"range outside subnet", `range = ["192.168.1.100", "192.168.1.250"]`, `range = ["192.168.2.10", "192.168.1.250"]`, "lan[0].dhcp4.range", "192.168.2.10 is outside 192.168.1.0/24"},
		{"range reversed", `range = ["192.168.1.100", "192.168.1.250"]`, `range = ["192.168.1.250", "192.168.1.100"]`, "lan[0].dhcp4.range", "reversed"},
		{"range contains router", `range = ["192.168.1.100", "192.168.1.250"]`, `range = ["192.168.1.1", "192.168.1.250"]`, "lan[0].dhcp4.range", "router's own address"},
		{"range contains broadcast", `range = ["192.168.1.100", "192.168.1.250"]`, `range = ["192.168.1.100", "192.168.1.255"]`, "lan[0].dhcp4.range", "broadcast"},
		{"range family", `range = ["192.168.1.100", "192.168.1.250"]`, `range = ["fd00:1::100", "192.168.1.250"]`, "lan[0].dhcp4.range[0]", "not an IPv4 address"},
		{"range arity", `range = ["192.168.1.100", "192.168.1.250"]`, `range = ["192.168.1.100"]`, "lan[0].dhcp4.range", "want [first, last]"},
		{"dhcp6 range outside", `range = ["fd00:1::100", "fd00:1::ffff"]`, `range = ["fd00:9::100", "fd00:1::ffff"]`, "lan[0].dhcp6.range", "outside fd00:1::/64"},
		{"reservation outside subnet", `ip = "192.168.1.10"`, `ip = "192.168.7.10"`, "lan[0].dhcp4.reservation[0].ip", "outside 192.168.1.0/24"},
		{"reservation duplicate MAC", `hostname = "nas"`, "hostname = \"nas\"\n[[lan.dhcp4.reservation]]\nmac = \"aa:bb:cc:00:00:01\"\nip = \"192.168.1.11\"", "lan[0].dhcp4.reservation[1].mac", "already reserved"},
		{"reservation duplicate IP", `hostname = "nas"`, "hostname = \"nas\"\n[[lan.dhcp4.reservation]]\nmac = \"aa:bb:cc:00:00:09\"\nip = \"192.168.1.10\"", "lan[0].dhcp4.reservation[1].ip", "already reserved"},
		{"reservation hostname", `hostname = "nas"`, `hostname = "n a s"`, "lan[0].dhcp4.reservation[0].hostname", "not a valid host name"},
		{"ra prefix not on link", `prefixes = ["fd00:1::/64"]`, `prefixes = ["fd00:7::/64"]`, "lan[0].ra.prefixes[0]", "does not contain"},
		{"dns listen unknown", `listen = ["lan0", "wlan0"]`, `listen = ["lan0", "eth9"]`, "dns.listen[1]", "not a [[lan]] name"},
		{"dns upstream", `upstream = ["9.9.9.9:53", "[2620:fe::fe]:53"]`, `upstream = ["dns.quad9.net:53"]`, "dns.upstream[0]", "want an IP address"},
		{"dns domain local", `domain = "lan"`, `domain = "local"`, "dns.domain", "reserved for mDNS"},
		{"dns record address", `addresses = ["192.168.1.1", "fd00:1::1"]`, `addresses = ["192.168.1.1", "nope"]`, "dns.record[0].addresses[1]", "not an IP address"},
		{"wg key", `public_key = "h+5fSldkanbDmMk5d30tm2Kuwn5Qq6e7mEcqjLQmCF8="`, `public_key = "aGVsbG8="`, "vpn.peer[0].public_key", "base64 of 32 bytes"},
		{"endpoint no port", `endpoint = "198.51.100.7:51820"`, `endpoint = "198.51.100.7"`, "vpn.peer[0].endpoint", "host:port"},
		{"endpoint v6 brackets", `endpoint = "198.51.100.7:51820"`, `endpoint = "2001:db8::7:51820"`, "vpn.peer[0].endpoint", "host:port"},
		{"endpoint port range", `endpoint = "198.51.100.7:51820"`, `endpoint = "vpn.example.net:99999"`, "vpn.peer[0].endpoint", "outside 1-65535"},
		{"vpn mtu", `mtu = 1420`, `mtu = 60000`, "vpn.mtu", "outside"},
		{"vpn implementation", `implementation = "auto"`, `implementation = "magic"`, "vpn.implementation", "not one of"},
		{"vpn overlaps LAN", `addresses = ["10.64.0.2/32", "fd55:aaaa::2/128"]`, `addresses = ["192.168.1.9/32"]`, "vpn.addresses[0]", "overlaps 192.168.1.0/24"},
		{"keepalive", `persistent_keepalive = "25s"`, `persistent_keepalive = "soon"`, "vpn.peer[0].persistent_keepalive", "not a duration"},
		{"routing default", `default = "vpn"`, `default = "tor"`, "routing.default", "not one of"},
		{"policy via", `via = "wan"` + "\n\n[[routing.policy]]", `via = "direct"` + "\n\n[[routing.policy]]", "routing.policy[0].via", "not one of"},
		{"policy source", `sources = ["192.168.1.50", "aa:bb:cc:00:00:02"]`, `sources = ["192.168.1.500"]`, "routing.policy[0].sources[0]", "not an IP, CIDR, MAC"},
		{"policy port", `destination_ports = ["tcp/25"]`, `destination_ports = ["sctp/25"]`, "routing.policy[1].destination_ports[0]", "tcp/PORT"},
		{"policy duplicate name", `name = "smtp-out"`, `name = "tv-direct"`, "routing.policy[1].name", "also the name"},
		{"blocklist both", `file = "/etc/routerd/direct.txt"`, "file = \"/etc/routerd/direct.txt\"\nurl = \"https://example.com/x\"", "blocklist[1]", "both url and file"},
		{"blocklist neither", `file = "/etc/routerd/direct.txt"`, ``, "blocklist[1]", "needs a url or a file"},
		{"blocklist url", `url = "https://reestr.rublacklist.net/api/v2/ips/csv/"`, `url = "ftp://example.com/list"`, "blocklist[0].url", "not an http(s) URL"},
		{"blocklist format", `format = "auto"                         # "auto" | "lines"`, `format = "xml" #`, "blocklist[0].format", "not one of"},
		{"dns.block format", `format = "auto"                         # "auto" | "hosts"`, `format = "lines" #`, "dns.block[0].format", "not one of"},
		{"dns.block answer", `answer = "nxdomain"`, `answer = "refused"`, "dns.block[0].answer", "not one of"},
		{"dns.block lans", `lans = ["lan0", "guest"]`, `lans = ["lan0", "nope"]`, "dns.block[0].lans[1]", "not a [[lan]] name"},
		{"dns.block via", `answer = "nxdomain"`, "via = \"vpn\"", "dns.block[0]", "a DNS block list answers names"},
		{"dns.block name", `name = "ads"`, `name = "rkn"`, "dns.block[0].name", "is used by blocklist[0]"},
		{"dns.allow", `allow = ["s.youtube.com"]`, `allow = ["not a name"]`, "dns.allow[0]", "not a domain name"},
		{"remote port", `listen_port = 51821`, `listen_port = 51820`, "remote.listen_port", "vpn.listen_port too"},
		{"remote endpoint", `endpoint = "home.example.org:51821"`, `endpoint = "home.example.org"`, "remote.endpoint", "host:port"},
		{"remote peer address", `addresses = ["10.99.0.2/32", "fd00:99::2/128"]`, `addresses = ["10.99.1.2/32", "fd00:99::2/128"]`, "remote.peer[0].addresses[0]", "in 10.99.0.1/24"},
		{"remote peer key", `public_key = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="`, `public_key = "nope"`, "remote.peer[0].public_key", "not a WireGuard key"},
		{"remote overlaps a LAN", "addresses = [\"10.99.0.1/24\", \"fd00:99::1/64\"]\nprivate", "addresses = [\"192.168.7.1/24\", \"fd00:1::1/64\"]\nprivate", "remote.addresses[1]", "overlaps fd00:1::/64"},
		{"portmap ports", `ports = "1024-65535"`, `ports = "65535-1024"`, "portmap.ports", "want a range"},
		{"portmap protocol", `protocols = ["upnp", "natpmp", "pcp"]`, `protocols = ["natpmp", "igd2"]`, "portmap.protocols[1]", "not one of"},
		{"portmap listen", `listen = ["lan0"]
ports`, `listen = ["nope"]
ports`, "portmap.listen[0]", "not a [[lan]] name"},
		{"pinhole to", `to = "aa:bb:cc:00:00:01"                # a LAN host by MAC`, `to = "2001:db8::10" #`, "firewall.pinhole[0].to", "interface identifier"},
		{"pinhole ports", `ports = ["tcp/443"]`, `ports = []`, "firewall.pinhole[0].ports", "required"},
		{"pinhole name", `name = "nas-https"`, `name = "nas https"`, "firewall.pinhole[0].name", "letters, digits"},
		{"dns.query_log", `query_log = ""`, `query_log = "9999h"`, "dns.query_log", "outside 0-168h"},
		{"blocklist refresh", `refresh = "1h"`, `refresh = "0s"`, "blocklist[0].refresh", "must be positive"},
		{"blocklist min_ratio", `refresh = "1h"`, "refresh = \"1h\"\nmin_ratio = 1.5", "blocklist[0].min_ratio", "outside 0-1"},
		{"blocklist timeout", `refresh = "1h"`, "refresh = \"1h\"\ntimeout = \"-5s\"", "blocklist[0].timeout", "must be positive"},
		{"blocklist max_size", `refresh = "1h"`, "refresh = \"1h\"\nmax_size = \"12 parsecs\"", "blocklist[0].max_size", "not a size"},
		{"icmp rate", `icmp_rate = "5/second"`, `icmp_rate = "fast"`, "firewall.icmp_rate", "N/second"},
		{"max connections", `max_connections = 65536`, `max_connections = 8`, "firewall.max_connections", "outside 16-"},
		{"port forward port", `port = 8443`, `port = 70000`, "firewall.port_forward[0].port", "outside 1-65535"},
		{"port forward outside LAN", `to = "192.168.1.10:443"`, `to = "10.9.9.9:443"`, "firewall.port_forward[0].to", "not inside any LAN subnet"},
		{"port forward proto", `proto = "tcp"`, `proto = "icmp"`, "firewall.port_forward[0].proto", "not one of"},
		{"socket relative", `socket = "/run/routerd/routerd.sock"`, `socket = "routerd.sock"`, "status.socket", "absolute"},
		{"metrics", `metrics = ""`, `metrics = "localhost"`, "status.metrics", "not ip:port"},
		{"via vpn without vpn", "", "", "routing.default", `"vpn" needs a [vpn] section`},
		{"dot without a name", `upstream = ["9.9.9.9:53", "[2620:fe::fe]:53"]`, `upstream = ["tls://9.9.9.9"]`, "dns.upstream[0]", "needs the name its certificate is for"},
		{"dot bad name", `upstream = ["9.9.9.9:53", "[2620:fe::fe]:53"]`, `upstream = ["tls://9.9.9.9:853#not a name"]`, "dns.upstream[0]", "not a host name"},
		{"time server", `servers = ["time.cloudflare.com", "pool.ntp.org"]`, `servers = ["time.cloudflare.com", "bad host!"]`, "time.servers[1]", "not a host name"},
		{"time server port", `servers = ["time.cloudflare.com", "pool.ntp.org"]`, `servers = ["192.0.2.1:0"]`, "time.servers[0]", "not a host name"},
		{"time serve without servers", `servers = ["time.cloudflare.com", "pool.ntp.org"]`, `servers = []`, "time.serve", "needs time.servers"},
		{"ca_file on a file list", `file = "/etc/routerd/direct.txt"`, "file = \"/etc/routerd/direct.txt\"\nca_file = \"ca.pem\"", "blocklist[1].ca_file", "https URLs only"},
		{"trust anchors without dnssec", `cache_size = 10000`, "cache_size = 10000\ntrust_anchors = \"anchors.ds\"", "dns.trust_anchors", "set dns.dnssec = true"},
	}
	base := example(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := base
			switch {
			case tt.name == "via vpn without vpn":
				text = dropSection(base, "[vpn]", "[routing]")
			case !strings.Contains(base, tt.old):
				t.Fatalf("example has no %q", tt.old)
			default:
				text = strings.Replace(base, tt.old, tt.new, 1)
			}
			_, err := Parse([]byte(text))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse = %v, want Errors", err)
			}
			for _, e := range errs {
				if e.Path == tt.path && strings.Contains(e.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("no error %s: ...%s...; got:\n%v", tt.path, tt.msg, errs)
		})
	}
}

// dropSection removes the text from start up to (not including) end.
func dropSection(s, start, end string) string {
	i, j := strings.Index(s, start), strings.Index(s, end)
	return s[:i] + s[j:]
}

func TestTenMistakesAllReported(t *testing.T) {
	r := strings.NewReplacer(
		`hostname = "router"`, `hostname = "bad host"`,
		`transit4 = "10.254.0.0/29"`, `transit4 = "10.254.0.0/31"`,
		`set_mac = "00:11:22:33:44:55"`, `set_mac = "03:11:22:33:44:55"`,
		`wait = "30s"`, `wait = "forever"`,
		`range = ["192.168.1.100", "192.168.1.250"]`, `range = ["192.168.1.250", "192.168.1.100"]`,
		`ip = "192.168.1.10"`, `ip = "10.0.0.10"`,
		`public_key = "h+5fSldkanbDmMk5d30tm2Kuwn5Qq6e7mEcqjLQmCF8="`, `public_key = "short"`,
		`endpoint = "198.51.100.7:51820"`, `endpoint = "198.51.100.7"`,
		`default = "vpn"`, `default = "both"`,
		`port = 8443`, `port = 0`,
		`icmp_rate = "5/second"`, `icmp_rate = "5/fortnight"`,
	)
	_, err := Parse([]byte(r.Replace(example(t))))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse = %v, want Errors", err)
	}
	if len(errs) < 11 {
		t.Errorf("got %d errors, want at least 11:\n%v", len(errs), errs)
	}
	for _, e := range errs {
		if e.Path == "" {
			t.Errorf("error without a path: %v", e)
		}
	}
}

func TestSyntaxErrorHasLine(t *testing.T) {
	_, err := Parse([]byte("hostname = \"a\"\n[wan\nname = 1\n"))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || !strings.HasPrefix(errs[0].Path, "line ") {
		t.Fatalf("Parse = %v, want one error with a line number", err)
	}
}

func TestMinimalConfigDefaults(t *testing.T) {
	c, err := Parse([]byte(`
[wan]
match_mac = "02:00:00:00:00:01"
[[lan]]
name = "lan0"
match_mac = "02:00:00:00:00:02"
addresses = ["192.168.1.1/24"]
[lan.dhcp4]
range = ["192.168.1.100", "192.168.1.200"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Routing.Default != via.WAN || c.Routing.Router != via.WAN {
		t.Errorf("routing = %+v, want wan/wan without [vpn]", c.Routing)
	}
	if got, want := c.DNS.Listen, []string{"lan0"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("dns.listen = %v, want %v", got, want)
	}
	if c.WAN.Name != "wan0" || c.Netns.WAN != "wan" || c.Status.Socket != DefaultSocket || !c.Firewall.Harden ||
		!c.Firewall.FlowOffload || c.Firewall.MaxConnections != 0 {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.LAN[0].RA != nil {
		t.Errorf("IPv4-only LAN got an RA: %+v", c.LAN[0].RA)
	}
}

// The conntrack capacity a machine gets by default follows its memory,
// within OpenWrt's 16384 and 262144.
func TestMaxConnectionsFor(t *testing.T) {
	for _, tc := range []struct {
		mem  uint64
		want int
	}{{128 << 20, 16384}, {512 << 20, 32768}, {1 << 30, 65536}, {2 << 30, 131072}, {4 << 30, 262144}, {64 << 30, 262144}} {
		if got := MaxConnectionsFor(tc.mem); got != tc.want {
			t.Errorf("MaxConnectionsFor(%d MiB) = %d, want %d", tc.mem>>20, got, tc.want)
		}
	}
}

func TestFileWarnings(t *testing.T) {
	c, err := Parse([]byte(example(t)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c.Blocklists[1].File = dir + "/missing.txt"
	c.Admin.AuthorizedKeysFile = dir + "/authorized_keys"
	c.Routing.Policies[2].Users = []string{"0"} // root, by uid: known everywhere
	ws := c.FileWarnings()
	if len(ws) != 2 || ws[0].Path != "blocklist[1].file" || ws[1].Path != "admin.authorized_keys" {
		t.Errorf("FileWarnings = %v, want one for blocklist[1].file and one for admin.authorized_keys", ws)
	}
	// A list over plain http is one a man in the middle can rewrite.
	c.Blocklists[0].URL = "http://lists.example/ips.txt"
	ws = c.FileWarnings()
	if len(ws) != 3 || ws[0].Path != "blocklist[0].url" || !strings.Contains(ws[0].Msg, "plain http") {
		t.Errorf("FileWarnings = %v, want one for blocklist[0].url first", ws)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(example(f))
	f.Add(relayExample(f))
	f.Add("[wan]\nmatch_mac = \"02:00:00:00:00:01\"\n")
	f.Add("[[lan]]\naddresses = [1, \"x\"]\n[lan.dhcp4]\nrange = []\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse([]byte(s))
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %v is not a non-empty Errors", err)
			}
		}
	})
}

func TestUpstreams(t *testing.T) {
	text := strings.Replace(example(t), `upstream = ["9.9.9.9:53", "[2620:fe::fe]:53"]`,
		`upstream = ["tls://9.9.9.9#dns.quad9.net", "tls://[2620:fe::fe]:8853#dns.quad9.net", "1.1.1.1"]`, 1)
	c, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []Upstream{
		{Addr: netip.MustParseAddrPort("9.9.9.9:853"), TLS: true, ServerName: "dns.quad9.net"},
		{Addr: netip.MustParseAddrPort("[2620:fe::fe]:8853"), TLS: true, ServerName: "dns.quad9.net"},
		{Addr: netip.MustParseAddrPort("1.1.1.1:53")},
	}
	if !slices.Equal(c.DNS.Upstream, want) {
		t.Errorf("upstreams = %+v, want %+v", c.DNS.Upstream, want)
	}
}
