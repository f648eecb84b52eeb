package pppoe

import (
	"encoding/binary"
	"fmt"
	"time"
)

// PPP frames as the kernel's PPP channel carries them: the protocol
// number, then the information field (no address and control bytes).

// PPP protocol numbers.
const (
	ProtoIPv4   = 0x0021
	ProtoIPv6   = 0x0057
	ProtoIPCP   = 0x8021
	ProtoIPv6CP = 0x8057
	ProtoLCP    = 0xc021
	ProtoPAP    = 0xc023
	ProtoCHAP   = 0xc223
)

// Control protocol codes (RFC 1661 §5), shared by LCP, IPCP and IPv6CP;
// LCP alone has 8 and up.
const (
	codeConfReq   = 1
	codeConfAck   = 2
	codeConfNak   = 3
	codeConfRej   = 4
	codeTermReq   = 5
	codeTermAck   = 6
	codeCodeRej   = 7
	codeProtoRej  = 8
	codeEchoReq   = 9
	codeEchoReply = 10
	codeDiscard   = 11
)

// ctlPacket is one control protocol packet (LCP, IPCP, IPv6CP, PAP or CHAP:
// all have code, identifier and length).
type ctlPacket struct {
	Code, ID byte
	Data     []byte
}

// parseFrame splits a frame into its protocol and information field.
func parseFrame(b []byte) (uint16, []byte, error) {
	if len(b) < 2 {
		return 0, nil, fmt.Errorf("ppp frame: %w", errShort)
	}
	return binary.BigEndian.Uint16(b), b[2:], nil
}

// parsePacket parses a control packet; octets past its length field are
// padding and dropped (RFC 1661 §5).
func parsePacket(b []byte) (ctlPacket, error) {
	if len(b) < 4 {
		return ctlPacket{}, fmt.Errorf("ppp control packet: %w header", errShort)
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < 4 || n > len(b) {
		return ctlPacket{}, fmt.Errorf("ppp control packet: length %d of %d octets", n, len(b))
	}
	return ctlPacket{Code: b[0], ID: b[1], Data: b[4:n]}, nil
}

// frame encodes p as a frame of protocol proto.
func (p ctlPacket) frame(proto uint16) []byte {
	b := make([]byte, 0, 6+len(p.Data))
	b = binary.BigEndian.AppendUint16(b, proto)
	b = append(b, p.Code, p.ID)
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(p.Data)))
	return append(b, p.Data...)
}

// option is one configuration option (type, length, data).
type option struct {
	Type byte
	Data []byte
}

func parseOptions(b []byte) ([]option, error) {
	var opts []option
	for len(b) > 0 {
		if len(b) < 2 || b[1] < 2 || int(b[1]) > len(b) {
			return nil, fmt.Errorf("ppp option: malformed at %d octets left", len(b))
		}
		opts = append(opts, option{Type: b[0], Data: b[2:b[1]]})
		b = b[b[1]:]
	}
	return opts, nil
}

func marshalOptions(opts []option) []byte {
	var b []byte
	for _, o := range opts {
		b = append(b, o.Type, byte(2+len(o.Data)))
		b = append(b, o.Data...)
	}
	return b
}

// Negotiation timing (RFC 1661 §4.6): the restart timer and how often a
// request is sent before the peer is taken to be gone.
const (
	restartTimer = 3 * time.Second
	maxConfigure = 10
	maxTerminate = 2
)

// negotiation is the option negotiation of one control protocol (LCP, IPCP
// or IPv6CP): RFC 1661's automaton reduced to what a client needs. The
// protocol's own rules are its three functions.
type negotiation struct {
	proto uint16
	// request is our Configure-Request's options from what we want now.
	request func() []option
	// judge sorts the peer's options into acknowledged, to be changed
	// (with our counter-proposal) and rejected.
	judge func(opts []option) (nak, rej []option)
	// naked and rejected take the peer's answer to our request.
	naked, rejected func(opts []option)

	started          bool
	id               byte
	sent             []byte // the options of the request in flight
	ackRcvd, ackSent bool
	tries            int
	deadline         time.Time
}

func (n *negotiation) opened() bool { return n.ackRcvd && n.ackSent }

// start sends the first Configure-Request.
func (n *negotiation) start(now time.Time) []byte {
	n.started, n.ackRcvd, n.ackSent, n.tries = true, false, false, 0
	return n.sendRequest(now)
}

func (n *negotiation) sendRequest(now time.Time) []byte {
	n.id++
	n.tries++
	n.sent = marshalOptions(n.request())
	n.deadline = now.Add(restartTimer)
	return ctlPacket{Code: codeConfReq, ID: n.id, Data: n.sent}.frame(n.proto)
}

// handle takes the peer's negotiation packet and returns what to send.
func (n *negotiation) handle(p ctlPacket, now time.Time) [][]byte {
	switch p.Code {
	case codeConfReq:
		opts, err := parseOptions(p.Data)
		if err != nil {
			return nil // a malformed request is silently discarded
		}
		var out [][]byte
		if !n.started {
			out = append(out, n.start(now))
		}
		if n.opened() {
			// The peer renegotiates: ours must be agreed again too.
			out = append(out, n.start(now))
		}
		nak, rej := n.judge(opts)
		switch {
		case len(rej) > 0:
			n.ackSent = false
			out = append(out, ctlPacket{Code: codeConfRej, ID: p.ID, Data: marshalOptions(rej)}.frame(n.proto))
		case len(nak) > 0:
			n.ackSent = false
			out = append(out, ctlPacket{Code: codeConfNak, ID: p.ID, Data: marshalOptions(nak)}.frame(n.proto))
		default:
			n.ackSent = true
			out = append(out, ctlPacket{Code: codeConfAck, ID: p.ID, Data: p.Data}.frame(n.proto))
		}
		return out
	case codeConfAck:
		if n.started && p.ID == n.id && string(p.Data) == string(n.sent) {
			n.ackRcvd, n.tries = true, 0
		}
	case codeConfNak, codeConfRej:
		if !n.started || p.ID != n.id || n.ackRcvd {
			return nil
		}
		opts, err := parseOptions(p.Data)
		if err != nil {
			return nil
		}
		if p.Code == codeConfNak {
			n.naked(opts)
		} else {
			n.rejected(opts)
		}
		return [][]byte{n.sendRequest(now)}
	}
	return nil
}

// tick resends an unanswered request; failed says the peer never answered.
func (n *negotiation) tick(now time.Time) (out []byte, failed bool) {
	if !n.started || n.ackRcvd || now.Before(n.deadline) {
		return nil, false
	}
	if n.tries >= maxConfigure {
		return nil, true
	}
	return n.sendRequest(now), false
}

// without returns opts less those of the types in drop.
func without(opts []option, drop []option) []option {
	var out []option
	for _, o := range opts {
		keep := true
		for _, d := range drop {
			if d.Type == o.Type {
				keep = false
			}
		}
		if keep {
			out = append(out, o)
		}
	}
	return out
}
