package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSelf proves the lab's parts without routerd: a host on the ISP's link
// gets a lease from the real dnsmasq and the echo reports its address, and a
// WireGuard client of the provider comes out with the provider's address.
func TestSelf(t *testing.T) {
	Require(t, "dnsmasq", "udhcpc", "dig", "curl", "wireguard-go", "wg", "nft")
	l := New(t)
	isp := l.NewISP(ISPOptions{})
	vp := l.NewVPNProvider(isp)

	host := l.NewNS("host")
	isp.Attach(host, "eth0", "02:42:ac:99:00:01")
	c := &Client{NS: host, lab: l}
	lease, err := c.UDHCPC("selftest")
	if err != nil {
		t.Fatalf("udhcpc from the isp's dnsmasq: %v", err)
	}
	if !ISPDown4.Contains(lease.IP) || lease.Router != ISPDown4.Addr().String() || lease.DNS != ISPDNS4.String() {
		t.Fatalf("lease = %+v, want an address in %s with router %s and dns %s", lease, ISPDown4, ISPDown4.Addr(), ISPDNS4)
	}
	if !strings.Contains(isp.Leases(), "selftest") {
		t.Errorf("dnsmasq lease file lacks the client's hostname:\n%s", isp.Leases())
	}
	got, err := c.Echo(Echo4, 80)
	if err != nil {
		t.Fatal(err)
	}
	if got != lease.IP.String() {
		t.Errorf("echo over the WAN saw %q, want the client's own %s", got, lease.IP)
	}
	out, err := host.Run("dig", "+short", "@"+ISPDNS4.String(), "echo.example")
	if err != nil || strings.TrimSpace(out) != Echo4.String() {
		t.Errorf("dig echo.example at the isp = %q, %v; want %s", out, err, Echo4)
	}

	// A WireGuard client of the provider, run the way the provider's
	// own peer is: wireguard-go plus wg.
	dev := l.Prefix + "c"
	os.Remove(filepath.Join("/var/run/wireguard", dev+".sock"))
	host.Start("client-wireguard-go", "wireguard-go", "-f", dev)
	l.Eventually(10*time.Second, "client UAPI socket", func() error {
		_, err := os.Stat(filepath.Join("/var/run/wireguard", dev+".sock"))
		return err
	})
	l.OnCleanup(func() { os.Remove(filepath.Join("/var/run/wireguard", dev+".sock")) })
	keyFile := filepath.Join(l.Dir, "client.key")
	os.WriteFile(keyFile, []byte(vp.ClientKey.String()), 0o600)
	host.MustRun("wg", "set", dev, "private-key", keyFile, "peer", vp.Key.PublicKey().String(),
		"endpoint", vp.Endpoint(), "allowed-ips", Echo4.String()+"/32")
	host.MustRun("ip", "addr", "add", VPNClient4.String(), "dev", dev)
	host.MustRun("ip", "link", "set", "dev", dev, "up")
	host.MustRun("ip", "route", "add", Echo4.String()+"/32", "dev", dev)
	var viaVPN string
	l.Eventually(20*time.Second, "echo through the tunnel", func() (err error) {
		viaVPN, err = c.Echo(Echo4, 80)
		return err
	})
	if want := VPNPublic4.Addr().String(); viaVPN != want {
		t.Errorf("echo through the provider saw %q, want the provider's %s", viaVPN, want)
	}
	if hs, err := vp.LatestHandshake(); err != nil || hs.IsZero() {
		t.Errorf("provider reports no handshake: %v, %v", hs, err)
	}
}

func TestCleanupRemovesNamespaces(t *testing.T) {
	Require(t)
	var prefix string
	t.Run("inner", func(t *testing.T) {
		l := New(t)
		prefix = l.Prefix
		n := l.NewNS("x")
		n.Start("sleeper", "sleep", "3600")
	})
	out, err := hostCmd("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), prefix) {
		t.Errorf("namespaces with prefix %s left after cleanup:\n%s", prefix, out)
	}
	if out, _ := hostCmd("pgrep", "-f", "sleep 3600").Output(); len(out) > 0 {
		t.Errorf("process left after cleanup: %s", out)
	}
	_ = fmt.Sprint()
}

// TestKernelLab: the features the build machines' kernel may lack work in
// the lab that RequireKernel provides (here, or in the VM lab): an 802.1Q
// VLAN between two namespaces carries pings that the untagged link does not
// see, CAKE shapes an interface, a flowtable offloads a namespace's
// forwarded flows, and a kernel WireGuard link exists.
func TestKernelLab(t *testing.T) {
	if RequireKernel(t, "8021q", "sch_cake", "nf_flow_table", "wireguard", "dummy") {
		return
	}
	Require(t, "tc", "nft", "ping")
	l := New(t)
	a, b := l.NewNS("a"), l.NewNS("b")
	veth(l, a, "eth0", b, "eth0", "")
	for i, n := range []*NS{a, b} {
		n.MustRun("ip", "link", "set", "dev", "eth0", "up")
		n.MustRun("ip", "link", "add", "link", "eth0", "name", "eth0.20", "type", "vlan", "id", "20")
		n.MustRun("ip", "addr", "add", fmt.Sprintf("10.20.0.%d/24", i+1), "dev", "eth0.20")
		n.MustRun("ip", "link", "set", "dev", "eth0.20", "up")
	}
	a.MustRun("ping", "-c", "2", "-i", "0.2", "-W", "2", "10.20.0.2")
	if out := b.MustRun("ip", "-d", "link", "show", "eth0.20"); !strings.Contains(out, "vlan protocol 802.1Q id 20") {
		t.Errorf("eth0.20 is not an 802.1Q VLAN:\n%s", out)
	}
	a.MustRun("tc", "qdisc", "replace", "dev", "eth0", "root", "cake", "bandwidth", "10mbit", "besteffort")
	if out := a.MustRun("tc", "-s", "qdisc", "show", "dev", "eth0"); !strings.Contains(out, "qdisc cake") || !strings.Contains(out, "10Mbit") {
		t.Errorf("no CAKE on eth0:\n%s", out)
	}
	a.MustRun("ip", "link", "add", "wgt", "type", "wireguard")
	a.MustRun("ip", "link", "add", "d0", "type", "dummy")
	cmd := a.Cmd("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(`table inet ft {
	flowtable f { hook ingress priority 0; devices = { eth0, d0 }; }
	chain forwarding { type filter hook forward priority 0; meta l4proto tcp flow add @f; }
}`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("a flowtable: %v: %s", err, out)
	}
}
