package config

import (
	"net/netip"
	"os"
	"strings"
	"testing"
)

func relayExample(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/relay.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRelayExampleParses(t *testing.T) {
	c, err := Parse([]byte(relayExample(t)))
	if err != nil {
		t.Fatalf("Parse(relay example) = %v", err)
	}
	r := c.Relay
	if r == nil {
		t.Fatal("Relay = nil")
	}
	if got, want := len(r.Forwards), 3; got != want {
		t.Fatalf("len(Forwards) = %d, want %d", got, want)
	}
	if got, want := r.Forwards[1].String(), "tcp+udp 60000-60100 → [fd55:aaaa::2]"; got != want {
		t.Errorf("Forwards[1] = %q, want %q", got, want)
	}
	if f := r.Forwards[2]; !f.SNATPool || len(f.MatchIPs) != 1 || f.ToPort != 443 || r.Forwards[0].SNATPool || !r.ForwardDrop ||
		r.PublicKeyFile != "/var/lib/routerd/wg0.pub" {
		t.Errorf("forward[2] = %+v, forward_drop %v, public_key_file %q", f, r.ForwardDrop, r.PublicKeyFile)
	}
	if len(r.Public) != 1 || r.Public[0] != "eth0" {
		t.Errorf("public = %q", r.Public)
	}
	two, err := Parse([]byte(strings.Replace(relayExample(t), `public = "eth0"`, `public = ["eth0", "eth1"]`, 1)))
	if err != nil || len(two.Relay.Public) != 2 {
		t.Errorf("public = [eth0, eth1]: %v, %v", err, two)
	}
	if !r.Masquerade || r.MaxConnections != 262144 || r.PathMTU != 1500 || r.OuterFamily != "ipv6" {
		t.Errorf("relay = %+v", r)
	}
	if got, want := r.PrivateKeyFile, "/var/lib/routerd/wg0.key"; got != want {
		t.Errorf("PrivateKeyFile = %q, want %q", got, want)
	}
}

// TestRelayMSS is the table in Relay.MSS's comment.
func TestRelayMSS(t *testing.T) {
	for _, tc := range []struct {
		pathMTU, mtu int
		outer        string
		want4, want6 uint16
	}{
		{1500, 1420, "ipv4", 1380, 1360},
		{1500, 1420, "ipv6", 1380, 1360},
		{1492, 1420, "ipv6", 1372, 1352},
		{1492, 1420, "ipv4", 1380, 1360},
		{1500, 1500, "ipv4", 1400, 1380}, // the tunnel MTU allows more: the path decides
		{1400, 1420, "ipv6", 1280, 1260}, // a chained tunnel
	} {
		r := &Relay{PathMTU: tc.pathMTU, MTU: tc.mtu, OuterFamily: tc.outer}
		if got4, got6 := r.MSS(false), r.MSS(true); got4 != tc.want4 || got6 != tc.want6 {
			t.Errorf("MSS(path %d, mtu %d, outer %s) = %d/%d, want %d/%d", tc.pathMTU, tc.mtu, tc.outer, got4, got6, tc.want4, tc.want6)
		}
	}
}

// TestRelayRejects: each bad combination is refused with its own message,
// at its own path, and nothing else is reported.
func TestRelayRejects(t *testing.T) {
	base := relayExample(t)
	for _, tc := range []struct {
		name      string
		edit      func(string) string
		path, msg string
	}{
		{"router sections", func(s string) string { return s + "\n[[lan]]\nname = \"lan0\"\n" },
			"lan", "only hostname, state_dir, [relay] and [status]"},
		{"no public NIC", func(s string) string { return strings.Replace(s, `public = "eth0"`, "", 1) },
			"relay.public", "required"},
		{"masquerade and pool", func(s string) string {
			return strings.Replace(s, "# snat_pool", "snat_pool", 1)
		}, "relay.masquerade", "choose one"},
		{"pool inside the tunnel", func(s string) string {
			return strings.Replace(s, "masquerade = true", `snat_pool = ["10.64.0.9"]`, 1)
		}, "relay.snat_pool[0]", "inside the tunnel"},
		{"pool family the tunnel lacks", func(s string) string {
			s = strings.Replace(s, `addresses = ["10.64.0.1/24", "fd55:aaaa::1/64"]`, `addresses = ["10.64.0.1/24"]`, 1)
			s = strings.Replace(s, `allowed_ips = ["10.64.0.2/32", "fd55:aaaa::2/128"]`, `allowed_ips = ["10.64.0.2/32"]`, 1)
			s = strings.Replace(s, `to = "fd55:aaaa::2"`, `to = "10.64.0.2"`, 1)
			return strings.Replace(s, "masquerade = true", `snat_pool = ["2001:db8::20"]`, 1)
		}, "relay.snat_pool[0]", "would never be used"},
		{"reversed ports", func(s string) string { return strings.Replace(s, `ports = "60000-60100"`, `ports = "60100-60000"`, 1) },
			"relay.forward[1].ports", "reversed"},
		{"zero port", func(s string) string { return strings.Replace(s, `ports = "443"`, `ports = "0"`, 1) },
			"relay.forward[0].ports", "outside 1-65535"},
		{"target no peer holds", func(s string) string { return strings.Replace(s, `to = "10.64.0.2"`, `to = "10.64.0.4"`, 1) },
			"relay.forward[0].to", "in no peer's allowed_ips"},
		{"target with a port", func(s string) string { return strings.Replace(s, `to = "10.64.0.2"`, `to = "10.64.0.2:8443"`, 1) },
			"relay.forward[0].to", "give the port as to_port"},
		{"to_port on a range", func(s string) string {
			return strings.Replace(s, `to = "fd55:aaaa::2"`, "to = \"fd55:aaaa::2\"\nto_port = 7000", 1)
		}, "relay.forward[1].to_port", "a range 60000-60100 keeps its ports"},
		{"the relay's own WireGuard port", func(s string) string {
			return strings.Replace(s, `ports = "60000-60100"`, `ports = "51000-52000"`, 1)
		}, "relay.forward[1].ports", "the relay's own WireGuard port"},
		{"overlapping forwards", func(s string) string {
			return s + "\n[[relay.forward]]\nproto = \"udp\"\nports = \"60050\"\nto = \"fd55:aaaa::2\"\n"
		}, "relay.forward[3].ports", "overlaps relay.forward[1]"},
		{"forwards sharing a public address", func(s string) string {
			return s + "\n[[relay.forward]]\nproto = \"tcp\"\nports = \"8443\"\nto = \"10.64.0.2\"\nmatch_ips = [\"203.0.113.20\"]\n"
		}, "relay.forward[3].ports", "overlaps relay.forward[2]"},
		{"public not a name", func(s string) string { return strings.Replace(s, `public = "eth0"`, `public = ["eth0", 7]`, 1) },
			"relay.public[1]", "want a NIC's name"},
		{"public twice", func(s string) string { return strings.Replace(s, `public = "eth0"`, `public = ["eth0", "eth0"]`, 1) },
			"relay.public[1]", "also the name of relay.public[0]"},
		{"snat unknown", func(s string) string { return strings.Replace(s, `snat = "pool"`, `snat = "masquerade"`, 1) },
			"relay.forward[2].snat", "not one of"},
		{"match_ips family", func(s string) string {
			return strings.Replace(s, `match_ips = ["203.0.113.20"]`, `match_ips = ["2001:db8::20"]`, 1)
		}, "relay.forward[2].match_ips[0]", "different families"},
		{"forward policy", func(s string) string {
			return strings.Replace(s, `forward_policy = "drop"`, `forward_policy = "reject"`, 1)
		}, "relay.forward_policy", "not one of"},
		{"same tunnel address twice", func(s string) string {
			return strings.Replace(s, `addresses = ["10.64.0.1/24", "fd55:aaaa::1/64"]`, `addresses = ["10.64.0.1/24", "10.64.0.1/24", "fd55:aaaa::1/64"]`, 1)
		}, "relay.addresses[1]", "also relay.addresses[0]"},
		{"default route as allowed_ips", func(s string) string {
			return strings.Replace(s, `allowed_ips = ["10.64.0.2/32"`, `allowed_ips = ["0.0.0.0/0", "10.64.0.2/32"`, 1)
		}, "relay.peer[0].allowed_ips[0]", "all of the relay's own traffic"},
		{"IPv6 endpoint with an IPv4 outer family", func(s string) string {
			s = strings.Replace(s, "mtu = 1420", "mtu = 1420\nouter_family = \"ipv4\"", 1)
			return strings.Replace(s, `name = "home"`, "name = \"home\"\nendpoint = \"[2001:db8::5]:51820\"", 1)
		}, "relay.peer[0].endpoint", "20 bytes too large"},
		{"path MTU too small", func(s string) string { return strings.Replace(s, "mtu = 1420", "mtu = 1420\npath_mtu = 1300", 1) },
			"relay.path_mtu", "too little"},
		{"duplicate peer key", func(s string) string {
			return s + "\n[[relay.peer]]\nname = \"cottage\"\npublic_key = \"h+5fSldkanbDmMk5d30tm2Kuwn5Qq6e7mEcqjLQmCF8=\"\nallowed_ips = [\"10.64.0.4/32\"]\n"
		}, "relay.peer[2].public_key", "also relay.peer[0]'s"},
		{"overlapping peers", func(s string) string {
			return s + "\n[[relay.peer]]\nname = \"cottage\"\npublic_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\nallowed_ips = [\"10.64.0.2/32\"]\n"
		}, "relay.peer[2].allowed_ips[0]", "overlaps 10.64.0.2/32"},
		{"peer family the tunnel lacks", func(s string) string {
			s = strings.Replace(s, `addresses = ["10.64.0.1/24", "fd55:aaaa::1/64"]`, `addresses = ["10.64.0.1/24"]`, 1)
			return strings.Replace(s, `to = "fd55:aaaa::2"`, `to = "10.64.0.2"`, 1)
		}, "relay.peer[0].allowed_ips[1]", "relay.addresses has no IPv6"},
		{"too few connections", func(s string) string { return strings.Replace(s, "max_connections = 262144", "max_connections = 4", 1) },
			"relay.max_connections", "outside 16-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.edit(base)
			if in == base {
				t.Fatal("the edit changed nothing")
			}
			_, err := Parse([]byte(in))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			errs := err.(Errors)
			if len(errs) != 1 || errs[0].Path != tc.path || !strings.Contains(errs[0].Msg, tc.msg) {
				t.Errorf("got %v\nwant one error at %s containing %q", err, tc.path, tc.msg)
			}
		})
	}
}

