package status

import (
	"bytes"
	"fmt"
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

// TestTimeAndSlotsSections: the clock's and the boot slots' sections say
// what a user asks of them: synchronised to whom, and which version runs,
// which is committed, and why the last update rolled back.
func TestTimeAndSlotsSections(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	st := &Status{Version: "test", Started: at,
		Time: &Time{Synced: true, SetsClock: true, Now: at, Floor: at.Add(-time.Hour), Server: "ntp.example", Stratum: 1, OffsetMS: 2.5,
			LastSync: at, Servers: []TimeServer{{Name: "ntp.example", Addr: "192.0.2.123", Stratum: 1, Used: true},
				{Name: "192.0.2.124", Error: "the server is not synchronised (leap alarm)"}},
			Serving: []string{"192.168.1.1:123"}, Served: 7}, Update: &Update{
			Slots:     []Slot{{Name: "A", Version: "v3-broken", BuildTime: at}, {Name: "B", Version: "v2", BuildTime: at, Running: true, Committed: true}},
			BootOrder: []string{"Boot0A01 routerd B *", "Boot0A00 routerd A"},
			Last:      &UpdateResult{Outcome: "rolled back", Slot: "A", From: "B", Version: "v3-broken", At: at, Reason: "component lan is failed"}}}
	var b bytes.Buffer
	if err := st.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"synchronised to ntp.example (stratum 1), offset +2.500 ms",
		"192.0.2.123 stratum 1",
		"not synchronised (leap alarm)",
		"192.168.1.1:123: 7 answered",
		"v2, built 2026-11-30T12:00:00Z (running, committed)",
		"Boot0A01 routerd B *, Boot0A00 routerd A",
		"ROLLED BACK v3-broken (slot A, from B) at 2026-11-30T12:00:00Z: component lan is failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// TestRenderPPPoE: the WAN section shows the tagged link and the session:
// its address, the access concentrator, the echo round trip, and why the
// last one ended.
func TestRenderPPPoE(t *testing.T) {
	st := &Status{WAN: &WAN{Mode: "pppoe", IPv6: "off", VLAN: 7, Link: "wan0.7", PPPoE: &PPPoE{State: "up", AC: "bras1", ACMAC: "02:00:00:00:00:ac",
		SessionID: 0x12, Address: "198.51.100.10", Peer: "198.51.100.1", MTU: 1492, Since: time.Now(), EchoRTT: 4 * time.Millisecond,
		Reconnects: 1, LastEnd: "ended by the ISP (PADT)"}}}
	var b strings.Builder
	renderWAN(st, &b)
	for _, want := range []string{"vlan\t7 (wan0.7)", "pppoe\tup\t198.51.100.10", "session 0x0012 with bras1", "peer 198.51.100.1, mtu 1492",
		"echo rtt 4ms", "reconnects 1, last end: ended by the ISP (PADT)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("WAN section lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "static") {
		t.Errorf("a PPPoE WAN shown as static:\n%s", b.String())
	}
}

// Autorate's bounds and its last adjustments show under SQM.
func TestRenderAutorate(t *testing.T) {
	at := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	st := &Status{SQM: &SQM{Where: "main", Overhead: "ethernet", PerHost: true,
		Upload:   &Shaper{Iface: "sqm-up", Rate: 5e6},
		Download: &Shaper{Iface: "sqm-down", Rate: 7_200_000},
		Autorate: &Autorate{Reflectors: []string{"100.64.0.1"}, Threshold: 15 * time.Millisecond, DownloadMin: 4e6, DownloadMax: 25e6,
			Changes: []RateChange{{At: at, Direction: "download", From: 20e6, To: 7_200_000, Why: "the download's delay rose"}}}}}
	var b bytes.Buffer
	if err := st.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"7.2 Mbit/s on sqm-down", "download 4 Mbit/s–25 Mbit/s; reflectors 100.64.0.1 (no answer yet); bloat over 15ms",
		"07:00:00.0 download 20 Mbit/s → 7.2 Mbit/s: the download's delay rose"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
}

// routerctl clients prints every host; status the five busiest.
func TestRenderClients(t *testing.T) {
	cl := &Clients{}
	for i := range 7 {
		cl.Hosts = append(cl.Hosts, ClientUsage{Name: fmt.Sprintf("host%d", i), Addresses: []string{fmt.Sprintf("192.168.1.%d", 10+i)},
			Segment: "lan0", Path: "wan", UpRate: 2e6, DownRate: 20e6, UpToday: 1 << 20, DownToday: 30 << 20})
	}
	var b bytes.Buffer
	if err := cl.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"host6", "192.168.1.16", "20 Mbit/s", "30.0 MiB"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("routerctl clients: no %q in:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := (&Status{Clients: cl}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "host4") || strings.Contains(b.String(), "host5") {
		t.Errorf("status shows other than the five busiest:\n%s", b.String())
	}
}
