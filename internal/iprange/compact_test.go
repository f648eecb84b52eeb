package iprange

import (
	"net/netip"
	"testing"
)

func TestContains(t *testing.T) {
	v4 := Merge4([]R4{R4Of(netip.MustParsePrefix("198.51.100.0/24")), R4Of(netip.MustParsePrefix("10.0.0.1/32"))})
	v6 := Merge6([]R6{R6Of(netip.MustParsePrefix("2001:db8::/32"))})
	for a, want := range map[string]bool{
		"198.51.100.7": true, "198.51.101.0": false, "10.0.0.1": true, "10.0.0.2": false,
		"::ffff:198.51.100.9": true, "2001:db8::1": true, "2001:db9::1": false,
	} {
		if got := Contains(netip.MustParseAddr(a), v4, v6); got != want {
			t.Errorf("Contains(%s) = %v, want %v", a, got, want)
		}
	}
	if Contains(netip.MustParseAddr("198.51.100.7"), nil, nil) {
		t.Error("Contains in no ranges")
	}
}
