package pppoe

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"unsafe"

	"github.com/mdlayher/packet"
	"github.com/routerd/routerd/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The kernel's side, as pppd's sys-linux.c and the rp-pppoe plugin set it
// up: a PPPoE socket bound to the session, a PPP channel on it, a PPP unit
// (the network interface) connected to the channel. The kernel then
// carries the data path; the channel's file descriptor carries LCP, the
// authentication and the NCPs, which are routerd's.

// discoverySocket opens a packet socket for discovery packets on link.
func discoverySocket(ns, link string) (*packet.Conn, net.HardwareAddr, error) {
	var conn *packet.Conn
	var mac net.HardwareAddr
	err := netns.Do(ns, func() error {
		ifi, err := net.InterfaceByName(link)
		if err != nil {
			return fmt.Errorf("look up %s: %w", link, err)
		}
		mac = ifi.HardwareAddr
		conn, err = packet.Listen(ifi, packet.Datagram, unix.ETH_P_PPP_DISC, nil)
		if err != nil {
			return fmt.Errorf("packet socket for PPPoE discovery on %s: %w", link, err)
		}
		return nil
	})
	return conn, mac, err
}

// kernelSession is an established session's kernel objects.
type kernelSession struct {
	sock    int      // the PPPoE socket
	channel *os.File // LCP, auth, NCP frames
	unit    *os.File // holds the interface
	ifindex int
}

func (k *kernelSession) Close() {
	// The unit's interface goes with its last file descriptor.
	if k.unit != nil {
		k.unit.Close()
	}
	if k.channel != nil {
		k.channel.Close()
	}
	if k.sock > 0 {
		unix.Close(k.sock)
	}
}

func ioctlPtr(fd int, req uint, v *int32) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(v)))
	if errno != 0 {
		return errno
	}
	return nil
}

// openSession binds session sid with the access concentrator ac on link
// and makes the PPP interface, named iface, with mru.
func openSession(ns, link string, sid uint16, ac net.HardwareAddr, iface string, mru int) (*kernelSession, error) {
	k := &kernelSession{}
	err := netns.Do(ns, func() error {
		var err error
		k.sock, err = unix.Socket(unix.AF_PPPOX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0 /* PX_PROTO_OE */)
		if err != nil {
			return fmt.Errorf("PPPoE socket (is the pppoe module there?): %w", err)
		}
		if err := unix.Connect(k.sock, &unix.SockaddrPPPoE{SID: sid, Remote: ac, Dev: link}); err != nil {
			return fmt.Errorf("bind PPPoE session %#04x with %s on %s: %w", sid, ac, link, err)
		}
		var ch int32
		if err := ioctlPtr(k.sock, unix.PPPIOCGCHAN, &ch); err != nil {
			return fmt.Errorf("PPPIOCGCHAN: %w", err)
		}
		// The files join Go's poller only once attached: /dev/ppp's poll
		// registers no wait queue for an unattached file, so one added
		// to epoll before would never be woken.
		chfd, err := unix.Open("/dev/ppp", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/ppp: %w", err)
		}
		if err := ioctlPtr(chfd, unix.PPPIOCATTCHAN, &ch); err != nil {
			unix.Close(chfd)
			return fmt.Errorf("PPPIOCATTCHAN %d: %w", ch, err)
		}
		k.channel = os.NewFile(uintptr(chfd), "ppp-channel")
		unitfd, err := unix.Open("/dev/ppp", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/ppp: %w", err)
		}
		unit := int32(-1)
		if err := ioctlPtr(unitfd, unix.PPPIOCNEWUNIT, &unit); err != nil {
			unix.Close(unitfd)
			return fmt.Errorf("PPPIOCNEWUNIT: %w", err)
		}
		k.unit = os.NewFile(uintptr(unitfd), "ppp-unit")
		if err := ioctlPtr(chfd, unix.PPPIOCCONNECT, &unit); err != nil {
			return fmt.Errorf("PPPIOCCONNECT ppp%d: %w", unit, err)
		}
		m := int32(mru)
		if err := ioctlPtr(unitfd, unix.PPPIOCSMRU, &m); err != nil {
			return fmt.Errorf("PPPIOCSMRU %d: %w", mru, err)
		}
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		l, err := h.LinkByName(fmt.Sprintf("ppp%d", unit))
		if err != nil {
			return fmt.Errorf("look up ppp%d: %w", unit, err)
		}
		if err := h.LinkSetName(l, iface); err != nil {
			return fmt.Errorf("rename ppp%d to %s: %w", unit, iface, err)
		}
		k.ifindex = l.Attrs().Index
		return nil
	})
	if err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// link opens a handle in ns and looks the session's interface up by
// index (its name is ours, but the index cannot be another's).
func (k *kernelSession) link(ns string) (*netlink.Handle, netlink.Link, error) {
	h, err := netns.Handle(ns)
	if err != nil {
		return nil, nil, err
	}
	l, err := h.LinkByIndex(k.ifindex)
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("look up the PPP interface: %w", err)
	}
	return h, l, nil
}

// configure4 gives the interface its IPv4 address, MTU and the default
// route, and brings it up.
func (k *kernelSession) configure4(ns string, local, peer netip.Addr, mtu int, metric int) error {
	h, l, err := k.link(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	name := l.Attrs().Name
	if err := h.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("set MTU of %s to %d: %w", name, mtu, err)
	}
	addr := &netlink.Addr{IPNet: netns.IPNet(netip.PrefixFrom(local, 32)), Peer: netns.IPNet(netip.PrefixFrom(peer, 32))}
	if err := h.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("add %s peer %s to %s: %w", local, peer, name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	r := &netlink.Route{LinkIndex: k.ifindex, Dst: netns.IPNet(netip.MustParsePrefix("0.0.0.0/0")), Scope: netlink.SCOPE_LINK,
		Priority: metric, Protocol: unix.RTPROT_STATIC, Family: netlink.FAMILY_V4}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("default route via %s: %w", name, err)
	}
	return nil
}

// configure6 gives the interface the link-local address IPv6CP agreed
// and the IPv6 default route (the link is point to point: the ISP is
// whoever is at its other end); the address and prefix come from DHCPv6
// over it.
func (k *kernelSession) configure6(ns string, local netip.Addr, metric int) error {
	h, l, err := k.link(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	addr := &netlink.Addr{IPNet: netns.IPNet(netip.PrefixFrom(local, 64)), Flags: unix.IFA_F_NODAD}
	if err := h.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("add %s to %s: %w", local, l.Attrs().Name, err)
	}
	r := &netlink.Route{LinkIndex: k.ifindex, Dst: netns.IPNet(netip.MustParsePrefix("::/0")),
		Priority: metric, Protocol: unix.RTPROT_STATIC, Family: netlink.FAMILY_V6}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("IPv6 default route via %s: %w", l.Attrs().Name, err)
	}
	return nil
}

// babyJumbo raises the MTU of links (a NIC first, then its VLAN) to at
// least size.
func babyJumbo(ns string, links []string, size int) error {
	h, err := netns.Handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	for _, name := range links {
		l, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("look up %s: %w", name, err)
		}
		if l.Attrs().MTU >= size {
			continue
		}
		if err := h.LinkSetMTU(l, size); err != nil {
			return fmt.Errorf("set MTU of %s to %d: %w", name, size, err)
		}
	}
	return nil
}