func TestPublishAndLocalPolicies(t *testing.T) {
	c, err := Parse([]byte(example(t)))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(c.Publish), 1; got != want {
		t.Fatalf("len(Publish) = %d, want %d", got, want)
	}
	if got, want := c.Publish[0].To, netip.MustParseAddrPort("192.168.1.10:443"); got != want {
		t.Errorf("Publish[0].To = %v, want %v", got, want)
	}
	p := c.Routing.Policies[2]
	if !p.Local() || p.Cgroups[0] != "system.slice/transmission.service" {
		t.Errorf("policy[2] = %+v, want a local policy with the transmission cgroup", p)
	}
	if p.Matches(Flow{Src: netip.MustParseAddr("192.168.1.77")}) {
		t.Error("a local policy matched a LAN flow")
	}
	if p.View != 1 || p.Mark() != 0x102 || len(p.DNS) != 1 || p.DNS[0].Addr != netip.MustParseAddrPort("10.64.0.1:53") {
		t.Errorf("policy[2] DNS %v view %d mark %#x, want 10.64.0.1:53, view 1, mark 0x102", p.DNS, p.View, p.Mark())
	}
	for _, tc := range []struct {
		name      string
		add       string
		path, msg string
	}{
		{"outside the LAN", "[[publish]]\nname = \"x\"\nproto = \"udp\"\nport = 9\nto = \"198.51.100.1:9\"\n", "publish[1].to", "neither inside a LAN subnet nor a private address"},
		{"in the transit network", "[[publish]]\nname = \"x\"\nproto = \"udp\"\nport = 9\nto = \"10.254.0.3:9\"\n", "publish[1].to", "transit network"},
		{"host with to6", "[[publish]]\nname = \"x\"\nproto = \"udp\"\nport = 9\nto = \"host:9\"\nto6 = \"[fd00:1::5]:9\"\n", "publish[1].to6", "both families"},
		{"docker name", "[[publish]]\nname = \"x\"\nproto = \"udp\"\nport = 9\nto = \"docker:-x\"\n", "publish[1].to", "not a Docker container name"},
		{"docker with to6", "[[publish]]\nname = \"x\"\nproto = \"udp\"\nport = 9\nto = \"docker:web:80\"\nto6 = \"[fd00:1::5]:9\"\n", "publish[1].to6", "both families"},
		{"docker port", "[[publish]]\nname = \"x\"\nproto = \"udp\"\nport = 9\nto = \"docker:web:x\"\n", "publish[1].to", "docker:NAME:8080"},
		{"host port", "[[publish]]\nname = \"x\"\nproto = \"udp\"\nport = 9\nto = \"host:x\"\n", "publish[1].to", "host:8080"},
		{"twice", "[[publish]]\nname = \"x\"\nproto = \"tcp+udp\"\nport = 443\nto = \"192.168.1.11\"\n", "publish[1].port", "already published by publish[0]"},
		{"to6 with IPv4", "[[publish]]\nname = \"x\"\nproto = \"tcp\"\nport = 80\nto6 = \"192.168.1.11:80\"\n", "publish[1].to6", "not an IPv6 address"},
		{"users and sources", "[[routing.policy]]\nname = \"x\"\nusers = [\"root\"]\nsources = [\"192.168.1.5\"]\nvia = \"wan\"\n", "routing.policy[3].sources", "not both"},
		{"bad cgroup", "[[routing.policy]]\nname = \"x\"\ncgroups = [\"../etc\"]\nvia = \"wan\"\n", "routing.policy[3].cgroups[0]", "not a cgroup v2 path"},
		{"dns of a destination policy", "[[routing.policy]]\nname = \"x\"\ndestination_ports = [\"tcp/25\"]\ndns = [\"10.64.0.1\"]\nvia = \"vpn\"\n", "routing.policy[3].dns", "not about a destination"},
		{"bad policy dns", "[[routing.policy]]\nname = \"x\"\nusers = [\"root\"]\ndns = [\"ns.example\"]\nvia = \"vpn\"\n", "routing.policy[3].dns[0]", "want an IP address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(example(t) + "\n" + tc.add))
			errs, _ := err.(Errors)
			if len(errs) != 1 || errs[0].Path != tc.path || !strings.Contains(errs[0].Msg, tc.msg) {
				t.Errorf("got %v\nwant one error at %s containing %q", err, tc.path, tc.msg)
			}
		})
	}
}
