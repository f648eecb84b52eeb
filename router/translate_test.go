package router

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/routerd/routerd/internal/cgroup"
	"github.com/routerd/routerd/router/config"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of TestTranslationGolden")

// TestTranslationGolden renders, for each example config, everything the
// pure translation layer makes of it: the namespace plan, the routing plan,
// the NIC specs, the three firewall specs, the MSS clamp and the path each
// sample client's connections take. No root needed: this is config →
// desired state as data. Run with -update after an intended change, and
// read the diff.
func TestTranslationGolden(t *testing.T) {
	configs := map[string]string{"example": "../docs/config.example.toml"}
	files, _ := filepath.Glob("testdata/configs/*.toml")
	for _, f := range files {
		configs[strings.TrimSuffix(filepath.Base(f), ".toml")] = f
	}
	for name, path := range configs {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(data)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			got := translate(cfg)
			golden := filepath.Join("testdata", "golden", name+".txt")
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./router -run TestTranslationGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("translation of %s differs from %s:\n%s", path, golden, lineDiff(string(want), got))
			}
		})
	}
}

func translate(cfg *config.Config) string {
	var b strings.Builder
	section := func(title string, v any) {
		fmt.Fprintf(&b, "== %s\n", title)
		dump(&b, "", reflect.ValueOf(v))
		b.WriteString("\n")
	}
	section("netns plan", netnsPlan(cfg))
	section("routing plan", routingPlan(cfg, cfg.Publish))
	section("nic specs", nicSpecs(cfg))
	m, w, v := firewallSpecs(cfg, facts{groups: map[string]cgroup.Group{"system.slice/transmission.service": {Path: "system.slice/transmission.service", ID: 4242, Level: 2}}, pubs: cfg.Publish})
	section("firewall main", m)
	section("firewall wan", w)
	section("firewall vpn", v)
	if p := sqmPlan(cfg); p != nil {
		section("sqm plan", p)
	}
	dc, names := dnsConfig(cfg)
	section("resolver", dc)
	for _, n := range names {
		fmt.Fprintf(&b, "name %s %s (%s)\n", n.name, n.addr, n.key)
	}
	if len(names) > 0 {
		b.WriteString("\n")
	}
	section("LAN services", lanServices(cfg))
	if cfg.VPN != nil {
		section("tunnel", vpnConfig(cfg, nil, nil))
	}
	if cfg.VPN != nil {
		mss4, mss6 := TunnelMSS(cfg)
		fmt.Fprintf(&b, "== tunnel mss\nipv4 %d\nipv6 %d\n\n", mss4, mss6)
	}
	b.WriteString("== path decisions\n")
	for _, f := range sampleFlows(cfg) {
		fmt.Fprintf(&b, "%s -> %s\n", describeFlow(f), cfg.Routing.PathOf(f))
	}
	return b.String()
}

// sampleFlows are, per LAN, a client inside it, each policy's first source
// address and MAC, a reserved client, a mail connection and a destination
// a policy names: the cases a person would try by hand.
func sampleFlows(cfg *config.Config) []config.Flow {
	var out []config.Flow
	for _, l := range cfg.LAN {
		for _, a := range l.Addresses {
			c := a.Masked().Addr().Next().Next().Next().Next().Next() // .5 or ::5
			out = append(out,
				config.Flow{Src: c, Iface: l.Name},
				config.Flow{Src: c, Iface: l.Name, Proto: "tcp", Port: 25},
				config.Flow{Src: c, Iface: l.Name, Proto: "tcp", Port: 443, Dst: netip.MustParseAddr("198.51.100.80")})
		}
		if l.DHCP4 != nil {
			for _, r := range l.DHCP4.Reservations {
				out = append(out, config.Flow{Src: r.IP, MAC: r.MAC, Iface: l.Name})
			}
		}
	}
	for _, p := range cfg.Routing.Policies {
		for _, s := range p.SourceAddrs {
			out = append(out, config.Flow{Src: s.Addr()})
		}
		for _, m := range p.SourceMACs {
			out = append(out, config.Flow{Src: netip.MustParseAddr("192.0.2.99"), MAC: m})
		}
		for _, d := range p.Destinations {
			out = append(out, config.Flow{Src: netip.MustParseAddr("192.0.2.99"), Dst: d.Addr()})
		}
	}
	return out
}

