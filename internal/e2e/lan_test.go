package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/status"
)

const reservationExtra = `
[[lan.dhcp4.reservation]]
mac = "02:42:ac:01:01:03"
ip = "192.168.11.10"
hostname = "nas"
`

// lanRouter is a router with one LAN and DHCP, without a VPN.
func lanRouter(t *testing.T, o lab.ConfigOptions) (*lab.Lab, *lab.Router, *lab.Switch, *lab.Routerd) {
	lab.Require(t, "dnsmasq", "nsenter", "udhcpc", "dhclient", "rdisc6")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	return l, r, lan, nil
}

func leases(t *testing.T, rd *lab.Routerd) []status.Lease {
	t.Helper()
	out, err := rd.Ctl("leases", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var ls status.Leases
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		t.Fatal(err)
	}
	return ls.Leases
}

// TestDHCPClients: udhcpc and dhclient get an address in the pool with the
// right router, DNS and domain; a reservation gets its address and name; a
// renewing client keeps its address; a released lease goes away.
func TestDHCPClients(t *testing.T) {
	l, r, lan, _ := lanRouter(t, lab.ConfigOptions{})
	c1, c2, c3 := lan.AddClient(), lan.AddClient(), lan.AddClient()
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{Extra: reservationExtra}))
	router4 := lan.Router4().Addr().String()

	l1, err := c1.UDHCPC("laptop")
	if err != nil {
		t.Fatal(err)
	}
	if !inPool(l1.IP, 100, 199) || l1.Mask != 24 || l1.Router != router4 || l1.DNS != router4 || l1.Domain != "lan" || l1.ServerID != router4 {
		t.Errorf("udhcpc lease = %+v, want .100-.199/24, router/dns/server %s, domain lan", l1, router4)
	}
	_, file := c2.StartDhclient(false)
	l2, err := c2.WaitLease(file, 30*time.Second)
	if err != nil {
		t.Fatalf("dhclient: %v", err)
	}
	if !inPool(l2.IP, 100, 199) || l2.IP == l1.IP || l2.Router != router4 || l2.DNS != router4 || l2.Domain != "lan" {
		t.Errorf("dhclient lease = %+v (udhcpc has %s)", l2, l1.IP)
	}
	l3, err := c3.UDHCPC("whatever")
	if err != nil {
		t.Fatal(err)
	}
	if l3.IP.String() != "192.168.11.10" {
		t.Errorf("reserved client got %s, want 192.168.11.10", l3.IP)
	}
	byAddr := map[string]status.Lease{}
	for _, le := range leases(t, rd) {
		byAddr[le.Address] = le
	}
	if got := byAddr[l1.IP.String()]; got.Hostname != "laptop" || got.MAC != c1.MAC {
		t.Errorf("lease of %s = %+v", l1.IP, got)
	}
	if got := byAddr["192.168.11.10"]; got.Hostname != "nas" || !got.Reserved {
		t.Errorf("reservation lease = %+v, want hostname nas", got)
	}
	// The leased client really is online through the router.
	if _, err := c1.NS.Run("ping", "-c", "1", "-W", "2", router4); err != nil {
		t.Errorf("leased client cannot reach the router: %v", err)
	}

	// Renewal (udhcpc renews on SIGUSR1) keeps the address.
	p, file4 := c1.StartUDHCPC("laptop")
	first, err := c1.WaitLease(file4, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGUSR1)
	l.Eventually(20*time.Second, "udhcpc renewed", func() error {
		ev := readEvents(file4)
		if !strings.Contains(ev, "renew ") {
			return fmt.Errorf("events: %q", ev)
		}
		return nil
	})
	if again, _ := c1.WaitLease(file4, time.Second); again.IP != first.IP {
		t.Errorf("renewal moved the client from %s to %s", first.IP, again.IP)
	}
	// Release (SIGUSR2) frees the lease.
	p.Signal(syscall.SIGUSR2)
	l.Eventually(10*time.Second, "lease released", func() error {
		for _, le := range leases(t, rd) {
			if le.Address == first.IP.String() {
				return fmt.Errorf("lease %s still there", first.IP)
			}
		}
		return nil
	})
}

func inPool(a netip.Addr, from, to int) bool {
	b := a.As4()
	return b[0] == 192 && b[1] == 168 && int(b[3]) >= from && int(b[3]) <= to
}

