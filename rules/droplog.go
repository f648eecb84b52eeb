package rules

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Drop logging (firewall.log = "rate"): every rule that drops and counts a
// reason (a counter named drop_*) is preceded by its twin that, for at
// most dropLogRate packets a second, sends the packet to NFLOG group
// DropLogGroup with the reason as its prefix, and lets it go on to the
// drop. routerd reads the group (router's droplog) and logs what it got;
// nothing leaves the box. The twin is made here, where every rule is
// added, so that no drop reason is forgotten.

// DropLogGroup is the NFLOG group of the sampled drops, in each namespace.
const DropLogGroup = 8273

// dropLogRate is the sample: per rule, packets a second (burst twice it).
const dropLogRate = 5

var dropLog atomic.Bool

// SetDropLog turns the sampled drop log on or off for the rulesets applied
// from then on.
func SetDropLog(on bool) { dropLog.Store(on) }

// logTwin returns the sampling rule for a rule that counts a drop reason
// and drops, or nil.
func logTwin(parts []exprs) exprs {
	if !dropLog.Load() || len(parts) < 2 {
		return nil
	}
	v, ok := lastOf(parts[len(parts)-1]).(*expr.Verdict)
	if !ok || v.Kind != expr.VerdictDrop {
		return nil
	}
	ref, ok := lastOf(parts[len(parts)-2]).(*expr.Objref)
	if !ok || ref.Type != int(nftables.ObjTypeCounter) || !strings.HasPrefix(ref.Name, "drop_") {
		return nil
	}
	match := cat(parts[:len(parts)-2]...)
	return cat(match, exprs{
		&expr.Limit{Type: expr.LimitTypePkts, Rate: dropLogRate, Unit: expr.LimitTimeSecond, Burst: 2 * dropLogRate},
		&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX, Group: DropLogGroup,
			Data: []byte(strings.TrimPrefix(ref.Name, "drop_"))},
	})
}

func lastOf(e exprs) any {
	if len(e) == 0 {
		return nil
	}
	return e[len(e)-1]
}

// Dropped is what a sampled drop says of the packet: enough for a person
// reading the log to tell what it was.
type Dropped struct {
	Proto    string // "tcp", "udp", "icmp", "icmpv6" or the number
	Src, Dst netip.Addr
	SPort    uint16 // TCP and UDP
	DPort    uint16
	Flags    string // TCP flags, e.g. "SF"
}

// ParseDropped reads the IPv4 or IPv6 packet NFLOG hands over (from its
// network header). ok is false for anything too short to say.
func ParseDropped(b []byte) (d Dropped, ok bool) {
	if len(b) < 1 {
		return d, false
	}
	var proto byte
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		ihl := int(b[0]&0x0f) * 4
		if len(b) < 20 || ihl < 20 || len(b) < ihl {
			return d, false
		}
		proto = b[9]
		d.Src = netip.AddrFrom4([4]byte(b[12:16]))
		d.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		if binary.BigEndian.Uint16(b[6:8])&0x1fff == 0 { // first fragment: the ports are there
			l4 = b[ihl:]
		}
	case 6:
		if len(b) < 40 {
			return d, false
		}
		proto = b[6] // extension headers are not followed: the number says so
		d.Src = netip.AddrFrom16([16]byte(b[8:24]))
		d.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		l4 = b[40:]
	default:
		return d, false
	}
	switch proto {
	case unix.IPPROTO_TCP:
		d.Proto = "tcp"
		if len(l4) >= 14 {
			d.SPort, d.DPort = binary.BigEndian.Uint16(l4[0:]), binary.BigEndian.Uint16(l4[2:])
			for i, name := range "FSRPAU" {
				if l4[13]&(1<<i) != 0 {
					d.Flags += string(name)
				}
			}
		}
	case unix.IPPROTO_UDP:
		d.Proto = "udp"
		if len(l4) >= 4 {
			d.SPort, d.DPort = binary.BigEndian.Uint16(l4[0:]), binary.BigEndian.Uint16(l4[2:])
		}
	case unix.IPPROTO_ICMP:
		d.Proto = "icmp"
	case unix.IPPROTO_ICMPV6:
		d.Proto = "icmpv6"
	default:
		d.Proto = strconv.Itoa(int(proto))
	}
	return d, true
}
