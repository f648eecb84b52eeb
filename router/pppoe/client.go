package pppoe

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/routerd/routerd/internal/lifecycle"
)

// Config is the client's.
type Config struct {
	NS       string // the namespace of Link and of the PPP interface
	Link     string // the Ethernet link discovery runs on: the WAN NIC or its VLAN
	NIC      string // Link's parent NIC when Link is a VLAN ("": Link is the NIC)
	Iface    string // the PPP interface's name
	Username string
	Password []byte
	Service  string
	ACName   string
	MTU      int // 1500 asks for RFC 4638's larger payload; else 1492
	// Metric of the default routes over the session (with a backup
	// uplink, the two uplinks' differ).
	Metric int
	// EchoInterval and EchoFailures: LCP echo monitoring (0: 10 s, 3).
	EchoInterval time.Duration
	EchoFailures int
	IPv6         bool
	Log          *slog.Logger
	// OnUp hears of each session's IPv4 addressing once installed, and
	// OnUp6 of its IPv6 link (the DHCPv6 client starts on it); OnDown of
	// its end.
	OnUp   func(Session)
	OnUp6  func(Session)
	OnDown func(reason string)
}

// Session is an established session's addressing.
type Session struct {
	Iface       string
	Local, Peer netip.Addr
	DNS         []netip.Addr
	MTU         int
	LinkLocal6  netip.Addr
	Began       time.Time
}

// Status is what status shows.
type Status struct {
	State      string        `json:"state"` // "discovering", "authenticating", "up", "waiting"
	AC         string        `json:"ac,omitempty"`
	ACMAC      string        `json:"ac_mac,omitempty"`
	SessionID  uint16        `json:"session_id,omitempty"`
	Local      string        `json:"address,omitempty"`
	Peer       string        `json:"peer,omitempty"`
	MTU        int           `json:"mtu,omitempty"`
	IPv6       bool          `json:"ipv6"`
	Since      time.Time     `json:"since,omitzero"`
	EchoRTT    time.Duration `json:"echo_rtt_ns,omitempty"`
	Reconnects int           `json:"reconnects"`
	LastEnd    string        `json:"last_end,omitempty"` // why the last session ended or attempt failed
	NextTry    time.Time     `json:"next_try,omitzero"`
}

// Client keeps a PPPoE session up: discovery, the PPP link, the kernel's
// interface, and reconnection with backoff.
type Client struct {
	cfg  Config
	kick chan string
	mu   sync.Mutex
	st   Status
}

// NewClient makes a client; Run runs it.
func NewClient(cfg Config) *Client {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Client{cfg: cfg, kick: make(chan string, 1), st: Status{State: "waiting"}}
}

// Status returns the client's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *Client) update(f func(*Status)) {
	c.mu.Lock()
	f(&c.st)
	c.mu.Unlock()
}

// Backoff between attempts: doubling from backoffMin to backoffMax, and
// back to the start after a session that lasted stableSession. A refused
// password waits longer from the start: ISPs lock out clients that retry
// a wrong one quickly.
const (
	backoffMin    = 2 * time.Second
	backoffAuth   = 15 * time.Second
	backoffMax    = 2 * time.Minute
	stableSession = time.Minute
)

// Run keeps the session up until ctx ends, then ends it (LCP terminate,
// PADT).
func (c *Client) Run(ctx context.Context) {
	wait := time.Duration(0)
	for {
		if wait > 0 {
			c.update(func(s *Status) { s.State, s.NextTry = "waiting", time.Now().Add(wait) })
			select {
			case <-ctx.Done():
				return
			case <-c.kick:
			case <-time.After(wait):
			}
		}
		began, reason, authFailed := c.attempt(ctx)
		if ctx.Err() != nil {
			return
		}
		c.cfg.Log.Warn("PPPoE session ended", "reason", reason)
		if !began.IsZero() && c.cfg.OnDown != nil {
			c.cfg.OnDown(reason)
		}
		c.update(func(s *Status) {
			s.LastEnd, s.Reconnects = reason, s.Reconnects+1
			s.SessionID, s.Local, s.Peer, s.EchoRTT, s.Since = 0, "", "", 0, time.Time{}
		})
		switch {
		case authFailed:
			wait = max(backoffAuth, min(2*wait, backoffMax))
		case !began.IsZero() && time.Since(began) >= stableSession:
			wait = backoffMin
		default:
			wait = min(max(backoffMin, 2*wait), backoffMax)
		}
	}
}

type rx struct {
	src net.HardwareAddr
	b   []byte
}

// reader reads from read until it fails (its file is closed) or ctx ends.
func reader(g *lifecycle.Group, log *slog.Logger, what string, ch chan<- rx, read func([]byte) (int, net.HardwareAddr, error)) {
	g.Go(func(ctx context.Context) {
		for {
			buf := make([]byte, 1600)
			n, src, err := read(buf)
			if err != nil {
				if ctx.Err() == nil {
					log.Debug("PPPoE reader ends", "socket", what, "err", err)
				}
				return
			}
			select {
			case ch <- rx{src: src, b: buf[:n]}:
			case <-ctx.Done():
				return
			}
		}
	})
}

// up4 installs the session's IPv4 addressing and tells the caller.
func (c *Client) up4(ks *kernelSession, l *Link) error {
	if err := ks.configure4(c.cfg.NS, l.Local, l.Peer, l.MTU(), c.cfg.Metric); err != nil {
		return err
	}
	s := c.session(l)
	c.cfg.Log.Info("PPPoE up", "address", l.Local, "peer", l.Peer, "dns", s.DNS, "mtu", s.MTU)
	c.update(func(st *Status) {
		st.State, st.Local, st.Peer, st.MTU, st.Since = "up", l.Local.String(), l.Peer.String(), s.MTU, s.Began
	})
	if c.cfg.OnUp != nil {
		c.cfg.OnUp(s)
	}
	return nil
}

func (c *Client) up6(ks *kernelSession, l *Link) {
	local, _ := l.LinkLocal()
	if err := ks.configure6(c.cfg.NS, local, c.cfg.Metric); err != nil {
		c.cfg.Log.Warn("PPPoE IPv6 link", "err", err)
		return
	}
	c.update(func(st *Status) { st.IPv6 = true })
	if c.cfg.OnUp6 != nil {
		c.cfg.OnUp6(c.session(l))
	}
}

func (c *Client) session(l *Link) Session {
	s := Session{Iface: c.cfg.Iface, Local: l.Local, Peer: l.Peer, MTU: l.MTU(), Began: time.Now()}
	s.LinkLocal6, _ = l.LinkLocal()
	for _, a := range l.DNS {
		if a.IsValid() && !a.IsUnspecified() {
			s.DNS = append(s.DNS, a)
		}
	}
	return s
}

// maxPayload is the RFC 4638 tag's value for an MTU: asked for above 1492.
func maxPayload(mtu int) uint16 {
	if mtu > 1492 {
		return uint16(mtu)
	}
	return 0
}

// Restart ends the current session or attempt (the link under it was
// reset) and starts over at once.
func (c *Client) Restart(reason string) {
	select {
	case c.kick <- reason:
	default:
	}
}
