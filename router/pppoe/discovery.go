package pppoe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// PPPoE discovery (RFC 2516 §5): PADI, PADO, PADR, PADS and PADT, carried
// in Ethernet frames of type 0x8863. Every byte of a PADO, PADS or PADT
// comes from the ISP side (or anyone on the WAN segment), so parsing never
// trusts a length.

// Discovery codes.
const (
	CodePADI = 0x09
	CodePADO = 0x07
	CodePADR = 0x19
	CodePADS = 0x65
	CodePADT = 0xa7
)

// Tags.
const (
	TagEndOfList      = 0x0000
	TagServiceName    = 0x0101
	TagACName         = 0x0102
	TagHostUniq       = 0x0103
	TagACCookie       = 0x0104
	TagRelaySessionID = 0x0110
	TagPPPMaxPayload  = 0x0120 // RFC 4638
	TagServiceError   = 0x0201
	TagACSystemError  = 0x0202
	TagGenericError   = 0x0203
)

// Tag is one TLV of a discovery packet.
type Tag struct {
	Type  uint16
	Value []byte
}

// Packet is a discovery packet (the Ethernet payload).
type Packet struct {
	Code      byte
	SessionID uint16
	Tags      []Tag
}

var errShort = errors.New("truncated")

// ParsePacket parses a discovery packet. Tags after End-Of-List are
// ignored; the payload length field bounds the tags, not the frame (an
// Ethernet frame is padded to 60 bytes).
func ParsePacket(b []byte) (*Packet, error) {
	if len(b) < 6 {
		return nil, fmt.Errorf("pppoe discovery: %w header", errShort)
	}
	if b[0] != 0x11 {
		return nil, fmt.Errorf("pppoe discovery: version/type %#x, want 0x11", b[0])
	}
	p := &Packet{Code: b[1], SessionID: binary.BigEndian.Uint16(b[2:4])}
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if n > len(b)-6 {
		return nil, fmt.Errorf("pppoe discovery: payload length %d, frame has %d: %w", n, len(b)-6, errShort)
	}
	rest := b[6 : 6+n]
	for len(rest) > 0 {
		if len(rest) < 4 {
			return nil, fmt.Errorf("pppoe discovery: tag %w", errShort)
		}
		t, l := binary.BigEndian.Uint16(rest), int(binary.BigEndian.Uint16(rest[2:]))
		if l > len(rest)-4 {
			return nil, fmt.Errorf("pppoe discovery: tag %#04x length %d: %w", t, l, errShort)
		}
		if t == TagEndOfList {
			break
		}
		p.Tags = append(p.Tags, Tag{Type: t, Value: bytes.Clone(rest[4 : 4+l])})
		rest = rest[4+l:]
	}
	return p, nil
}

// Marshal encodes p.
func (p *Packet) Marshal() []byte {
	n := 0
	for _, t := range p.Tags {
		n += 4 + len(t.Value)
	}
	b := make([]byte, 6, 6+n)
	b[0], b[1] = 0x11, p.Code
	binary.BigEndian.PutUint16(b[2:], p.SessionID)
	binary.BigEndian.PutUint16(b[4:], uint16(n))
	for _, t := range p.Tags {
		b = binary.BigEndian.AppendUint16(b, t.Type)
		b = binary.BigEndian.AppendUint16(b, uint16(len(t.Value)))
		b = append(b, t.Value...)
	}
	return b
}

// Tag returns the first tag of type typ.
func (p *Packet) Tag(typ uint16) ([]byte, bool) {
	for _, t := range p.Tags {
		if t.Type == typ {
			return t.Value, true
		}
	}
	return nil, false
}

// errorTag is the text of the packet's first error tag, if any.
func (p *Packet) errorTag() string {
	for _, t := range p.Tags {
		switch t.Type {
		case TagServiceError, TagACSystemError, TagGenericError:
			return fmt.Sprintf("%s (tag %#04x)", printable(t.Value), t.Type)
		}
	}
	return ""
}

// printable keeps an ISP's text safe for a log line and status.
func printable(b []byte) string {
	if len(b) > 128 {
		b = b[:128]
	}
	return string(bytes.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, b))
}

// DiscoveryConfig is what the client asks for.
type DiscoveryConfig struct {
	Service  string // service name ("" any)
	ACName   string // take offers only from this access concentrator ("" any)
	HostUniq []byte // ties the ISP's answers to this client
	// MaxPayload asks for an MRU above 1492 (RFC 4638); 0 does not ask.
	MaxPayload uint16
}

// Discovery timing: RFC 2516 wants the PADI timeout doubled on each
// retry; after discoveryAttempts of either stage the client starts over.
const (
	discoveryTimeout  = 2 * time.Second
	discoveryAttempts = 4
)

// Discovery states.
const (
	DiscIdle = iota
	DiscPADISent
	DiscPADRSent
	DiscSession
)

// Discovery is the client side of PPPoE discovery as a state machine: it
// consumes received packets and the clock and says what to send. It does
// no I/O.
type Discovery struct {
	cfg      DiscoveryConfig
	State    int
	attempt  int
	deadline time.Time
	padr     []byte           // the PADR being retried
	AC       net.HardwareAddr // the chosen access concentrator
	ACName   string
	Session  uint16
	// MaxPayload is the MRU the AC agreed to (RFC 4638), 0 if none.
	MaxPayload uint16
	// LastError is the last error tag or refusal the ISP sent.
	LastError string
}

