package dns

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// The cache-hit fast path works on wire bytes: a cached answer is also
// kept packed (wireAnswer), and a plain UDP query for it is answered by
// copying those bytes and patching the ID, the flags, the question's case
// (0x20 randomisation survives), the TTLs and the client's OPT record,
// with no allocation. Anything else (local names, a stale blocklist
// generation, an answer too big for the client, an unusual query) goes the
// ordinary way, which handles it in full.

// wireAnswer is a cached answer, packed without its OPT record.
type wireAnswer struct {
	b      []byte   // header (ARCOUNT without OPT), question, records
	ttls   []uint16 // offset of every record's TTL
	qnameN int      // length of the question name (at offset 12)
	cname  bool     // the answer holds a CNAME (blocking checks its targets)
}

// packWire packs m for the fast path, or returns nil if it cannot be.
func packWire(m *dns.Msg) *wireAnswer {
	c := *m
	c.Extra = nil
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			c.Extra = append(c.Extra, rr)
		}
	}
	c.Compress = true
	b, err := c.Pack()
	if err != nil || len(b) < 12 || binary.BigEndian.Uint16(b[4:]) != 1 {
		return nil
	}
	w := &wireAnswer{b: b, cname: hasCNAME(m)}
	off, ok := skipName(b, 12)
	if !ok {
		return nil
	}
	w.qnameN = off - 12
	off += 4 // qtype, qclass
	n := int(binary.BigEndian.Uint16(b[6:])) + int(binary.BigEndian.Uint16(b[8:])) + int(binary.BigEndian.Uint16(b[10:]))
	for range n {
		if off, ok = skipName(b, off); !ok || off+10 > len(b) {
			return nil
		}
		w.ttls = append(w.ttls, uint16(off+4))
		off += 10 + int(binary.BigEndian.Uint16(b[off+8:]))
	}
	if off != len(b) || len(b) > 0xffff {
		return nil
	}
	return w
}

