package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// The mDNS reflector: multicast DNS (RFC 6762) is link-local, so a phone on
// one LAN never hears the Chromecast on another. The reflector relays what
// it hears on one of its LANs to the others, as avahi's reflector does:
// queries one way, announcements and answers the other. It only ever
// sends to the mDNS groups on the LANs it was given (never the WAN or the
// tunnel), relays well-formed mDNS only, and at a bounded rate per LAN.

var mdnsGroup6 = &net.UDPAddr{IP: net.ParseIP("ff02::fb"), Port: 5353}

// reflectRate is how many packets a second one LAN may have relayed (a
// busy home network sends a few dozen at most); beyond it they are
// dropped and counted, so one host cannot flood the other segments.
const reflectRate = 200

// ReflectPacket checks b is an mDNS message worth relaying and returns it
// as relayed: questions lose the unicast-response bit (RFC 6762 §5.4),
// since a unicast answer would reach the reflector, not the asker. ok is
// false for anything else (malformed, not DNS, empty).
func ReflectPacket(b []byte) (out []byte, ok bool) {
	var m dns.Msg
	if len(b) < 12 || m.Unpack(b) != nil || m.Opcode != dns.OpcodeQuery {
		return nil, false
	}
	if len(m.Question)+len(m.Answer)+len(m.Ns)+len(m.Extra) == 0 {
		return nil, false
	}
	qu := false
	for i := range m.Question {
		if m.Question[i].Qclass&(1<<15) != 0 {
			m.Question[i].Qclass &^= 1 << 15
			qu = true
		}
	}
	if !qu {
		return b, true // relayed as it came
	}
	out, err := m.Pack()
	if err != nil {
		return nil, false
	}
	return out, true
}

// Reflector relays mDNS between LAN interfaces.
type Reflector struct {
	ifaces []string
	log    *slog.Logger

	mu     sync.Mutex
	c4     *ipv4.PacketConn
	c6     *ipv6.PacketConn
	closer []net.PacketConn
	stats  map[string]int64
	window map[int]*reflectWindow // by ingress ifindex
	table  links
}

type reflectWindow struct {
	start time.Time
	n     int
}

// NewReflector returns a reflector between ifaces (at least two).
func NewReflector(ifaces []string, log *slog.Logger) *Reflector {
	return &Reflector{ifaces: ifaces, log: log, stats: map[string]int64{}, window: map[int]*reflectWindow{}}
}

// listenMDNS opens a socket on the mDNS port beside the router's own
// responder and announcer (SO_REUSEPORT: each gets every multicast).
func listenMDNS(network, addr string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.ListenPacket(context.Background(), network, addr)
}

// Open binds the sockets and joins the groups on every interface there
// is now; Join joins the others when they come.
func (r *Reflector) Open() error {
	raw4, err := listenMDNS("udp4", "0.0.0.0:5353")
	if err != nil {
		return fmt.Errorf("mDNS reflector: %w", err)
	}
	c4 := ipv4.NewPacketConn(raw4)
	raw6, err := listenMDNS("udp6", "[::]:5353")
	if err != nil {
		raw4.Close()
		return fmt.Errorf("mDNS reflector: %w", err)
	}
	c6 := ipv6.NewPacketConn(raw6)
	// What it sends must not come back to it (or to the router's own
	// responder) as if a LAN had said it.
	var errs []error
	errs = append(errs, c4.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true), c4.SetMulticastLoopback(false), c4.SetMulticastTTL(255))
	errs = append(errs, c6.SetControlMessage(ipv6.FlagInterface|ipv6.FlagDst, true), c6.SetMulticastLoopback(false), c6.SetMulticastHopLimit(255))
	for _, e := range errs {
		if e != nil {
			raw4.Close()
			raw6.Close()
			return fmt.Errorf("mDNS reflector: socket options: %w", e)
		}
	}
	r.mu.Lock()
	r.c4, r.c6, r.closer = c4, c6, []net.PacketConn{raw4, raw6}
	r.mu.Unlock()
	r.Join()
	return nil
}

// Join joins the mDNS groups on each interface (again after a NIC came
// back: its membership went with it). An interface not there yet is
// skipped.
func (r *Reflector) Join() {
	r.mu.Lock()
	c4, c6 := r.c4, r.c6
	r.table = links{} // looked up afresh
	r.mu.Unlock()
	for _, name := range r.ifaces {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			continue
		}
		// Joining twice is EADDRINUSE: already a member.
		if err := c4.JoinGroup(ifi, &net.UDPAddr{IP: mdnsGroup.IP}); err != nil && !isInUse(err) {
			r.log.Warn("mDNS reflector: join the IPv4 group", "iface", name, "err", err)
		}
		if err := c6.JoinGroup(ifi, &net.UDPAddr{IP: mdnsGroup6.IP}); err != nil && !isInUse(err) {
			r.log.Debug("mDNS reflector: join the IPv6 group", "iface", name, "err", err)
		}
	}
}

