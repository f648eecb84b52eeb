package dhcp

import (
	"context"
	"errors"
	"maps"
	"net"
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
