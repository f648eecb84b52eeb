package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// TestPortMap: a console on the LAN asks for a port with natpmpc (NAT-PMP,
// the miniupnp project's client); a host on the internet connects to the
// router's WAN address on it and the console's service sees the host's
// own address. The mapping survives a restart, is listed and deleted with
// routerctl, expires when not renewed; a client whose traffic takes the
// VPN is refused.
func TestPortMap(t *testing.T) {
	lab.Require(t, "natpmpc", "curl")
	var console, vpnClient *lab.Client
	a := newAppliance(t, lab.ConfigOptions{NoDHCP: true, Default: "wan"}, `
[[routing.policy]]
name = "to-vpn"
sources = ["192.168.11.60"]
via = "vpn"

[portmap]
protocols = ["natpmp", "pcp"]
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
