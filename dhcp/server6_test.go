package dhcp

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

func testServer6(t testing.TB) *Server6 {
	t.Helper()
	store, err := OpenStore(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return NewServer6(Server6Config{Iface: "lan0", Addr: netip.MustParsePrefix("fd00:1::1/64"),
		Start: netip.MustParseAddr("fd00:1::100"), End: netip.MustParseAddr("fd00:1::1ff"), LeaseTime: time.Hour,
		DNS: []netip.Addr{netip.MustParseAddr("fd00:1::1")}, NTP: []netip.Addr{netip.MustParseAddr("fd00:1::1")},
		Domain: "lan", Log: quiet}, store)
}

func hw(i byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 0, i} }

// addrOf returns the first IA_NA address of a reply, if any.
func addrOf(t *testing.T, m *dhcpv6.Message) (netip.Addr, iana.StatusCode) {
	t.Helper()
	ia := m.Options.OneIANA()
	if ia == nil {
		return netip.Addr{}, iana.StatusNoAddrsAvail
	}
	if st := ia.Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess {
		return netip.Addr{}, st.StatusCode
	}
	as := ia.Options.Addresses()
	if len(as) == 0 {
		return netip.Addr{}, iana.StatusNoAddrsAvail
	}
	a, _ := netip.AddrFromSlice(as[0].IPv6Addr)
	return a, iana.StatusSuccess
}

// lease runs SOLICIT/ADVERTISE/REQUEST/REPLY for a client and returns the
// request (for later RENEW/RELEASE) and the address.
func lease(t *testing.T, s *Server6, client byte, now time.Time) (*dhcpv6.Message, netip.Addr) {
	t.Helper()
	sol, err := dhcpv6.NewSolicit(hw(client))
	if err != nil {
		t.Fatal(err)
	}
	adv := s.Handle(sol, now)
	if adv == nil || adv.Type() != dhcpv6.MessageTypeAdvertise {
		t.Fatalf("solicit answered with %v", adv)
	}
	offered, _ := addrOf(t, adv)
	req, err := dhcpv6.NewRequestFromAdvertise(adv)
	if err != nil {
		t.Fatal(err)
	}
	rep := s.Handle(req, now)
	if rep == nil || rep.Type() != dhcpv6.MessageTypeReply {
		t.Fatalf("request answered with %v", rep)
	}
	if ntp := rep.Options.NTPServers(); len(ntp) != 1 || ntp[0].String() != "fd00:1::1" {
		t.Errorf("NTP servers (option 56) = %v, want fd00:1::1", ntp)
	}
	got, code := addrOf(t, rep)
	if code != iana.StatusSuccess || got != offered {
		t.Fatalf("reply gives %s (%v), advertised %s", got, code, offered)
	}
	return req, got
}

func retype(m *dhcpv6.Message, typ dhcpv6.MessageType) *dhcpv6.Message {
	c := *m
	c.MessageType = typ
	return &c
}

func TestServer6Lifecycle(t *testing.T) {
	s := testServer6(t)
	now := time.Now()
	req1, a1 := lease(t, s, 1, now)
	if a1.Less(netip.MustParseAddr("fd00:1::100")) || netip.MustParseAddr("fd00:1::1ff").Less(a1) {
		t.Errorf("address %s outside the range", a1)
	}
	_, a2 := lease(t, s, 2, now)
	if a2 == a1 {
		t.Fatalf("two clients share %s", a1)
	}
	// A renewing client keeps its address.
	if got, _ := addrOf(t, s.Handle(retype(req1, dhcpv6.MessageTypeRenew), now.Add(30*time.Minute))); got != a1 {
		t.Errorf("renew gave %s, want %s", got, a1)
	}
	// A returning client (a new SOLICIT) gets its address back.
	if _, again := lease(t, s, 1, now.Add(40*time.Minute)); again != a1 {
		t.Errorf("returning client got %s, want %s", again, a1)
	}
	// DECLINE quarantines the address: the next client does not get it.
	s.Handle(retype(req1, dhcpv6.MessageTypeDecline), now)
	if _, a3 := lease(t, s, 3, now); a3 == a1 {
		t.Errorf("a declined address %s went to another client", a1)
	}
	// CONFIRM of an address off the link says so.
	conf := retype(req1, dhcpv6.MessageTypeConfirm)
	conf.Options.Del(dhcpv6.OptionIANA)
	conf.AddOption(&dhcpv6.OptIANA{IaId: [4]byte{1}, Options: dhcpv6.IdentityOptions{Options: dhcpv6.Options{
		&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("2001:db8::5"), PreferredLifetime: time.Hour, ValidLifetime: time.Hour}}}})
	conf.Options.Del(dhcpv6.OptionServerID)
	rep := s.Handle(conf, now)
	if rep == nil || rep.Options.Status() == nil || rep.Options.Status().StatusCode != iana.StatusNotOnLink {
		t.Errorf("confirm of an off-link address answered %v, want NotOnLink", rep)
	}
	// INFORMATION-REQUEST gets the DNS server and domain.
	info, _ := dhcpv6.NewMessage()
	info.MessageType = dhcpv6.MessageTypeInformationRequest
	info.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: hw(9)}))
	rep = s.Handle(info, now)
	if rep == nil || len(rep.Options.DNS()) != 1 || rep.Options.DNS()[0].String() != "fd00:1::1" {
		t.Errorf("information-request answered %v, want the DNS server", rep)
	}
	// A message for another server, or without a client id, is dropped.
	other := retype(req1, dhcpv6.MessageTypeRequest)
	other.Options.Del(dhcpv6.OptionServerID)
	other.AddOption(dhcpv6.OptServerID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: hw(0xee)}))
	if rep := s.Handle(other, now); rep != nil {
		t.Errorf("a request to another server was answered: %v", rep)
	}
	st := s.Stats()
	if st["drop_other_server"] != 1 || st["in_solicit"] != 4 {
		t.Errorf("stats %v", st)
	}
}

