package dhcp

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// checkLease4 is what the rest of routerd relies on in a WAN lease.
func checkLease4(t *testing.T, wl *WANLease) {
	t.Helper()
	if !wl.Address.Addr().Is4() || !usableUnicast(wl.Address.Addr()) || wl.Address.Bits() < 8 || wl.Address.Bits() > 32 {
		t.Fatalf("address %v installed", wl.Address)
	}
	if !(0 < wl.T1 && wl.T1 <= wl.T2 && wl.T2 <= wl.Lifetime) || wl.Lifetime < minLeaseTime || wl.Lifetime > maxLeaseTime {
		t.Fatalf("times T1 %v T2 %v lifetime %v", wl.T1, wl.T2, wl.Lifetime)
	}
	if wl.Router.IsValid() && (!usableUnicast(wl.Router) || wl.Router == wl.Address.Addr()) {
		t.Fatalf("gateway %v", wl.Router)
	}
	if wl.MTU != 0 && (wl.MTU < minWANMTU || wl.MTU > maxWANMTU) {
		t.Fatalf("MTU %d", wl.MTU)
	}
	for _, d := range wl.DNS {
		if !usableUnicast(d) {
			t.Fatalf("DNS server %v", d)
		}
	}
}

// FuzzClient4Lease: whatever the ISP's server ACKs (OFFER or ACK bytes), the
// WAN client installs only a lease that passes checkLease4, or refuses it.
func FuzzClient4Lease(f *testing.F) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	for _, mods := range [][]dhcpv4.Modifier{
		{dhcpv4.WithYourIP(net.IPv4(203, 0, 113, 10)), dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithRouter(net.IPv4(203, 0, 113, 1)), dhcpv4.WithDNS(net.IPv4(203, 0, 113, 53)),
			dhcpv4.WithLeaseTime(3600), dhcpv4.WithServerIP(net.IPv4(203, 0, 113, 1))},
		{dhcpv4.WithYourIP(net.IPv4(100, 64, 3, 7)), dhcpv4.WithNetmask(net.CIDRMask(32, 32)),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(7200 * time.Second)), dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(60 * time.Second)),
			dhcpv4.WithLeaseTime(0xffffffff), dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionInterfaceMTU, Value: dhcpv4.Uint16(1492)})},
		{dhcpv4.WithYourIP(net.IPv4(0, 0, 0, 0)), dhcpv4.WithNetmask(net.IPv4Mask(255, 0, 255, 0)), dhcpv4.WithLeaseTime(0)},
		{dhcpv4.WithYourIP(net.IPv4(198, 51, 100, 2)), dhcpv4.WithRouter(net.IPv4(198, 51, 100, 2)),
			dhcpv4.WithDNS(net.IPv4(224, 0, 0, 1), net.IPv4(127, 0, 0, 1)), dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionInterfaceMTU, Value: dhcpv4.Uint16(68)})},
	} {
		m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
			dhcpv4.WithReply(&dhcpv4.DHCPv4{OpCode: dhcpv4.OpcodeBootRequest, HWType: iana.HWTypeEthernet, ClientHWAddr: mac})}, mods...)...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m.ToBytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ack, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		wl, err := toWANLease(&nclient4.Lease{ACK: ack, Offer: ack, CreationTime: time.Unix(1_800_000_000, 0)})
		if err != nil {
			return
		}
		checkLease4(t, wl)
	})
}

