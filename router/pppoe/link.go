package pppoe

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// LinkConfig is what the PPP link negotiates with.
type LinkConfig struct {
	Username string
	Password []byte
	MRU      uint16 // 1492, or up to 1500 when discovery agreed (RFC 4638)
	Magic    uint32 // random, non-zero: tells our own looped-back packets apart
	IfaceID  [8]byte
	IPv6     bool // negotiate IPv6CP
	// Echo-based link monitoring: an LCP Echo-Request every EchoInterval;
	// EchoFailures unanswered in a row end the link.
	EchoInterval time.Duration
	EchoFailures int
}

// Phases (RFC 1661 §3.2).
const (
	PhaseEstablish = iota
	PhaseAuthenticate
	PhaseNetwork
	PhaseTerminate
	PhaseDead
)

// authTimeout is how long the client waits for the ISP's CHAP challenge
// or PAP answer before it gives the link up.
const authTimeout = 30 * time.Second

// Link is the client side of a PPP link over a PPPoE session as a state
// machine: LCP with echo monitoring, PAP or CHAP-MD5, IPCP and IPv6CP. It
// consumes frames and the clock and returns frames to send; it does no
// I/O. Its exported fields are its state for the caller to act on.
type Link struct {
	cfg   LinkConfig
	Phase int

	lcp, ipcp, ipv6cp negotiation

	// LCP: what the peer asked of us, and what we ask.
	PeerMRU uint16
	mru     uint16
	askMRU  bool
	Auth    uint16 // ProtoPAP, ProtoCHAP or 0
	authID  byte
	authTry int
	authBy  time.Time

	// IPCP.
	Local, Peer netip.Addr
	DNS         [2]netip.Addr
	askDNS      [2]bool
	// IPv6CP.
	LocalID, PeerID [8]byte
	v6Off           bool

	// Echo monitoring.
	echoID      byte
	echoSent    time.Time
	echoMissed  int
	nextEcho    time.Time
	EchoRTT     time.Duration
	termTries   int
	termBy      time.Time
	AuthFailure string // the ISP's message when it refused our credentials
	Reason      string // why the link is dead
}

// NewLink makes a link for cfg.
func NewLink(cfg LinkConfig) *Link {
	if cfg.MRU == 0 {
		cfg.MRU = 1492
	}
	if cfg.EchoInterval == 0 {
		cfg.EchoInterval = 10 * time.Second
	}
	if cfg.EchoFailures == 0 {
		cfg.EchoFailures = 3
	}
	l := &Link{cfg: cfg, mru: cfg.MRU, askMRU: true, askDNS: [2]bool{true, true}, LocalID: cfg.IfaceID}
	l.Local = netip.IPv4Unspecified()
	l.lcp = negotiation{proto: ProtoLCP, request: l.lcpRequest, judge: l.lcpJudge, naked: l.lcpNaked, rejected: l.lcpRejected}
	l.ipcp = negotiation{proto: ProtoIPCP, request: l.ipcpRequest, judge: l.ipcpJudge, naked: l.ipcpNaked, rejected: l.ipcpRejected}
	l.ipv6cp = negotiation{proto: ProtoIPv6CP, request: l.ipv6cpRequest, judge: l.ipv6cpJudge, naked: l.ipv6cpNaked,
		rejected: func([]option) {}}
	return l
}

// Up4 and Up6 say that IPCP, IPv6CP is open: the addresses are agreed.
func (l *Link) Up4() bool { return l.Phase == PhaseNetwork && l.ipcp.opened() }
func (l *Link) Up6() bool { return l.Phase == PhaseNetwork && l.ipv6cp.opened() }

// MTU is the interface's MTU: what the peer can receive.
func (l *Link) MTU() int {
	if l.PeerMRU != 0 && l.PeerMRU < l.cfg.MRU {
		return int(l.PeerMRU)
	}
	return int(l.cfg.MRU)
}

// Open starts LCP.
func (l *Link) Open(now time.Time) [][]byte {
	l.Phase = PhaseEstablish
	return [][]byte{l.lcp.start(now)}
}

func (l *Link) die(reason string) {
	if l.Phase != PhaseDead {
		l.Phase, l.Reason = PhaseDead, reason
	}
}

// Close ends the link: an LCP Terminate-Request, retried, then dead.
func (l *Link) Close(reason string, now time.Time) [][]byte {
	if l.Phase == PhaseDead || l.Phase == PhaseTerminate {
		return nil
	}
	l.Phase, l.Reason, l.termTries, l.termBy = PhaseTerminate, reason, 1, now.Add(restartTimer)
	return [][]byte{ctlPacket{Code: codeTermReq, ID: l.lcp.id + 1, Data: []byte(reason)}.frame(ProtoLCP)}
}

