package netns_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/netns"
	"golang.org/x/sys/unix"
)

// TestPlanApplyTwice applies a plan inside a lab namespace: the second
// apply makes no change, and teardown removes what the plan made and
// nothing else (a route of another protocol survives).
func TestPlanApplyTwice(t *testing.T) {
	lab.Require(t)
	l := lab.New(t)
	main := l.NewNS("main")
	peer := l.Prefix + "-peer"
	t.Cleanup(func() { netns.Delete(peer) })

	var res netns.Result
	err := netns.Do(main.Name, func() error {
		p := &netns.Plan{
			Namespaces: []string{peer},
			Sysctls:    []netns.Sysctl{{NS: peer, Key: "net/ipv4/ip_forward", Value: "1"}},
			Bridges:    []netns.Bridge{{Name: "brx", Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/29"), netip.MustParsePrefix("fd09::1/64")}}},
			Veths: []netns.Veth{{Name: "vx", Master: "brx", PeerNS: peer, PeerName: "tx",
				PeerAddrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.2/29")}}},
			Routes: []netns.Route{
				{Table: 77, Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("10.9.0.2"), Dev: "brx"},
				{NS: peer, Dst: netip.MustParsePrefix("::/0"), Type: unix.RTN_UNREACHABLE, Metric: 4096},
				{Dst: netip.MustParsePrefix("10.77.0.0/16"), Dev: "missing0"},
			},
			Rules:           []netns.Rule{{Priority: 777, Mark: 7, Mask: 0xff, Table: 77}, {V6: true, Priority: 777, Mark: 7, Mask: 0xff, Table: 77}},
			RouteNamespaces: []string{"", peer},
		}
		first, err := p.Apply()
		if err != nil {
			return err
		}
		if first.Changes == 0 || len(first.Created) != 1 {
			t.Errorf("first apply = %+v, want changes and a created namespace", first)
		}
		if got := first.MissingLinks; len(got) != 1 || got[0] != "missing0" {
			t.Errorf("MissingLinks = %v, want [missing0]", got)
		}
		res, err = p.Apply()
		if err != nil {
			return err
		}
		// A route that is not routerd's must survive teardown.
		if out, err := main.Run("ip", "route", "add", "unreachable", "10.8.0.0/16", "table", "77"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return p.Teardown(first.Created, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Changes != 0 {
		t.Errorf("second apply made %d changes, want 0", res.Changes)
	}
	out := main.MustRun("ip", "-br", "link")
	if strings.Contains(out, "brx") || strings.Contains(out, "vx") {
		t.Errorf("links left after teardown:\n%s", out)
	}
	if out := main.MustRun("ip", "rule"); strings.Contains(out, "777") {
		t.Errorf("rule left after teardown:\n%s", out)
	}
	if netns.Exists(peer) {
		t.Errorf("namespace %s left after teardown", peer)
	}
	if out := main.MustRun("ip", "route", "show", "table", "77"); !strings.Contains(out, "unreachable 10.8.0.0/16") {
		t.Errorf("teardown removed a route that is not routerd's; table 77:\n%s", out)
	}
}
