package dhcp

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"
)

func ip4Of(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip.To4())
	return a
}

// TestForgedRelease: a RELEASE with a victim's hardware address and lease,
// sent from another address, leaves the lease alone; the client's own
// release (from its address) ends it.
func TestForgedRelease(t *testing.T) {
	s := testServer(t, nil)
	ack := dora(t, s, mac(1))
	rel, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(1)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(ack.YourIPAddr))
	s.HandleFrom(rel, netip.MustParseAddr("192.168.1.66"), time.Now())
	if _, ok := s.store.ByAddr(ip4Of(ack.YourIPAddr)); !ok {
		t.Fatal("a RELEASE forged from another address ended the victim's lease")
	}
	s.HandleFrom(rel, ip4Of(ack.YourIPAddr), time.Now())
	if _, ok := s.store.ByAddr(ip4Of(ack.YourIPAddr)); ok {
		t.Error("the client's own RELEASE did not end its lease")
	}
}

// TestLeasesPerMAC: one hardware address cycling client identifiers gets
// two leases, not the pool.
func TestLeasesPerMAC(t *testing.T) {
	s := testServer(t, nil)
	cid := func(id string) dhcpv4.Modifier {
		return dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte(id)))
	}
	dora(t, s, mac(2), cid("a"))
	dora(t, s, mac(2), cid("b"))
	if resp := s.Handle(discover(t, mac(2), cid("c")), time.Now()); resp != nil {
		t.Errorf("a third client identifier on one MAC got %v, want silence", resp.MessageType())
	}
	req, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(2)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), cid("d"),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("192.168.1.103"))))
	if resp := s.Handle(req, time.Now()); resp == nil || resp.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("a REQUEST under a fourth identifier = %v, want NAK", resp)
	}
	dora(t, s, mac(3)) // the pool still serves others
}

// TestDeclineLimits: a client declines only what it was given, never a
// reservation, and the LAN quarantines at most maxDeclines addresses a
// minute.
func TestDeclineLimits(t *testing.T) {
	store, err := OpenStore(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	res, _ := net.ParseMAC("aa:bb:cc:00:00:01")
	s := NewServer4(Server4Config{Iface: "lan0", Addr: netip.MustParsePrefix("192.168.1.1/24"),
		Start: netip.MustParseAddr("192.168.1.100"), End: netip.MustParseAddr("192.168.1.140"), LeaseTime: time.Hour,
		Reservations: []Reservation{{MAC: res, IP: netip.MustParseAddr("192.168.1.10")}}, Log: quiet}, store)
	now := time.Now()
	decline := func(m net.HardwareAddr, a net.IP) {
		d, _ := dhcpv4.New(dhcpv4.WithHwAddr(m), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(a)))
		s.Handle(d, now)
	}
	// Not given to it: someone else's lease, a free address.
	victim := dora(t, s, mac(1))
	decline(mac(9), victim.YourIPAddr)
	decline(mac(9), net.ParseIP("192.168.1.130"))
	for _, a := range []netip.Addr{ip4Of(victim.YourIPAddr), netip.MustParseAddr("192.168.1.130")} {
		if store.Declined(a, now) {
			t.Errorf("%s quarantined by a client it was not given to", a)
		}
	}
	// A reservation: its owner's DECLINE quarantines nothing.
	decline(res, dora(t, s, res).YourIPAddr)
	if store.Declined(netip.MustParseAddr("192.168.1.10"), now) {
		t.Error("a reserved address quarantined")
	}
	// Given addresses: maxDeclines a minute.
	quarantined := 0
	for i := range maxDeclines + 3 {
		ack := dora(t, s, mac(20+i))
		decline(mac(20+i), ack.YourIPAddr)
		if store.Declined(ip4Of(ack.YourIPAddr), now) {
			quarantined++
		}
	}
	if quarantined != maxDeclines {
		t.Errorf("%d addresses quarantined in a minute, want %d", quarantined, maxDeclines)
	}
}

// TestDecline6Rate: DHCPv6 DECLINEs, too, quarantine at most maxDeclines
// addresses a minute.
func TestDecline6Rate(t *testing.T) {
	s := testServer6(t)
	now := time.Now()
	quarantined := 0
	for i := range maxDeclines + 3 {
		req, a := lease(t, s, byte(10+i), now)
		s.Handle(retype(req, dhcpv6.MessageTypeDecline), now)
		if s.store.Declined(a, now) {
			quarantined++
		}
	}
	if quarantined != maxDeclines {
		t.Errorf("%d addresses quarantined in a minute, want %d", quarantined, maxDeclines)
	}
}
