package lab

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/routerd/routerd/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// BackupSubnet4 is the second line's subnet (ServeBackup): another
// provider's (carrier-grade NAT space, as LTE has), so that the echo's
// source tells which uplink a connection took.
var BackupSubnet4 = netip.MustParsePrefix("100.64.9.0/24")

// ServeBackup makes the ISP a second line too: the "dn2" bridge with its
// own subnet and DHCP server, reaching the same internet. It returns the
// gateway.
func (isp *ISP) ServeBackup() netip.Addr {
	l := isp.lab
	l.T.Helper()
	gw := netip.PrefixFrom(BackupSubnet4.Addr().Next(), BackupSubnet4.Bits())
	isp.NS.MustRun("ip", "link", "add", "name", "dn2", "type", "bridge")
	isp.NS.MustRun("ip", "addr", "add", gw.String(), "dev", "dn2")
	isp.NS.MustRun("ip", "link", "set", "dn2", "up")
	dir := filepath.Join(l.Dir, "isp")
	first, last := BackupSubnet4.Addr().As4(), BackupSubnet4.Addr().As4()
	first[3], last[3] = 100, 199
	isp.NS.Start("isp-dnsmasq-backup", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
		"--pid-file="+filepath.Join(dir, "dnsmasq-backup.pid"), "--dhcp-leasefile="+filepath.Join(dir, "dnsmasq-backup.leases"),
		"--bind-interfaces", "--interface=dn2", "--except-interface=lo", "--log-dhcp", "--log-facility=-", "--no-ping",
		fmt.Sprintf("--dhcp-range=%s,%s,255.255.255.0,1h", netip.AddrFrom4(first), netip.AddrFrom4(last)),
		"--dhcp-option=option:router,"+gw.Addr().String(), "--dhcp-option=option:dns-server,"+ISPDNS4.String())
	return gw.Addr()
}

// AddBackupWAN gives the router a second WAN NIC (BackupMAC) on the
// ISP's second line (ServeBackup).
func (r *Router) AddBackupWAN() {
	r.lab.T.Helper()
	r.BackupPort = r.ISP.attachTo("dn2", r.NS, r.nextNIC(), BackupMAC)
}

// UplinkDown takes the ISP's end of an uplink down: the router's NIC
// loses its carrier, as with a pulled cable.
func (r *Router) UplinkDown(port string) { r.ISP.NS.MustRun("ip", "link", "set", "dev", port, "down") }

// UplinkUp brings it back.
func (r *Router) UplinkUp(port string) { r.ISP.NS.MustRun("ip", "link", "set", "dev", port, "up") }

// UplinkSilent makes the ISP drop everything on an uplink while its link
// stays up (a line whose far end died): the port leaves the ISP's bridge,
// so what the router sends goes nowhere and nothing comes back.
// silent=false puts it back.
func (r *Router) UplinkSilent(port string, silent bool) {
	if silent {
		r.ISP.NS.MustRun("ip", "link", "set", "dev", port, "nomaster")
		return
	}
	bridge := "dn"
	if port == r.BackupPort {
		bridge = "dn2"
	}
	r.ISP.NS.MustRun("ip", "link", "set", "dev", port, "master", bridge)
}

// SlowEchoes has the ISP answer the echo requests to targets that come
// from `from` only after delay, and the others at once, as a line whose
// modem buffer a household's upload has filled delays them: the kernel
// stops answering echoes in the ISP's namespace, and a socket bound to each
// target answers instead. stop gives the answering back to the kernel.
func (isp *ISP) SlowEchoes(targets []netip.Addr, from netip.Addr, delay time.Duration) (stop func()) {
	l := isp.lab
	l.T.Helper()
	ignore := func(v string) error {
		_, err := netns.SetSysctls([]netns.Sysctl{{NS: isp.NS.Name, Key: "net/ipv4/icmp_echo_ignore_all", Value: v}})
		return err
	}
	var conns []net.PacketConn
	for _, t := range targets {
		var c net.PacketConn
		err := netns.Do(isp.NS.Name, func() (err error) {
			c, err = net.ListenPacket("ip4:icmp", t.String())
			return err
		})
		if err != nil {
			l.T.Fatalf("lab: echo answerer for %s: %v", t, err)
		}
		conns = append(conns, c)
	}
	if err := ignore("1"); err != nil {
		l.T.Fatalf("lab: %v", err)
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1500)
			for {
				n, peer, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				m, err := icmp.ParseMessage(1, buf[:n])
				if err != nil || m.Type != ipv4.ICMPTypeEcho {
					continue
				}
				reply, err := (&icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: m.Body}).Marshal(nil)
				if err != nil {
					continue
				}
				if a, _ := netip.AddrFromSlice(peer.(*net.IPAddr).IP); a.Unmap() == from {
					time.AfterFunc(delay, func() { c.WriteTo(reply, peer) })
					continue
				}
				c.WriteTo(reply, peer)
			}
		}()
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ignore("0")
			for _, c := range conns {
				c.Close()
			}
			wg.Wait()
		})
	}
	l.OnCleanup(stop)
	return stop
}