func isInUse(err error) bool { return errors.Is(err, unix.EADDRINUSE) }

// links is the reflected interfaces as the kernel has them now: looked up
// at most every linksMaxAge (or when Join is told a NIC came back), not
// once per packet.
type links struct {
	at      time.Time
	byIndex map[int]reflectLink
}

type reflectLink struct {
	ifi *net.Interface
	own []netip.Addr
}

const linksMaxAge = 5 * time.Second

func (r *Reflector) links(now time.Time) map[int]reflectLink {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.table.byIndex != nil && now.Sub(r.table.at) < linksMaxAge {
		return r.table.byIndex
	}
	m := map[int]reflectLink{}
	for _, name := range r.ifaces {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			continue
		}
		l := reflectLink{ifi: ifi}
		if addrs, err := ifi.Addrs(); err == nil {
			for _, x := range addrs {
				if ipn, ok := x.(*net.IPNet); ok {
					if a, ok := netip.AddrFromSlice(ipn.IP); ok {
						l.own = append(l.own, a.Unmap())
					}
				}
			}
		}
		m[ifi.Index] = l
	}
	r.table = links{at: now, byIndex: m}
	return m
}

// Run relays until ctx ends.
func (r *Reflector) Run(ctx context.Context) {
	r.mu.Lock()
	closers := r.closer
	r.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		for _, c := range closers {
			c.Close()
		}
	})
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.serve4() }()
	go func() { defer wg.Done(); r.serve6() }()
	wg.Wait()
}

func (r *Reflector) serve4() {
	buf := make([]byte, 9000)
	for {
		n, cm, from, err := r.c4.ReadFrom(buf)
		if err != nil {
			return
		}
		if cm == nil || !cm.Dst.Equal(mdnsGroup.IP) {
			continue // unicast to the router is its own business
		}
		out, ok := r.admit(buf[:n], cm.IfIndex, from)
		if !ok {
			continue
		}
		r.each(cm.IfIndex, func(ifi *net.Interface) {
			if _, err := r.c4.WriteTo(out, &ipv4.ControlMessage{IfIndex: ifi.Index}, mdnsGroup); err == nil {
				r.count("relayed4")
			}
		})
	}
}

func (r *Reflector) serve6() {
	buf := make([]byte, 9000)
	for {
		n, cm, from, err := r.c6.ReadFrom(buf)
		if err != nil {
			return
		}
		if cm == nil || !cm.Dst.Equal(mdnsGroup6.IP) {
			continue
		}
		out, ok := r.admit(buf[:n], cm.IfIndex, from)
		if !ok {
			continue
		}
		r.each(cm.IfIndex, func(ifi *net.Interface) {
			dst := &net.UDPAddr{IP: mdnsGroup6.IP, Port: 5353, Zone: ifi.Name}
			if _, err := r.c6.WriteTo(out, &ipv6.ControlMessage{IfIndex: ifi.Index, HopLimit: 255}, dst); err == nil {
				r.count("relayed6")
			}
		})
	}
}

// admit decides whether a packet heard on ifindex is relayed: from a
// reflected LAN, from the mDNS port (one-shot queries from other ports
// want a unicast answer the reflector cannot route back), not the
// router's own, within the LAN's rate, and well-formed.
func (r *Reflector) admit(b []byte, ifindex int, from net.Addr) ([]byte, bool) {
	ua, ok := from.(*net.UDPAddr)
	if !ok || ua.Port != 5353 {
		r.count("skipped_legacy")
		return nil, false
	}
	now := time.Now()
	in, ok := r.links(now)[ifindex]
	if !ok {
		return nil, false // not a reflected LAN
	}
	if src, ok := netip.AddrFromSlice(ua.IP); ok && slices.Contains(in.own, src.Unmap()) {
		return nil, false
	}
	if !r.withinRate(ifindex, now) {
		r.count("dropped_rate")
		return nil, false
	}
	out, ok := ReflectPacket(b)
	if !ok {
		r.count("dropped_malformed")
	}
	return out, ok
}

// each calls fn for every reflected interface that is up but the one a
// packet came in on.
func (r *Reflector) each(from int, fn func(*net.Interface)) {
	for idx, l := range r.links(time.Now()) {
		if idx != from && l.ifi.Flags&net.FlagUp != 0 {
			fn(l.ifi)
		}
	}
}

func (r *Reflector) withinRate(ifindex int, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.window[ifindex]
	if w == nil || now.Sub(w.start) >= time.Second {
		w = &reflectWindow{start: now}
		r.window[ifindex] = w
	}
	w.n++
	return w.n <= reflectRate
}

func (r *Reflector) count(k string) {
	r.mu.Lock()
	r.stats[k]++
	r.mu.Unlock()
}

// Stats returns the reflector's counters.
func (r *Reflector) Stats() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int64, len(r.stats))
	for k, v := range r.stats {
		out[k] = v
	}
	return out
}
