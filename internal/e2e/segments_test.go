package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// segmentsLab is a household of three LANs: lan0 (the family's, two ports
// bridged: two rooms), lan1 (guests: access internet) and lan2 (IoT:
// access isolated), with a NAS and a TV on lan0 and a network behind a
// gateway on lan0.
type segmentsLab struct {
	l                    *lab.Lab
	rd                   *lab.Routerd
	nas, tv, gw, laptop  *lab.Client
	guest, cam           *lab.Client
	behind               *lab.NS
	home, guests, things *lab.Switch
	room2                *lab.Switch // lan0's second port
	r                    *lab.Router
}

func newSegmentsLab(t *testing.T) *segmentsLab {
	lab.Require(t, "dnsmasq", "nsenter", "udhcpc", "dhclient", "curl", "nft", "dig", "ping")
	s := &segmentsLab{l: lab.New(t)}
	isp := s.l.NewISP(lab.ISPOptions{})
	r := s.l.NewRouter(isp)
	s.r = r
	s.home, s.guests, s.things = r.AddLAN(), r.AddLAN(), r.AddLAN()
	room2 := s.home.AddPort(r)
	s.room2 = room2
	s.guests.Access, s.things.Access = "internet", "isolated"
	s.nas, s.tv, s.gw = s.home.AddClient(), s.home.AddClient(), s.home.AddClient()
	s.laptop = room2.AddClient()
	s.guest, s.cam = s.guests.AddClient(), s.things.AddClient()
	s.nas.SetStatic(10)
	s.tv.SetStatic(50)
	s.gw.SetStatic(2)
	lab.ServeEcho(s.l, s.nas.NS, 631, 8080)
	lab.ServeEcho(s.l, s.cam.NS, 8080)

	// A network behind a gateway on lan0 (a lab, a second router).
	s.behind = s.l.NewNS("behind")
	s.gw.NS.MustRun("ip", "link", "add", "bh0", "type", "veth", "peer", "name", "eth0", "netns", s.behind.Name)
	s.gw.NS.MustRun("ip", "addr", "add", "10.10.0.1/16", "dev", "bh0")
	s.gw.NS.MustRun("ip", "link", "set", "bh0", "up")
	s.gw.NS.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
	s.behind.MustRun("ip", "addr", "add", "10.10.1.1/16", "dev", "eth0")
	s.behind.MustRun("ip", "link", "set", "eth0", "up")
	s.behind.MustRun("ip", "route", "add", "default", "via", "10.10.0.1")

	extra := fmt.Sprintf(`
[[firewall.rule]]
name = "guests-print"
from = ["lan1"]
to = ["192.168.11.10"]
ports = ["tcp/631"]
action = "accept"

[[firewall.rule]]
name = "tv-offline"
from = [%q]
to = ["wan"]
action = "drop"

[[firewall.rule]]
name = "laptop-not-camera"
from = [%q]
to = [%q]
action = "reject"

[[route]]
to = "10.10.0.0/16"
via = "192.168.11.2"
advertise = true
`, s.tv.MAC, s.laptop.MAC, s.cam.MAC)
	s.rd = r.StartRouterd(r.Config(lab.ConfigOptions{Extra: extra}))
	waitWANLease(t, s.l, s.rd, nil)
	return s
}

// cannotReach checks that a connection from c to dst:port is not made
// (dropped: it times out).
func cannotReach(t *testing.T, ns *lab.NS, dst netip.Addr, port int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := ns.RunContext(ctx, "curl", "-sS", "--max-time", "2", fmt.Sprintf("http://%s/", netip.AddrPortFrom(dst, uint16(port))))
	if err == nil {
		t.Errorf("%s reached %s:%d (it saw %s); want it kept out", ns.Name, dst, port, strings.TrimSpace(out))
	}
}