func describeFlow(f config.Flow) string {
	s := "from " + f.Src.String()
	if f.MAC != nil {
		s += " mac " + f.MAC.String()
	}
	if f.Iface != "" {
		s += " on " + f.Iface
	}
	if f.Dst.IsValid() {
		s += " to " + f.Dst.String()
	}
	if f.Port != 0 {
		s += fmt.Sprintf(" %s/%d", f.Proto, f.Port)
	}
	return s
}

// dump prints a value as indented "field: value" lines, using String()
// where a type has one (addresses, MACs) and never a pointer's address,
// so the output is stable across runs.
func dump(b *strings.Builder, indent string, v reflect.Value) {
	if !v.IsValid() {
		b.WriteString(indent + "<nil>\n")
		return
	}
	if s, ok := stringer(v); ok {
		b.WriteString(indent + s + "\n")
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			b.WriteString(indent + "<nil>\n")
			return
		}
		dump(b, indent, v.Elem())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			fv := v.Field(i)
			if !f.IsExported() || fv.IsZero() {
				continue
			}
			if s, ok := scalar(fv); ok {
				fmt.Fprintf(b, "%s%s: %s\n", indent, f.Name, s)
				continue
			}
			fmt.Fprintf(b, "%s%s:\n", indent, f.Name)
			dump(b, indent+"  ", fv)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if s, ok := scalar(v.Index(i)); ok {
				fmt.Fprintf(b, "%s- %s\n", indent, s)
				continue
			}
			fmt.Fprintf(b, "%s- [%d]\n", indent, i)
			dump(b, indent+"    ", v.Index(i))
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			fmt.Fprintf(b, "%s%v:\n", indent, k)
			dump(b, indent+"  ", v.MapIndex(k))
		}
	default:
		fmt.Fprintf(b, "%s%v\n", indent, v)
	}
}

func scalar(v reflect.Value) (string, bool) {
	if s, ok := stringer(v); ok {
		return s, true
	}
	switch v.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.String, reflect.Float64:
		return fmt.Sprint(v), true
	case reflect.Func:
		return "func", true
	}
	return "", false
}

func stringer(v reflect.Value) (string, bool) {
	if !v.CanInterface() {
		return "", false
	}
	switch x := v.Interface().(type) {
	case net.HardwareAddr:
		return x.String(), true
	case fmt.Stringer:
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return "", false
		}
		if v.Kind() == reflect.Struct || v.Kind() == reflect.Array || v.Kind() == reflect.Uint8 || v.Kind() == reflect.Int || v.Kind() == reflect.Int64 {
			return x.String(), true
		}
	}
	return "", false
}

// lineDiff shows the lines only in want (-) and only in got (+), in order.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	// longest common subsequence, enough for files of a few hundred lines
	dp := make([][]int, len(w)+1)
	for i := range dp {
		dp[i] = make([]int, len(g)+1)
	}
	for i := len(w) - 1; i >= 0; i-- {
		for j := len(g) - 1; j >= 0; j-- {
			if w[i] == g[j] {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	var b strings.Builder
	i, j := 0, 0
	for i < len(w) || j < len(g) {
		switch {
		case i < len(w) && j < len(g) && w[i] == g[j]:
			i, j = i+1, j+1
		case j < len(g) && (i == len(w) || dp[i][j+1] >= dp[i+1][j]):
			fmt.Fprintf(&b, "+ %s\n", g[j])
			j++
		default:
			fmt.Fprintf(&b, "- %s\n", w[i])
			i++
		}
	}
	return b.String()
}

// A LAN left out of dns.listen is not among the resolver's clients.
func TestDNSClientsFollowListen(t *testing.T) {
	data, err := os.ReadFile("../docs/config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), `listen = ["lan0", "wlan0"]`, `listen = ["lan0"]`, 1))
	cfg, err := config.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range dnsClients(cfg) {
		got = append(got, p.String())
	}
	if want := "192.168.1.0/24 fd00:1::/64"; strings.Join(got, " ") != want {
		t.Errorf("dnsClients = %v, want %s", got, want)
	}
}
