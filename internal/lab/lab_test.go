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
