package iprange

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestMerge(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"10.0.0.0/24", "10.0.1.0/24"}, "[10.0.0.0-10.0.1.255]"},   // adjacent
		{[]string{"10.0.0.0/16", "10.0.5.0/24"}, "[10.0.0.0-10.0.255.255]"}, // contained
		{[]string{"10.0.5.0/24", "10.0.0.0/16", "9.0.0.0/8"}, "[9.0.0.0-10.0.255.255]"},
		{[]string{"1.1.1.1/32", "1.1.1.3/32"}, "[1.1.1.1-1.1.1.1 1.1.1.3-1.1.1.3]"}, // gap stays
		{[]string{"255.255.255.255/32", "255.255.255.254/32"}, "[255.255.255.254-255.255.255.255]"},
		{[]string{"::/0", "2001:db8::/32"}, "[::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]"},
		{[]string{"0.0.0.0/0", "::/1"}, "[0.0.0.0-255.255.255.255 ::-7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]"}, // families apart
	}
	for _, tt := range tests {
		var ps []netip.Prefix
		for _, s := range tt.in {
			ps = append(ps, p(s))
		}
		var got []string
		for _, r := range MergePrefixes(ps) {
			got = append(got, r.From.String()+"-"+r.To.String())
		}
		if g := fmt.Sprint(got); g != tt.want {
			t.Errorf("MergePrefixes(%v) = %s, want %s", tt.in, g, tt.want)
		}
	}
}

func TestRangePrefixes(t *testing.T) {
	r := Range{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.10")}
	if got, want := fmt.Sprint(r.Prefixes()), "[10.0.0.1/32 10.0.0.2/31 10.0.0.4/30 10.0.0.8/31 10.0.0.10/32]"; got != want {
		t.Errorf("Prefixes = %s, want %s", got, want)
	}
	all := Range{netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255")}
	if got, want := fmt.Sprint(all.Prefixes()), "[0.0.0.0/0]"; got != want {
		t.Errorf("Prefixes = %s, want %s", got, want)
	}
}

func FuzzMerge(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0, 24, 10, 0, 1, 0, 24})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ps []netip.Prefix
		for len(b) >= 5 {
			a := netip.AddrFrom4([4]byte(b[:4]))
			ps = append(ps, netip.PrefixFrom(a, int(b[4])%33).Masked())
			b = b[5:]
		}
		rs := MergePrefixes(ps)
		for i := 1; i < len(rs); i++ {
			if rs[i-1].To.Next().Compare(rs[i].From) >= 0 {
				t.Fatalf("ranges %v and %v overlap or touch", rs[i-1], rs[i])
			}
		}
		for _, p := range ps {
			covered := false
			for _, r := range rs {
				covered = covered || (r.From.Compare(p.Addr()) <= 0 && r.To.Compare(Last(p)) >= 0)
			}
			if !covered {
				t.Fatalf("%v not covered by %v", p, rs)
			}
		}
	})
}

func TestCompact(t *testing.T) {
	p := func(s string) R4 { return R4Of(netip.MustParsePrefix(s)) }
	got := Merge4([]R4{p("10.0.1.0/24"), p("10.0.0.0/24"), p("10.0.3.0/24"), p("255.255.255.255/32"), p("255.255.255.254/32")})
	want := []R4{{V4(netip.MustParseAddr("10.0.0.0")), V4(netip.MustParseAddr("10.0.1.255"))}, p("10.0.3.0/24"), {0xfffffffe, 0xffffffff}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Merge4 = %v, want %v", got, want)
	}
	add, del := Diff4([]R4{p("1.0.0.0/8"), p("3.0.0.0/8")}, []R4{p("1.0.0.0/8"), p("4.0.0.0/8")})
	if fmt.Sprint(add) != fmt.Sprint([]R4{p("4.0.0.0/8")}) || fmt.Sprint(del) != fmt.Sprint([]R4{p("3.0.0.0/8")}) {
		t.Errorf("Diff4 = +%v -%v", add, del)
	}
	sorted := Merge4([]R4{p("10.0.0.0/8"), p("192.168.0.0/16")})
	for s, want := range map[string]bool{"10.1.0.0/16": true, "0.0.0.0/0": true, "11.0.0.0/8": false, "192.168.3.3/32": true, "192.169.0.0/16": false} {
		if got := Overlaps4(p(s), sorted); got != want {
			t.Errorf("Overlaps4(%s) = %v, want %v", s, got, want)
		}
	}
	q := func(s string) R6 { return R6Of(netip.MustParsePrefix(s)) }
	m6 := Merge6([]R6{q("2001:db8:1::/48"), q("2001:db8::/48"), q("fc00::/7")})
	if len(m6) != 2 || !Overlaps6(q("2001:db8:1:2::/64"), m6) || Overlaps6(q("2001:db9::/32"), m6) {
		t.Errorf("Merge6/Overlaps6 = %v", m6)
	}
}
