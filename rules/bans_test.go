package rules

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
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
