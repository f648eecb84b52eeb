package dns

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Upstream sockets: a few per upstream and path, each re-opened on a new
// random port after rotateAfter questions, so an off-path attacker still
// has to guess the port as well as the ID to forge an answer.
const (
	socketsPerUpstream = 8
	rotateAfter        = 4096
)

// exchanger asks one upstream, by one socket mark, over long-lived UDP
// sockets, matching answers to questions by ID and question.
type exchanger struct {
	addr netip.AddrPort
	mark uint32

	mu    sync.Mutex
	socks []*upSock
	next  int
}

type upSock struct {
	conn *net.UDPConn

	mu       sync.Mutex
	pending  map[uint16]pendingQ
	uses     int
	retiring bool
}

type pendingQ struct {
	q   dns.Question
	ch  chan *dns.Msg
	err chan error
}

var errUpstreamTimeout = errors.New("no answer in time")

// exchange sends m (its ID is overwritten) and waits for the answer.
func (e *exchanger) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	s, err := e.pick()
	if err != nil {
		return nil, err
	}
	ch := make(chan *dns.Msg, 1)
	errc := make(chan error, 1)
	s.mu.Lock()
	id := register(s.pending, pendingQ{q: m.Question[0], ch: ch, err: errc})
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		idle := s.retiring && len(s.pending) == 0
		s.mu.Unlock()
		if idle {
			s.conn.Close()
		}
	}()
	m.Id = id // m is the forwarder's own copy
	wire, err := m.Pack()
	if err != nil {
		return nil, err
	}
	if _, err := s.conn.Write(wire); err != nil {
		return nil, err
	}
	return await(ctx, ch, errc)
}

// register adds a question to pending under a random free ID (the caller
// holds the lock), and returns the ID.
func register(pending map[uint16]pendingQ, p pendingQ) uint16 {
	for {
		id := uint16(rand.Uint32())
		if _, busy := pending[id]; !busy {
			pending[id] = p
			return id
		}
	}
}

// await waits for a question's answer, its transport's error, the
// upstream timeout or ctx.
func await(ctx context.Context, ch chan *dns.Msg, errc chan error) (*dns.Msg, error) {
	t := time.NewTimer(upstreamTimeout)
	defer t.Stop()
	select {
	case resp := <-ch:
		return resp, nil
	case err := <-errc:
		return nil, err
	case <-t.C:
		return nil, errUpstreamTimeout
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// deliver hands an upstream's answer to the question waiting for it, if
// the ID and the question match (otherwise it is late, or forged).
func deliver(mu *sync.Mutex, pending map[uint16]pendingQ, b []byte) {
	m := upstreamResponse(b)
	if m == nil {
		return
	}
	mu.Lock()
	p, ok := pending[m.Id]
	mu.Unlock()
	if !ok || !sameQuestion(p.q, m.Question[0]) {
		return
	}
	select {
	case p.ch <- m:
	default:
	}
}

// pick returns the next socket, opening or rotating as needed.
func (e *exchanger) pick() (*upSock, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.socks) < socketsPerUpstream {
		s, err := e.open()
		if err != nil {
			return nil, err
		}
		e.socks = append(e.socks, s)
		return s, nil
	}
	i := e.next % len(e.socks)
	e.next++
	s := e.socks[i]
	s.mu.Lock()
	s.uses++
	rotate := s.uses > rotateAfter
	if rotate {
		s.retiring = true
		if len(s.pending) == 0 {
			s.conn.Close()
		}
	}
	s.mu.Unlock()
	if rotate {
		ns, err := e.open()
		if err != nil {
			return nil, err
		}
		e.socks[i] = ns
		s = ns
	}
	return s, nil
}

func (e *exchanger) open() (*upSock, error) {
	d := net.Dialer{Control: markControl(e.mark)}
	c, err := d.Dial("udp", e.addr.String())
	if err != nil {
		return nil, fmt.Errorf("socket to %s: %w", e.addr, err)
	}
	s := &upSock{conn: c.(*net.UDPConn), pending: map[uint16]pendingQ{}}
	go s.read()
	return s, nil
}

// read delivers answers to their waiting questions until the socket closes.
func (s *upSock) read() {
	buf := make([]byte, 65535)
	for {
		n, err := s.conn.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// ICMP port unreachable: nobody serves DNS there. Everyone
			// waiting on this socket asked the same upstream.
			s.mu.Lock()
			for _, p := range s.pending {
				select {
				case p.err <- err:
				default:
				}
			}
			s.mu.Unlock()
			continue
		}
		deliver(&s.mu, s.pending, buf[:n])
	}
}

// upstreamResponse parses what an upstream sent: a response with one
// question, or nil.
func upstreamResponse(b []byte) *dns.Msg {
	var m dns.Msg
	if m.Unpack(b) != nil || !m.Response || len(m.Question) != 1 {
		return nil
	}
	return &m
}

func sameQuestion(a, b dns.Question) bool {
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}

func (e *exchanger) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.socks {
		s.conn.Close()
	}
	e.socks = nil
}
