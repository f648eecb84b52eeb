package dns

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/internal/via"
	"github.com/routerd/routerd/router/status"
	"golang.org/x/sys/unix"
)

// upstreamTimeout is how long one upstream gets before the next is asked.
const upstreamTimeout = 1500 * time.Millisecond

// Upstream is one server the resolver forwards to.
type Upstream struct {
	Addr netip.AddrPort
	// TLS is DNS over TLS (RFC 7858): one long-lived, pipelined
	// connection per path, the certificate checked for ServerName.
	TLS        bool
	ServerName string
}

func (u Upstream) String() string {
	if u.TLS {
		return "tls://" + u.Addr.String() + "#" + u.ServerName
	}
	return u.Addr.String()
}

// asker asks one upstream by one path.
type asker interface {
	exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error)
	close()
}

// upstreamState is what the resolver knows of one upstream server.
type upstreamState struct {
	addr      Upstream
	rtt       time.Duration // smoothed
	ok, fail  uint64
	lastFail  time.Time
	lastErr   string
	handshake string // DNS over TLS: the last handshake, or why it failed
}

// forwarder sends questions upstream, by the path's socket mark, to the
// healthiest and fastest upstream first.
type forwarder struct {
	configured []Upstream
	roots      *x509.CertPool
	// encrypted: some upstream is DNS over TLS, so nothing falls back to
	// plaintext (the ISP's servers are not used).
	encrypted bool

	mu     sync.Mutex
	isp    []Upstream // from the WAN lease: the fallback
	state  map[Upstream]*upstreamState
	ex     map[exKey]asker
	closed bool // by close: no socket is opened again

	run *lifecycle.Group // the resolver's: the sockets' readers run under it
}

type exKey struct {
	up   Upstream
	mark uint32
}

func newForwarder(configured []Upstream, roots *x509.CertPool, run *lifecycle.Group) *forwarder {
	f := &forwarder{configured: configured, roots: roots, run: run, state: map[Upstream]*upstreamState{}, ex: map[exKey]asker{}}
	for _, u := range configured {
		f.encrypted = f.encrypted || u.TLS
	}
	return f
}

// setISP replaces the ISP's servers (from the WAN lease).
func (f *forwarder) setISP(addrs []netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.isp = nil
	for _, a := range addrs {
		f.isp = append(f.isp, Upstream{Addr: netip.AddrPortFrom(a, 53)})
	}
}

// order returns the upstreams to try: configured ones healthy first, by
// latency, then those that failed recently, then the ISP's as fallback
// (never with an encrypted upstream configured: a question that should
// have gone encrypted is not sent in the clear instead).
func (f *forwarder) order(now time.Time) []Upstream {
	f.mu.Lock()
	defer f.mu.Unlock()
	up := slices.Clone(f.configured)
	slices.SortStableFunc(up, func(a, b Upstream) int { return f.compareLocked(a, b, now) })
	if f.encrypted {
		return up
	}
	for _, a := range f.isp {
		if !slices.Contains(up, a) {
			up = append(up, a)
		}
	}
	return up
}

// first is order's first upstream, without ordering the rest (false:
// none); every forwarded question asks it.
func (f *forwarder) first(now time.Time) (Upstream, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.configured) == 0 {
		if f.encrypted || len(f.isp) == 0 {
			return Upstream{}, false
		}
		return f.isp[0], true
	}
	best := f.configured[0]
	for _, a := range f.configured[1:] {
		if f.compareLocked(a, best, now) < 0 {
			best = a
		}
	}
	return best, true
}

// compareLocked orders upstreams: healthy before failed recently, then by
// latency (unknown: behind the measured).
func (f *forwarder) compareLocked(a, b Upstream, now time.Time) int {
	sa, sb := f.state[a], f.state[b]
	fa, fb := sa != nil && !sa.healthy(now), sb != nil && !sb.healthy(now)
	if fa != fb {
		if fa {
			return 1
		}
		return -1
	}
	rtt := func(s *upstreamState) time.Duration {
		if s != nil && s.rtt > 0 {
			return s.rtt
		}
		return upstreamTimeout
	}
	return int(rtt(sa) - rtt(sb))
}

// healthy: no failure in the last 30 seconds (a success clears the mark).
func (s *upstreamState) healthy(now time.Time) bool {
	return s.lastFail.IsZero() || now.Sub(s.lastFail) > 30*time.Second
}

