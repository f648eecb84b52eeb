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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/routerd/routerd/internal/lifecycle"
)

// Upstream sockets: a few per upstream and path, each re-opened on a new
// random port after rotateAfter questions or maxSockAge, whichever comes
// first, so an off-path attacker has to guess the port as well as the ID
// (and the question's case, 0x20.go) to forge an answer, and a port once
// learnt is soon worthless. Opening a socket costs microseconds; the
// answers a retiring socket still waits for are read until they are in.
const (
	socketsPerUpstream = 8
	rotateAfter        = 100
	maxSockAge         = 30 * time.Second
)

// exchanger asks one upstream, by one socket mark, over long-lived UDP
// sockets, matching answers to questions by ID and question.
type exchanger struct {
	addr   netip.AddrPort
	mark   uint32
	run    *lifecycle.Group // the resolver's, for the sockets' readers
	rtt    rttEstimator
	resent atomic.Uint64

	mu    sync.Mutex
	socks []*upSock
	next  int

	cases caseState // whether the upstream keeps the question's case
}

type upSock struct {
	conn *net.UDPConn
	e    *exchanger // its round trip times and count of questions sent again

	opened   time.Time
	mu       sync.Mutex
	pending  map[uint16]*udpPending
	uses     int
	retiring bool
}

// udpPending is a question in flight. Whoever takes it out of pending (its
// answer, its timeout, a transport error, its asker giving up) calls done,
// so done is called once.
type udpPending struct {
	id    uint16
	q     dns.Question // as sent: its name in mixed case (0x20)
	name  string       // the name as asked, given back in the answer
	done  func(*dns.Msg, error)
	timer *time.Timer

	// Under the socket's mu: the question as sent, for sending again.
	wire  []byte
	sent  time.Time     // first sent
	rto   time.Duration // the wait before the next send
	sends int
}

// pendingQ is a question in flight on a DNS-over-TLS connection.
type pendingQ struct {
	q   dns.Question
	ch  chan *dns.Msg
	err chan error
}

var errUpstreamTimeout = errors.New("no answer in time")

// exchange sends m (its ID is overwritten) and waits for the answer.
func (e *exchanger) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	type result struct {
		m   *dns.Msg
		err error
	}
	ch := make(chan result, 1)
	s, p, err := e.start(m, func(m *dns.Msg, err error) { ch <- result{m, err} })
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r.m, r.err
	case <-ctx.Done():
		if s.takeIf(p) {
			p.timer.Stop()
		}
		return nil, ctx.Err()
	}
}

// start sends m (its ID is overwritten) and returns at once; done is
// called, on another goroutine, with the answer or why there is none
// (the upstream timeout, an ICMP error). When start fails, done is not
// called.
func (e *exchanger) start(m *dns.Msg, done func(*dns.Msg, error)) (*upSock, *udpPending, error) {
	s, err := e.pick()
	if err != nil {
		return nil, nil, err
	}
	p := &udpPending{name: m.Question[0].Name, done: done}
	if e.cases.use() {
		m.Question[0].Name = mixCase(m.Question[0].Name) // m is the forwarder's own copy
	}
	p.q = m.Question[0]
	s.mu.Lock()
	p.id = register(s.pending, p)
	m.Id = p.id // m is the forwarder's own copy
	wire, err := m.Pack()
	p.wire, p.sent, p.rto, p.sends = wire, time.Now(), e.rtt.rto(), 1
	p.timer = time.AfterFunc(p.rto, func() { s.resend(p) })
	s.mu.Unlock()
	if err == nil {
		_, err = s.conn.Write(wire)
	}
	if err != nil {
		if s.takeIf(p) {
			p.timer.Stop()
		}
		return nil, nil, err
	}
	return s, p, nil
}

// maxSends bounds how often one question is sent to one upstream.
const maxSends = 4

