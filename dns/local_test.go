package dns

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestClaimNames: a LAN client's DHCP hostname is published unless it is
// reserved (wpad, isatap, localhost), the config's (the router's name, a
// static record, a reservation) or another client's; the first client
// keeps its name until its lease goes; a dual-stack client has its name by
// both families; a refused claim leaves no PTR to the router's name.
func TestClaimNames(t *testing.T) {
	gw := netip.MustParseAddr("192.168.1.1")
	r := New(Config{Domain: "lan", Hostname: "gw", RouterAddrs: []netip.Addr{gw},
		Records: []Record{{Name: "nas.lan", Addrs: []netip.Addr{netip.MustParseAddr("192.168.1.10")}}}})
	r.SetName("reservation:aa:bb", "printer", netip.MustParseAddr("192.168.1.20"))
	a4, b4 := netip.MustParseAddr("192.168.1.100"), netip.MustParseAddr("192.168.1.101")
	a6 := netip.MustParseAddr("fd00:1::100")
	ask := func(name string, qtype uint16) []string {
		m, ok := r.zone.answer(dns.Question{Name: dns.Fqdn(name), Qtype: qtype, Qclass: dns.ClassINET})
		if !ok {
			return nil
		}
		var out []string
		for _, rr := range m.Answer {
			out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
		return out
	}
	for _, host := range []string{"gw", "GW", "wpad", "WPAD", "isatap", "localhost", "nas", "printer"} {
		if err := r.ClaimName("mac=evil", host, a4); err == nil {
			t.Errorf("a client claimed %q", host)
		}
	}
	if got := ask("gw.lan", dns.TypeA); len(got) != 1 || got[0] != gw.String() {
		t.Errorf("gw.lan = %v, want the router's %s alone", got, gw)
	}
	if got := ask("wpad.lan", dns.TypeA); len(got) != 0 {
		t.Errorf("wpad.lan = %v, want nothing", got)
	}
	if got := ask("100.1.168.192.in-addr.arpa", dns.TypePTR); len(got) != 0 {
		t.Errorf("the claimant's PTR = %v, want none", got)
	}

	if err := r.ClaimName("mac=a", "laptop", a4); err != nil {
		t.Fatal(err)
	}
	if err := r.ClaimName("mac=b", "Laptop", b4); err == nil || !strings.Contains(err.Error(), "another client") {
		t.Errorf("a second client took laptop: %v", err)
	}
	if err := r.ClaimName("duid=a", "laptop", a6); err != nil {
		t.Errorf("the same name by DHCPv6: %v", err)
	}
	if got := ask("laptop.lan", dns.TypeA); len(got) != 1 || got[0] != a4.String() {
		t.Errorf("laptop.lan A = %v, want the first client's %s", got, a4)
	}
	if got := ask("laptop.lan", dns.TypeAAAA); len(got) != 1 || got[0] != a6.String() {
		t.Errorf("laptop.lan AAAA = %v, want %s", got, a6)
	}
	r.RemoveName(ClaimOwner("mac=a"))
	if err := r.ClaimName("mac=b", "laptop", b4); err != nil {
		t.Errorf("once the first client's lease went: %v", err)
	}
	if got := ask("laptop.lan", dns.TypeA); len(got) != 1 || got[0] != b4.String() {
		t.Errorf("laptop.lan A = %v, want %s", got, b4)
	}
}
