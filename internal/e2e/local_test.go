package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/cgroup"
	"github.com/routerd/routerd/internal/lab"
)

// TestLocalPolicy is seed 001: routerd on a host that runs other services.
// The processes of one user, and of one cgroup, go out through the VPN,
// with their DNS asked upstream through it too (the cgroup's policy, and a
// LAN client's, of their own DNS server there: seed 001's dnsServer); the
// tunnel has no IPv6, so their IPv6 is refused, not routed by the WAN.
// Root's traffic is the router's own and takes the WAN.
func TestLocalPolicy(t *testing.T) {
	lab.Require(t, "setpriv", "dig")
	var client *lab.Client
	var client4 netip.Addr
	root, err := cgroup.Root()
	if err != nil {
		t.Fatal(err)
	}
	var group, groupDir string
	a := newAppliance(t, lab.ConfigOptions{VPNNoIPv6: true, Router: "wan"}, "", func(a *appliance) {
		group = a.l.Prefix + "-svc"
		groupDir = filepath.Join(root, group)
		if err := os.Mkdir(groupDir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(groupDir) })
		a.vp.StartDNS()
		client = a.lan.AddClient()
		client4, _ = client.SetStatic(80)
	})
	// newAppliance has started routerd; add the local policies by reload.
	a.r.WriteConfig(a.cfg + fmt.Sprintf(`
[[routing.policy]]
name = "svc-user"
users = ["nobody"]
via = "vpn"

[[routing.policy]]
name = "svc-cgroup"
cgroups = [%q]
dns = [%q]
via = "vpn"

[[routing.policy]]
name = "lan-own-dns"
sources = ["%s"]
dns = [%[2]q]
via = "vpn"
`, group, lab.VPNTunnel4.Addr().String(), client4))
	if _, err := a.rd.Ctl("reload"); err != nil {
		t.Fatal(err)
	}
	// run runs argv in the router's namespace: as nobody, in the cgroup,
	// or as root.
	run := func(who string, argv ...string) (string, error) {
		switch who {
		case "nobody":
			argv = append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"}, argv...)
		case "cgroup":
			argv = append([]string{"sh", "-c", fmt.Sprintf(`echo $$ > %s/cgroup.procs && exec "$@"`, groupDir), "sh"}, argv...)
		}
		out, err := a.r.NS.NetCmd(argv...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	curl := func(who string, url string) (string, error) {
		return run(who, "curl", "-sS", "--max-time", "5", url)
	}
	vpn4 := lab.VPNPublic4.Addr().String()
	echo4 := fmt.Sprintf("http://%s/", lab.Echo4)
	for _, tc := range []struct{ who, want string }{{"nobody", vpn4}, {"cgroup", vpn4}, {"root", a.wan.String()}} {
		var got string
		a.l.Eventually(10*time.Second, tc.who+" reaches the echo", func() (err error) {
			got, err = curl(tc.who, echo4)
			return err
		})
		if got != tc.want {
			t.Errorf("%s is seen as %s, want %s", tc.who, got, tc.want)
		}
	}

	t.Run("IPv6 refused", func(t *testing.T) {
		to6 := a.isp.Count(netip.Prefix{}, netip.PrefixFrom(lab.Echo6, 128))
		echo6 := fmt.Sprintf("http://[%s]/", lab.Echo6)
		for _, who := range []string{"nobody", "cgroup"} {
			if out, err := curl(who, echo6); err == nil {
				t.Errorf("%s reached the echo over IPv6 (%s) with a tunnel that has none", who, out)
			}
		}
		if n := to6.Packets(); n != 0 {
			t.Errorf("%d IPv6 packets of the VPN-bound processes reached the ISP", n)
		}
		got := counters(mustStatus(t, a.rd), "main")
		if got["policy_svc-user_refused6"] == 0 || got["policy_svc-cgroup_refused6"] == 0 {
			t.Errorf("main counters %v: no refusal counted", got)
		}
		// Root's IPv6 is untouched: it goes by the WAN.
		if out, err := curl("root", echo6); err != nil {
			t.Errorf("root over IPv6: %v: %s", err, out)
		}
	})

	t.Run("DNS through the same path", func(t *testing.T) {
		gw := a.lan.Router4().Addr().String()
		for _, tc := range []struct{ who, name, from string }{
			{"nobody", "alt1.example", vpn4},
			{"root", "alt2.example", a.wan.String()},
		} {
			if out, err := run(tc.who, "dig", "+short", "+time=2", "+tries=1", "@"+gw, tc.name); err != nil || out == "" {
				t.Fatalf("%s: dig %s: %v: %s", tc.who, tc.name, err, out)
			}
			log := a.isp.DNSLog()
			if want := "query[a] " + tc.name + " from " + tc.from; !strings.Contains(log, want) {
				t.Errorf("%s's lookup: the ISP log lacks %q:\n%s", tc.who, want, grepLines(log, tc.name))
			}
		}
	})
	t.Run("own DNS server over the tunnel", func(t *testing.T) {
		gw := a.lan.Router4().Addr()
		tunnelSide := "from " + lab.VPNClient4.Addr().String()
		digs := map[string]func(name string, args ...string) (string, error){
			"cgroup": func(name string, args ...string) (string, error) {
				return run("cgroup", append([]string{"dig", "+short", "+time=2", "+tries=1", "@" + gw.String(), name}, args...)...)
			},
			"lan client": func(name string, args ...string) (string, error) {
				out, err := client.Dig(gw, append([]string{"+short", name}, args...)...)
				return strings.TrimSpace(out), err
			},
		}
		for who, dig := range digs {
			for _, proto := range []string{"udp", "tcp"} {
				name := strings.ReplaceAll(who, " ", "-") + "-" + proto + ".vpn.example"
				args := []string{"+notcp"}
				if proto == "tcp" {
					args = []string{"+tcp"}
				}
				out, err := dig(name, args...)
				if err != nil || out != lab.VPNDNSAnswer.String() {
					t.Errorf("%s over %s: dig %s = %q, %v; want %s from the provider's own server", who, proto, name, out, err, lab.VPNDNSAnswer)
				}
				if log := a.vp.DNSLog(); !strings.Contains(log, "query[a] "+name+" "+tunnelSide) {
					t.Errorf("%s over %s: the provider's DNS log lacks %q %s:\n%s", who, proto, name, tunnelSide, grepLines(log, name))
				}
				if log := a.isp.DNSLog(); strings.Contains(log, name) {
					t.Errorf("%s over %s: the ISP's DNS was asked %s:\n%s", who, proto, name, grepLines(log, name))
				}
			}
		}
		// Root (the router's own path and servers) asks the ISP's, which
		// knows no such name, though the cgroup's answer is in the cache.
		for _, args := range [][]string{{"+notcp"}, {"+tcp"}} {
			if out, err := run("root", append([]string{"dig", "+time=2", "+tries=1", "@" + gw.String(), "cgroup-udp.vpn.example"}, args...)...); err != nil || !strings.Contains(out, "NXDOMAIN") {
				t.Errorf("root %s: dig cgroup-udp.vpn.example: %v\n%s\nwant NXDOMAIN from the ISP's server", args[0], err, out)
			}
		}
		if log := a.isp.DNSLog(); !strings.Contains(log, "query[a] cgroup-udp.vpn.example from "+a.wan.String()) {
			t.Errorf("root's question did not reach the ISP's DNS from the WAN:\n%s", grepLines(log, "cgroup-udp"))
		}
		st := mustStatus(t, a.rd)
		found := false
		for _, u := range st.DNS.Upstreams {
			found = found || (u.Source == "policy svc-cgroup" && u.Answered > 0)
		}
		if !found {
			t.Errorf("status lists no answering upstream of policy svc-cgroup: %+v", st.DNS.Upstreams)
		}
	})
}
