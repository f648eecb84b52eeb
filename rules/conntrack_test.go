package rules

import (
	"net/netip"
	"testing"

	"github.com/routerd/routerd/internal/lab"
)

// TestConntrack: the table's count and limit as the kernel has them, and
// deleting the connections a match picks, and only those.
func TestConntrack(t *testing.T) {
	lab.Require(t, "nft", "ping")
	l := lab.New(t)
	ns := l.NewNS("ct")
	// A ruleset that uses conntrack turns tracking on in the namespace.
	if err := ApplyMain(ns.Name, testMain()); err != nil {
		t.Fatal(err)
	}
	ns.MustRun("ip", "addr", "add", "10.9.0.1/32", "dev", "lo")
	ns.MustRun("ping", "-c", "1", "-W", "1", "127.0.0.1")
	ns.MustRun("ping", "-c", "1", "-W", "1", "10.9.0.1")
	ct, err := ReadConntrack(ns.Name, true)
	if err != nil {
		t.Fatal(err)
	}
	if ct.Count != 2 || ct.Max == 0 || ct.Offloaded != 0 {
		t.Fatalf("ReadConntrack = %+v, want 2 connections, a limit, none offloaded", ct)
	}
	target := netip.MustParseAddr("10.9.0.1")
	n, err := DeleteConns(ns.Name, func(c Conn) bool { return c.Dst == target && c.Proto == 1 })
	if err != nil || n != 1 {
		t.Fatalf("DeleteConns = %d, %v; want the one ping to %s", n, err, target)
	}
	if ct, err := ReadConntrack(ns.Name, false); err != nil || ct.Count != 1 {
		t.Errorf("after the delete: %+v, %v; want the ping to 127.0.0.1 left", ct, err)
	}
}
