package pppoe

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// IPCP (RFC 1332, DNS options RFC 1877) and IPv6CP (RFC 5072), and the
// link's clock.

// IPCP options.
const (
	ipcpAddress = 3
	ipcpDNS1    = 129
	ipcpDNS2    = 131
)

func (l *Link) ipcpRequest() []option {
	opts := []option{{Type: ipcpAddress, Data: l.Local.AsSlice()}}
	for i, t := range []byte{ipcpDNS1, ipcpDNS2} {
		if l.askDNS[i] {
			a := l.DNS[i]
			if !a.IsValid() {
				a = netip.IPv4Unspecified()
			}
			opts = append(opts, option{Type: t, Data: a.AsSlice()})
		}
	}
	return opts
}

// ipcpJudge takes the ISP's address; compression and anything else is
// refused.
func (l *Link) ipcpJudge(opts []option) (nak, rej []option) {
	for _, o := range opts {
		if o.Type == ipcpAddress && len(o.Data) == 4 {
			l.Peer = netip.AddrFrom4([4]byte(o.Data))
			continue
		}
		rej = append(rej, o)
	}
	return nil, rej
}

// ipcpNaked takes the address and DNS servers the ISP assigns.
func (l *Link) ipcpNaked(opts []option) {
	for _, o := range opts {
		if len(o.Data) != 4 {
			continue
		}
		a := netip.AddrFrom4([4]byte(o.Data))
		switch o.Type {
		case ipcpAddress:
			l.Local = a
		case ipcpDNS1:
			l.DNS[0] = a
		case ipcpDNS2:
			l.DNS[1] = a
		}
	}
}

func (l *Link) ipcpRejected(opts []option) {
	for _, o := range opts {
		switch o.Type {
		case ipcpDNS1:
			l.askDNS[0], l.DNS[0] = false, netip.Addr{}
		case ipcpDNS2:
			l.askDNS[1], l.DNS[1] = false, netip.Addr{}
		case ipcpAddress:
			l.die("the ISP refused to assign an IPv4 address")
		}
	}
}

func (l *Link) ipv6cpRequest() []option {
	return []option{{Type: 1, Data: l.LocalID[:]}}
}

// ipv6cpJudge takes the ISP's interface identifier; one that is zero or
// ours is answered with another (RFC 5072 §4.1).
func (l *Link) ipv6cpJudge(opts []option) (nak, rej []option) {
	for _, o := range opts {
		if o.Type != 1 || len(o.Data) != 8 {
			rej = append(rej, o)
			continue
		}
		id := [8]byte(o.Data)
		if id == ([8]byte{}) || id == l.LocalID {
			alt := l.LocalID
			alt[7] ^= 0x5a
			alt[0] ^= 0x02
			nak = append(nak, option{Type: 1, Data: alt[:]})
			continue
		}
		l.PeerID = id
	}
	return nak, rej
}

func (l *Link) ipv6cpNaked(opts []option) {
	for _, o := range opts {
		if o.Type == 1 && len(o.Data) == 8 && [8]byte(o.Data) != ([8]byte{}) {
			l.LocalID = [8]byte(o.Data)
		}
	}
}

// LinkLocal returns the link-local addresses IPv6CP agreed: ours and the
// ISP's.
func (l *Link) LinkLocal() (local, peer netip.Addr) {
	ll := func(id [8]byte) netip.Addr {
		var a [16]byte
		a[0], a[1] = 0xfe, 0x80
		copy(a[8:], id[:])
		return netip.AddrFrom16(a)
	}
	return ll(l.LocalID), ll(l.PeerID)
}

// Tick runs the link's timers: retransmitted requests, the authentication
// deadline, LCP echoes, the terminate timer. It returns the frames to send.
func (l *Link) Tick(now time.Time) [][]byte {
	var out [][]byte
	switch l.Phase {
	case PhaseDead:
		return nil
	case PhaseTerminate:
		if now.Before(l.termBy) {
			return nil
		}
		if l.termTries >= maxTerminate {
			l.die(l.Reason)
			return nil
		}
		l.termTries++
		l.termBy = now.Add(restartTimer)
		return [][]byte{ctlPacket{Code: codeTermReq, ID: l.lcp.id + 1, Data: []byte(l.Reason)}.frame(ProtoLCP)}
	}
	if f, failed := l.lcp.tick(now); failed {
		l.die("the ISP did not answer LCP")
		return nil
	} else if f != nil {
		out = append(out, f)
	}
	if l.Phase == PhaseAuthenticate && !now.Before(l.authBy) {
		if l.Auth == ProtoPAP && l.authTry < maxConfigure {
			out = append(out, l.papRequest(now))
		} else {
			l.die("no answer to authentication")
			return nil
		}
	}
	if l.Phase == PhaseNetwork {
		if f, failed := l.ipcp.tick(now); failed {
			l.die("the ISP did not answer IPCP")
			return nil
		} else if f != nil {
			out = append(out, f)
		}
		if !l.v6Off && l.cfg.IPv6 {
			if f, failed := l.ipv6cp.tick(now); failed {
				l.v6Off = true // IPv4 still works
			} else if f != nil {
				out = append(out, f)
			}
		}
	}
	if l.lcp.opened() && !l.nextEcho.IsZero() && !now.Before(l.nextEcho) {
		if l.echoMissed >= l.cfg.EchoFailures {
			l.die("no answer to LCP echo requests")
			return nil
		}
		l.echoID++
		l.echoMissed++
		l.echoSent, l.nextEcho = now, now.Add(l.cfg.EchoInterval)
		out = append(out, ctlPacket{Code: codeEchoReq, ID: l.echoID, Data: binary.BigEndian.AppendUint32(nil, l.cfg.Magic)}.frame(ProtoLCP))
	}
	return out
}

// Deadline is when Tick next has something to do (zero: never).
func (l *Link) Deadline() time.Time {
	var d time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	switch l.Phase {
	case PhaseDead:
		return time.Time{}
	case PhaseTerminate:
		return l.termBy
	}
	for _, n := range []*negotiation{&l.lcp, &l.ipcp, &l.ipv6cp} {
		if n.started && !n.ackRcvd {
			earlier(n.deadline)
		}
	}
	if l.Phase == PhaseAuthenticate {
		earlier(l.authBy)
	}
	if l.lcp.opened() {
		earlier(l.nextEcho)
	}
	return d
}