// FuzzServer6 feeds arbitrary bytes through the packet path: parse, then
// handle. Nothing may panic; anything answered is an ADVERTISE or REPLY to
// the same transaction.
func FuzzServer6(f *testing.F) {
	sol, _ := dhcpv6.NewSolicit(hw(1))
	f.Add(sol.ToBytes())
	s := testServer6(f)
	adv := s.Handle(sol, time.Now())
	req, _ := dhcpv6.NewRequestFromAdvertise(adv)
	f.Add(req.ToBytes())
	f.Add(retype(req, dhcpv6.MessageTypeRelease).ToBytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		pkt, err := dhcpv6.FromBytes(b)
		if err != nil {
			return
		}
		msg, ok := pkt.(*dhcpv6.Message)
		if !ok {
			return
		}
		resp := s.Handle(msg, time.Now())
		if resp == nil {
			return
		}
		if typ := resp.Type(); typ != dhcpv6.MessageTypeAdvertise && typ != dhcpv6.MessageTypeReply {
			t.Fatalf("answered with %s", typ)
		}
		if resp.TransactionID != msg.TransactionID {
			t.Fatalf("answer for transaction %v, asked %v", resp.TransactionID, msg.TransactionID)
		}
		dhcpv6.FromBytes(resp.ToBytes()) // what we send must encode
	})
}

// An exhausted pool answers NoAddrsAvail at once, however many IA_NAs a
// message carries: no scan beyond the range.
func TestServer6Exhausted(t *testing.T) {
	s := testServer6(t)
	now := time.Now()
	for i := 0; i < 256; i++ {
		lease(t, s, byte(i), now)
	}
	sol, _ := dhcpv6.NewSolicit(net.HardwareAddr{0x02, 1, 0, 0, 0, 1})
	for i := 0; i < 50; i++ {
		sol.AddOption(&dhcpv6.OptIANA{IaId: [4]byte{byte(i), 9}})
	}
	start := time.Now()
	adv := s.Handle(sol, now)
	if _, code := addrOf(t, adv); code != iana.StatusNoAddrsAvail {
		t.Errorf("exhausted pool answered %v", code)
	}
	if n := len(adv.Options.IANA()); n != maxIAs {
		t.Errorf("answered %d IA_NAs, want at most %d", n, maxIAs)
	}
	t.Logf("answered in %s", time.Since(start))
}

// A client's FQDN option (39) names its lease, as option 12 does for
// DHCPv4, and the reply says the router serves the name.
func TestServer6FQDN(t *testing.T) {
	s := testServer6(t)
	now := time.Now()
	sol, err := dhcpv6.NewSolicit(hw(7), dhcpv6.WithFQDN(0, "Laptop6.home.example"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := dhcpv6.NewRequestFromAdvertise(s.Handle(sol, now), dhcpv6.WithFQDN(0, "Laptop6.home.example"))
	if err != nil {
		t.Fatal(err)
	}
	rep := s.Handle(req, now)
	a, code := addrOf(t, rep)
	if code != iana.StatusSuccess {
		t.Fatalf("no address: %v", code)
	}
	l, ok := s.store.ByAddr(a)
	if !ok || l.Hostname != "laptop6" {
		t.Errorf("lease %+v, want hostname laptop6", l)
	}
	f := rep.Options.FQDN()
	if f == nil || f.Flags != 0x01 || f.DomainName == nil || len(f.DomainName.Labels) == 0 || f.DomainName.Labels[0] != "laptop6.lan" {
		t.Errorf("reply FQDN option %v, want S flag and laptop6.lan", f)
	}
	// A renewal without the option keeps the name.
	renew := retype(req, dhcpv6.MessageTypeRenew)
	renew.Options.Del(dhcpv6.OptionFQDN)
	if _, code := addrOf(t, s.Handle(renew, now.Add(time.Minute))); code != iana.StatusSuccess {
		t.Fatal("renew failed")
	}
	if l, _ := s.store.ByAddr(a); l.Hostname != "laptop6" {
		t.Errorf("after a renewal without the option: hostname %q, want laptop6", l.Hostname)
	}
}
