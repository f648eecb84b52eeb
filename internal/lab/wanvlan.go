package lab

import (
	"fmt"
	"net/netip"
	"path/filepath"
)

// TaggedSubnet4 is the ISP's subnet on a tagged WAN (ServeVLAN): carrier-
// grade NAT space, as many ISPs hand out.
var TaggedSubnet4 = netip.MustParsePrefix("100.64.7.0/24")

// ServeVLAN makes the ISP serve DHCPv4 on VLAN id of the WAN link too,
// from TaggedSubnet4, as an ISP that wants its customers' traffic tagged
// does. The untagged link keeps its own subnet, so a lease from
// TaggedSubnet4 proves the router used the VLAN.
func (isp *ISP) ServeVLAN(id int) {
	l := isp.lab
	l.T.Helper()
	dev := fmt.Sprintf("dn.%d", id)
	gw := netip.PrefixFrom(TaggedSubnet4.Addr().Next(), TaggedSubnet4.Bits())
	isp.NS.MustRun("ip", "link", "add", "link", "dn", "name", dev, "type", "vlan", "id", fmt.Sprint(id))
	isp.NS.MustRun("ip", "addr", "add", gw.String(), "dev", dev)
	isp.NS.MustRun("ip", "link", "set", dev, "up")
	dir := filepath.Join(l.Dir, "isp")
	first, last := TaggedSubnet4.Addr().As4(), TaggedSubnet4.Addr().As4()
	first[3], last[3] = 100, 199
	isp.NS.Start("isp-dnsmasq-vlan", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
		"--pid-file="+filepath.Join(dir, "dnsmasq-vlan.pid"), "--dhcp-leasefile="+filepath.Join(dir, "dnsmasq-vlan.leases"),
		"--bind-interfaces", "--interface="+dev, "--except-interface=lo", "--log-dhcp", "--log-facility=-", "--no-ping",
		fmt.Sprintf("--dhcp-range=%s,%s,255.255.255.0,1h", netip.AddrFrom4(first), netip.AddrFrom4(last)),
		"--dhcp-option=option:router,"+gw.Addr().String(), "--dhcp-option=option:dns-server,"+ISPDNS4.String())
}
