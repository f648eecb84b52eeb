package dhcp

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testServer(t testing.TB, store *Store) *Server4 {
	t.Helper()
	if store == nil {
		var err error
		store, err = OpenStore(t.TempDir(), quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
	}
	mac, _ := net.ParseMAC("aa:bb:cc:00:00:01")
	return NewServer4(Server4Config{
		Iface: "lan0", Addr: netip.MustParsePrefix("192.168.1.1/24"),
		Start: netip.MustParseAddr("192.168.1.100"), End: netip.MustParseAddr("192.168.1.103"),
		LeaseTime: time.Hour, Router: netip.MustParseAddr("192.168.1.1"), DNS: []netip.Addr{netip.MustParseAddr("192.168.1.1")},
		NTP: []netip.Addr{netip.MustParseAddr("192.168.1.1")}, Domain: "lan", Reservations: []Reservation{{MAC: mac, IP: netip.MustParseAddr("192.168.1.10"), Hostname: "nas"}},
		Log: quiet,
	}, store)
}

func mac(i int) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, byte(i)} }

func discover(t testing.TB, m net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	d, err := dhcpv4.NewDiscovery(m, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// dora runs DISCOVER/REQUEST and returns the ACK.
func dora(t testing.TB, s *Server4, m net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	offer := s.Handle(discover(t, m, mods...), time.Now())
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("DISCOVER from %s: %v", m, offer)
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, mods...)
	if err != nil {
		t.Fatal(err)
	}
	ack := s.Handle(req, time.Now())
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("REQUEST from %s: %v", m, ack)
	}
	return ack
}

func TestDORA(t *testing.T) {
	s := testServer(t, nil)
	ack := dora(t, s, mac(1), dhcpv4.WithOption(dhcpv4.OptHostName("My Laptop!")))
	if got, want := ack.YourIPAddr.String(), "192.168.1.100"; got != want {
		t.Errorf("yiaddr = %s, want %s", got, want)
	}
	if got := ack.Router(); len(got) != 1 || got[0].String() != "192.168.1.1" {
		t.Errorf("router = %v", got)
	}
	if got := ack.DomainName(); got != "lan" {
		t.Errorf("domain = %q", got)
	}
	if got := ack.NTPServers(); len(got) != 1 || got[0].String() != "192.168.1.1" {
		t.Errorf("NTP servers (option 42) = %v", got)
	}
	if got := ack.IPAddressLeaseTime(0); got != time.Hour {
		t.Errorf("lease time = %v", got)
	}
	l, ok := s.store.ByAddr(netip.MustParseAddr("192.168.1.100"))
	if !ok || l.Hostname != "my-laptop" {
		t.Errorf("lease = %+v, want hostname my-laptop", l)
	}
	// A returning client gets its address again; a second client the next.
	if got := dora(t, s, mac(1)).YourIPAddr.String(); got != "192.168.1.100" {
		t.Errorf("returning client got %s", got)
	}
	if got := dora(t, s, mac(2)).YourIPAddr.String(); got != "192.168.1.101" {
		t.Errorf("second client got %s", got)
	}
}

func TestReservation(t *testing.T) {
	s := testServer(t, nil)
	m, _ := net.ParseMAC("aa:bb:cc:00:00:01")
	if got := dora(t, s, m, dhcpv4.WithOption(dhcpv4.OptHostName("whatever"))).YourIPAddr.String(); got != "192.168.1.10" {
		t.Errorf("reserved client got %s, want 192.168.1.10", got)
	}
	l, _ := s.store.ByAddr(netip.MustParseAddr("192.168.1.10"))
	if l.Hostname != "nas" || !l.Reserved {
		t.Errorf("reservation lease = %+v, want hostname nas", l)
	}
	// Another client asking for the reserved address is refused.
	req, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(9)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("192.168.1.10"))))
	if resp := s.Handle(req, time.Now()); resp == nil || resp.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("REQUEST for another's reservation = %v, want NAK", resp)
	}
}

