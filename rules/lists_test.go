package rules

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/iprange"
	"github.com/routerd/routerd/internal/lab"
)

// TestListsBatch: a large interval set goes in through the batch encoder
// (several messages, one transaction), a diff swaps part of it, a bad diff
// changes nothing, and EnsureLists keeps the contents.
func TestListsBatch(t *testing.T) {
	lab.Require(t, "nft")
	l := lab.New(t)
	ns := l.NewNS("fw")
	spec := &Lists{LANIfaces: []string{"lan0"}, Mask: 0xff, MarkWAN: 1, MarkVPN: 2}
	if err := EnsureLists(ns.Name, spec); err != nil {
		t.Fatal(err)
	}
	var rs []iprange.R4
	for i := range 20000 { // 40000 elements: many messages
		a := netip.AddrFrom4([4]byte{11, byte(i >> 8), byte(i), 0})
		rs = append(rs, iprange.R4Of(netip.PrefixFrom(a, 24)))
	}
	rs = append(rs, iprange.R4Of(netip.MustParsePrefix("100.0.0.0/8")))
	six := []iprange.R6{iprange.R6Of(netip.MustParsePrefix("2001:db8:99::/48"))}
	if err := ApplyListDiffs(ns.Name, []ListDiff{{Set4: SetVPN4, Set6: SetVPN6, Add4: rs, Add6: six}}); err != nil {
		t.Fatal(err)
	}
	count := func(set string) int {
		out := ns.MustRun("nft", "list", "set", "inet", ListsTable, set)
		return strings.Count(out, ",") + strings.Count(out, "elements = {")
	}
	// 20000 /24s starting at 11.0.0.0 are adjacent: but we added them as
	// given, so the set holds each.
	if got := count(SetVPN4); got != 20001 {
		t.Fatalf("vpn4 has %d elements, want 20001", got)
	}
	// Re-ensuring keeps the contents.
	if err := EnsureLists(ns.Name, spec); err != nil {
		t.Fatal(err)
	}
	if got := count(SetVPN4); got != 20001 {
		t.Errorf("after EnsureLists: %d elements", got)
	}
	// A diff: drop one, add one.
	diff := ListDiff{Set4: SetVPN4, Set6: SetVPN6, Del4: rs[:1], Add4: []iprange.R4{iprange.R4Of(netip.MustParsePrefix("9.9.9.0/24"))}}
	if err := ApplyListDiffs(ns.Name, []ListDiff{diff}); err != nil {
		t.Fatal(err)
	}
	out := ns.MustRun("nft", "list", "set", "inet", ListsTable, SetVPN4)
	if !strings.Contains(out, "9.9.9.0/24") || strings.Contains(out, "11.0.0.0/24") {
		t.Errorf("diff not applied")
	}
	// A diff deleting something absent is refused whole: the addition in
	// the same transaction does not happen.
	bad := ListDiff{Set4: SetVPN4, Set6: SetVPN6, Del4: []iprange.R4{iprange.R4Of(netip.MustParsePrefix("8.8.8.0/24"))},
		Add4: []iprange.R4{iprange.R4Of(netip.MustParsePrefix("7.7.7.0/24"))}}
	if err := ApplyListDiffs(ns.Name, []ListDiff{bad}); err == nil {
		t.Error("a diff deleting a missing element was accepted")
	}
	if out := ns.MustRun("nft", "list", "set", "inet", ListsTable, SetVPN4); strings.Contains(out, "7.7.7.0/24") {
		t.Error("part of a refused transaction was applied")
	}
	// Dynamic entries carry a timeout.
	if err := AddDynamic(ns.Name, SetVPN4DNS, SetVPN6DNS, []netip.Addr{netip.MustParseAddr("198.18.5.5")}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if out := ns.MustRun("nft", "list", "set", "inet", ListsTable, SetVPN4DNS); !strings.Contains(out, "198.18.5.5 timeout 1h") {
		t.Errorf("dynamic entry: %s", out)
	}
}