func readEvents(file string) string {
	b, _ := os.ReadFile(file + ".events")
	return string(b)
}

// TestLeasesSurviveKill: a relay agent (this test, speaking DHCP from port
// 67 with giaddr set, as perfdhcp does) churns leases; routerd is killed
// with SIGKILL in the middle; after the restart every acknowledged lease is
// still there.
func TestLeasesSurviveKill(t *testing.T) {
	l, r, lan, _ := lanRouter(t, lab.ConfigOptions{})
	relay := lan.AddClient()
	relayAddr, _ := relay.SetStatic(2)
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{Pool4: [2]int{10, 250}}))
	server := lan.Router4().Addr()

	var conn net.PacketConn
	err := netns.Do(relay.NS.Name, func() (err error) {
		conn, err = net.ListenPacket("udp4", netip.AddrPortFrom(relayAddr, 67).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	var mu sync.Mutex
	acked := map[string]string{} // mac -> ip
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			m := net.HardwareAddr{0x02, 0x99, byte(i >> 16), byte(i >> 8), byte(i), byte(rand.IntN(256))}
			if ip, ok := relayDORA(conn, relayAddr, server, m); ok {
				mu.Lock()
				acked[m.String()] = ip
				mu.Unlock()
			}
		}
	}()
	l.Eventually(30*time.Second, "some leases acknowledged", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 40 {
			return fmt.Errorf("%d so far", len(acked))
		}
		return nil
	})
	rd.Proc.Kill() // SIGKILL mid-churn
	cancel()
	<-done
	rd.Start()

	have := map[string]string{}
	for _, le := range leases(t, rd) {
		have[le.MAC] = le.Address
	}
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for m, ip := range acked {
		if have[m] != ip {
			lost++
			t.Errorf("acknowledged lease %s -> %s is gone after kill -9 (have %q)", m, ip, have[m])
		}
	}
	t.Logf("%d leases acknowledged before the kill, %d lost", len(acked), lost)
}

// relayDORA runs one exchange as a relay agent and returns the ACKed address.
func relayDORA(conn net.PacketConn, giaddr, server netip.Addr, m net.HardwareAddr) (string, bool) {
	disc, _ := dhcpv4.NewDiscovery(m, dhcpv4.WithRelay(giaddr.AsSlice()))
	offer := relaySend(conn, server, disc, dhcpv4.MessageTypeOffer)
	if offer == nil {
		return "", false
	}
	req, _ := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithRelay(giaddr.AsSlice()))
	ack := relaySend(conn, server, req, dhcpv4.MessageTypeAck)
	if ack == nil {
		return "", false
	}
	return ack.YourIPAddr.String(), true
}

func relaySend(conn net.PacketConn, server netip.Addr, m *dhcpv4.DHCPv4, want dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	if _, err := conn.WriteTo(m.ToBytes(), net.UDPAddrFromAddrPort(netip.AddrPortFrom(server, 67))); err != nil {
		return nil
	}
	buf := make([]byte, 1500)
	conn.SetReadDeadline(time.Now().Add(time.Second))
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return nil
		}
		resp, err := dhcpv4.FromBytes(buf[:n])
		if err == nil && resp.TransactionID == m.TransactionID && resp.MessageType() == want {
			return resp
		}
	}
}

