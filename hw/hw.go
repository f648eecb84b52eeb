// Package hw owns the physical NICs: it finds each configured NIC by its
// permanent MAC (udev-style, without udev), renames it, sets the MAC the ISP
// expects and the MTU, moves it into the namespace it belongs in, gives it
// its static addresses, and keeps watching so that a USB NIC that resets or
// is replugged (an RTL8153 does) is re-adopted within moments.
//
// It touches only the links it matched, and remembers what each looked like
// before (name, MAC, MTU) so that teardown can put it back.
package hw

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"

	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/status"
)

// Spec says what one NIC must look like.
type Spec struct {
	Role     string           // "wan" or "lan", for status and logs
	Name     string           // the name it gets
	MatchMAC net.HardwareAddr // its permanent MAC
	SetMAC   net.HardwareAddr // nil: keep its own
	MTU      int              // 0: leave alone
	NS       string           // namespace it must live in; "" is main
	Addrs    []netip.Prefix   // static addresses; nil leaves addresses to others (the WAN's DHCP client)
	Sysctls  []netns.Sysctl   // per-interface settings, applied in NS once the NIC has its name
	// Master is the bridge the NIC is a port of ("": none); the bridge is
	// the namespace plan's and must exist in NS.
	Master string
}

// Event tells subscribers a NIC appeared (or came back) or went away.
type Event struct {
	Name    string // the configured name
	Role    string
	Kind    EventKind
	Index   int // ifindex in its namespace, when adopted
	NS      string
	Adopted int // times adopted since start
}

// EventKind is what happened to a NIC.
type EventKind int

const (
	Adopted EventKind = iota + 1
	Lost
)

func (k EventKind) String() string {
	switch k {
	case Adopted:
		return "adopted"
	case Lost:
		return "lost"
	}
	return "unknown"
}

// NICStatus is one row of routerctl status.
type NICStatus = status.NIC

// matches reports whether a link with permanent address perm and current
// address cur is the NIC the spec means. A driver that reports no permanent
// address (veth, some USB NICs) is matched by its current address; once
// routerd has changed that, the record of the adoption identifies it.
func (s *Spec) matches(perm, cur net.HardwareAddr) bool {
	if len(perm) > 0 && !isZero(perm) {
		return bytes.Equal(perm, s.MatchMAC)
	}
	return bytes.Equal(cur, s.MatchMAC)
}

func isZero(m net.HardwareAddr) bool {
	for _, b := range m {
		if b != 0 {
			return false
		}
	}
	return true
}

func (s *Spec) String() string {
	return fmt.Sprintf("%s (%s, MAC %s)", s.Name, s.Role, s.MatchMAC)
}