// FuzzClient6Lease: whatever the ISP's server REPLYs (or ADVERTISEs), with
// IA_NA and IA_PD, the client takes only a lease with a usable address or
// a delegated prefix of /64 or shorter, and sane lifetimes.
func FuzzClient6Lease(f *testing.F) {
	for _, build := range []func(m *dhcpv6.Message){
		func(m *dhcpv6.Message) {
			m.AddOption(&dhcpv6.OptIANA{IaId: [4]byte{1}, T1: 1800 * time.Second, T2: 2880 * time.Second, Options: dhcpv6.IdentityOptions{
				Options: dhcpv6.Options{&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("2001:db8:1::10"), PreferredLifetime: time.Hour, ValidLifetime: 2 * time.Hour}}}})
			m.AddOption(&dhcpv6.OptIAPD{IaId: [4]byte{1}, T1: 1800 * time.Second, T2: 2880 * time.Second, Options: dhcpv6.PDOptions{
				Options: dhcpv6.Options{&dhcpv6.OptIAPrefix{Prefix: &net.IPNet{IP: net.ParseIP("2001:db8:100::"), Mask: net.CIDRMask(56, 128)},
					PreferredLifetime: time.Hour, ValidLifetime: 2 * time.Hour}}}})
			m.AddOption(dhcpv6.OptDNS(net.ParseIP("2001:db8::53")))
		},
		func(m *dhcpv6.Message) {
			m.AddOption(&dhcpv6.OptIAPD{IaId: [4]byte{1}, T1: 0xffffffff * time.Second, T2: 0, Options: dhcpv6.PDOptions{
				Options: dhcpv6.Options{&dhcpv6.OptIAPrefix{Prefix: &net.IPNet{IP: net.ParseIP("2001:db8:100::"), Mask: net.CIDRMask(80, 128)},
					ValidLifetime: 0xffffffff * time.Second}}}})
		},
		func(m *dhcpv6.Message) {
			m.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail, StatusMessage: "none"})
		},
		func(m *dhcpv6.Message) {
			m.AddOption(&dhcpv6.OptIANA{IaId: [4]byte{1}, Options: dhcpv6.IdentityOptions{
				Options: dhcpv6.Options{&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("ff02::1")}}}})
		},
	} {
		m, err := dhcpv6.NewMessage()
		if err != nil {
			f.Fatal(err)
		}
		m.MessageType = dhcpv6.MessageTypeReply
		m.AddOption(dhcpv6.OptServerID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 9}}))
		build(m)
		f.Add(m.ToBytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := dhcpv6.MessageFromBytes(b)
		if err != nil {
			return
		}
		l, err := leaseOf6(msg, time.Unix(1_800_000_000, 0))
		if err != nil {
			return
		}
		if l.Address.IsValid() && (!l.Address.Is6() || !usableUnicast(l.Address)) {
			t.Fatalf("address %v", l.Address)
		}
		if d := l.Delegated; d.IsValid() && (d.Bits() < 1 || d.Bits() > 64 || d != d.Masked()) {
			t.Fatalf("delegated prefix %v", d)
		}
		if !l.Address.IsValid() && !l.Delegated.IsValid() {
			t.Fatal("a lease with neither address nor prefix")
		}
		if !(0 < l.T1 && l.T1 <= l.T2 && l.T2 <= l.Valid) || l.Valid < minLeaseTime || l.Valid > maxLeaseTime {
			t.Fatalf("times T1 %v T2 %v valid %v", l.T1, l.T2, l.Valid)
		}
		for _, d := range l.DNS {
			if !usableUnicast(d) {
				t.Fatalf("DNS server %v", d)
			}
		}
	})
}

func ack4(t *testing.T, mods ...dhcpv4.Modifier) *nclient4.Lease {
	t.Helper()
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeAck)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &nclient4.Lease{ACK: m, CreationTime: time.Unix(1_800_000_000, 0)}
}

func TestToWANLease(t *testing.T) {
	wl, err := toWANLease(ack4(t, dhcpv4.WithYourIP(net.IPv4(203, 0, 113, 10)), dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithRouter(net.IPv4(203, 0, 113, 1)), dhcpv4.WithLeaseTime(3600)))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprintf("%v via %v T1 %v T2 %v life %v", wl.Address, wl.Router, wl.T1, wl.T2, wl.Lifetime),
		"203.0.113.10/24 via 203.0.113.1 T1 30m0s T2 52m30s life 1h0m0s"; got != want {
		t.Errorf("lease %s, want %s", got, want)
	}
	// T2 before T1, an infinite lease, the gateway being our own address
	// and a 68-byte MTU: clamped or dropped, not believed.
	wl, err = toWANLease(ack4(t, dhcpv4.WithYourIP(net.IPv4(100, 64, 3, 7)), dhcpv4.WithRouter(net.IPv4(100, 64, 3, 7)),
		dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(7200*time.Second)), dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(60*time.Second)),
		dhcpv4.WithLeaseTime(0xffffffff), dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionInterfaceMTU, Value: dhcpv4.Uint16(68)})))
	if err != nil {
		t.Fatal(err)
	}
	checkLease4(t, wl)
	if wl.Router.IsValid() || wl.MTU != 0 || wl.Lifetime != maxLeaseTime || wl.T1 != 2*time.Hour {
		t.Errorf("hostile lease taken as %+v", wl)
	}
	for _, mods := range [][]dhcpv4.Modifier{
		{dhcpv4.WithYourIP(net.IPv4(0, 0, 0, 0))},
		{dhcpv4.WithYourIP(net.IPv4(224, 0, 0, 5))},
		{dhcpv4.WithYourIP(net.IPv4(203, 0, 113, 10)), dhcpv4.WithNetmask(net.IPv4Mask(255, 0, 255, 0))},
		{dhcpv4.WithYourIP(net.IPv4(203, 0, 113, 10)), dhcpv4.WithNetmask(net.CIDRMask(0, 32))},
	} {
		if wl, err := toWANLease(ack4(t, mods...)); err == nil {
			t.Errorf("unusable lease accepted: %+v", wl)
		}
	}
}
