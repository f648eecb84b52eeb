package pppoe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/packet"
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
	IPv6     bool
	Log      *slog.Logger
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

// attempt runs one session from discovery to its end. It returns when the
// session began (zero if it did not), why it ended, and whether the ISP
// refused the credentials.
func (c *Client) attempt(ctx context.Context) (began time.Time, reason string, authFailed bool) {
	conn, mac, err := discoverySocket(c.cfg.NS, c.cfg.Link)
	if err != nil {
		return time.Time{}, err.Error(), false
	}
	var g lifecycle.Group
	ctx = g.Start(ctx)
	var ks *kernelSession
	defer func() {
		conn.Close()
		if ks != nil {
			ks.Close()
		}
		// The readers return once their files are closed: Stop cannot
		// time out without a deadline.
		_ = g.Stop(context.Background())
	}()
	disc := make(chan rx, 16)
	reader(&g, c.cfg.Log, "discovery", disc, func(b []byte) (int, net.HardwareAddr, error) {
		n, a, err := conn.ReadFrom(b)
		if err != nil {
			return 0, nil, err
		}
		return n, a.(*packet.Addr).HardwareAddr, nil
	})
	send := func(o Out) {
		if _, err := conn.WriteTo(o.Payload, &packet.Addr{HardwareAddr: o.Dst}); err != nil {
			c.cfg.Log.Warn("send PPPoE discovery packet", "err", err)
		}
	}
	var hostUniq [4]byte
	rand.Read(hostUniq[:])
	ask := maxPayload(c.cfg.MTU)
	if ask > 0 {
		// RFC 4638: a 1500-byte PPP payload needs Ethernet frames of
		// 1508 under it; without them, ask for nothing (1492).
		links := []string{c.cfg.Link}
		if c.cfg.NIC != "" {
			links = []string{c.cfg.NIC, c.cfg.Link}
		}
		if err := babyJumbo(c.cfg.NS, links, int(ask)+8); err != nil {
			c.cfg.Log.Warn("no baby-jumbo frames for RFC 4638: the PPP MTU stays 1492", "err", err)
			ask = 0
		}
	}
	d := NewDiscovery(DiscoveryConfig{Service: c.cfg.Service, ACName: c.cfg.ACName, HostUniq: hostUniq[:], MaxPayload: ask})
	c.update(func(s *Status) { s.State, s.AC, s.ACMAC, s.NextTry = "discovering", "", "", time.Time{} })
	send(d.Start(time.Now()))

	var link *Link
	frames := make(chan rx, 16)
	writeFrames := func(fs [][]byte) {
		for _, f := range fs {
			if _, err := ks.channel.Write(f); err != nil {
				c.cfg.Log.Warn("send PPP frame", "err", err)
			}
		}
	}
	up4, up6 := false, false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := d.Deadline()
		if link != nil {
			next = link.Deadline()
		}
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			if link != nil {
				writeFrames(link.Close("routerd is stopping", time.Now()))
			}
			if d.State == DiscSession {
				send(d.PADT("routerd is stopping"))
			}
			return began, "stopped", false
		case why := <-c.kick:
			if link != nil {
				writeFrames(link.Close(why, time.Now()))
			}
			if d.State == DiscSession {
				send(d.PADT(why))
			}
			return began, why, false
		case <-timer.C:
			now := time.Now()
			if link == nil {
				if o := d.Tick(now); o != nil {
					send(*o)
				}
				if d.LastError != "" {
					c.update(func(s *Status) { s.LastEnd = d.LastError })
				}
				continue
			}
			writeFrames(link.Tick(now))
		case p := <-disc:
			now := time.Now()
			if d.State == DiscIdle {
				continue
			}
			out, beganNow, ended := d.Handle(p.src, p.b, now)
			if out != nil {
				send(*out)
			}
			if ended {
				return began, d.LastError, false
			}
			if !beganNow {
				continue
			}
			mru := 1492
			if ask > 0 && d.MaxPayload > 1492 {
				mru = int(min(d.MaxPayload, ask))
			}
			if ks, err = openSession(c.cfg.NS, c.cfg.Link, d.Session, d.AC, c.cfg.Iface, mru); err != nil {
				send(d.PADT("client error"))
				return began, err.Error(), false
			}
			// The kernel queues LCP and authentication frames on the
			// channel, the NCPs' (IPCP, IPv6CP) on the unit.
			for name, f := range map[string]*os.File{"channel": ks.channel, "unit": ks.unit} {
				reader(&g, c.cfg.Log, name, frames, func(b []byte) (int, net.HardwareAddr, error) {
					n, err := f.Read(b)
					return n, nil, err
				})
			}
			var magic [4]byte
			var iid [8]byte
			rand.Read(magic[:])
			rand.Read(iid[:])
			iid[0] &^= 0x02 // RFC 5072: not derived from a globally unique id
			link = NewLink(LinkConfig{Username: c.cfg.Username, Password: c.cfg.Password, MRU: uint16(mru),
				Magic: binary.BigEndian.Uint32(magic[:]) | 1, IfaceID: iid, IPv6: c.cfg.IPv6})
			c.cfg.Log.Info("PPPoE session", "ac", d.ACName, "ac_mac", d.AC.String(), "session", d.Session, "mru", mru, "our_mac", mac.String())
			c.update(func(s *Status) {
				s.State, s.AC, s.ACMAC, s.SessionID = "authenticating", d.ACName, d.AC.String(), d.Session
			})
			writeFrames(link.Open(now))
		case f := <-frames:
			if len(f.b) >= 4 {
				c.cfg.Log.Debug("PPP frame", "proto", fmt.Sprintf("%#04x", uint16(f.b[0])<<8|uint16(f.b[1])), "code", f.b[2])
			}
			writeFrames(link.Handle(f.b, time.Now()))
		}
		if link == nil {
			continue
		}
		c.update(func(s *Status) { s.EchoRTT = link.EchoRTT })
		if link.Phase == PhaseDead {
			if d.State == DiscSession {
				send(d.PADT(link.Reason))
			}
			return began, link.Reason, link.AuthFailure != ""
		}
		if !up4 && link.Up4() {
			up4 = true
			if err := c.up4(ks, link); err != nil {
				writeFrames(link.Close("client error", time.Now()))
				send(d.PADT("client error"))
				return began, err.Error(), false
			}
			began = time.Now()
		}
		if !up6 && link.Up6() && up4 {
			up6 = true
			c.up6(ks, link)
		}
	}
}

// up4 installs the session's IPv4 addressing and tells the caller.
func (c *Client) up4(ks *kernelSession, l *Link) error {
	if err := ks.configure4(c.cfg.NS, l.Local, l.Peer, l.MTU()); err != nil {
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
	if err := ks.configure6(c.cfg.NS, local); err != nil {
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