// TestPerfdhcp200: 200 clients (perfdhcp acting as their relay agent) get
// 200 unique addresses. perfdhcp runs for a fixed period, cycling through
// its 200 client MACs, because it stops listening the moment its last
// request is sent: an ACK that waits for its lease to be on disk would
// count as a drop at the very end of a -n run.
func TestPerfdhcp200(t *testing.T) {
	lab.Require(t, "perfdhcp")
	_, r, lan, _ := lanRouter(t, lab.ConfigOptions{})
	c := lan.AddClient()
	c.SetStatic(2)
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{Pool4: [2]int{10, 250}}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := c.NS.RunContext(ctx, "perfdhcp", "-4", "-l", "eth0", "-R", "200", "-r", "150", "-p", "3", lan.Router4().Addr().String())
	if err != nil && !strings.Contains(out, "sent packets") {
		t.Fatal(err)
	}
	unique := map[string]string{}
	for _, le := range leases(t, rd) {
		if other, dup := unique[le.Address]; dup {
			t.Errorf("%s leased to %s and %s", le.Address, other, le.MAC)
		}
		unique[le.Address] = le.MAC
	}
	if len(unique) != 200 {
		t.Errorf("%d unique leases, want 200\n%s", len(unique), out)
	}
	m := regexp.MustCompile(`(?s)REQUEST-ACK.*?sent packets: (\d+).*?received packets: (\d+)`).FindStringSubmatch(out)
	if len(m) < 3 {
		t.Fatalf("no REQUEST-ACK statistics:\n%s", out)
	}
	sent, _ := strconv.Atoi(m[1])
	rcvd, _ := strconv.Atoi(m[2])
	if sent < 200 || sent-rcvd > 1 { // at most the one in flight when perfdhcp stopped
		t.Errorf("perfdhcp: %d REQUESTs, %d ACKs\n%s", sent, rcvd, out)
	}
}

// TestDHCPv6AndRA: dhclient -6 gets an address from the range, and rdisc6
// sees the configured flags, prefix and RDNSS.
func TestDHCPv6AndRA(t *testing.T) {
	lab.Require(t, "dig", "rdisc6", "dhclient")
	l, r, lan, _ := lanRouter(t, lab.ConfigOptions{})
	c := lan.AddClient()
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{}))
	_ = rd
	var out string
	l.Eventually(20*time.Second, "rdisc6 gets an RA", func() (err error) {
		out, err = c.NS.Run("rdisc6", "-1", "-w", "1500", "eth0")
		return err
	})
	for _, want := range []string{
		"Stateful address conf.    :          Yes",
		"Stateful other conf.      :          Yes",
		"Prefix                   : fd00:11::/64",
		"Autonomous address conf.: No",
		"Recursive DNS server     : fd00:11::1",
		"DNS search list : lan",
	} {
		if !strings.Contains(squeeze(out), squeeze(want)) {
			t.Errorf("rdisc6 output lacks %q:\n%s", want, out)
		}
	}
	// Without a default path (no VPN, the WAN has no IPv6 here), the
	// router must not offer itself as the default router.
	if !strings.Contains(squeeze(out), squeeze("Router lifetime : 0 (0x00000000) seconds")) {
		t.Errorf("router lifetime should be 0 without an IPv6 default path:\n%s", out)
	}

	_, file := c.StartDhclient(true, `send fqdn.fqdn "laptop6";`)
	l6, err := c.WaitLease(file, 40*time.Second)
	if err != nil {
		t.Fatalf("dhclient -6: %v", err)
	}
	lo, hi := netip.MustParseAddr("fd00:11::100"), netip.MustParseAddr("fd00:11::1ff")
	if l6.IP.Compare(lo) < 0 || l6.IP.Compare(hi) > 0 {
		t.Errorf("DHCPv6 address %s outside %s-%s", l6.IP, lo, hi)
	}
	if !strings.Contains(l6.DNS, "fd00:11::1") || !strings.Contains(l6.Domain, "lan") {
		t.Errorf("DHCPv6 options: dns %q domain %q", l6.DNS, l6.Domain)
	}
	found := false
	for _, le := range leases(t, rd) {
		found = found || (le.Family == "v6" && le.Address == l6.IP.String() && le.DUID != "" && le.Hostname == "laptop6")
	}
	if !found {
		t.Errorf("routerctl leases lacks the DHCPv6 lease %s named laptop6: %+v", l6.IP, leases(t, rd))
	}
	// The name the client gave in its FQDN option resolves, both ways.
	gw := lan.Router6().Addr()
	if got := digShort(t, c, gw, "laptop6.lan", "AAAA"); strings.Join(got, " ") != l6.IP.String() {
		t.Errorf("laptop6.lan AAAA = %v, want %s", got, l6.IP)
	}
	if got := digShort(t, c, gw, "-x", l6.IP.String()); strings.Join(got, " ") != "laptop6.lan." {
		t.Errorf("PTR of %s = %v, want laptop6.lan.", l6.IP, got)
	}
}

var reSpace = regexp.MustCompile(`\s+`)

func squeeze(s string) string { return reSpace.ReplaceAllString(s, " ") }