func TestNAKs(t *testing.T) {
	s := testServer(t, nil)
	for _, tc := range []struct {
		name string
		ip   string
	}{{"wrong subnet", "10.0.0.5"}, {"outside the pool", "192.168.1.200"}} {
		req, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(3)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(tc.ip))))
		if resp := s.Handle(req, time.Now()); resp == nil || resp.MessageType() != dhcpv4.MessageTypeNak {
			t.Errorf("%s: REQUEST for %s = %v, want NAK", tc.name, tc.ip, resp)
		}
	}
	// An address leased to someone else.
	dora(t, s, mac(1))
	req, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(3)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("192.168.1.100"))))
	if resp := s.Handle(req, time.Now()); resp == nil || resp.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("REQUEST for a taken address = %v, want NAK", resp)
	}
}

func TestDeclineReleaseInform(t *testing.T) {
	s := testServer(t, nil)
	ack := dora(t, s, mac(1))
	dec, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(1)), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ack.YourIPAddr)))
	s.Handle(dec, time.Now())
	if got := dora(t, s, mac(1)).YourIPAddr.String(); got == ack.YourIPAddr.String() {
		t.Errorf("declined address %s handed out again", got)
	}
	if got := dora(t, s, mac(2)).YourIPAddr.String(); got == ack.YourIPAddr.String() {
		t.Errorf("declined address %s handed to another client", got)
	}

	ack3 := dora(t, s, mac(3))
	rel, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(3)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(ack3.YourIPAddr))
	s.Handle(rel, time.Now())
	if _, ok := s.store.ByAddr(netip.MustParseAddr(ack3.YourIPAddr.String())); ok {
		t.Errorf("released lease still there")
	}

	inf, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(4)), dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithClientIP(net.ParseIP("192.168.1.50")))
	resp := s.Handle(inf, time.Now())
	if resp == nil || resp.MessageType() != dhcpv4.MessageTypeAck || resp.IPAddressLeaseTime(0) != 0 || len(resp.DNS()) == 0 {
		t.Errorf("INFORM answer = %v, want an ACK with options and no lease time", resp)
	}
}

func TestPoolExhaustion(t *testing.T) {
	s := testServer(t, nil)
	for i := 1; i <= 4; i++ {
		dora(t, s, mac(i))
	}
	if resp := s.Handle(discover(t, mac(5)), time.Now()); resp != nil {
		t.Errorf("DISCOVER with the pool full = %v, want silence", resp)
	}
	if s.Stats()["drop_pool_exhausted"] != 1 {
		t.Errorf("stats = %v", s.Stats())
	}
}

// TestStoreDurable: leases survive reopening, including after compaction,
// and concurrent grants never give one address to two clients.
func TestStoreDurable(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	s := testServer(t, st)
	var wg sync.WaitGroup
	got := make([]string, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = dora(t, s, mac(i+1)).YourIPAddr.String()
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, a := range got {
		if seen[a] {
			t.Fatalf("address %s given twice: %v", a, got)
		}
		seen[a] = true
	}
	st.Close()

	st2, err := OpenStore(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st2.Leases(time.Now())); n != 4 {
		t.Errorf("after reopen: %d leases, want 4", n)
	}
	st2.mu.Lock()
	st2.wmu.Lock()
	st2.mu.Unlock()
	if err := st2.compactLocked(); err != nil {
		t.Fatal(err)
	}
	st2.wmu.Unlock()
	l, _ := st2.ByKey((&Lease{Iface: "lan0", MAC: mac(1).String()}).Key())
	if err := st2.Release(l); err != nil {
		t.Fatal(err)
	}
	st2.Close()
	st3, err := OpenStore(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer st3.Close()
	if n := len(st3.Leases(time.Now())); n != 3 {
		t.Errorf("after compaction, a release and reopen: %d leases, want 3", n)
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"My Laptop!": "my-laptop", "printer.local": "printer", "--x--": "x", "ÄÖÜ": "", "": "",
		"a_b": "a-b", fmt.Sprintf("%070d", 0): fmt.Sprintf("%063d", 0),
	} {
		if got := Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzServer4 feeds arbitrary bytes through the packet path: parse, then
// handle. Nothing may panic, and anything answered must be a BOOTREPLY.
func FuzzServer4(f *testing.F) {
	d, _ := dhcpv4.NewDiscovery(mac(1))
	f.Add(d.ToBytes())
	r, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(2)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("192.168.1.100"))))
	f.Add(r.ToBytes())
	s := testServer(f, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		if resp := s.Handle(req, time.Now()); resp != nil && resp.OpCode != dhcpv4.OpcodeBootReply {
			t.Fatalf("answer is not a BOOTREPLY: %v", resp)
		}
	})
}