// skipName returns the offset after the (possibly compressed) name at off.
func skipName(b []byte, off int) (int, bool) {
	for off < len(b) {
		l := int(b[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xc0 == 0xc0:
			return off + 2, off+2 <= len(b)
		case l&0xc0 != 0:
			return 0, false
		}
		off += 1 + l
	}
	return 0, false
}

// wireQuery is what the fast path reads of a query.
type wireQuery struct {
	key   []byte // the cache's wire key: lower-case dotted name, path, qtype, DO
	name  []byte // the name as dotted text, lower case
	qEnd  int    // offset after the question
	rd    bool
	cd    bool
	ad    bool
	edns  bool
	do    bool
	udpSz int
}

// parseQuery reads a plain query: one question of class IN, at most an
// OPT record (version 0; its options are ignored, as RFC 6891 allows).
// buf is the space for the key.
func parseQuery(b []byte, buf []byte) (wireQuery, bool) {
	var q wireQuery
	if len(b) < 17 || b[2]&0x80 != 0 || (b[2]>>3)&0xf != 0 ||
		binary.BigEndian.Uint16(b[4:]) != 1 || binary.BigEndian.Uint16(b[6:]) != 0 || binary.BigEndian.Uint16(b[8:]) != 0 {
		return q, false
	}
	ar := binary.BigEndian.Uint16(b[10:])
	if ar > 1 {
		return q, false
	}
	q.rd, q.cd, q.ad = b[2]&0x01 != 0, b[3]&0x10 != 0, b[3]&0x20 != 0
	off := 12
	k := buf[:0]
	for {
		if off >= len(b) {
			return q, false
		}
		l := int(b[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(b) || len(k)+l+1 > 254 {
			return q, false
		}
		for _, c := range b[off : off+l] {
			if c == '.' || c == '\\' || c <= ' ' || c >= 0x7f {
				return q, false // escaped in text form: the ordinary path
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			k = append(k, c)
		}
		k = append(k, '.')
		off += l
	}
	if len(k) == 0 {
		k = append(k, '.')
	}
	if off+4 > len(b) || binary.BigEndian.Uint16(b[off+2:]) != dns.ClassINET {
		return q, false
	}
	qtype := binary.BigEndian.Uint16(b[off:])
	off += 4
	q.qEnd = off
	if ar == 1 {
		// OPT: root name, type 41, class = UDP size, TTL = ext rcode,
		// version, flags.
		if off+11 > len(b) || b[off] != 0 || binary.BigEndian.Uint16(b[off+1:]) != dns.TypeOPT || b[off+6] != 0 {
			return q, false
		}
		q.edns = true
		q.udpSz = int(binary.BigEndian.Uint16(b[off+3:]))
		q.do = b[off+7]&0x80 != 0
		off += 11 + int(binary.BigEndian.Uint16(b[off+9:]))
	}
	if off != len(b) {
		return q, false
	}
	q.name = k
	q.key = append(k, 0, 0, byte(qtype>>8), byte(qtype), 0) // route's two bytes: answerCached's
	if q.do {
		q.key[len(q.key)-1] = 1
	}
	return q, true
}

// wireKey is the cache's wire index key of k: the same fields as
// parseQuery's key, with the route.
func wireKey(k cacheKey) string {
	b := make([]byte, 0, len(k.name)+5)
	b = append(b, k.name...)
	b = append(b, byte(k.route.Path), k.route.View, byte(k.qtype>>8), byte(k.qtype), 0)
	if k.do {
		b[len(b)-1] = 1
	}
	return string(b)
}

// answerCached answers the UDP query in req from the cache into out and
// returns the answer's length, or 0 when the ordinary path must answer.
// It allocates nothing.
func (r *Resolver) answerCached(req []byte, client netip.Addr, iface string, hint Route, out []byte) int {
	if r.cache.max <= 0 || !r.allowed(client) {
		return 0
	}
	var kb [272]byte
	q, ok := parseQuery(req, kb[:])
	if !ok || !r.forwardable(q.name) || (q.cd && r.cfg.Validator != nil) {
		return 0
	}
	if r.cfg.Blocker != nil {
		if _, blocked := r.cfg.Blocker.Block(q.name, iface); blocked {
			return 0 // answered, and counted, by the ordinary path
		}
	}
	rt := r.route(client, iface, hint)
	q.key[len(q.name)], q.key[len(q.name)+1] = byte(rt.Path), rt.View
	var gen uint64
	if r.cfg.HookGeneration != nil {
		gen = r.cfg.HookGeneration()
	}
	now := time.Now()
	w, stored, ok := r.cache.getWire(q.key, now, gen)
	if !ok || (w.cname && r.cfg.Blocker != nil && r.cfg.Blocker.Blocking(iface)) {
		return 0
	}
	n := writeAnswer(w, stored, now, req, &q, out)
	if n == 0 {
		return 0
	}
	r.st.queries.Add(1)
	r.st.tick()
	r.st.hits.Add(1)
	r.blocks.of(client).queries.Add(1)
	if r.qlog != nil {
		k := len(q.name) // the key: name, route (2), type (2), DO
		qtype := uint16(q.key[k+2])<<8 | uint16(q.key[k+3])
		r.logQuery(client, dns.Question{Name: string(q.name), Qtype: qtype}, int(w.b[3]&0xf), howCache, "")
	}
	return n
}

// forwardable says whether name (lower case, dotted) is one the resolver
// forwards and caches: not the local domain (leases come and go there),
// not .local (mDNS) and not the reverse zones (some are answered here).
func (r *Resolver) forwardable(name []byte) bool {
	return !hasSuffixLabel(name, "local.") && !hasSuffixLabel(name, "arpa.") &&
		(r.cfg.Domain == "" || !hasSuffixLabel(name, r.cfg.Domain+"."))
}

// hasSuffixLabel reports whether name is suffix or ends with "."+suffix.
func hasSuffixLabel[T string | []byte](name T, suffix string) bool {
	n, s := len(name), len(suffix)
	if n < s || string(name[n-s:]) != suffix {
		return false
	}
	return n == s || name[n-s-1] == '.'
}

// writeAnswer writes the cached answer w (stored at stored) to the UDP
// query req (q, as parseQuery read it) into out: its ID, flags and
// question as asked, TTLs aged to now, the client's OPT. It returns the
// length, or 0 when the answer does not fit the client or out (the
// ordinary path then truncates). It allocates nothing.
func writeAnswer(w *wireAnswer, stored, now time.Time, req []byte, q *wireQuery, out []byte) int {
	limit := dns.MinMsgSize
	if q.edns {
		limit = max(q.udpSz, dns.MinMsgSize)
	}
	n := len(w.b)
	if q.edns {
		n += 11
	}
	if n > limit || n > len(out) {
		return 0 // truncation is the ordinary path's
	}
	copy(out, w.b)
	copy(out[0:2], req[0:2])                  // ID
	out[2] = 0x80 | w.b[2]&0x04 | req[2]&0x01 // QR, AA as upstream said, RD as asked
	out[3] = 0x80 | req[3]&0x10 | w.b[3]&0x0f // RA, CD as asked, rcode
	if q.do || q.ad {
		out[3] |= w.b[3] & 0x20 // AD, for a client that understands it (RFC 6840 §5.8)
	}
	copy(out[12:12+w.qnameN], req[12:12+w.qnameN]) // the question as asked
	age := uint32(now.Sub(stored) / time.Second)
	for _, off := range w.ttls {
		ttl := binary.BigEndian.Uint32(out[off:])
		if ttl > age {
			ttl -= age
		} else {
			ttl = 0
		}
		binary.BigEndian.PutUint32(out[off:], ttl)
	}
	if q.edns {
		opt := out[len(w.b):n]
		opt[0] = 0
		binary.BigEndian.PutUint16(opt[1:], dns.TypeOPT)
		binary.BigEndian.PutUint16(opt[3:], uint16(max(q.udpSz, dns.MinMsgSize)))
		opt[5], opt[6], opt[7], opt[8] = 0, 0, 0, 0
		if q.do {
			opt[7] = 0x80
		}
		opt[9], opt[10] = 0, 0
		binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(w.b[10:])+1)
	}
	return n
}
