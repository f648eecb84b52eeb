package netns

import "testing"

func TestSysctlInterface(t *testing.T) {
	for key, want := range map[string]string{
		"net/ipv4/conf/wg0/rp_filter":      "wg0",
		"net/ipv6/conf/wan0.7/accept_ra":   "wan0.7",
		"net/ipv4/conf/all/rp_filter":      "",
		"net/ipv6/conf/default/accept_dad": "",
		"net/ipv4/ip_forward":              "",
		"net/netfilter/nf_conntrack_max":   "",
		"net/ipv4/conf/":                   "",
	} {
		if got := (Sysctl{Key: key}).Interface(); got != want {
			t.Errorf("%s: interface %q, want %q", key, got, want)
		}
	}
}
