package sqm

import (
	"encoding/binary"
	"time"
)

// ICMP timestamp messages (RFC 792): the request carries when it left
// (originate), the reply when the reflector received it and when it sent
// the answer, in milliseconds since midnight UTC. With the arrival time
// they give each direction's delay, offset by the two clocks' difference.
const (
	icmpTimestamp      = 13
	icmpTimestampReply = 14
	timestampLen       = 20
	dayMs              = 24 * 60 * 60 * 1000
)

// msOfDay is t as ICMP timestamps count: milliseconds since midnight UTC.
func msOfDay(t time.Time) uint32 {
	t = t.UTC()
	y, m, d := t.Date()
	return uint32(t.Sub(time.Date(y, m, d, 0, 0, 0, 0, time.UTC)).Milliseconds())
}

// timestampRequest is an ICMP timestamp request with its checksum.
func timestampRequest(id, seq uint16, originate uint32) []byte {
	b := make([]byte, timestampLen)
	b[0] = icmpTimestamp
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	binary.BigEndian.PutUint32(b[8:], originate)
	binary.BigEndian.PutUint16(b[2:], checksum(b))
	return b
}

// timestampReply is a parsed reply.
type timestampReply struct {
	ID, Seq                      uint16
	Originate, Receive, Transmit uint32
}

// parseTimestampReply reads an ICMP message (from its type byte on) as a
// timestamp reply. Replies with a bad checksum, or with the high bit set
// (RFC 792: not milliseconds since midnight), are not.
func parseTimestampReply(b []byte) (timestampReply, bool) {
	if len(b) < timestampLen || b[0] != icmpTimestampReply || b[1] != 0 || checksum(b[:timestampLen]) != 0 {
		return timestampReply{}, false
	}
	r := timestampReply{ID: binary.BigEndian.Uint16(b[4:]), Seq: binary.BigEndian.Uint16(b[6:]),
		Originate: binary.BigEndian.Uint32(b[8:]), Receive: binary.BigEndian.Uint32(b[12:]), Transmit: binary.BigEndian.Uint32(b[16:])}
	if r.Receive >= dayMs || r.Transmit >= dayMs || r.Originate >= dayMs {
		return timestampReply{}, false
	}
	return r, true
}

// owd is the one-way delays of a reply that arrived at arrival (ms of the
// day), each taken modulo a day into ±12 h: the clocks' offset makes them
// anything, and midnight passes.
func (r timestampReply) owd(arrival uint32) (up, down time.Duration) {
	wrap := func(a, b uint32) time.Duration {
		d := (int64(a) - int64(b)) % dayMs
		if d > dayMs/2 {
			d -= dayMs
		} else if d <= -dayMs/2 {
			d += dayMs
		}
		return time.Duration(d) * time.Millisecond
	}
	return wrap(r.Receive, r.Originate), wrap(arrival, r.Transmit)
}

// checksum is the Internet checksum (RFC 1071) of b; over a message with
// its checksum in place it is 0.
func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
