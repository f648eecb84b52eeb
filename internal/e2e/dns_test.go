package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/netns"
)

const dnsExtra = `
[[dns.record]]
name = "printer.lan"
addresses = ["192.168.11.9", "fd00:11::9"]

[[lan.dhcp4.reservation]]
mac = "02:42:ac:01:01:03"
ip = "192.168.11.10"
hostname = "nas"
`

// digShort returns dig +short's answer lines.
func digShort(t *testing.T, c *lab.Client, server netip.Addr, args ...string) []string {
	t.Helper()
	out, err := c.Dig(server, append([]string{"+short"}, args...)...)
	if err != nil {
		t.Fatalf("dig %v: %v", args, err)
	}
	return strings.Fields(out)
}

// digStatus returns the rcode dig reports.
func digStatus(t *testing.T, c *lab.Client, server netip.Addr, args ...string) string {
	t.Helper()
	out, err := c.Dig(server, args...)
	if err != nil {
		t.Fatalf("dig %v: %v", args, err)
	}
	i := strings.Index(out, "status: ")
	if i < 0 {
		t.Fatalf("dig %v: no status in\n%s", args, out)
	}
	return strings.TrimSuffix(strings.Fields(out[i+len("status: "):])[0], ",")
}

func TestDNSResolver(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "dig", "udhcpc")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	c1, c2 := lan.AddClient(), lan.AddClient()
	c1.SetStatic(50)
	// The first upstream is dead: failover to the ISP's.
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{Extra: dnsExtra, Upstreams: []string{"192.0.2.99:53", lab.ISPDNS4.String() + ":53"}}))
	waitWANLease(t, l, rd, nil)
	gw := lan.Router4().Addr()

	check := func(what string, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("printer.lan A", digShort(t, c1, gw, "printer.lan", "A"), "192.168.11.9")
	check("printer.lan AAAA", digShort(t, c1, gw, "printer.lan", "AAAA"), "fd00:11::9")
	check("PTR of printer", digShort(t, c1, gw, "-x", "192.168.11.9"), "printer.lan.")
	check("reservation", digShort(t, c1, gw, "nas.lan"), "192.168.11.10")
	check("router's own name", digShort(t, c1, gw, "gw.lan"), gw.String())
	check("upstream name (first upstream dead)", digShort(t, c1, gw, "echo.example"), lab.Echo4.String())
	check("upstream name over TCP", digShort(t, c1, gw, "+tcp", "alt1.example"), lab.EchoAlt4[0].String())
	check("upstream AAAA", digShort(t, c1, gw, "echo.example", "AAAA"), lab.Echo6.String())
	if got := digStatus(t, c1, gw, "nosuch.lan"); got != "NXDOMAIN" {
		t.Errorf("nosuch.lan: %s, want NXDOMAIN", got)
	}
	// Large answers: truncated over UDP, then dig retries over TCP.
	if got := digShort(t, c1, gw, "big.example", "TXT"); len(got) == 0 {
		t.Errorf("big TXT answer lost")
	}

	// NXDOMAIN from upstream is cached: the ISP is asked once.
	for range 3 {
		if got := digStatus(t, c1, gw, "nx.example"); got != "NXDOMAIN" {
			t.Errorf("nx.example: %s", got)
		}
	}
	if n := strings.Count(isp.DNSLog(), "query[a] nx.example"); n != 1 {
		t.Errorf("the ISP was asked nx.example %d times, want 1 (negative caching)", n)
	}
	// The clients' questions to the router are not tracked (notrack); the
	// resolver's own questions upstream are (their answers come back as
	// established).
	ct := r.NS.MustRun("cat", "/proc/net/nf_conntrack")
	var toRouter, upstream int
	for _, line := range strings.Split(ct, "\n") {
		if !strings.Contains(line, " udp ") || !strings.Contains(line, "dport=53 ") {
			continue
		}
		if strings.Contains(line, "dst="+gw.String()+" ") {
			toRouter++
		}
		if strings.Contains(line, "dst="+lab.ISPDNS4.String()+" ") {
			upstream++
		}
	}
	if toRouter != 0 || upstream == 0 {
		t.Errorf("conntrack: %d entries for questions to the router (want 0), %d for questions upstream (want some):\n%s", toRouter, upstream, ct)
	}

	// A lease's name resolves the moment the lease is granted, and is gone
	// after release.
	p, file := c2.StartUDHCPC("laptop")
	lease, err := c2.WaitLease(file, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	check("lease name", digShort(t, c1, gw, "laptop.lan"), lease.IP.String())
	check("lease PTR", digShort(t, c1, gw, "-x", lease.IP.String()), "laptop.lan.")
	p.Signal(syscall.SIGUSR2) // release
	l.Eventually(10*time.Second, "lease name gone after release", func() error {
		out, err := c1.Dig(gw, "laptop.lan")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "NXDOMAIN") {
			return fmt.Errorf("still answered:\n%s", out)
		}
		return nil
	})

	// A client cannot claim the router's name, nor one browsers look up
	// to find a proxy: neither resolves to it, nor does its address
	// resolve back to them.
	for _, host := range []string{"gw", "wpad"} {
		lease, err := c2.UDHCPC(host)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		if host == "gw" {
			want = []string{gw.String()}
		}
		check(host+".lan after a client asked for it", digShort(t, c1, gw, host+".lan"), want...)
		check("PTR of the client that asked for "+host, digShort(t, c1, gw, "-x", lease.IP.String()))
	}

	// Never an open resolver: from the ISP's side nothing answers.
	st, _ := getStatus(rd)
	wanIP := netip.MustParsePrefix(st.WAN.DHCP.Address).Addr()
	if out, err := isp.NS.Run("dig", "+time=1", "+tries=1", "@"+wanIP.String(), "echo.example"); err == nil && strings.Contains(out, "ANSWER: 1") {
		t.Errorf("the resolver answered the ISP side:\n%s", out)
	}

	st, _ = getStatus(rd)
	if st.DNS == nil || st.DNS.CacheHits == 0 || st.DNS.Local == 0 || len(st.DNS.Upstreams) < 2 || st.DNS.Upstreams[0].Healthy {
		t.Errorf("DNS status = %+v", st.DNS)
	}
	text, _ := rd.Ctl("status")
	for _, want := range []string{"DNS (", "cache", "192.0.2.99:53", "UPSTREAM"} {
		if !strings.Contains(text, want) {
			t.Errorf("routerctl status lacks %q", want)
		}
	}
}

