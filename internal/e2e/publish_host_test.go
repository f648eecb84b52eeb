package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// TestPublishHostServices is seed 002's home end as a server: a service
// on the routerd host itself (to = "host:9090"), one in a container on a
// local bridge (to = "172.30.0.2:9191") and one in a container named to
// Docker (to = "docker:web:9191"; the test serves Docker's API) are
// published through the relay; the internet host's own address is what
// they see, over IPv4 and IPv6, and not one reply leaves by the WAN
// (their replies are routed back by the connection's path, the tunnel).
// The named container made anew at another address is followed.
func TestPublishHostServices(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "curl", "nft", "wireguard-go", "wg", "dig")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{SLAAC: true})
	relay := l.NewRelay(isp)
	relay.StartRouterd(relay.Config("", `
[[relay.forward]]
proto = "tcp"
ports = "9090-9292"
to = "10.64.0.2"

[[relay.forward]]
proto = "tcp"
ports = "9090"
to = "fd55:aaaa::2"

[[relay.forward]]
proto = "udp"
ports = "51821"
to = "10.64.0.2"
`))
	r := l.NewRouter(isp)
	r.AddLAN()
	// The host's own service, and a container behind a bridge of the host.
	lab.ServeEcho(l, r.NS, 9090)
	r.NS.MustRun("ip", "link", "add", "ctr0", "type", "bridge")
	r.NS.MustRun("ip", "addr", "add", "172.30.0.1/24", "dev", "ctr0")
	r.NS.MustRun("ip", "link", "set", "ctr0", "up")
	container := func(name, addr string) *lab.NS {
		ns := l.NewNS(name)
		r.NS.MustRun("ip", "link", "add", name+"v", "type", "veth", "peer", "name", "eth0", "netns", ns.Name)
		r.NS.MustRun("ip", "link", "set", name+"v", "master", "ctr0", "up")
		ns.MustRun("ip", "addr", "add", addr+"/24", "dev", "eth0")
		ns.MustRun("ip", "link", "set", "eth0", "up")
		ns.MustRun("ip", "route", "add", "default", "via", "172.30.0.1")
		lab.ServeEcho(l, ns, 9191)
		return ns
	}
	container("ctr", "172.30.0.2")
	web := container("web", "172.30.0.3")
	docker := serveDockerAPI(t, l, "web", "172.30.0.3")

	cfg := r.Config(lab.ConfigOptions{VPN: relay.Provider(), VPNImpl: "userspace", Default: "vpn", WANIPv6: "slaac", Extra: `
[[publish]]
name = "hostsvc"
proto = "tcp"
port = 9090
to = "host:9090"

[[publish]]
name = "ctr"
proto = "tcp"
port = 9191
to = "172.30.0.2:9191"

[[publish]]
name = "web"
proto = "tcp"
port = 9292
to = "docker:web:9191"

[[publish]]
name = "remote"
proto = "udp"
port = 51821
to = "host:51821"

[remote]
addresses = ["10.99.0.1/24"]
endpoint = "` + lab.RelayPublic4.Addr().String() + `:51821"
`})
	rd := r.StartRouterd(cfg)
	st := waitWANLease(t, l, rd, nil)
	wan := netip.MustParsePrefix(st.WAN.DHCP.Address).Addr()
	(&appliance{l: l, rd: rd}).waitVPN(t)
	// Replies that would leave by the WAN: from the router's WAN address,
	// from the published ports.
	leaks := isp.CountMatch(netip.PrefixFrom(wan, 32), netip.Prefix{}, "tcp sport { 9090, 9191 }")
	wgLeaks := isp.CountMatch(netip.PrefixFrom(wan, 32), netip.Prefix{}, "udp sport 51821")
	webURL := fmt.Sprintf("http://%s:9292/", lab.RelayPublic4.Addr())

	for _, tc := range []struct {
		src netip.Addr
		url string
	}{
		{inetHost4, fmt.Sprintf("http://%s:9090/", lab.RelayPublic4.Addr())},
		{inetHost6, fmt.Sprintf("http://[%s]:9090/", lab.RelayPublic6.Addr())},
		{inetHost4, fmt.Sprintf("http://%s:9191/", lab.RelayPublic4.Addr())},
		{inetHost4, webURL},
	} {
		var got string
		l.Eventually(20*time.Second, tc.url, func() error {
			out, err := isp.NS.Run("curl", "-sS", "--max-time", "5", "--interface", tc.src.String(), tc.url)
			got = strings.TrimSpace(out)
			return err
		})
		if got != tc.src.String() {
			t.Errorf("%s from %s: the service saw %q, want the internet host's own address", tc.url, tc.src, got)
		}
	}
	if n := leaks.Packets(); n != 0 {
		t.Errorf("%d replies of the published services left by the WAN", n)
	}
	st, err := getStatus(rd)
	if err != nil {
		t.Fatal(err)
	}
	if c := counters(st, "main"); c["publish_hostsvc"] == 0 || c["publish_ctr"] == 0 || c["publish_web"] == 0 {
		t.Errorf("publish counters: %v", c)
	}
	if len(st.Containers) != 1 || st.Containers[0].Name != "web" || !slices.Equal(st.Containers[0].Addresses, []string{"172.30.0.3"}) {
		t.Errorf("status containers %+v, want web at 172.30.0.3", st.Containers)
	}
	// The container's routes (a throw in each path table) converge: a
	// restart changes nothing.
	rd.Restart()
	for c, n := range lastChanges(waitConverged(t, l, rd)) {
		if n != 0 {
			t.Errorf("after a restart, %s's apply made %d changes, want 0", c, n)
		}
	}

	// A phone on the road, behind a relay because the home's WAN is
	// CGNAT'd: [remote]'s port published through it, the answers back
	// through the tunnel, never from the WAN address.
	out, err := rd.Ctl("remote", "add", "phone")
	if err != nil {
		t.Fatalf("remote add: %v\n%s", err, out)
	}
	conf, _ := splitRemoteAdd(t, out)
	endpoint := lab.RelayPublic4.Addr().String() + ":51821"
	if !strings.Contains(conf, "Endpoint = "+endpoint) {
		t.Errorf("the phone's config does not point at the relay:\n%s", conf)
	}
	phone := newRoadDevice(t, &appliance{l: l, isp: isp, rd: rd}, "phone", conf, endpoint, 79)
	l.Eventually(30*time.Second, "the phone asks the router's resolver through the relay", func() error {
		got, err := phone.Run("dig", "+short", "+time=2", "+tries=1", "@10.99.0.1", "echo.example")
		if err != nil {
			return err
		}
		if strings.TrimSpace(got) != lab.Echo4.String() {
			return fmt.Errorf("dig: %q", got)
		}
		return nil
	})
	if n := wgLeaks.Packets(); n != 0 {
		t.Errorf("%d of the remote server's answers left by the WAN", n)
	}

	// The container made anew: Docker gives it another address, routerd
	// follows (routes and firewall) without being told.
	web.MustRun("ip", "addr", "flush", "dev", "eth0")
	web.MustRun("ip", "addr", "add", "172.30.0.4/24", "dev", "eth0")
	web.MustRun("ip", "route", "add", "default", "via", "172.30.0.1")
	docker.set("172.30.0.4")
	l.Eventually(30*time.Second, "the web container at its new address", func() error {
		out, err := isp.NS.Run("curl", "-sS", "--max-time", "3", "--interface", inetHost4.String(), webURL)
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(out); got != inetHost4.String() {
			return fmt.Errorf("the service saw %q", got)
		}
		return nil
	})
	// Stopped: nothing is published for it, and status says why.
	docker.set("")
	l.Eventually(15*time.Second, "status: web unpublished", func() error {
		st, err := getStatus(rd)
		if err != nil {
			return err
		}
		if len(st.Containers) != 1 || st.Containers[0].Error != "not running" {
			return fmt.Errorf("containers %+v", st.Containers)
		}
		return nil
	})
	if c := counters(mustStatus(t, rd), "main"); c["publish_hostsvc"] == 0 {
		t.Errorf("the other publications went with the container's: counters %v", c)
	}
	if _, ok := counters(mustStatus(t, rd), "main")["publish_web"]; ok {
		t.Error("the stopped container is still published (counter publish_web)")
	}
	if n := leaks.Packets(); n != 0 {
		t.Errorf("%d replies of the published services left by the WAN", n)
	}
}

// fakeDocker serves the part of Docker's Engine API routerd uses (GET
// /containers/NAME/json) for one container on a unix socket, and points
// DOCKER_HOST at it for the routerd the test starts.
type fakeDocker struct {
	mu   sync.Mutex
	addr string // "": the container is stopped
}

func (d *fakeDocker) set(addr string) {
	d.mu.Lock()
	d.addr = addr
	d.mu.Unlock()
}

func serveDockerAPI(t *testing.T, l *lab.Lab, name, addr string) *fakeDocker {
	d := &fakeDocker{addr: addr}
	sock := filepath.Join(l.Dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containers/{name}/json", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != name {
			http.Error(w, `{"message":"No such container: `+r.PathValue("name")+`"}`, http.StatusNotFound)
			return
		}
		d.mu.Lock()
		a := d.addr
		d.mu.Unlock()
		fmt.Fprintf(w, `{"Name":"/%s","State":{"Running":%t},"NetworkSettings":{"Networks":{"bridge":{"IPAddress":%q}}}}`, name, a != "", a)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	return d
}