// resend runs when p's wait is over: it sends the question again, waiting
// twice as long for the answer each time (a lost datagram, most likely:
// an upstream, or the path to it, dropping under load), or gives up once
// the upstream's time is up, for the next upstream to be asked.
func (s *upSock) resend(p *udpPending) {
	s.mu.Lock()
	if s.pending[p.id] != p {
		s.mu.Unlock()
		return
	}
	left := upstreamTimeout - time.Since(p.sent)
	if left <= 0 {
		s.mu.Unlock()
		if s.takeIf(p) {
			p.done(nil, errUpstreamTimeout)
		}
		return
	}
	if p.sends >= maxSends {
		p.timer.Reset(left)
		s.mu.Unlock()
		return
	}
	p.sends++
	p.rto = min(2*p.rto, left)
	p.timer.Reset(p.rto)
	wire := p.wire
	s.mu.Unlock()
	s.e.resent.Add(1)
	_, _ = s.conn.Write(wire) // a resend that fails is one more lost datagram: the timer tries again or gives up
}

// takeIf removes p from the questions in flight and reports whether it
// was still there (then the caller calls, or drops, its done).
func (s *upSock) takeIf(p *udpPending) bool {
	s.mu.Lock()
	if s.pending[p.id] != p {
		s.mu.Unlock()
		return false
	}
	delete(s.pending, p.id)
	idle := s.retiring && len(s.pending) == 0
	s.mu.Unlock()
	if idle {
		s.conn.Close()
	}
	return true
}

// register adds a question to pending under a random free ID (the caller
// holds the lock), and returns the ID.
func register[P any](pending map[uint16]P, p P) uint16 {
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

// deliver hands an upstream's answer to the question in flight it
// answers, if the ID and the question match (otherwise it is late, or
// forged, and the question still waits).
func (s *upSock) deliver(b []byte) {
	m := upstreamResponse(b)
	if m == nil {
		return
	}
	s.mu.Lock()
	p := s.pending[m.Id]
	if p == nil || !sameQuestion(p.q, m.Question[0]) {
		s.mu.Unlock()
		return
	}
	once, rtt := p.sends == 1, time.Since(p.sent)
	s.mu.Unlock()
	if !s.e.cases.check(p.q.Name, m.Question[0].Name) {
		return // the case differs from the one sent: forged; the question waits
	}
	if !s.takeIf(p) {
		return
	}
	restoreCase(m, p.q.Name, p.name)
	p.timer.Stop()
	if once { // which send an answer answers is known only when there was one (Karn)
		s.e.rtt.sample(rtt)
	}
	p.done(m, nil)
}

// rttEstimator keeps an upstream's round trip time and its variation
// (RFC 6298) for the wait before a question is sent again.
type rttEstimator struct {
	mu           sync.Mutex
	srtt, rttvar time.Duration // 0: no sample yet
}

// The wait before sending again: unbound's bounds, 50 ms at least (a
// nearby upstream under load still answers), 376 ms before the first
// answer.
const (
	minRTO     = 50 * time.Millisecond
	maxRTO     = time.Second
	initialRTO = 376 * time.Millisecond
)

func (r *rttEstimator) sample(rtt time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srtt == 0 {
		r.srtt, r.rttvar = rtt, rtt/2
		return
	}
	d := r.srtt - rtt
	if d < 0 {
		d = -d
	}
	r.rttvar = (3*r.rttvar + d) / 4
	r.srtt = (7*r.srtt + rtt) / 8
}

func (r *rttEstimator) rto() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srtt == 0 {
		return initialRTO
	}
	return min(max(r.srtt+4*r.rttvar, minRTO), maxRTO)
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
	rotate := s.uses > rotateAfter || time.Since(s.opened) > maxSockAge
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
	mark := markControl(e.mark)
	d := net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		if err := c.Control(func(fd uintptr) { setRcvbuf(int(fd), upstreamRcvbuf) }); err != nil {
			return err
		}
		return mark(network, address, c)
	}}
	c, err := d.Dial("udp", e.addr.String())
	if err != nil {
		return nil, fmt.Errorf("socket to %s: %w", e.addr, err)
	}
	s := &upSock{conn: c.(*net.UDPConn), e: e, pending: map[uint16]*udpPending{}, opened: time.Now()}
	e.run.Go(func(context.Context) { s.read() }) // ends when the socket closes
	return s, nil
}

// read delivers answers to their questions until the socket closes.
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
			failed := make([]*udpPending, 0, len(s.pending))
			for _, p := range s.pending {
				failed = append(failed, p)
			}
			s.mu.Unlock()
			for _, p := range failed {
				if s.takeIf(p) {
					p.timer.Stop()
					p.done(nil, err)
				}
			}
			continue
		}
		s.deliver(buf[:n])
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