// TestDNSLossyUpstream: the path to the ISP's DNS loses every other
// question. A client still gets every answer within dig's one try of one
// second, because the resolver sends a lost question again long before
// it gives up on the upstream (1.5 s); status counts what it resent.
func TestDNSLossyUpstream(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "dig", "nft")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	c := lan.AddClient()
	c.SetStatic(50)
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{Upstreams: []string{lab.ISPDNS4.String() + ":53"}}))
	waitWANLease(t, l, rd, nil)
	gw := lan.Router4().Addr()
	// A first answer over the sound path: the resolver knows the
	// upstream's round trip, so it does not wait the 376 ms it gives an
	// upstream it has not measured before sending again.
	digShort(t, c, gw, "echo.example")

	isp.NS.MustRun("nft", "add table inet loss")
	isp.NS.MustRun("nft", "add chain inet loss pre { type filter hook prerouting priority -300 ; }")
	isp.NS.MustRun("nft", "add rule inet loss pre ip daddr "+lab.ISPDNS4.String()+" udp dport 53 numgen inc mod 2 == 0 counter drop")
	for i := range 10 {
		name := fmt.Sprintf("lossy%d.example", i)
		out, err := c.Dig(gw, "+time=1", "+tries=1", name)
		if err != nil || !strings.Contains(out, "status: NXDOMAIN") {
			t.Errorf("%s: no answer within a second (%v):\n%s", name, err, out)
		}
	}
	dropped := regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(isp.NS.MustRun("nft", "list chain inet loss pre"))
	if dropped == nil || dropped[1] == "0" {
		t.Fatalf("the lossy path dropped nothing: %v", dropped)
	}
	st, err := getStatus(rd)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.DNS.Upstreams) == 0 || st.DNS.Upstreams[0].Resent == 0 || !st.DNS.Upstreams[0].Healthy {
		t.Errorf("upstreams = %+v, want the ISP's healthy, with questions resent (%s dropped)", st.DNS.Upstreams, dropped[1])
	}
	if text, _ := rd.Ctl("status"); !strings.Contains(text, "RESENT") {
		t.Errorf("routerctl status lacks the RESENT column:\n%s", text)
	}
}

