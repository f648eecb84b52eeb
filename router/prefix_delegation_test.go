package router

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/router/config"
)

func TestSubnetOf(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		n      int
		want   string // "" : no room
	}{
		{"2001:db8:f000:100::/56", 0, "2001:db8:f000:100::/64"},
		{"2001:db8:f000:100::/56", 1, "2001:db8:f000:101::/64"},
		{"2001:db8:f000:100::/56", 255, "2001:db8:f000:1ff::/64"},
		{"2001:db8:f000:100::/56", 256, ""},
		{"2001:db8:f000:110::/60", 15, "2001:db8:f000:11f::/64"},
		{"2001:db8:f000:110::/60", 16, ""},
		{"2001:db8:f000:111::/64", 0, "2001:db8:f000:111::/64"},
		{"2001:db8:f000:111::/64", 1, ""},
		{"2001:db8:f0::/48", 65535, "2001:db8:f0:ffff::/64"},
		{"2001:db8:f000:111::/80", 0, ""},
	} {
		got, ok := subnetOf(netip.MustParsePrefix(tc.prefix), tc.n)
		if (tc.want == "") != !ok || (ok && got.String() != tc.want) {
			t.Errorf("subnetOf(%s, %d) = %v, %v; want %q", tc.prefix, tc.n, got, ok, tc.want)
		}
	}
}

// A prefix too small for every configured subnet id is reported, not
// half-applied.
func TestPDPlanTooSmall(t *testing.T) {
	cfg := &config.Config{LAN: []config.LAN{{Name: "lan0", PDSubnet: 1}, {Name: "lan1", PDSubnet: 20}, {Name: "lan2", PDSubnet: -1}}}
	c := &prefixDelegationComp{cfg: cfg}
	l := &dhcp.WANLease6{Delegated: netip.MustParsePrefix("2001:db8:f000:110::/60"), PrefixValid: time.Hour, Acquired: time.Now()}
	d, err := c.plan(l)
	if err == nil || !strings.Contains(err.Error(), "has no subnet 20 for lan1 (a /60 holds 16)") {
		t.Errorf("plan error = %v", err)
	}
	if got := d.subnets["lan0"].String(); got != "2001:db8:f000:111::/64" {
		t.Errorf("lan0 subnet %s", got)
	}
	l.Delegated = netip.MustParsePrefix("2001:db8:f000:100::/56")
	if _, err := c.plan(l); err != nil {
		t.Errorf("a /56 holds subnet 20: %v", err)
	}
}
