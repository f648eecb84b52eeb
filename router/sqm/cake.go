// Package sqm owns bufferbloat control: a CAKE shaper per direction on
// the main namespace's transit ports, which both paths cross (the WAN
// path's traffic plain, the VPN path's before it is encrypted), so that
// one budget per direction covers both and CAKE sees each LAN host's own
// address (before NAT, outside the tunnel) for per-host fairness. Upload
// leaves main by the ports, download comes in by them: each port's
// egress and ingress are redirected (tc mirred) to an IFB device per
// direction, whose root qdisc is the direction's CAKE. All of it through
// netlink; nothing here runs tc.
package sqm

import (
	"encoding/binary"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// CAKE's netlink attributes (linux/pkt_sched.h).
const (
	tcaCakeBaseRate64   = 2
	tcaCakeDiffservMode = 3
	tcaCakeATM          = 4
	tcaCakeFlowMode     = 5
	tcaCakeOverhead     = 6
	tcaCakeNAT          = 11
	tcaCakeWash         = 13
	tcaCakeMPU          = 14
	tcaCakeIngress      = 15
	tcaCakeSplitGSO     = 17
)

// Flow isolation modes (CAKE_FLOW_*).
const (
	FlowDualSrc = 5 // fair between sources (LAN hosts uploading), then their flows
	FlowDualDst = 6 // fair between destinations (LAN hosts downloading), then their flows
	FlowTriple  = 7 // CAKE's default: hosts at both ends, then flows
)

// Link-layer framing (CAKE_ATM_*).
const (
	FramingNone = 0
	FramingATM  = 1
	FramingPTM  = 2
)

const diffserv4 = 1 // CAKE_DIFFSERV_DIFFSERV4: bulk, best effort, video, voice

// Cake is one CAKE instance's settings.
type Cake struct {
	Rate     uint64 // bits/s
	Overhead int    // bytes added to each packet's length for the rate
	MPU      int    // minimum packet unit, bytes (0: none)
	Framing  int    // FramingNone, FramingATM, FramingPTM
	FlowMode int
	// Ingress: CAKE shapes what arrives (download): dropped packets
	// count against the rate too, as they crossed the line already.
	Ingress bool
}

// options encodes c as TCA_OPTIONS.
func (c Cake) options() *nl.RtAttr {
	o := nl.NewRtAttr(unix.TCA_OPTIONS, nil)
	o.AddRtAttr(tcaCakeBaseRate64, nl.Uint64Attr(c.Rate/8)) // CAKE takes bytes per second
	o.AddRtAttr(tcaCakeDiffservMode, nl.Uint32Attr(diffserv4))
	o.AddRtAttr(tcaCakeATM, nl.Uint32Attr(uint32(c.Framing)))
	o.AddRtAttr(tcaCakeFlowMode, nl.Uint32Attr(uint32(c.FlowMode)))
	var ov [4]byte
	binary.NativeEndian.PutUint32(ov[:], uint32(int32(c.Overhead)))
	o.AddRtAttr(tcaCakeOverhead, ov[:])
	o.AddRtAttr(tcaCakeMPU, nl.Uint32Attr(uint32(c.MPU)))
	// No NAT lookups: in main the addresses are the LAN hosts' own.
	o.AddRtAttr(tcaCakeNAT, nl.Uint32Attr(0))
	// DSCP marks from the internet are kept: a LAN host's call software
	// reads them no more than the ISP honours them, but washing would
	// also clear the LAN's own marks on the way out.
	o.AddRtAttr(tcaCakeWash, nl.Uint32Attr(0))
	o.AddRtAttr(tcaCakeIngress, nl.Uint32Attr(b2u(c.Ingress)))
	o.AddRtAttr(tcaCakeSplitGSO, nl.Uint32Attr(1))
	return o
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// setCake makes (or changes) CAKE the root qdisc of the link with index
// ifindex, in the calling thread's namespace.
func setCake(ifindex int, c Cake) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK)
	req.AddData(&nl.TcMsg{Family: unix.AF_UNSPEC, Ifindex: int32(ifindex), Handle: cakeHandle, Parent: netlink.HANDLE_ROOT})
	req.AddData(nl.NewRtAttr(unix.TCA_KIND, nl.ZeroTerminated("cake")))
	req.AddData(c.options())
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("cake at %d bit/s: %w", c.Rate, err)
	}
	return nil
}

// cakeHandle is the CAKE qdiscs' handle, 1:.
const cakeHandle = 1 << 16

// SetRate changes the rate of the CAKE on the IFB device ifb (in the
// calling thread's namespace), and nothing else of it: CAKE takes a
// partial change without dropping its queues.
func SetRate(ifb string, rate uint64) error {
	link, err := netlink.LinkByName(ifb)
	if err != nil {
		return fmt.Errorf("sqm: %s: %w", ifb, err)
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWQDISC, unix.NLM_F_ACK)
	req.AddData(&nl.TcMsg{Family: unix.AF_UNSPEC, Ifindex: int32(link.Attrs().Index), Handle: cakeHandle, Parent: netlink.HANDLE_ROOT})
	req.AddData(nl.NewRtAttr(unix.TCA_KIND, nl.ZeroTerminated("cake")))
	o := nl.NewRtAttr(unix.TCA_OPTIONS, nil)
	o.AddRtAttr(tcaCakeBaseRate64, nl.Uint64Attr(rate/8))
	req.AddData(o)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("sqm: set %s to %d bit/s: %w", ifb, rate, err)
	}
	return nil
}