// TestDNSPerPath: a VPN client's lookups reach the ISP's DNS through the
// tunnel (from the VPN provider's address), never from the router's WAN
// address; a WAN client's come from the WAN address.
func TestDNSPerPath(t *testing.T) {
	var c1, c2 *lab.Client
	a := newAppliance(t, lab.ConfigOptions{NoDHCP: true}, policyExtra, func(a *appliance) {
		c1, c2 = a.lan.AddClient(), a.lan.AddClient()
		c1.SetStatic(50) // wan by policy
		c2.SetStatic(60) // the default: vpn
	})
	gw := a.lan.Router4().Addr()
	digShort(t, c2, gw, "alt1.example")
	digShort(t, c1, gw, "alt2.example")
	log := a.isp.DNSLog()
	if want := "query[a] alt1.example from " + lab.VPNPublic4.Addr().String(); !strings.Contains(log, want) {
		t.Errorf("VPN client's lookup did not come through the tunnel; ISP log lacks %q:\n%s", want, grepLines(log, "alt1"))
	}
	if strings.Contains(log, "query[a] alt1.example from "+a.wan.String()) {
		t.Errorf("VPN client's lookup leaked onto the WAN")
	}
	if want := "query[a] alt2.example from " + a.wan.String(); !strings.Contains(log, want) {
		t.Errorf("WAN client's lookup: ISP log lacks %q:\n%s", want, grepLines(log, "alt2"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestMDNS: avahi-daemon on one client publishes printer.local and an IPP
// service; another client resolves both through the router. The router
// answers to its own <hostname>.local.
func TestMDNS(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "dig", "avahi-daemon")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	printer, laptop := lan.AddClient(), lan.AddClient()
	pAddr, _ := printer.SetStatic(9)
	laptop.SetStatic(50)
	startAvahi(t, l, printer)
	r.StartRouterd(r.Config(lab.ConfigOptions{MDNS: true}))
	gw := lan.Router4().Addr()

	var got []string
	l.Eventually(20*time.Second, "printer.local through the router", func() error {
		out, err := laptop.Dig(gw, "+short", "printer.local")
		if err != nil {
			return err
		}
		got = strings.Fields(out)
		if len(got) == 0 || got[0] != pAddr.String() {
			return fmt.Errorf("got %q", out)
		}
		return nil
	})
	l.Eventually(20*time.Second, "_ipp._tcp.local browse through the router", func() error {
		out, err := laptop.Dig(gw, "PTR", "_ipp._tcp.local")
		if err != nil {
			return err
		}
		if !strings.Contains(out, `Office\032Printer._ipp._tcp.local.`) { // dig escapes the space
			return fmt.Errorf("no printer in:\n%s", out)
		}
		if !strings.Contains(out, "SRV") || !strings.Contains(out, "631") {
			return fmt.Errorf("no SRV with port 631 in:\n%s", out)
		}
		return nil
	})
	if out, err := laptop.Dig(gw, "+short", "gw.local"); err != nil || !strings.Contains(out, gw.String()) {
		t.Errorf("the router's own gw.local through the resolver = %q, %v", out, err)
	}
	// The router announces itself over mDNS: the laptop asks the LAN
	// directly, without the router's resolver.
	l.Eventually(10*time.Second, "gw.local over mDNS on the LAN", func() error {
		addrs, err := mdnsAsk(laptop, "gw.local.")
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if a == gw {
				return nil
			}
		}
		return fmt.Errorf("answers %v lack %s", addrs, gw)
	})
}

// mdnsAsk sends a one-shot mDNS query (QU) for name's A record from the
// client and returns the addresses answered.
func mdnsAsk(c *lab.Client, name string) ([]netip.Addr, error) {
	var pc net.PacketConn
	err := netns.Do(c.NS.Name, func() (err error) {
		pc, err = net.ListenPacket("udp4", "0.0.0.0:0")
		return err
	})
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	q := new(mdns.Msg)
	q.Question = []mdns.Question{{Name: name, Qtype: mdns.TypeA, Qclass: mdns.ClassINET | 1<<15}}
	b, _ := q.Pack()
	if _, err := pc.WriteTo(b, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}); err != nil {
		return nil, err
	}
	pc.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 9000)
	var out []netip.Addr
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return out, nil
		}
		var m mdns.Msg
		if m.Unpack(buf[:n]) != nil {
			continue
		}
		for _, rr := range append(m.Answer, m.Extra...) {
			if a, ok := rr.(*mdns.A); ok && strings.EqualFold(a.Hdr.Name, name) {
				ip, _ := netip.AddrFromSlice(a.A.To4())
				out = append(out, ip)
			}
		}
	}
}

