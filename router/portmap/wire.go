package portmap

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// Port is where NAT-PMP and PCP listen (and answer from).
const Port = 5351

// Handler answers NAT-PMP and PCP requests from the LAN.
type Handler struct {
	Table *Table
	// External is the WAN's IPv4 address now (invalid: none yet).
	External func() netip.Addr
	// Start is the epoch: both protocols report the seconds since it, so
	// that clients notice a restart and map again.
	Start time.Time
	// NoNATPMP, NoPCP turn one protocol off (then answered as an
	// unknown version).
	NoNATPMP, NoPCP bool
}

// Handle answers one datagram from client (its source address); nil:
// no answer (not a request, or too short to answer).
func (h *Handler) Handle(pkt []byte, client netip.Addr, now time.Time) []byte {
	if len(pkt) < 2 {
		return nil
	}
	switch {
	case pkt[0] == 0 && !h.NoNATPMP:
		return h.natpmp(pkt, client, now)
	case pkt[0] == 2 && !h.NoPCP:
		return h.pcp(pkt, client, now)
	}
	if pkt[1]&0x80 != 0 {
		return nil // a response: never answered
	}
	// An unknown version: PCP's answer (RFC 6887 §9), which a NAT-PMP
	// client reads as one too.
	return h.pcpError(pkt[1], 1, 0, now)
}

func (h *Handler) epoch(now time.Time) uint32 { return uint32(max(now.Sub(h.Start), 0) / time.Second) }

// NAT-PMP result codes (RFC 6886 §3.5).
const (
	pmpSuccess     = 0
	pmpUnsuppVer   = 1
	pmpRefused     = 2
	pmpNetFailure  = 3
	pmpNoResources = 4
	pmpUnsuppOp    = 5
)

func (h *Handler) natpmp(pkt []byte, client netip.Addr, now time.Time) []byte {
	op := pkt[1]
	if op&0x80 != 0 {
		return nil
	}
	reply := func(size int, code uint16) []byte {
		b := make([]byte, size)
		b[1] = op | 0x80
		binary.BigEndian.PutUint16(b[2:], code)
		binary.BigEndian.PutUint32(b[4:], h.epoch(now))
		return b
	}
	switch op {
	case 0:
		ext := h.External()
		if !ext.Is4() {
			return reply(12, pmpNetFailure)
		}
		b := reply(12, pmpSuccess)
		a := ext.As4()
		copy(b[8:], a[:])
		return b
	case 1, 2:
		if len(pkt) < 12 {
			return nil
		}
		proto := map[byte]string{1: "udp", 2: "tcp"}[op]
		internal := binary.BigEndian.Uint16(pkt[4:])
		suggested := binary.BigEndian.Uint16(pkt[6:])
		lifetime := time.Duration(binary.BigEndian.Uint32(pkt[8:])) * time.Second
		b := reply(16, pmpSuccess)
		binary.BigEndian.PutUint16(b[8:], internal)
		if lifetime == 0 {
			// Delete (internal 0: all the client's mappings of proto).
			if err := h.Table.Unmap(client, proto, internal, "natpmp", [12]byte{}); err != nil {
				binary.BigEndian.PutUint16(b[2:], pmpRefused)
			}
			return b
		}
		if internal == 0 {
			binary.BigEndian.PutUint16(b[2:], pmpRefused)
			return b
		}
		if !h.External().Is4() {
			binary.BigEndian.PutUint16(b[2:], pmpNetFailure)
			return b
		}
		m, err := h.Table.Map(Mapping{Proto: proto, External: suggested, Client: client, Internal: internal, By: "natpmp"}, lifetime, now)
		switch {
		case errors.Is(err, ErrNoResources):
			binary.BigEndian.PutUint16(b[2:], pmpNoResources)
		case err != nil:
			binary.BigEndian.PutUint16(b[2:], pmpRefused)
		default:
			binary.BigEndian.PutUint16(b[10:], m.External)
			binary.BigEndian.PutUint32(b[12:], uint32(m.Expires.Sub(now).Round(time.Second)/time.Second))
		}
		return b
	}
	return reply(8, pmpUnsuppOp)
}

// PCP result codes (RFC 6887 §7.4).
const (
	pcpSuccess         = 0
	pcpUnsuppVersion   = 1
	pcpNotAuthorized   = 2
	pcpMalformed       = 3
	pcpUnsuppOpcode    = 4
	pcpUnsuppOption    = 5
	pcpNetworkFailure  = 7
	pcpNoResources     = 8
	pcpUnsuppProtocol  = 9
	pcpAddressMismatch = 12
)

