package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/netns"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// mdnsBrowse is a multicast DNS querier on the client's eth0, as a phone's
// is: from port 5353, a multicast (QM) question for service's PTR records,
// collecting the multicast answers for a second. It returns the instances
// answered.
func mdnsBrowse(c *lab.Client, service string) ([]string, error) {
	var raw net.PacketConn
	err := netns.Do(c.NS.Name, func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
		}}
		raw, err = lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:5353")
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		pc := ipv4.NewPacketConn(raw)
		pc.SetMulticastTTL(255)
		pc.SetMulticastInterface(ifi)
		return pc.JoinGroup(ifi, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251)})
	})
	if err != nil {
		if raw != nil {
			raw.Close()
		}
		return nil, err
	}
	defer raw.Close()
	q := new(mdns.Msg)
	q.Question = []mdns.Question{{Name: service, Qtype: mdns.TypePTR, Qclass: mdns.ClassINET}}
	b, _ := q.Pack()
	if _, err := raw.WriteTo(b, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}); err != nil {
		return nil, err
	}
	raw.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 9000)
	var out []string
	for {
		n, _, err := raw.ReadFrom(buf)
		if err != nil {
			return out, nil
		}
		var m mdns.Msg
		if m.Unpack(buf[:n]) != nil || !m.Response {
			continue
		}
		for _, rr := range append(m.Answer, m.Extra...) {
			if p, ok := rr.(*mdns.PTR); ok && strings.EqualFold(p.Hdr.Name, service) {
				out = append(out, p.Ptr)
			}
		}
	}
}

// TestMDNSReflect: avahi-daemon on the IoT LAN publishes a printer; a
// phone on lan0 browsing for it by multicast DNS finds it only while the
// router reflects mDNS between the two LANs (and the IoT LAN is isolated:
// reflection is not forwarding). The router's resolver still answers
// .local names by unicast.
func TestMDNSReflect(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "dig", "avahi-daemon")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	r := l.NewRouter(isp)
	home, things := r.AddLAN(), r.AddLAN()
	things.Access = "isolated"
	phone, printer := home.AddClient(), things.AddClient()
	phoneAddr, _ := phone.SetStatic(50)
	lab.ServeEcho(l, phone.NS, 8080)
	pAddr, _ := printer.SetStatic(9)
	startAvahi(t, l, printer)
	const service = "_ipp._tcp.local."
	const instance = `Office\ Printer._ipp._tcp.local.` // as miekg/dns writes the space

	// Without the reflector the phone hears nothing from the other LAN.
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{MDNS: true}))
	for range 3 {
		got, err := mdnsBrowse(phone, service)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 {
			t.Fatalf("without mdns_reflect the phone found %v on another LAN", got)
		}
	}

	rd.Proc.Stop()
	r.WriteConfig(r.Config(lab.ConfigOptions{MDNS: true, DNSExtra: fmt.Sprintf("mdns_reflect = [%q, %q]\n", home.Name, things.Name)}))
	rd.Start()
	l.Eventually(20*time.Second, "the printer browsed from lan0", func() error {
		got, err := mdnsBrowse(phone, service)
		if err != nil {
			return err
		}
		for _, g := range got {
			if g == instance {
				return nil
			}
		}
		return fmt.Errorf("found %v", got)
	})
	// The resolver's unicast .local answers keep working.
	if got := digShort(t, phone, home.Router4().Addr(), "printer.local"); strings.Join(got, " ") != pAddr.String() {
		t.Errorf("printer.local through the resolver = %v, want %s", got, pAddr)
	}
	st, err := getStatus(rd)
	if err != nil {
		t.Fatal(err)
	}
	if st.Reflector == nil || st.Reflector.Counters["relayed4"] == 0 {
		t.Errorf("status mdns_reflector = %+v, want relayed packets counted", st.Reflector)
	}
	// Reflection is not forwarding: the isolated printer still cannot
	// open a connection to the phone.
	cannotReach(t, printer.NS, phoneAddr, 8080)
}
