package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/routerd/routerd/internal/lab"
)

// vlanLANs are two VLANs on lan0's port: IoT (20, isolated) and guests
// (30, internet only).
const vlanLANs = `
[[lan]]
name = "iot"
parent = "lan0"
vlan = 20
addresses = ["192.168.20.1/24"]
access = "isolated"
[lan.dhcp4]
range = ["192.168.20.100", "192.168.20.150"]

[[lan]]
name = "guest"
parent = "lan0"
vlan = 30
addresses = ["192.168.30.1/24"]
access = "internet"
[lan.dhcp4]
range = ["192.168.30.100", "192.168.30.150"]
`

// tagged puts the client on VLAN id of its switch port (a trunk): its
// eth0 becomes the VLAN sub-interface, so every client tool works as on
// an untagged link.
func tagged(c *lab.Client, id int) {
	c.NS.MustRun("ip", "link", "set", "eth0", "down")
	c.NS.MustRun("ip", "link", "set", "eth0", "name", "trunk")
	c.NS.MustRun("ip", "link", "add", "link", "trunk", "name", "eth0", "type", "vlan", "id", fmt.Sprint(id))
	c.NS.MustRun("ip", "link", "set", "trunk", "up")
	c.NS.MustRun("ip", "link", "set", "eth0", "up")
}

// TestVLANTrunk (full kernel: 802.1Q): two VLAN LANs on the one port of
// lan0, a trunk to a VLAN-aware access point. Clients on tagged links get
// leases from their own VLAN, an untagged one from lan0; the guests reach
// the internet, the household reaches the IoT VLAN, and neither VLAN
// reaches the other or lan0. The WAN is tagged too (wan.vlan = 7): the
// ISP serves another subnet on VLAN 7 than untagged, and the WAN's lease
// and what the ISP sees come from the tagged one.
func TestVLANTrunk(t *testing.T) {
	if lab.RequireKernel(t, "8021q") {
		return
	}
	lab.Require(t, "dnsmasq", "nsenter", "udhcpc", "curl")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	isp.ServeVLAN(7)
	r := l.NewRouter(isp)
	home := r.AddLAN()
	pc, cam, phone := home.AddClient(), home.AddClient(), home.AddClient()
	tagged(cam, 20)
	tagged(phone, 30)
	lab.ServeEcho(l, cam.NS, 8080)
	lab.ServeEcho(l, pc.NS, 8080)
	cfg := strings.Replace(r.Config(lab.ConfigOptions{Extra: vlanLANs}), "[wan]\n", "[wan]\nvlan = 7\n", 1)
	rd := r.StartRouterd(cfg)
	st := waitWANLease(t, l, rd, nil)
	wan := netip.MustParsePrefix(st.WAN.DHCP.Address).Addr()
	if !lab.TaggedSubnet4.Contains(wan) {
		t.Fatalf("WAN lease %s, want one from the tagged link's %s", wan, lab.TaggedSubnet4)
	}
	if out, _ := rd.Ctl("status"); !strings.Contains(out, "wan0.7") {
		t.Errorf("status does not show the tagged WAN link:\n%s", out)
	}

	leases := map[*lab.Client]netip.Prefix{
		pc: netip.MustParsePrefix("192.168.11.0/24"), cam: netip.MustParsePrefix("192.168.20.0/24"), phone: netip.MustParsePrefix("192.168.30.0/24"),
	}
	addr := map[*lab.Client]netip.Addr{}
	for c, want := range leases {
		le, err := c.UDHCPC("")
		if err != nil {
			t.Fatalf("%s: %v", c.NS.Name, err)
		}
		if !want.Contains(le.IP) {
			t.Fatalf("%s got %s, want an address in %s (its VLAN's)", c.NS.Name, le.IP, want)
		}
		addr[c] = le.IP
	}
	if got := echoFrom(t, l, phone, lab.Echo4, 80); got != wan.String() {
		t.Errorf("the ISP saw the guest as %q, want the tagged WAN lease's %s", got, wan)
	}
	if got := echoFrom(t, l, pc, addr[cam], 8080); got != addr[pc].String() {
		t.Errorf("the camera saw the household's PC as %q, want %s", got, addr[pc])
	}
	cannotReach(t, phone.NS, addr[cam], 8080)
	cannotReach(t, phone.NS, addr[pc], 8080)
	cannotReach(t, cam.NS, addr[pc], 8080)
	cannotReach(t, cam.NS, lab.Echo4, 80)
}
