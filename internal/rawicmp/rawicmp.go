// Package rawicmp owns routerd's raw ICMP sockets: opened in a network
// namespace (the wan one, where the uplinks are), optionally bound to one
// interface. The uplink probes and the shaper's autorate send through it.
package rawicmp

import (
	"errors"
	"fmt"
	"net"
	"os"

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