// TestSegments: a guest LAN reaches the internet but not the NAS, except
// for the printing port a rule opens; an isolated IoT LAN gets DHCP and DNS
// but opens nothing, while the household reaches its devices; a rule cuts
// one MAC off the internet; a LAN of two ports is one LAN; a network
// behind a LAN gateway is routed both ways and advertised by option 121.
// Every rule's and the isolation's counter moves.
func TestSegments(t *testing.T) {
	s := newSegmentsLab(t)
	nas4 := netip.MustParseAddr("192.168.11.10")
	nas6 := netip.MustParseAddr("fd00:11::a") // SetStatic(10)

	// The laptop, in the other room (the bridge's second port), gets a
	// lease with option 121 and is on the same LAN as the NAS.
	_, leaseFile := s.laptop.StartDhclient(false,
		"option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;",
		"request subnet-mask, broadcast-address, routers, domain-name-servers, domain-name, rfc3442-classless-static-routes;")
	laptop, err := s.laptop.WaitLease(leaseFile, 30*time.Second)
	if err != nil {
		t.Fatalf("laptop behind the second port: %v", err)
	}
	if !netip.MustParsePrefix("192.168.11.0/24").Contains(laptop.IP) {
		t.Fatalf("laptop lease %s, want one on lan0", laptop.IP)
	}
	// dhclient writes its lease database after running its script.
	s.l.Eventually(10*time.Second, "option 121 in dhclient's lease", func() error {
		db, _ := os.ReadFile(strings.TrimSuffix(leaseFile, ".lease") + ".leases")
		if want := "rfc3442-classless-static-routes 0,192,168,11,1,16,10,10,192,168,11,2;"; !strings.Contains(string(db), want) {
			return fmt.Errorf("the lease lacks %s:\n%s", want, db)
		}
		return nil
	})
	if got := echoFrom(t, s.l, s.laptop, nas4, 8080); got != laptop.IP.String() {
		t.Errorf("the NAS saw the laptop as %q, want %s (one LAN, no NAT)", got, laptop.IP)
	}
	echoFrom(t, s.l, s.laptop, lab.Echo4, 80)

	// Guests: the internet yes, the NAS no (not a packet reaches it),
	// except its printer port.
	g, err := s.guest.UDHCPC("phone")
	if err != nil {
		t.Fatal(err)
	}
	echoFrom(t, s.l, s.guest, lab.Echo4, 80)
	s.nas.NS.MustRun("nft", "add table inet seen; add chain inet seen in { type filter hook input priority 0; }; add rule inet seen in ip saddr 192.168.12.0/24 tcp dport 8080 counter")
	cannotReach(t, s.guest.NS, nas4, 8080)
	if out := s.nas.NS.MustRun("nft", "list chain inet seen in"); !strings.Contains(out, "counter packets 0 ") {
		t.Errorf("a guest's packets reached the NAS:\n%s", out)
	}
	if got := echoFrom(t, s.l, s.guest, nas4, 631); got != g.IP.String() {
		t.Errorf("printing from the guest LAN: the NAS saw %q, want %s", got, g.IP)
	}

	// IoT: DHCP and DNS from the router, nothing else; the household
	// reaches the camera, which cannot connect back or out.
	cam, err := s.cam.UDHCPC("camera")
	if err != nil {
		t.Fatalf("an isolated LAN's DHCP: %v", err)
	}
	s.cam.NS.MustRun("ip", "addr", "add", "fd00:13::20/64", "dev", "eth0", "nodad")
	s.cam.NS.MustRun("ip", "-6", "route", "replace", "default", "via", "fd00:13::1")
	if out, err := s.cam.Dig(netip.MustParseAddr("192.168.13.1"), "+short", "gw.lan"); err != nil || strings.TrimSpace(out) == "" {
		t.Errorf("an isolated LAN's DNS: %v %q", err, out)
	}
	if got := echoFrom(t, s.l, s.nas, cam.IP, 8080); got != nas4.String() {
		t.Errorf("the household reaching the camera: it saw %q, want %s", got, nas4)
	}
	if got := echoFrom(t, s.l, s.nas, netip.MustParseAddr("fd00:13::20"), 8080); got != nas6.String() {
		t.Errorf("the household reaching the camera over IPv6: it saw %q, want %s", got, nas6)
	}
	// The laptop is refused the camera by a rule naming both by MAC: the
	// camera's leased address is followed.
	s.l.Eventually(20*time.Second, "the laptop refused the camera", func() error {
		out, err := s.laptop.NS.Run("curl", "-sS", "--max-time", "2", fmt.Sprintf("http://%s:8080/", cam.IP))
		// Refused at once (a TCP reset: curl's "couldn't connect"), not
		// left to time out.
		if err == nil || !strings.Contains(out, "(7)") {
			return fmt.Errorf("curl: %v %s", err, out)
		}
		return nil
	})
	cannotReach(t, s.cam.NS, nas4, 8080)
	cannotReach(t, s.cam.NS, nas6, 8080)
	cannotReach(t, s.cam.NS, lab.Echo4, 80)
	cannotReach(t, s.guest.NS, cam.IP, 8080)

	// The TV's MAC is off the internet, not off the LAN.
	cannotReach(t, s.tv.NS, lab.Echo4, 80)
	echoFrom(t, s.l, s.tv, nas4, 8080)

	// The network behind the gateway: its hosts reach the internet
	// (replies come back through the wan namespace and the path table)
	// and the household reaches them.
	echoFrom(t, s.l, &lab.Client{NS: s.behind}, lab.Echo4, 80)
	if _, err := s.nas.NS.Run("ping", "-c", "1", "-W", "2", "10.10.1.1"); err != nil {
		t.Errorf("the NAS cannot reach the network behind the gateway: %v", err)
	}

	st, err := getStatus(s.rd)
	if err != nil {
		t.Fatal(err)
	}
	c := counters(st, "main")
	for _, name := range []string{"rule_guests-print", "rule_tv-offline", "rule_laptop-not-camera", "drop_segment"} {
		if c[name] == 0 {
			t.Errorf("counter %s = 0, want it to have counted (main counters: %v)", name, c)
		}
	}
	if len(st.Firewall.Rules) != 3 || st.Firewall.Rules[0].Packets == 0 || st.Firewall.Rules[2].Packets == 0 {
		t.Errorf("status rules = %+v", st.Firewall.Rules)
	}
	text, err := s.rd.Ctl("status")
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{"lan0 all yes - yes yes", "lan1 internet yes no - no", "lan2 isolated no no no -"} {
		if !strings.Contains(strings.Join(strings.Fields(text), " "), row) {
			t.Errorf("routerctl status lacks the matrix row %q:\n%s", row, text)
		}
	}
}

