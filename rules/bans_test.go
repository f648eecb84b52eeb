package rules

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/netns"
)

// A ban shows in the list with its time left, outlives a ruleset
// replacement, and goes when lifted.
func TestBans(t *testing.T) {
	lab.Require(t, "nft")
	l := lab.New(t)
	ns := l.NewNS("bans")
	if err := ApplyMain(ns.Name, testMain()); err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddr("192.168.1.66"), netip.MustParseAddr("fd00:1::66")
	for _, x := range []netip.Addr{a, b} {
		if err := Ban(ns.Name, x, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := ApplyMain(ns.Name, testMain()); err != nil { // a reload
		t.Fatal(err)
	}
	got, err := Bans(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Addr != a || got[1].Addr != b || got[0].Left < 59*time.Minute || got[0].Left > time.Hour {
		t.Fatalf("Bans = %+v, want both with about an hour left\n%s", got, ns.MustRun("nft", "list", "set", "inet", Table, SetBanned4))
	}
	if err := Unban(ns.Name, a); err != nil {
		t.Fatal(err)
	}
	if err := Unban(ns.Name, a); err != nil {
		t.Errorf("lifting a ban twice: %v", err)
	}
	if out := ns.MustRun("nft", "list", "set", "inet", Table, SetBanned4); strings.Contains(out, a.String()) {
		t.Errorf("%s still banned:\n%s", a, out)
	}
}

// TestScanBans6: a scan from one IPv6 address bans its whole /64 (new
// connections from a neighbour in it are dropped, another /64 still gets
// through), and an address the router itself sent to is a peer that no
// scan bans.
func TestScanBans6(t *testing.T) {
	lab.Require(t, "nft", "ping")
	l := lab.New(t)
	gw, inet := l.NewNS("gw"), l.NewNS("inet")
	gw.MustRun("ip", "link", "add", "name", "wan0", "type", "veth", "peer", "name", "eth0", "netns", inet.Name)
	gw.MustRun("ip", "addr", "add", "2001:db8:1::1/64", "dev", "wan0", "nodad")
	gw.MustRun("ip", "link", "set", "wan0", "up")
	gw.MustRun("ip", "-6", "route", "add", "2001:db8::/32", "dev", "wan0")
	for _, a := range []string{"2001:db8:1::20/64", "2001:db8:1::30/64", "2001:db8:2::5/64", "2001:db8:3::5/64"} {
		inet.MustRun("ip", "addr", "add", a, "dev", "eth0", "nodad")
	}
	inet.MustRun("ip", "link", "set", "eth0", "up")
	if err := ApplyWAN(gw.Name, &WAN{Uplinks: []string{"wan0"}, Transit: "transit0", ScanBan: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	ping := func(from string) error {
		_, err := inet.Run("ping", "-6", "-c", "1", "-W", "1", "-I", from, "2001:db8:1::1")
		return err
	}
	// The first packets from a new neighbour can go while neighbour
	// discovery settles: each source reaches the router before the scans.
	for _, from := range []string{"2001:db8:1::30", "2001:db8:2::5", "2001:db8:3::5"} {
		l.Eventually(5*time.Second, "ping from "+from, func() error { return ping(from) })
	}
	// The router talks to 2001:db8:3::5: it is a peer from then on.
	gw.MustRun("ping", "-6", "-c", "1", "-W", "1", "2001:db8:3::5")

	scan := func(from string) {
		err := netns.Do(inet.Name, func() error {
			d := net.Dialer{Timeout: 20 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			for p := 1000; p < 1000+2*ScanPorts; p++ {
				if c, err := d.Dial("tcp", fmt.Sprintf("[2001:db8:1::1]:%d", p)); err == nil {
					c.Close()
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	scan("2001:db8:1::20")
	scan("2001:db8:3::5")
	bans, err := Bans(gw.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(bans) != 1 || bans[0].String() != "2001:db8:1::/64" {
		t.Fatalf("Bans = %v, want 2001:db8:1::/64 alone (the peer 2001:db8:3::5 never banned)", bans)
	}
	if err := ping("2001:db8:1::30"); err == nil {
		t.Error("a neighbour in the banned /64 still opens new connections")
	}
	// How full the dynamic sets are, for status to warn of a full one.
	fills, err := SetFills(gw.Name)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]SetFill{}
	for _, f := range fills {
		byName[f.Name] = f
	}
	if f := byName[SetBanned64]; f.N != 1 || f.Size != BanSetSize {
		t.Errorf("SetFills %s = %+v, want 1 of %d", SetBanned64, f, BanSetSize)
	}
	if f := byName[setPeers6]; f.N != 1 || f.Size != peerSetSize {
		t.Errorf("SetFills %s = %+v, want the one peer of %d", setPeers6, f, peerSetSize)
	}
	for _, from := range []string{"2001:db8:2::5", "2001:db8:3::5"} {
		if err := lab.Poll(5*time.Second, func() error { return ping(from) }); err != nil {
			t.Errorf("ping from %s, outside the banned /64: %v", from, err)
		}
	}
	// Lifting the ban of any address in the /64 lifts the /64's.
	if err := Unban(gw.Name, netip.MustParseAddr("2001:db8:1::77")); err != nil {
		t.Fatal(err)
	}
	if err := lab.Poll(5*time.Second, func() error { return ping("2001:db8:1::30") }); err != nil {
		t.Errorf("after the unban: %v", err)
	}
}
