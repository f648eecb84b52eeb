package lab

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/routerd/routerd/netns"
)

// Stream is a long-lived UDP flow from a namespace to a UDP echo (the
// ISP's on EchoUDP): a datagram every interval from one source port, each
// answered with the source address the echo saw. To every router on its
// way it is one connection, the kind flow offload takes past the forward
// chain; its replies tell which path it takes, moment by moment.
type Stream struct {
	conn *net.UDPConn
	stop chan struct{}
	done sync.WaitGroup

	mu      sync.Mutex
	sent    int
	replies []Reply
}

// Reply is one answer of the echo.
type Reply struct {
	At     time.Time
	Source string // as the echo saw it
}

// StartStream starts a stream from namespace ns to dst, stopped at cleanup.
func (l *Lab) StartStream(ns *NS, dst netip.AddrPort, every time.Duration) *Stream {
	l.T.Helper()
	var conn *net.UDPConn
	err := netns.Do(ns.Name, func() (err error) {
		conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		l.T.Fatalf("lab: stream from %s to %s: %v", ns.Name, dst, err)
	}
	s := &Stream{conn: conn, stop: make(chan struct{})}
	s.done.Add(2)
	go func() {
		defer s.done.Done()
		buf := make([]byte, 256)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				select {
				case <-s.stop:
					return
				default:
					continue // ECONNREFUSED while a path is down
				}
			}
			s.mu.Lock()
			s.replies = append(s.replies, Reply{At: time.Now(), Source: strings.TrimSpace(string(buf[:n]))})
			s.mu.Unlock()
		}
	}()
	go func() {
		defer s.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for i := 0; ; i++ {
			conn.Write([]byte(fmt.Sprint(i)))
			s.mu.Lock()
			s.sent++
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	l.OnCleanup(s.Stop)
	return s
}

// LocalPort is the stream's source port.
func (s *Stream) LocalPort() uint16 { return uint16(s.conn.LocalAddr().(*net.UDPAddr).Port) }

// Since returns the replies that came after t.
func (s *Stream) Since(t time.Time) []Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Reply
	for _, r := range s.replies {
		if r.At.After(t) {
			out = append(out, r)
		}
	}
	return out
}

// Stop ends the stream; it may be called more than once.
func (s *Stream) Stop() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	s.conn.Close()
	s.done.Wait()
}

// Sent is how many datagrams the stream has sent.
func (s *Stream) Sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}
