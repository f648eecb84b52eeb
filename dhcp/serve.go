package dhcp

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/netip"
	"sync"
	"time"
)

// readLoop reads datagrams from conn into buf and hands each to handle,
// until ctx ends or reopen fires (then it returns nil) or a read fails for
// another reason (then it returns the error, and the caller opens a new
// socket). Both DHCP servers serve this way.
func readLoop(ctx context.Context, conn net.PacketConn, reopen <-chan struct{}, buf []byte, handle func(pkt []byte, from net.Addr)) error {
	// The watcher must end with the loop: left waiting after a read error,
	// it would swallow the next reopen, meant for the socket opened next.
	stop := make(chan struct{})
	served := make(chan struct{})
	defer close(served)
	go func() {
		select {
		case <-ctx.Done():
		case <-reopen:
		case <-served:
			return
		}
		close(stop)
		conn.SetReadDeadline(time.Now())
	}()
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			select {
			case <-stop:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		handle(buf[:n], from)
	}
}

// counters are a server's messages in and out by type and drops by reason,
// for status and metrics. The zero value is ready to use.
type counters struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counters) count(what string) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[what]++
	c.mu.Unlock()
}

// Stats returns a copy of the counters.
func (c *counters) Stats() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

// socketLoop is the life of a LAN server's socket, shared by the DHCPv4 and
// DHCPv6 servers and the advertiser: open it, serve it, and open it again
// when its interface is replaced (Reopen) or reading fails; while opening
// fails, retry. Embedded; newSocketLoop makes the channels.
type socketLoop struct {
	reopen chan struct{}
	ready  chan struct{}
	once   sync.Once
}

func newSocketLoop() socketLoop {
	return socketLoop{reopen: make(chan struct{}, 1), ready: make(chan struct{})}
}

// Reopen makes the server reopen its socket: its interface was replaced
// (a USB NIC reset) and a socket bound to the old one hears nothing.
func (l *socketLoop) Reopen() {
	select {
	case l.reopen <- struct{}{}:
	default:
	}
}

// Ready is closed once the server first listens.
func (l *socketLoop) Ready() <-chan struct{} { return l.ready }

// run opens a session with open and serves it until ctx ends. open returns
// the session's serve (which returns on ctx's end, a Reopen or a read
// error) and close; when open fails, failed is told and it is retried
// after retry, or at once on a Reopen.
func (l *socketLoop) run(ctx context.Context, retry time.Duration, failed func(error),
	open func() (serve func(context.Context), close func(), err error)) {
	for ctx.Err() == nil {
		serve, closeFn, err := open()
		if err != nil {
			failed(err)
			select {
			case <-ctx.Done():
				return
			case <-l.reopen:
			case <-time.After(retry):
			}
			continue
		}
		l.once.Do(func() { close(l.ready) })
		serve(ctx)
		closeFn()
	}
}

// nextInRange is the address after a in the pool start-end, wrapping
// round at the end.
func nextInRange(a, start, end netip.Addr) netip.Addr {
	if a == end {
		return start
	}
	return a.Next()
}

// GlobalPrefix is a /64 from the WAN's delegated prefix that a LAN
// advertises and addresses from, with the lifetimes it has left: valid and
// preferred as of Now. A prefix being renumbered away has Preferred 0.
type GlobalPrefix struct {
	Prefix           netip.Prefix
	Preferred, Valid time.Duration
	Now              time.Time
}

// left returns the lifetimes remaining at now.
func (g GlobalPrefix) left(now time.Time) (preferred, valid time.Duration) {
	gone := now.Sub(g.Now)
	return max(g.Preferred-gone, 0), max(g.Valid-gone, 0)
}

// InPrefix returns the address of prefix p with a's interface identifier:
// how a DHCPv6 lease in the ULA range maps to the delegated prefix.
func InPrefix(p netip.Prefix, a netip.Addr) netip.Addr {
	n, h := p.Masked().Addr().As16(), a.As16()
	copy(n[8:], h[8:])
	return netip.AddrFrom16(n)
}