// Handle takes one frame from the peer and returns the frames to send.
func (l *Link) Handle(frame []byte, now time.Time) [][]byte {
	if l.Phase == PhaseDead {
		return nil
	}
	proto, info, err := parseFrame(frame)
	if err != nil {
		return nil
	}
	switch proto {
	case ProtoLCP:
		return l.handleLCP(info, now)
	case ProtoPAP, ProtoCHAP:
		if l.Phase < PhaseAuthenticate || l.Phase == PhaseTerminate {
			return nil
		}
		return l.handleAuth(proto, info, now)
	case ProtoIPCP, ProtoIPv6CP:
		if l.Phase != PhaseNetwork {
			return nil // RFC 1661: NCP packets before the network phase are discarded
		}
		p, err := parsePacket(info)
		if err != nil {
			return nil
		}
		n := &l.ipcp
		if proto == ProtoIPv6CP {
			if l.v6Off || !l.cfg.IPv6 {
				return l.protoReject(proto, info)
			}
			n = &l.ipv6cp
		}
		if p.Code == codeTermReq {
			// The ISP closes one protocol; without IPv4 the link is no use.
			out := [][]byte{ctlPacket{Code: codeTermAck, ID: p.ID}.frame(proto)}
			if proto == ProtoIPCP {
				l.die("the ISP closed IPCP")
			} else {
				l.v6Off = true
				n.ackRcvd, n.ackSent = false, false
			}
			return out
		}
		return n.handle(p, now)
	}
	if l.lcp.opened() {
		return l.protoReject(proto, info)
	}
	return nil
}

func (l *Link) protoReject(proto uint16, info []byte) [][]byte {
	data := binary.BigEndian.AppendUint16(nil, proto)
	data = append(data, info...)
	if max := int(l.MTU()) - 8; len(data) > max {
		data = data[:max]
	}
	l.lcp.id++
	return [][]byte{ctlPacket{Code: codeProtoRej, ID: l.lcp.id, Data: data}.frame(ProtoLCP)}
}

func (l *Link) handleLCP(info []byte, now time.Time) [][]byte {
	p, err := parsePacket(info)
	if err != nil {
		return nil
	}
	switch p.Code {
	case codeConfReq, codeConfAck, codeConfNak, codeConfRej:
		if l.Phase == PhaseTerminate {
			return nil
		}
		if l.lcp.opened() && p.Code == codeConfReq {
			// RFC 1661: a Configure-Request on an open link restarts
			// it; the session is started over rather than renegotiated
			// under live addresses.
			l.die("the ISP restarted LCP")
			return nil
		}
		out := l.lcp.handle(p, now)
		if l.Phase == PhaseEstablish && l.lcp.opened() {
			out = append(out, l.lcpOpened(now)...)
		}
		return out
	case codeTermReq:
		l.die(fmt.Sprintf("the ISP ended the link (LCP Terminate-Request %q)", printable(p.Data)))
		return [][]byte{ctlPacket{Code: codeTermAck, ID: p.ID}.frame(ProtoLCP)}
	case codeTermAck:
		if l.Phase == PhaseTerminate {
			l.die(l.Reason)
		}
	case codeEchoReq:
		if l.lcp.opened() {
			data := binary.BigEndian.AppendUint32(nil, l.cfg.Magic)
			if len(p.Data) > 4 {
				data = append(data, p.Data[4:]...)
			}
			return [][]byte{ctlPacket{Code: codeEchoReply, ID: p.ID, Data: data}.frame(ProtoLCP)}
		}
	case codeEchoReply:
		if p.ID == l.echoID && l.echoMissed > 0 {
			l.echoMissed, l.EchoRTT = 0, now.Sub(l.echoSent)
		}
	case codeProtoRej:
		if len(p.Data) >= 2 && binary.BigEndian.Uint16(p.Data) == ProtoIPv6CP {
			l.v6Off = true
		}
	case codeCodeRej, codeDiscard:
	default:
		l.lcp.id++
		return [][]byte{ctlPacket{Code: codeCodeRej, ID: l.lcp.id, Data: info[:min(len(info), int(l.MTU())-4)]}.frame(ProtoLCP)}
	}
	return nil
}

// lcpOpened moves on from LCP: to authentication if the ISP asked for it,
// else to the network protocols.
func (l *Link) lcpOpened(now time.Time) [][]byte {
	l.nextEcho = now.Add(l.cfg.EchoInterval)
	if l.Auth == 0 {
		return l.network(now)
	}
	l.Phase, l.authBy = PhaseAuthenticate, now.Add(authTimeout)
	if l.Auth == ProtoPAP {
		l.authTry = 0
		return [][]byte{l.papRequest(now)}
	}
	return nil // CHAP: the ISP speaks first
}

func (l *Link) network(now time.Time) [][]byte {
	l.Phase = PhaseNetwork
	out := [][]byte{l.ipcp.start(now)}
	if l.cfg.IPv6 && !l.v6Off {
		out = append(out, l.ipv6cp.start(now))
	}
	return out
}

