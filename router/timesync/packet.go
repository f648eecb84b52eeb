package timesync

import (
	"encoding/binary"
	"time"
)

// packetLen is the NTP header without extensions or MAC (RFC 5905 §7.3).
const packetLen = 48

const (
	modeClient = 3
	modeServer = 4

	leapNone  = 0
	leapAlarm = 3 // "clock unsynchronised"

	// stratumUnsync is what an unsynchronised server announces (RFC 5905
	// §7.3: 16 means unsynchronised).
	stratumUnsync = 16
	maxStratum    = 15
)

// ntpEpochOffset is the seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const ntpEpochOffset = 2208988800

// Source is what the server knows of its own synchronisation, for the
// fields of its answers.
type Source struct {
	Synced    bool
	Stratum   uint8     // the upstream's stratum; answers carry Stratum+1
	RefID     uint32    // the upstream's identity (its IPv4 address, or a hash of its IPv6 one)
	RefTime   time.Time // when the clock was last set or corrected
	RootDelay time.Duration
	RootDisp  time.Duration
}

// Reply answers one NTP datagram received at rx, to be sent at tx. It
// returns nil for anything that is not a client request the server should
// answer (too short, another mode, an unknown version): such datagrams are
// dropped. The answer is as long as the request's header, so the server
// amplifies nothing.
func Reply(req []byte, rx, tx time.Time, src Source) []byte {
	if len(req) < packetLen {
		return nil
	}
	vn := req[0] >> 3 & 7
	if req[0]&7 != modeClient || vn < 1 || vn > 4 {
		return nil
	}
	out := make([]byte, packetLen)
	li, stratum := uint8(leapNone), src.Stratum+1
	if !src.Synced {
		li, stratum = leapAlarm, stratumUnsync
	} else if stratum > maxStratum {
		stratum = maxStratum
	}
	out[0] = li<<6 | vn<<3 | modeServer
	out[1] = stratum
	out[2] = req[2] // poll: the client's own
	out[3] = 0xec   // precision 2^-20 s, about a microsecond
	binary.BigEndian.PutUint32(out[4:], shortFormat(src.RootDelay))
	binary.BigEndian.PutUint32(out[8:], shortFormat(src.RootDisp))
	if src.Synced {
		binary.BigEndian.PutUint32(out[12:], src.RefID)
		binary.BigEndian.PutUint64(out[16:], timestamp(src.RefTime))
	} else {
		copy(out[12:], "INIT")
	}
	copy(out[24:32], req[40:48]) // origin: the client's transmit time
	binary.BigEndian.PutUint64(out[32:], timestamp(rx))
	binary.BigEndian.PutUint64(out[40:], timestamp(tx))
	return out
}

// timestamp is t in NTP's 64-bit format: seconds since 1900 (modulo the
// era, so 2036 wraps as the protocol intends) and a binary fraction.
func timestamp(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

// shortFormat is d in NTP's 16.16 seconds, saturating.
func shortFormat(d time.Duration) uint32 {
	if d < 0 {
		return 0
	}
	v := uint64(d) << 16 / uint64(time.Second)
	if v > 0xffffffff {
		return 0xffffffff
	}
	return uint32(v)
}
