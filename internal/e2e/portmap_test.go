package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// TestPortMap: a console on the LAN asks for a port with natpmpc (NAT-PMP)
// and with upnpc (UPnP IGD, found by SSDP), the miniupnp project's clients; a host on the internet connects to the
// router's WAN address on it and the console's service sees the host's
// own address. The mapping survives a restart, is listed and deleted with
// routerctl, expires when not renewed; a client whose traffic takes the
// VPN is refused.
func TestPortMap(t *testing.T) {
	lab.Require(t, "natpmpc", "upnpc", "curl")
	var console, vpnClient *lab.Client
	a := newAppliance(t, lab.ConfigOptions{NoDHCP: true, Default: "wan"}, `
[[routing.policy]]
name = "to-vpn"
sources = ["192.168.11.60"]
via = "vpn"

[portmap]
protocols = ["upnp", "natpmp", "pcp"]
listen = ["lan0"]
ports = "1024-65535"
max_per_client = 4
`, func(a *appliance) {
		console, vpnClient = a.lan.AddClient(), a.lan.AddClient()
		console.SetStatic(50)
		vpnClient.SetStatic(60)
		lab.ServeEcho(a.l, console.NS, 8080)
	})
	gw := a.lan.Router4().Addr().String()
	natpmpc := func(c *lab.Client, args ...string) (string, error) {
		return c.NS.Run(append([]string{"natpmpc", "-g", gw}, args...)...)
	}
	if out, err := natpmpc(console); err != nil || !strings.Contains(out, "Public IP address : "+a.wan.String()) {
		t.Errorf("natpmpc's public address: %v\n%s", err, out)
	}
	out, err := natpmpc(console, "-a", "4000", "8080", "tcp", "3600")
	if err != nil || !strings.Contains(out, "Mapped public port 4000 protocol TCP to local port 8080") {
		t.Fatalf("natpmpc -a 4000 8080 tcp: %v\n%s", err, out)
	}
	url := fmt.Sprintf("http://%s:4000/", a.wan)
	reach := func(what string) {
		t.Helper()
		a.l.Eventually(20*time.Second, what, func() error {
			got, err := a.isp.NS.Run("curl", "-sS", "--max-time", "3", url)
			if err != nil {
				return err
			}
			if got = strings.TrimSpace(got); got != lab.ISPDown4.Addr().String() {
				return fmt.Errorf("the console saw %q", got)
			}
			return nil
		})
	}
	reach("the internet reaches the console on the mapped port")
	if out, err := natpmpc(vpnClient, "-a", "4001", "8080", "tcp", "60"); err == nil && strings.Contains(out, "Mapped public port") {
		t.Errorf("a VPN-path client got a mapping:\n%s", out)
	}
	// UPnP IGD, found by SSDP: the same table.
	// -i: miniupnpc calls a gateway whose WAN address is in a
	// documentation range (the lab's 203.0.113.0/24) "not connected".
	upnpc := func(c *lab.Client, args ...string) (string, error) {
		return c.NS.Run(append([]string{"upnpc", "-i", "-m", "eth0"}, args...)...)
	}
	out, err = upnpc(console, "-a", "192.168.11.50", "8080", "4100", "TCP", "600")
	if err != nil || !strings.Contains(out, "external "+a.wan.String()+":4100 TCP is redirected to internal 192.168.11.50:8080") {
		t.Fatalf("upnpc -a: %v\n%s", err, out)
	}
	a.l.Eventually(20*time.Second, "the internet reaches the console on the UPnP port", func() error {
		got, err := a.isp.NS.Run("curl", "-sS", "--max-time", "3", fmt.Sprintf("http://%s:4100/", a.wan))
		if err != nil {
			return err
		}
		if got = strings.TrimSpace(got); got != lab.ISPDown4.Addr().String() {
			return fmt.Errorf("the console saw %q", got)
		}
		return nil
	})
	if out, _ := upnpc(console, "-a", "192.168.11.99", "8080", "4101", "TCP", "600"); !strings.Contains(out, "606") {
		t.Errorf("a mapping for another host was not refused with 606:\n%s", out)
	}
	if out, _ := upnpc(vpnClient, "-a", "192.168.11.60", "8080", "4102", "TCP", "600"); strings.Contains(out, "is redirected") {
		t.Errorf("a VPN-path client got a UPnP mapping:\n%s", out)
	}
	if out, err := upnpc(console, "-l"); err != nil || !strings.Contains(out, "4100->192.168.11.50:8080") {
		t.Errorf("upnpc -l: %v\n%s", err, out)
	}
	if out, err := upnpc(console, "-d", "4100", "TCP"); err != nil || strings.Contains(out, "failed") {
		t.Errorf("upnpc -d: %v\n%s", err, out)
	}

	a.rd.Restart()
	reach("the mapping after a restart")
	if out, err := a.rd.Ctl("portmap", "list"); err != nil || !strings.Contains(out, "4000") || !strings.Contains(out, "192.168.11.50") {
		t.Errorf("portmap list: %v\n%s", err, out)
	}
	if out, err := a.rd.Ctl("portmap", "delete", "tcp/4000"); err != nil {
		t.Fatalf("portmap delete: %v\n%s", err, out)
	}
	if out, err := a.isp.NS.Run("curl", "-sS", "--max-time", "3", url); err == nil {
		t.Errorf("reached after the mapping was deleted: %s", out)
	}
	// A short lease that is not renewed: gone.
	if out, err := natpmpc(console, "-a", "4002", "8080", "tcp", "2"); err != nil || !strings.Contains(out, "Mapped public port 4002") {
		t.Fatalf("natpmpc -a 4002: %v\n%s", err, out)
	}
	a.l.Eventually(20*time.Second, "the unrenewed mapping expires", func() error {
		if out, _ := a.rd.Ctl("portmap", "list"); strings.Contains(out, "4002") {
			return fmt.Errorf("still listed:\n%s", out)
		}
		return nil
	})
	if c := counters(mustStatus(t, a.rd), "main"); c["portmap"] == 0 {
		t.Errorf("main counters %v: portmap counted nothing", c)
	}
}