// TestSegmentsConverge: with a bridged LAN, VLAN-free, a restart changes
// nothing; a bridge port that resets (a USB NIC) is made a port again; and
// teardown removes the bridge and gives the NICs their names back.
func TestSegmentsConverge(t *testing.T) {
	s := newSegmentsLab(t)
	waitConverged(t, s.l, s.rd)
	before := snapshot(t, s.l, s.r.NS)
	s.rd.Proc.Signal(syscall.SIGTERM)
	<-s.rd.Proc.Done()
	s.rd.Start()
	st := waitConverged(t, s.l, s.rd)
	for c, n := range lastChanges(st) {
		if n != 0 {
			t.Errorf("after a restart, %s's apply made %d changes, want 0", c, n)
		}
	}
	if d := diff(before, snapshot(t, s.l, s.r.NS)); d != "" {
		t.Errorf("a restart changed the router (-before +after):\n%s", d)
	}

	// The second port's NIC resets: it comes back under a kernel name.
	s.r.NS.MustRun("ip", "link", "del", "lan0p1")
	s.room2.NS.MustRun("ip", "link", "add", "name", "uplink2", "type", "veth", "peer", "name", "eth9", "netns", s.r.NS.Name, "address", s.room2.MAC)
	s.room2.NS.MustRun("ip", "link", "set", "dev", "uplink2", "master", "br", "up")
	s.l.Eventually(10*time.Second, "the port is lan0's again", func() error {
		out, err := s.r.NS.Run("ip", "-o", "link", "show", "lan0p1")
		if err != nil || !strings.Contains(out, "master lan0") {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})
	s.nas.NS.MustRun("ping", "-c", "1", "-W", "5", "192.168.11.1")
	if _, err := s.laptop.UDHCPC("laptop"); err != nil {
		t.Errorf("a lease behind the re-adopted port: %v", err)
	}

	s.rd.Proc.Stop()
	bin, _ := lab.Binaries(s.l.T)
	if out, err := s.r.NS.NetCmd(bin, "--config", s.rd.ConfigPath, "--teardown").CombinedOutput(); err != nil {
		t.Fatalf("teardown: %v\n%s", err, out)
	}
	out := s.r.NS.MustRun("ip", "-o", "link")
	for _, gone := range []string{": lan0:", "lan0p0", "lan0p1", ": lan1:", ": lan2:"} {
		if strings.Contains(out, gone) {
			t.Errorf("after teardown %q is still there:\n%s", gone, out)
		}
	}
}
