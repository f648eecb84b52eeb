package pppoe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/mdlayher/packet"
	"github.com/routerd/routerd/internal/lifecycle"
)

// attempt is one session from discovery to its end: the sockets, the two
// state machines, and what was installed.
type attempt struct {
	c      *Client
	conn   *packet.Conn
	mac    net.HardwareAddr
	g      lifecycle.Group
	disc   chan rx // discovery packets
	frames chan rx // PPP frames from the channel and the unit
	d      *Discovery
	ask    uint16 // RFC 4638 payload asked for, 0 none
	ks     *kernelSession
	link   *Link
	up4    bool
	up6    bool
	began  time.Time // when IPv4 came up
}

// attempt runs one session from discovery to its end. It returns when the
// session began (zero if it did not), why it ended, and whether the ISP
// refused the credentials.
func (c *Client) attempt(ctx context.Context) (began time.Time, reason string, authFailed bool) {
	conn, mac, err := discoverySocket(c.cfg.NS, c.cfg.Link)
	if err != nil {
		return time.Time{}, err.Error(), false
	}
	a := &attempt{c: c, conn: conn, mac: mac, disc: make(chan rx, 16), frames: make(chan rx, 16)}
	ctx = a.g.Start(ctx)
	defer a.close()
	reader(&a.g, c.cfg.Log, "discovery", a.disc, func(b []byte) (int, net.HardwareAddr, error) {
		n, from, err := conn.ReadFrom(b)
		if err != nil {
			return 0, nil, err
		}
		return n, from.(*packet.Addr).HardwareAddr, nil
	})
	var hostUniq [4]byte
	rand.Read(hostUniq[:])
	a.ask = a.payloadToAsk()
	a.d = NewDiscovery(DiscoveryConfig{Service: c.cfg.Service, ACName: c.cfg.ACName, HostUniq: hostUniq[:], MaxPayload: a.ask})
	c.update(func(s *Status) { s.State, s.AC, s.ACMAC, s.NextTry = "discovering", "", "", time.Time{} })
	a.send(a.d.Start(time.Now()))

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := a.d.Deadline()
		if a.link != nil {
			next = a.link.Deadline()
		}
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			a.hangUp("routerd is stopping")
			return a.began, "stopped", false
		case why := <-c.kick:
			a.hangUp(why)
			return a.began, why, false
		case <-timer.C:
			if a.link == nil {
				a.discoveryTick(time.Now())
				continue
			}
			a.write(a.link.Tick(time.Now()))
		case p := <-a.disc:
			if a.d.State == DiscIdle {
				continue
			}
			out, beganNow, ended := a.d.Handle(p.src, p.b, time.Now())
			if out != nil {
				a.send(*out)
			}
			if ended {
				return a.began, a.d.LastError, false
			}
			if beganNow {
				if err := a.establish(time.Now()); err != nil {
					a.send(a.d.PADT("client error"))
					return a.began, err.Error(), false
				}
			}
		case f := <-a.frames:
			if len(f.b) >= 4 {
				c.cfg.Log.Debug("PPP frame", "proto", fmt.Sprintf("%#04x", uint16(f.b[0])<<8|uint16(f.b[1])), "code", f.b[2])
			}
			a.write(a.link.Handle(f.b, time.Now()))
		}
		if a.link == nil {
			continue
		}
		if done, reason, authFailed := a.progress(); done {
			return a.began, reason, authFailed
		}
	}
}

// close releases the attempt's sockets and files (the PPP interface goes
// with its unit) and waits for its readers.
func (a *attempt) close() {
	a.conn.Close()
	if a.ks != nil {
		a.ks.Close()
	}
	// The readers return once their files are closed: Stop cannot time
	// out without a deadline.
	_ = a.g.Stop(context.Background())
}

// payloadToAsk is the RFC 4638 payload to ask for: a 1500-byte PPP
// payload needs Ethernet frames of 1508 under it; without them, nothing
// is asked (1492).
func (a *attempt) payloadToAsk() uint16 {
	cfg := a.c.cfg
	ask := maxPayload(cfg.MTU)
	if ask == 0 {
		return 0
	}
	links := []string{cfg.Link}
	if cfg.NIC != "" {
		links = []string{cfg.NIC, cfg.Link}
	}
	if err := babyJumbo(cfg.NS, links, int(ask)+8); err != nil {
		cfg.Log.Warn("no baby-jumbo frames for RFC 4638: the PPP MTU stays 1492", "err", err)
		return 0
	}
	return ask
}