func (l *Link) lcpRequest() []option {
	opts := []option{{Type: 5, Data: binary.BigEndian.AppendUint32(nil, l.cfg.Magic)}}
	if l.askMRU {
		opts = append([]option{{Type: 1, Data: binary.BigEndian.AppendUint16(nil, l.mru)}}, opts...)
	}
	return opts
}

// lcpJudge takes the ISP's LCP options: its MRU, the authentication it
// wants (PAP or CHAP with MD5; anything else is answered with CHAP-MD5),
// its magic number; compression of the PPP header is refused (PPPoE
// frames have no use for it, RFC 2516 §7).
func (l *Link) lcpJudge(opts []option) (nak, rej []option) {
	for _, o := range opts {
		switch {
		case o.Type == 1 && len(o.Data) == 2: // MRU
			l.PeerMRU = binary.BigEndian.Uint16(o.Data)
			if l.PeerMRU < 576 {
				nak = append(nak, option{Type: 1, Data: binary.BigEndian.AppendUint16(nil, 576)})
			}
		case o.Type == 2 && len(o.Data) == 4: // ACCM: meaningless on PPPoE, harmless
		case o.Type == 3 && len(o.Data) >= 2: // authentication protocol
			switch proto := binary.BigEndian.Uint16(o.Data); {
			case proto == ProtoPAP && len(o.Data) == 2:
				l.Auth = ProtoPAP
			case proto == ProtoCHAP && len(o.Data) == 3 && o.Data[2] == 5:
				l.Auth = ProtoCHAP
			default:
				nak = append(nak, option{Type: 3, Data: []byte{0xc2, 0x23, 5}})
			}
		case o.Type == 5 && len(o.Data) == 4: // magic number
		default:
			rej = append(rej, o)
		}
	}
	return nak, rej
}

func (l *Link) lcpNaked(opts []option) {
	for _, o := range opts {
		if o.Type == 1 && len(o.Data) == 2 {
			if m := binary.BigEndian.Uint16(o.Data); m >= 576 && m <= l.cfg.MRU {
				l.mru = m
			}
		}
		if o.Type == 5 && len(o.Data) == 4 {
			l.cfg.Magic = l.cfg.Magic*1664525 + 1013904223 // RFC 1661 §6.4: pick another
		}
	}
}

func (l *Link) lcpRejected(opts []option) {
	for _, o := range opts {
		if o.Type == 1 {
			l.askMRU = false
		}
	}
}

// handleAuth is PAP's and CHAP-MD5's client side.
func (l *Link) handleAuth(proto uint16, info []byte, now time.Time) [][]byte {
	p, err := parsePacket(info)
	if err != nil || proto != l.Auth {
		return nil
	}
	if proto == ProtoPAP {
		if p.ID != l.authID || l.Phase != PhaseAuthenticate {
			return nil
		}
		switch p.Code {
		case 2: // Authenticate-Ack
			return l.network(now)
		case 3: // Authenticate-Nak
			l.authFailed(p.Data)
		}
		return nil
	}
	switch p.Code {
	case 1: // Challenge: value size, value, name
		if len(p.Data) < 1 || int(p.Data[0]) == 0 || int(p.Data[0]) > len(p.Data)-1 {
			return nil
		}
		h := md5.New()
		h.Write([]byte{p.ID})
		h.Write(l.cfg.Password)
		h.Write(p.Data[1 : 1+int(p.Data[0])])
		data := append([]byte{md5.Size}, h.Sum(nil)...)
		data = append(data, l.cfg.Username...)
		l.authID = p.ID
		return [][]byte{ctlPacket{Code: 2, ID: p.ID, Data: data}.frame(ProtoCHAP)}
	case 3: // Success
		if p.ID == l.authID && l.Phase == PhaseAuthenticate {
			return l.network(now)
		}
	case 4: // Failure
		if p.ID == l.authID {
			l.authFailed(append([]byte{byte(len(p.Data))}, p.Data...))
		}
	}
	return nil
}

// authFailed ends the link with the ISP's message (a length-prefixed
// string, as PAP carries it).
func (l *Link) authFailed(msg []byte) {
	text := ""
	if len(msg) > 0 {
		text = printable(msg[1:min(len(msg), 1+int(msg[0]))])
	}
	l.AuthFailure = "the ISP refused the username or password"
	if text != "" {
		l.AuthFailure += fmt.Sprintf(" (%q)", text)
	}
	l.die(l.AuthFailure)
}

func (l *Link) papRequest(now time.Time) []byte {
	l.authID++
	l.authTry++
	l.authBy = now.Add(restartTimer)
	data := append([]byte{byte(len(l.cfg.Username))}, l.cfg.Username...)
	data = append(data, byte(len(l.cfg.Password)))
	data = append(data, l.cfg.Password...)
	return ctlPacket{Code: 1, ID: l.authID, Data: data}.frame(ProtoPAP)
}
