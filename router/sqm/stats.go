package sqm

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Tin is one of CAKE's priority tins (diffserv4: bulk, best effort,
// video, voice), as its statistics say.
type Tin struct {
	Name      string
	Rate      uint64 // bits/s the tin may take when others want theirs
	SentBytes uint64
	Sent      uint32 // packets
	Drops     uint32
	Marks     uint32 // ECN-marked instead of dropped
	Backlog   uint32 // bytes queued now
	PeakDelay time.Duration
	AvgDelay  time.Duration
}

// Stats are one direction's shaper.
type Stats struct {
	Rate    uint64 // bits/s
	Bytes   uint64 // sent in all
	Packets uint32 // sent in all (wrapping)
	Drops   uint32
	Tins    []Tin
}

var tinNames = []string{"bulk", "best effort", "video", "voice"}

// CAKE's statistics attributes (linux/pkt_sched.h, linux/gen_stats.h).
const (
	tcaStats2           = 7 // TCA_STATS2
	tcaStatsBasic       = 1
	tcaStatsQueue       = 3
	tcaStatsApp         = 4
	cakeStatsTinStats   = 10
	tinSentPackets      = 2
	tinSentBytes64      = 3
	tinDroppedPackets   = 4
	tinECNMarkedPackets = 8
	tinBacklogBytes     = 11
	tinThresholdRate64  = 12
	tinPeakDelayUS      = 18
	tinAvgDelayUS       = 19
)

// Read returns the statistics of the CAKE on the IFB device name.
func Read(name string) (Stats, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return Stats{}, fmt.Errorf("sqm: %s: %w", name, err)
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETQDISC, unix.NLM_F_DUMP)
	req.AddData(&nl.TcMsg{Family: unix.AF_UNSPEC, Ifindex: int32(link.Attrs().Index)})
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWQDISC)
	if err != nil {
		return Stats{}, fmt.Errorf("sqm: qdiscs of %s: %w", name, err)
	}
	for _, m := range msgs {
		tc := nl.DeserializeTcMsg(m)
		if int(tc.Ifindex) != link.Attrs().Index || tc.Parent != netlink.HANDLE_ROOT {
			continue
		}
		return parseStats(m[nl.SizeofTcMsg:])
	}
	return Stats{}, fmt.Errorf("sqm: no CAKE on %s", name)
}

// parseStats reads a qdisc message's attributes (after its tcmsg). Every
// length is checked: a short attribute is ignored, never read past.
func parseStats(b []byte) (Stats, error) {
	var s Stats
	attrs, err := parseAttrs(b)
	if err != nil {
		return s, fmt.Errorf("sqm: qdisc attributes: %w", err)
	}
	for _, a := range attrs {
		switch typ(a) {
		case unix.TCA_KIND:
			if string(trimZero(a.Value)) != "cake" {
				return s, fmt.Errorf("sqm: the qdisc is %q, not cake", trimZero(a.Value))
			}
		case unix.TCA_OPTIONS:
			opts, _ := parseAttrs(a.Value)
			for _, o := range opts {
				if typ(o) == tcaCakeBaseRate64 && len(o.Value) >= 8 {
					s.Rate = binary.NativeEndian.Uint64(o.Value) * 8
				}
			}
		case tcaStats2:
			st, _ := parseAttrs(a.Value)
			for _, x := range st {
				switch typ(x) {
				case tcaStatsBasic:
					if len(x.Value) >= 8 {
						s.Bytes = binary.NativeEndian.Uint64(x.Value)
					}
					if len(x.Value) >= 12 { // gnet_stats_basic: bytes, packets
						s.Packets = binary.NativeEndian.Uint32(x.Value[8:])
					}
				case tcaStatsQueue:
					if len(x.Value) >= 12 {
						s.Drops = binary.NativeEndian.Uint32(x.Value[8:])
					}
				case tcaStatsApp:
					s.Tins = parseTins(x.Value)
				}
			}
		}
	}
	return s, nil
}

func parseTins(b []byte) []Tin {
	app, _ := parseAttrs(b)
	var tins []Tin
	for _, a := range app {
		if typ(a) != cakeStatsTinStats {
			continue
		}
		each, _ := parseAttrs(a.Value)
		for i, t := range each {
			tin := Tin{Name: fmt.Sprintf("tin %d", i)}
			if i < len(tinNames) {
				tin.Name = tinNames[i]
			}
			fields, _ := parseAttrs(t.Value)
			for _, f := range fields {
				u32 := func() uint32 {
					if len(f.Value) < 4 {
						return 0
					}
					return binary.NativeEndian.Uint32(f.Value)
				}
				u64 := func() uint64 {
					if len(f.Value) < 8 {
						return 0
					}
					return binary.NativeEndian.Uint64(f.Value)
				}
				switch typ(f) {
				case tinSentPackets:
					tin.Sent = u32()
				case tinSentBytes64:
					tin.SentBytes = u64()
				case tinDroppedPackets:
					tin.Drops = u32()
				case tinECNMarkedPackets:
					tin.Marks = u32()
				case tinBacklogBytes:
					tin.Backlog = u32()
				case tinThresholdRate64:
					tin.Rate = u64() * 8
				case tinPeakDelayUS:
					tin.PeakDelay = time.Duration(u32()) * time.Microsecond
				case tinAvgDelayUS:
					tin.AvgDelay = time.Duration(u32()) * time.Microsecond
				}
			}
			tins = append(tins, tin)
		}
	}
	return tins
}

func trimZero(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// typ is an attribute's type without the nested and byte-order flags
// (the kernel sets NLA_F_NESTED on nests).
func typ(a syscall.NetlinkRouteAttr) uint16 {
	return a.Attr.Type &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
}

// parseAttrs splits netlink attributes, checking every length (netlink's
// own parser trusts them and can panic on a short one).
func parseAttrs(b []byte) ([]syscall.NetlinkRouteAttr, error) {
	var out []syscall.NetlinkRouteAttr
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return out, fmt.Errorf("attribute of length %d in %d bytes", l, len(b))
		}
		out = append(out, syscall.NetlinkRouteAttr{
			Attr:  syscall.RtAttr{Len: uint16(l), Type: binary.NativeEndian.Uint16(b[2:])},
			Value: b[4:l],
		})
		next := (l + 3) &^ 3
		if next > len(b) {
			break
		}
		b = b[next:]
	}
	return out, nil
}
