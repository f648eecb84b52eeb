package router

import (
	"net/netip"
	"testing"
	"time"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/usage"
)

// TestClientsKeepTheMAC: a host's addresses stay one row, under its MAC,
// after what said the MAC (a lease, a neighbour entry) is gone: its
// day's totals do not become a nameless row of their own.
func TestClientsKeepTheMAC(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("fd00:1::10")
	const mac = "02:00:00:00:00:10"
	leases := []dhcp.Lease{{Addr: v4, MAC: mac, Hostname: "laptop"}, {Addr: v6, MAC: mac}}
	c := &usageComp{cfg: &config.Config{}, leases: func() []dhcp.Lease { return leases }, meter: usage.NewMeter(time.Local)}
	now := time.Now()
	c.meter.Poll([]usage.Flow{{ID: 1, Host: v4, Path: "wan"}, {ID: 2, Host: v6, Path: "vpn"}}, now)
	c.meter.Poll([]usage.Flow{{ID: 1, Host: v4, Up: 1000, Path: "wan"}, {ID: 2, Host: v6, Up: 2000, Path: "vpn"}}, now.Add(time.Second))
	for _, when := range []string{"with the leases", "after they are gone"} {
		cl := c.clients()
		if len(cl.Hosts) != 1 || cl.Hosts[0].MAC != mac || len(cl.Hosts[0].Addresses) != 2 || cl.Hosts[0].UpToday != 3000 {
			t.Errorf("%s: %+v, want one host %s with both addresses and 3000 bytes up", when, cl.Hosts, mac)
		}
		leases = nil
	}
}
