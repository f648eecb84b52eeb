// Package rawicmp owns routerd's raw ICMP sockets: opened in a network
// namespace (the wan one, where the uplinks are), optionally bound to one
// interface. The uplink probes and the shaper's autorate send through it.
package rawicmp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"
	"unsafe"

	"github.com/routerd/routerd/netns"
	"golang.org/x/sys/unix"
)

// Listen opens a raw ICMPv4 socket in the namespace ns, bound to iface
// (SO_BINDTODEVICE: its packets leave by that interface's routes) or, with
// iface "", following the namespace's routes. What it reads starts at the
// ICMP header (Go strips the IPv4 header of raw IPv4 sockets).
func Listen(ns, iface string) (*net.IPConn, error) {
	var fd int
	err := netns.Do(ns, func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_ICMP)
		if err != nil {
			return err
		}
		// Kernel receive times (ReceiveTime): a busy machine schedules
		// the reader late, and the delay measured must be the network's.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			unix.Close(fd)
			return err
		}
		if iface == "" {
			return nil
		}
		if err := unix.BindToDevice(fd, iface); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("icmp socket in %s on %q: %w", ns, iface, err)
	}
	f := os.NewFile(uintptr(fd), "icmp-"+iface)
	defer f.Close() // FilePacketConn dups it
	c, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("icmp socket in %s on %q: %w", ns, iface, err)
	}
	ic, ok := c.(*net.IPConn)
	if !ok {
		c.Close()
		return nil, errors.New("icmp socket: not an IP socket")
	}
	return ic, nil
}

// ReceiveTime is the kernel's time of arrival of a packet read with
// ReadMsgIP, from its control messages (oob), or ok false.
func ReceiveTime(oob []byte) (t time.Time, ok bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix()), true
		}
	}
	return time.Time{}, false
}

// OOBSize is room for ReceiveTime's control message.
var OOBSize = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))

// Payload is the ICMP message of a packet read with ReadMsgIP, which
// (unlike ReadFrom) leaves the IPv4 header on; nil if b is not IPv4.
func Payload(b []byte) []byte {
	if len(b) < 20 || b[0]>>4 != 4 {
		return nil
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl {
		return nil
	}
	return b[ihl:]
}
