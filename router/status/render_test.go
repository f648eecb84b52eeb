package status

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Sections print in the declared order, whatever order the components that
// fill them start in (they used to register by init in file-name order,
// which put Blocklists first and WAN last).
func TestSectionOrder(t *testing.T) {
	st := &Status{
		Version: "test", Started: time.Now(),
		Components: []Component{{Name: "nics", State: Running}},
		NICs:       &NICs{NICs: []NIC{{Name: "wan0", Role: "wan", State: "up"}}},
		Netns:      &Netns{Namespaces: []Namespace{{Name: "wan", Role: "wan", Exists: true}}},
		Routing:    &Routing{Routes: map[string][]string{}},
		WAN:        &WAN{Mode: "static", Addr: "192.0.2.2/24 via 192.0.2.1", IPv6: "off"},
		VPN:        &VPN{Interface: "wg0", Implementation: "userspace"},
		LAN:        &LAN{Stats: map[string]map[string]int64{}},
		DNS:        &DNS{},
		Firewall:   &Firewall{Counters: map[string][]Counter{"main": {{Name: "drop_invalid", Packets: 3}}}},
		Blocklists: &Blocklists{Lists: []Blocklist{{Name: "rkn", Via: "vpn"}}},
	}
	var b bytes.Buffer
	if err := st.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	want := []string{"\nComponents\n", "\nNICs\n", "\nNamespaces and transit links\n", "\nRouting\n", "\nWAN\n",
		"\nVPN wg0", "\nLAN leases", "\nLAN services\n", "\nDNS ", "\nPolicy ", "\nBlocklists\n", "\nFirewall "}
	last := -1
	for _, title := range want {
		i := strings.Index(out, title)
		if i < 0 {
			t.Errorf("section %q missing from:\n%s", strings.TrimSpace(title), out)
			continue
		}
		if i < last {
			t.Errorf("section %q printed out of order:\n%s", strings.TrimSpace(title), out)
		}
		last = i
	}
}

// Sections whose component is not configured are left out.
func TestNilSectionsOmitted(t *testing.T) {
	var b bytes.Buffer
	if err := (&Status{Version: "test"}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, title := range []string{"NICs", "WAN", "VPN", "DNS", "Blocklists", "Firewall"} {
		if strings.Contains(b.String(), "\n"+title) {
			t.Errorf("section %s printed for a status without it:\n%s", title, b.String())
		}
	}
}