// TestLeasesSurviveAClockStep: leases count elapsed time. After the wall
// clock is stepped (ClockStepped), a lease granted by this run keeps its
// remaining time: a year forward expires nothing, a year back extends
// nothing; a lease loaded from disk keeps its date. The moved expiry is on
// disk at once.
func TestLeasesSurviveAClockStep(t *testing.T) {
	const year = 365 * 24 * time.Hour
	for _, step := range []time.Duration{year, -year} {
		t.Run(step.String(), func(t *testing.T) {
			dir := t.TempDir()
			st, err := OpenStore(dir, quiet)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			old := Lease{Iface: "lan0", Addr: netip.MustParseAddr("192.168.1.50"), MAC: mac(1).String(), Expires: now.Add(time.Hour)}
			if err := st.Grant(old); err != nil {
				t.Fatal(err)
			}
			st.Close()
			st, err = OpenStore(dir, quiet) // old is now a lease from an earlier boot
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			fresh := Lease{Iface: "lan0", Addr: netip.MustParseAddr("192.168.1.51"), MAC: mac(2).String(), Expires: now.Add(12 * time.Hour)}
			if err := st.Grant(fresh); err != nil {
				t.Fatal(err)
			}
			if err := st.ClockStepped(step); err != nil {
				t.Fatal(err)
			}
			// The wall clock after the step (no monotonic reading: the
			// kernel's step moved only the wall clock).
			after := now.Round(0).Add(step).Add(time.Minute)
			got, _ := st.ByKey(fresh.Key())
			if want := fresh.Expires.Round(0).Add(step); !got.Expires.Equal(want) {
				t.Errorf("fresh lease expires %s, want %s (its 12h kept)", got.Expires, want)
			}
			if got.Expired(after) || !got.Expired(after.Add(12*time.Hour)) {
				t.Errorf("fresh lease at +1m: expired=%v, at +12h1m: expired=%v; want false, true", got.Expired(after), got.Expired(after.Add(12*time.Hour)))
			}
			if got, _ := st.ByKey(old.Key()); !got.Expires.Equal(old.Expires) {
				t.Errorf("loaded lease expires %s, want its date %s kept", got.Expires, old.Expires)
			}
			st.Close()
			st2, err := OpenStore(dir, quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer st2.Close()
			if got, _ := st2.ByKey(fresh.Key()); !got.Expires.Equal(fresh.Expires.Round(0).Add(step)) {
				t.Errorf("after reopen the fresh lease expires %s, want the moved %s", got.Expires, fresh.Expires.Round(0).Add(step))
			}
		})
	}
}

// TestRoutesAndOptions: option 121 carries the default route and the
// static routes (RFC 3442: a client taking it ignores option 3), option
// 119 the search list, and options given by number go out as given.
func TestRoutesAndOptions(t *testing.T) {
	s := testServer(t, nil)
	s.cfg.Routes = []Route4{{Dst: netip.MustParsePrefix("10.10.0.0/16"), Gw: netip.MustParseAddr("192.168.1.2")}}
	s.cfg.DomainSearch = []string{"lan", "corp.example"}
	s.cfg.Options = []RawOption{{Code: 66, Value: []byte("tftp.lan")}, {Code: 150, Value: []byte{192, 168, 1, 5}}}
	ack := dora(t, s, mac(1))
	var got []string
	for _, r := range ack.ClasslessStaticRoute() {
		got = append(got, r.String())
	}
	if want := "[route to 0.0.0.0/0 via 192.168.1.1 route to 10.10.0.0/16 via 192.168.1.2]"; fmt.Sprint(got) != want {
		t.Errorf("option 121 = %v, want %s", got, want)
	}
	if ds := ack.DomainSearch(); ds == nil || fmt.Sprint(ds.Labels) != "[lan corp.example]" {
		t.Errorf("option 119 = %v", ds)
	}
	if v := ack.Options.Get(dhcpv4.GenericOptionCode(66)); string(v) != "tftp.lan" {
		t.Errorf("option 66 = %q", v)
	}
	if v := ack.Options.Get(dhcpv4.GenericOptionCode(150)); fmt.Sprint(v) != "[192 168 1 5]" {
		t.Errorf("option 150 = %v", v)
	}
}
