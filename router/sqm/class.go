package sqm

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The tins of CAKE's diffserv4, as a packet's skb priority names them to
// the qdisc (handle 1:, minor = the tin's place in CAKE's bulk order).
const (
	TinBulk       = 1
	TinBestEffort = 2
	TinVideo      = 3
	TinVoice      = 4
)

// Class puts the packets of some LAN hosts, or to and from some ports,
// in a tin, whatever their DSCP marks say.
type Class struct {
	Tin   int
	Hosts []netip.Prefix // LAN hosts; none: any
	Ports []PortRange    // at either end; none: any
}

// PortRange is Lo–Hi of a protocol (unix.IPPROTO_TCP, unix.IPPROTO_UDP),
// both included.
type PortRange struct {
	Proto  uint8
	Lo, Hi uint16
}

// Filter priorities on each port's hooks: the classes first, each at
// priorities of its own (IPv4, IPv6) so that the first class a packet
// matches is the one it gets (tc tries lower priorities first; within
// one the order is flower's); a class's filters redirect too. Then the
// redirect of everything else.
func prioClass(i int, proto uint16) uint16 {
	if proto == unix.ETH_P_IPV6 {
		return uint16(2*i + 2)
	}
	return uint16(2*i + 1)
}

const prioRedirect = 100 // after at most 49 classes

// filters are the tc filters on one transit port's egress (upload: to
// up) or ingress (download: to down): each class's matches, setting the
// tin and redirecting, then a redirect of all the rest. Upload packets
// come from the LAN hosts (source), download ones go to them.
func filters(classes []Class, link, to int, parent uint32) []netlink.Filter {
	upload := parent == netlink.HANDLE_MIN_EGRESS
	var out []netlink.Filter
	handles := map[uint16]uint32{}
	var class int
	add := func(f *netlink.Flower, tin int, proto uint16) {
		prio := prioClass(class, proto)
		handles[prio]++
		f.FilterAttrs = netlink.FilterAttrs{LinkIndex: link, Parent: parent, Priority: prio, Protocol: proto,
			Handle: netlink.MakeHandle(0, uint16(handles[prio]))}
		f.EthType = proto
		skb := netlink.NewSkbEditAction()
		p := uint32(cakeHandle | tin)
		skb.Priority = &p
		f.Actions = []netlink.Action{skb, netlink.NewMirredAction(to)}
		out = append(out, f)
	}
	for i, c := range classes {
		class = i
		hosts := c.Hosts
		if len(hosts) == 0 {
			hosts = []netip.Prefix{{}} // any, of both families
		}
		for _, h := range hosts {
			protos := []uint16{unix.ETH_P_IP, unix.ETH_P_IPV6}
			if h.IsValid() && h.Addr().Is4() {
				protos = protos[:1]
			} else if h.IsValid() {
				protos = protos[1:]
			}
			for _, proto := range protos {
				base := func() *netlink.Flower {
					f := &netlink.Flower{}
					if h.IsValid() {
						ip, mask := net.IP(h.Addr().AsSlice()), net.CIDRMask(h.Bits(), h.Addr().BitLen())
						if upload {
							f.SrcIP, f.SrcIPMask = ip, mask
						} else {
							f.DestIP, f.DestIPMask = ip, mask
						}
					}
					return f
				}
				if len(c.Ports) == 0 {
					add(base(), c.Tin, proto)
					continue
				}
				for _, pr := range c.Ports {
					for _, dst := range []bool{true, false} {
						f := base()
						ipProto := nl.IPProto(pr.Proto)
						f.IPProto = &ipProto
						switch {
						case pr.Lo == pr.Hi && dst:
							f.DestPort = pr.Lo
						case pr.Lo == pr.Hi:
							f.SrcPort = pr.Lo
						case dst:
							f.DstPortRangeMin, f.DstPortRangeMax = pr.Lo, pr.Hi
						default:
							f.SrcPortRangeMin, f.SrcPortRangeMax = pr.Lo, pr.Hi
						}
						add(f, c.Tin, proto)
					}
				}
			}
		}
	}
	out = append(out, &netlink.MatchAll{FilterAttrs: netlink.FilterAttrs{LinkIndex: link, Parent: parent,
		Handle: netlink.MakeHandle(0, 1), Priority: prioRedirect, Protocol: unix.ETH_P_ALL},
		Actions: []netlink.Action{netlink.NewMirredAction(to)}})
	return out
}