const (
	pcpHeader  = 24
	pcpMapBody = 36
	pcpMaxSize = 1100
	// pcpErrorLifetime is how long a client waits before asking again
	// after a long-term error (RFC 6887 §7.2: 30 minutes for those).
	pcpErrorLifetime = 30
)

func (h *Handler) pcpError(op byte, code byte, lifetime uint32, now time.Time) []byte {
	b := make([]byte, pcpHeader)
	b[0], b[1], b[3] = 2, op|0x80, code
	binary.BigEndian.PutUint32(b[4:], lifetime)
	binary.BigEndian.PutUint32(b[8:], h.epoch(now))
	return b
}

func (h *Handler) pcp(pkt []byte, client netip.Addr, now time.Time) []byte {
	op := pkt[1]
	if op&0x80 != 0 {
		return nil // a response
	}
	if len(pkt) < pcpHeader || len(pkt) > pcpMaxSize || len(pkt)%4 != 0 {
		if len(pkt) < 4 {
			return nil
		}
		return h.pcpError(op, pcpMalformed, pcpErrorLifetime, now)
	}
	op &= 0x7f
	if op != 1 { // MAP; ANNOUNCE (0) and PEER are not offered
		return h.pcpError(op, pcpUnsuppOpcode, pcpErrorLifetime, now)
	}
	if len(pkt) < pcpHeader+pcpMapBody {
		return h.pcpError(op, pcpMalformed, pcpErrorLifetime, now)
	}
	lifetime := time.Duration(binary.BigEndian.Uint32(pkt[4:])) * time.Second
	said := netip.AddrFrom16([16]byte(pkt[8:24])).Unmap()
	body := pkt[pcpHeader : pcpHeader+pcpMapBody]
	// Options: none is offered; a mandatory one (code < 128) is refused.
	for opts := pkt[pcpHeader+pcpMapBody:]; len(opts) > 0; {
		if len(opts) < 4 {
			return h.pcpError(op, pcpMalformed, pcpErrorLifetime, now)
		}
		n := 4 + int(binary.BigEndian.Uint16(opts[2:]))
		n += (4 - n%4) % 4
		if n > len(opts) {
			return h.pcpError(op, pcpMalformed, pcpErrorLifetime, now)
		}
		if opts[0] < 128 {
			return h.pcpError(op, pcpUnsuppOption, pcpErrorLifetime, now)
		}
		opts = opts[n:]
	}
	b := make([]byte, pcpHeader+pcpMapBody)
	b[0], b[1] = 2, op|0x80
	binary.BigEndian.PutUint32(b[8:], h.epoch(now))
	copy(b[pcpHeader:], body[:16]) // nonce, protocol, reserved, internal port
	fail := func(code byte) []byte {
		b[3] = code
		binary.BigEndian.PutUint32(b[4:], pcpErrorLifetime)
		return b
	}
	if said != client.Unmap() {
		return fail(pcpAddressMismatch)
	}
	nonce := [12]byte(body[:12])
	proto := map[byte]string{6: "tcp", 17: "udp"}[body[12]]
	internal := binary.BigEndian.Uint16(body[16:])
	suggested := binary.BigEndian.Uint16(body[18:])
	if proto == "" || internal == 0 {
		// All protocols or all ports: a mapping for everything is not
		// offered.
		return fail(pcpUnsuppProtocol)
	}
	ext := h.External()
	if lifetime == 0 {
		if err := h.Table.Unmap(client, proto, internal, "pcp", nonce); err != nil {
			return fail(pcpNotAuthorized)
		}
		binary.BigEndian.PutUint16(b[pcpHeader+18:], suggested)
		return b
	}
	if !ext.Is4() {
		return fail(pcpNetworkFailure)
	}
	m, err := h.Table.Map(Mapping{Proto: proto, External: suggested, Client: client, Internal: internal, By: "pcp", Nonce: nonce}, lifetime, now)
	switch {
	case errors.Is(err, ErrNoResources):
		return fail(pcpNoResources)
	case errors.Is(err, ErrUnsupported):
		return fail(pcpUnsuppProtocol)
	case err != nil:
		return fail(pcpNotAuthorized)
	}
	binary.BigEndian.PutUint32(b[4:], uint32(m.Expires.Sub(now).Round(time.Second)/time.Second))
	binary.BigEndian.PutUint16(b[pcpHeader+18:], m.External)
	a := ext.As16() // IPv4-mapped
	copy(b[pcpHeader+20:], a[:])
	return b
}