// exchange asks the upstreams in order until one answers.
func (f *forwarder) exchange(ctx context.Context, req *dns.Msg, path via.Path) (*dns.Msg, error) {
	ups := f.order(time.Now())
	if len(ups) == 0 {
		return nil, errors.New("no upstream DNS server (none configured, none from the WAN lease yet)")
	}
	var errs []error
	for _, up := range ups {
		resp, rtt, err := f.ask(ctx, req, up, path.Mark())
		f.record(up, rtt, err)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", up, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (f *forwarder) ask(ctx context.Context, req *dns.Msg, up Upstream, mark uint32) (*dns.Msg, time.Duration, error) {
	start := time.Now()
	resp, err := f.asker(up, mark).exchange(ctx, req)
	if err == nil && resp.Truncated && !up.TLS {
		// Too big for UDP: ask again over TCP.
		c := &dns.Client{Net: "tcp", Dialer: &net.Dialer{Timeout: upstreamTimeout, Control: markControl(mark)}, Timeout: upstreamTimeout}
		resp, _, err = c.ExchangeContext(ctx, req, up.Addr.String())
	}
	rtt := time.Since(start)
	if err != nil {
		return nil, rtt, err
	}
	if resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused {
		return nil, rtt, fmt.Errorf("upstream answered %s", dns.RcodeToString[resp.Rcode])
	}
	return resp, rtt, nil
}

func (f *forwarder) asker(up Upstream, mark uint32) asker {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		// A question still in flight when the resolver stopped (its
		// timeout fired, it tries the next upstream) opens nothing.
		return closedAsker{}
	}
	k := exKey{up, mark}
	e := f.ex[k]
	if e == nil {
		if up.TLS {
			e = &dotClient{up: up, mark: mark, roots: f.roots, hs: f.handshakeRecorder(up), run: f.run}
		} else {
			e = &exchanger{addr: up.Addr, mark: mark, run: f.run}
		}
		f.ex[k] = e
	}
	return e
}

// handshakeRecorder keeps the last TLS handshake's outcome for status.
func (f *forwarder) handshakeRecorder(up Upstream) func(string) {
	return func(msg string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.stateLocked(up).handshake = msg
	}
}

// stateLocked returns up's state, created on first use; f.mu is held.
func (f *forwarder) stateLocked(up Upstream) *upstreamState {
	s := f.state[up]
	if s == nil {
		s = &upstreamState{addr: up}
		f.state[up] = s
	}
	return s
}

// closedAsker is what a stopped forwarder asks with.
type closedAsker struct{}

func (closedAsker) exchange(context.Context, *dns.Msg) (*dns.Msg, error) { return nil, net.ErrClosed }
func (closedAsker) close()                                               {}

// close closes the upstream sockets, for good.
func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for k, e := range f.ex {
		e.close()
		delete(f.ex, k)
	}
}

// markControl sets SO_MARK on the upstream socket, so that policy routing
// sends it by the path: the router's own path for its clients on the WAN,
// the tunnel for clients whose traffic takes the VPN.
func markControl(mark uint32) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		if mark == 0 {
			return nil
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
		})
		if err != nil {
			return err
		}
		return serr
	}
}

func (f *forwarder) record(up Upstream, rtt time.Duration, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stateLocked(up)
	if err != nil {
		s.fail++
		s.lastFail = time.Now()
		s.lastErr = err.Error()
		return
	}
	s.ok++
	if s.rtt == 0 {
		s.rtt = rtt
	} else {
		s.rtt = (7*s.rtt + rtt) / 8
	}
	// A success clears the failure mark.
	s.lastFail = time.Time{}
}

// UpstreamStatus is one upstream server's health.
type UpstreamStatus = status.Upstream

func (f *forwarder) status() []UpstreamStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []UpstreamStatus
	add := func(a Upstream, src string) {
		st := UpstreamStatus{Address: a.Addr.String(), Source: src, Healthy: true, Protocol: "udp"}
		if a.TLS {
			st.Protocol, st.ServerName = "tls", a.ServerName
		}
		if s := f.state[a]; s != nil {
			st.LatencyMS = float64(s.rtt.Microseconds()) / 1000
			st.Answered, st.Failed, st.LastError = s.ok, s.fail, s.lastErr
			st.Healthy = s.healthy(time.Now())
			st.Handshake = s.handshake
		}
		for k, x := range f.ex {
			if e, ok := x.(*exchanger); ok && k.up == a {
				st.Resent += e.resent.Load()
			}
		}
		out = append(out, st)
	}
	for _, a := range f.configured {
		add(a, "config")
	}
	for _, a := range f.isp {
		if !slices.Contains(f.configured, a) && !f.encrypted {
			add(a, "isp")
		}
	}
	return out
}