// Out is a discovery packet to send to Dst.
type Out struct {
	Dst     net.HardwareAddr
	Payload []byte
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// NewDiscovery makes a discovery for cfg.
func NewDiscovery(cfg DiscoveryConfig) *Discovery { return &Discovery{cfg: cfg} }

// Start begins (or restarts) discovery: a PADI to everyone.
func (d *Discovery) Start(now time.Time) Out {
	d.State, d.attempt, d.AC, d.Session, d.MaxPayload = DiscPADISent, 0, nil, 0, 0
	d.deadline = now.Add(discoveryTimeout)
	return Out{Dst: broadcast, Payload: d.padi()}
}

func (d *Discovery) tags() []Tag {
	tags := []Tag{{Type: TagServiceName, Value: []byte(d.cfg.Service)}}
	if len(d.cfg.HostUniq) > 0 {
		tags = append(tags, Tag{Type: TagHostUniq, Value: d.cfg.HostUniq})
	}
	if d.cfg.MaxPayload > 0 {
		tags = append(tags, Tag{Type: TagPPPMaxPayload, Value: binary.BigEndian.AppendUint16(nil, d.cfg.MaxPayload)})
	}
	return tags
}

func (d *Discovery) padi() []byte { return (&Packet{Code: CodePADI, Tags: d.tags()}).Marshal() }

// Handle takes a discovery packet from src. It returns a packet to send,
// if any, and whether the session just began (PADS) or ended (PADT).
func (d *Discovery) Handle(src net.HardwareAddr, b []byte, now time.Time) (out *Out, began, ended bool) {
	p, err := ParsePacket(b)
	if err != nil {
		return nil, false, false
	}
	// Answers to another client on the segment carry its Host-Uniq.
	if len(d.cfg.HostUniq) > 0 && p.Code != CodePADT {
		if hu, ok := p.Tag(TagHostUniq); !ok || !bytes.Equal(hu, d.cfg.HostUniq) {
			return nil, false, false
		}
	}
	switch {
	case p.Code == CodePADO && d.State == DiscPADISent:
		if e := p.errorTag(); e != "" {
			d.LastError = "offer refused: " + e
			return nil, false, false
		}
		name, _ := p.Tag(TagACName)
		if d.cfg.ACName != "" && string(name) != d.cfg.ACName {
			return nil, false, false
		}
		// An AC that answers with a Service-Name tag names what it
		// offers; another service than ours is not ours.
		if svc, ok := p.Tag(TagServiceName); ok && d.cfg.Service != "" && string(svc) != d.cfg.Service {
			return nil, false, false
		}
		d.AC, d.ACName = bytes.Clone(src), printable(name)
		// PADR: the PADI's tags plus the AC's cookie and relay id echoed.
		tags := d.tags()
		for _, t := range p.Tags {
			if t.Type == TagACCookie || t.Type == TagRelaySessionID {
				tags = append(tags, t)
			}
		}
		d.padr = (&Packet{Code: CodePADR, Tags: tags}).Marshal()
		d.State, d.attempt, d.deadline = DiscPADRSent, 0, now.Add(discoveryTimeout)
		return &Out{Dst: d.AC, Payload: d.padr}, false, false
	case p.Code == CodePADS && d.State == DiscPADRSent && bytes.Equal(src, d.AC):
		if e := p.errorTag(); e != "" || p.SessionID == 0 {
			if e == "" {
				e = "session id 0"
			}
			d.LastError = "session refused: " + e
			o := d.Start(now)
			return &o, false, false
		}
		d.Session, d.State = p.SessionID, DiscSession
		if v, ok := p.Tag(TagPPPMaxPayload); ok && len(v) == 2 {
			d.MaxPayload = binary.BigEndian.Uint16(v)
		}
		return nil, true, false
	case p.Code == CodePADT && d.State == DiscSession && bytes.Equal(src, d.AC) && p.SessionID == d.Session:
		d.State = DiscIdle
		if e := p.errorTag(); e != "" {
			d.LastError = "ended by the ISP: " + e
		} else {
			d.LastError = "ended by the ISP (PADT)"
		}
		return nil, false, true
	}
	return nil, false, false
}

// Tick retries the current stage when its time is up; after
// discoveryAttempts it goes back to a PADI. It returns a packet to send,
// if any.
func (d *Discovery) Tick(now time.Time) *Out {
	if (d.State != DiscPADISent && d.State != DiscPADRSent) || now.Before(d.deadline) {
		return nil
	}
	d.attempt++
	if d.attempt >= discoveryAttempts {
		if d.State == DiscPADRSent {
			d.LastError = "no PADS from " + d.ACName
		} else {
			d.LastError = "no access concentrator answered"
		}
		o := d.Start(now)
		return &o
	}
	d.deadline = now.Add(discoveryTimeout << d.attempt)
	if d.State == DiscPADISent {
		return &Out{Dst: broadcast, Payload: d.padi()}
	}
	return &Out{Dst: d.AC, Payload: d.padr}
}

// Deadline is when Tick next has something to do (zero: nothing).
func (d *Discovery) Deadline() time.Time {
	if d.State == DiscPADISent || d.State == DiscPADRSent {
		return d.deadline
	}
	return time.Time{}
}

// PADT is the packet that ends the session.
func (d *Discovery) PADT(reason string) Out {
	p := &Packet{Code: CodePADT, SessionID: d.Session}
	if reason != "" {
		p.Tags = []Tag{{Type: TagGenericError, Value: []byte(reason)}}
	}
	d.State = DiscIdle
	return Out{Dst: d.AC, Payload: p.Marshal()}
}
