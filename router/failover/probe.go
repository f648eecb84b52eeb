package failover

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/routerd/routerd/internal/rawicmp"
	"github.com/routerd/routerd/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Prober sends a round of ICMP echoes through each uplink: a raw socket
// bound to the uplink's interface (SO_BINDTODEVICE), so that the echo
// leaves by that uplink's own default route whichever one the traffic
// takes, from that uplink's address.
type Prober struct {
	NS      string // the wan namespace
	Targets []netip.Addr
	Timeout time.Duration // how long a round waits for answers (the next may start meanwhile)
}

// Round probes every interface at once and returns a result for each, in
// order.
func (p *Prober) Round(ctx context.Context, ifaces []string) []Result {
	out := make([]Result, len(ifaces))
	var wg sync.WaitGroup
	for i, iface := range ifaces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = p.probe(ctx, iface)
		}()
	}
	wg.Wait()
	return out
}

func (p *Prober) probe(ctx context.Context, iface string) Result {
	if !p.linkUp(iface) {
		return Result{LinkDown: true}
	}
	r := Result{Sent: len(p.Targets)}
	c, err := rawicmp.Listen(p.NS, iface)
	if err != nil {
		return r // counted as unanswered: an uplink that cannot send is down
	}
	defer c.Close()
	id := uint16(rand.Uint32())
	sent := make(map[netip.Addr]time.Time, len(p.Targets))
	for seq, t := range p.Targets {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: int(id), Seq: seq, Data: []byte("routerd uplink probe")}}
		b, _ := msg.Marshal(nil)
		if _, err := c.WriteTo(b, &net.IPAddr{IP: t.AsSlice()}); err == nil {
			sent[t] = time.Now()
		}
	}
	deadline := time.Now().Add(p.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetReadDeadline(deadline)
	// Stopping does not wait for the answers.
	defer context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })()
	var total time.Duration
	buf := make([]byte, 1500)
	for r.Answered < len(sent) {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			break
		}
		a, ok := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		msg, perr := icmp.ParseMessage(1, buf[:n])
		if !ok || perr != nil || msg.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		e, isEcho := msg.Body.(*icmp.Echo)
		at, asked := sent[a.Unmap()]
		if !isEcho || !asked || e.ID != int(id) {
			continue
		}
		delete(sent, a.Unmap())
		r.Answered++
		total += time.Since(at)
	}
	if r.Answered > 0 {
		r.RTT = total / time.Duration(r.Answered)
	}
	return r
}

// linkUp: the interface is there with a carrier.
func (p *Prober) linkUp(iface string) bool {
	h, err := netns.Handle(p.NS)
	if err != nil {
		return false
	}
	defer h.Close()
	l, err := h.LinkByName(iface)
	if err != nil {
		return false
	}
	return l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
}
