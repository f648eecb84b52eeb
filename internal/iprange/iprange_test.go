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
