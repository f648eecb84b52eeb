package e2e

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/netns"
	"golang.org/x/sys/unix"
)

// sendTinyMSS sends one TCP SYN with an MSS option of mss from the client
// to dst:port through a raw socket (no tool sets the MSS option): the
// kind of SYN that makes a server cut its data into tiny segments.
func sendTinyMSS(c *lab.Client, src, dst netip.Addr, port uint16, mss uint16) error {
	seg := make([]byte, 24)
	binary.BigEndian.PutUint16(seg[0:], 40000)
	binary.BigEndian.PutUint16(seg[2:], port)
	binary.BigEndian.PutUint32(seg[4:], 1)
	seg[12] = 6 << 4 // data offset: 24 bytes
	seg[13] = 0x02   // SYN
	binary.BigEndian.PutUint16(seg[14:], 64240)
	seg[20], seg[21] = 2, 4 // MSS option
	binary.BigEndian.PutUint16(seg[22:], mss)
	// The TCP checksum over the IPv4 pseudo-header.
	sum := uint32(0)
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	s4, d4 := src.As4(), dst.As4()
	add(s4[:])
	add(d4[:])
	sum += unix.IPPROTO_TCP + uint32(len(seg))
	add(seg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(seg[16:], ^uint16(sum))
	return netns.Do(c.NS.Name, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, seg, 0, &unix.SockaddrInet4{Addr: d4})
	})
}

// TestLANIngressChecks (harden_lan, log = "rate"): a LAN host's SYN+FIN
// scan and a SYN with a tiny MSS are dropped at the LAN interface's
// ingress and counted there, the drop log says what they were, and the
// host's ordinary connections go on.
func TestLANIngressChecks(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "curl", "hping3")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	c := lan.AddClient()
	src, _ := c.SetStatic(50)
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{NoDHCP: true, Extra: "[firewall]\nlog = \"rate\"\n"}))
	waitWANLease(t, l, rd, nil)

	c.NS.Run("hping3", "-q", "-S", "-F", "-p", "80", "-c", "5", "-i", "u10000", lab.Echo4.String()) // exits 1 without answers
	if err := sendTinyMSS(c, src, lab.Echo4, 80, 88); err != nil {
		t.Fatal(err)
	}
	l.Eventually(10*time.Second, "the drops counted at lan0's ingress", func() error {
		st, err := getStatus(rd)
		if err != nil {
			return err
		}
		got := counters(st, "lan-ingress")
		if got["drop_syn_fin_lan0"] < 5 || got["drop_small_mss_lan0"] < 1 {
			return fmt.Errorf("lan-ingress counters %v", got)
		}
		return nil
	})
	l.Eventually(10*time.Second, "the drop log's sample", func() error {
		out, err := rd.Ctl("logs", "--component", "firewall", "--since", "1h")
		if err != nil {
			return err
		}
		for _, want := range []string{"reason=syn_fin_lan0 in=lan0 proto=tcp src=" + src.String(), "dst=" + lab.Echo4.String() + ":80 flags=FS",
			"reason=small_mss_lan0"} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("no %q in:\n%s", want, out)
			}
		}
		return nil
	})
	if out, err := c.Echo(lab.Echo4, 80); err != nil {
		t.Errorf("an ordinary connection from the LAN: %v %s", err, out)
	}
}