func (a *attempt) send(o Out) {
	if _, err := a.conn.WriteTo(o.Payload, &packet.Addr{HardwareAddr: o.Dst}); err != nil {
		a.c.cfg.Log.Warn("send PPPoE discovery packet", "err", err)
	}
}

func (a *attempt) write(frames [][]byte) {
	for _, f := range frames {
		if _, err := a.ks.channel.Write(f); err != nil {
			a.c.cfg.Log.Warn("send PPP frame", "err", err)
		}
	}
}

// hangUp ends the link and the session from our side.
func (a *attempt) hangUp(why string) {
	if a.link != nil {
		a.write(a.link.Close(why, time.Now()))
	}
	if a.d.State == DiscSession {
		a.send(a.d.PADT(why))
	}
}

func (a *attempt) discoveryTick(now time.Time) {
	if o := a.d.Tick(now); o != nil {
		a.send(*o)
	}
	if a.d.LastError != "" {
		a.c.update(func(s *Status) { s.LastEnd = a.d.LastError })
	}
}

// establish binds the session the PADS gave in the kernel, starts reading
// its frames and opens the PPP link.
func (a *attempt) establish(now time.Time) error {
	c, d := a.c, a.d
	mru := 1492
	if a.ask > 0 && d.MaxPayload > 1492 {
		mru = int(min(d.MaxPayload, a.ask))
	}
	ks, err := openSession(c.cfg.NS, c.cfg.Link, d.Session, d.AC, c.cfg.Iface, mru)
	if err != nil {
		return err
	}
	a.ks = ks
	// The kernel queues LCP and authentication frames on the channel, the
	// NCPs' (IPCP, IPv6CP) on the unit.
	for name, f := range map[string]*os.File{"channel": ks.channel, "unit": ks.unit} {
		reader(&a.g, c.cfg.Log, name, a.frames, func(b []byte) (int, net.HardwareAddr, error) {
			n, err := f.Read(b)
			return n, nil, err
		})
	}
	var magic [4]byte
	var iid [8]byte
	rand.Read(magic[:])
	rand.Read(iid[:])
	iid[0] &^= 0x02 // RFC 5072: not derived from a globally unique id
	a.link = NewLink(LinkConfig{Username: c.cfg.Username, Password: c.cfg.Password, MRU: uint16(mru),
		Magic: binary.BigEndian.Uint32(magic[:]) | 1, IfaceID: iid, IPv6: c.cfg.IPv6,
		EchoInterval: c.cfg.EchoInterval, EchoFailures: c.cfg.EchoFailures})
	c.cfg.Log.Info("PPPoE session", "ac", d.ACName, "ac_mac", d.AC.String(), "session", d.Session, "mru", mru, "our_mac", a.mac.String())
	c.update(func(s *Status) {
		s.State, s.AC, s.ACMAC, s.SessionID = "authenticating", d.ACName, d.AC.String(), d.Session
	})
	a.write(a.link.Open(now))
	return nil
}

// progress acts on the link's state after an event: installs what came
// up, or says that the link is dead and why.
func (a *attempt) progress() (done bool, reason string, authFailed bool) {
	c, l := a.c, a.link
	c.update(func(s *Status) { s.EchoRTT = l.EchoRTT })
	if l.Phase == PhaseDead {
		if a.d.State == DiscSession {
			a.send(a.d.PADT(l.Reason))
		}
		return true, l.Reason, l.AuthFailure != ""
	}
	if !a.up4 && l.Up4() {
		a.up4 = true
		if err := c.up4(a.ks, l); err != nil {
			a.write(l.Close("client error", time.Now()))
			a.send(a.d.PADT("client error"))
			return true, err.Error(), false
		}
		a.began = time.Now()
	}
	if !a.up6 && a.up4 && l.Up6() {
		a.up6 = true
		c.up6(a.ks, l)
	}
	return false, "", false
}