// startAvahi runs avahi-daemon without D-Bus in the client's namespace,
// publishing the host as "printer" and an IPP service. Its pid file path
// is fixed, so only one runs at a time (tests run one package at a time).
func startAvahi(t *testing.T, l *lab.Lab, c *lab.Client) {
	t.Helper()
	dir := filepath.Join(l.Dir, "avahi")
	os.MkdirAll(dir, 0o755)
	conf := filepath.Join(dir, "avahi-daemon.conf")
	os.WriteFile(conf, []byte(`[server]
host-name=printer
domain-name=local
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0
enable-dbus=no
ratelimit-interval-usec=0
[wide-area]
enable-wide-area=no
[publish]
publish-addresses=yes
publish-workstation=no
[reflector]
[rlimits]
`), 0o644)
	svc := "/etc/avahi/services/" + l.Prefix + "-ipp.service"
	os.MkdirAll(filepath.Dir(svc), 0o755)
	os.WriteFile(svc, []byte(`<?xml version="1.0" standalone='no'?>
<!DOCTYPE service-group SYSTEM "avahi-service.dtd">
<service-group>
  <name>Office Printer</name>
  <service><type>_ipp._tcp</type><port>631</port><txt-record>rp=printers/office</txt-record></service>
</service-group>
`), 0o644)
	l.OnCleanup(func() { os.Remove(svc) })
	os.Remove("/run/avahi-daemon/pid")
	p := c.NS.Start("avahi", "avahi-daemon", "--no-chroot", "--no-drop-root", "--no-rlimits", "-f", conf)
	l.OnCleanup(func() { p.Stop(); os.Remove("/run/avahi-daemon/pid") })
	l.Eventually(15*time.Second, "avahi running", func() error {
		if !strings.Contains(p.Log.String(), "Server startup complete") {
			return fmt.Errorf("not yet:\n%s", p.Log.String())
		}
		return nil
	})
}

// TestDNSListenIsAnAccessList: a LAN left out of dns.listen is refused,
// even when it reaches a listed LAN's address through the router.
func TestDNSListenIsAnAccessList(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "dig")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	r := l.NewRouter(isp)
	lan1, lan2 := r.AddLAN(), r.AddLAN()
	c1, c2 := lan1.AddClient(), lan2.AddClient()
	c1.SetStatic(50)
	c2.SetStatic(50)
	cfg := r.Config(lab.ConfigOptions{NoDHCP: true})
	cfg = strings.Replace(cfg, "[dns]\n", fmt.Sprintf("[dns]\nlisten = [%q]\n", lan1.Name), 1)
	rd := r.StartRouterd(cfg)
	waitWANLease(t, l, rd, nil)
	gw := lan1.Router4().Addr()
	if got := digShort(t, c1, gw, "echo.example"); strings.Join(got, " ") != lab.Echo4.String() {
		t.Errorf("listed LAN: echo.example = %v, want %s", got, lab.Echo4)
	}
	if got := digStatus(t, c2, gw, "echo.example"); got != "REFUSED" {
		t.Errorf("unlisted LAN asking the listed LAN's address: %s, want REFUSED", got)
	}
	st := mustStatus(t, rd)
	if st.DNS == nil || st.DNS.Refused == 0 {
		t.Errorf("refusals not counted: %+v", st.DNS)
	}
}
