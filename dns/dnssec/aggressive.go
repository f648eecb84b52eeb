package dnssec

import (
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Aggressive use of validated NSEC records (RFC 8198): a secure negative
// answer's NSEC records prove more than the one name asked; until they
// expire, a question for another name they cover is answered from them,
// with the zone's SOA, without asking upstream. Only NSEC: NSEC3 spans
// are hashes and often opt-out, and their synthesis is not worth the risk.

// maxNSECs bounds the NSEC records kept, over all zones.
const maxNSECs = 20000

type nsecCache struct {
	mu    sync.Mutex
	zones map[string]*zoneNSECs
	n     int
}

// zoneNSECs are one zone's validated NSEC RRsets and its SOA.
type zoneNSECs struct {
	soa       *rrset
	soaStored time.Time
	nsecs     map[string]*heldNSEC // by owner
}

type heldNSEC struct {
	set     *rrset
	stored  time.Time
	expires time.Time
}

func newNSECCache() *nsecCache { return &nsecCache{zones: map[string]*zoneNSECs{}} }

// add keeps a validated denial's NSEC records for as long as it holds.
func (c *nsecCache) add(zone string, m *dns.Msg, p proof, now time.Time) {
	if len(p.nsecs) == 0 || p.soa == nil || p.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n+len(p.nsecs) > maxNSECs {
		clear(c.zones)
		c.n = 0
	}
	z := c.zones[zone]
	if z == nil {
		z = &zoneNSECs{nsecs: map[string]*heldNSEC{}}
		c.zones[zone] = z
	}
	z.soa, z.soaStored = p.soa, now
	for _, s := range p.nsecs {
		if _, ok := z.nsecs[s.name]; !ok {
			c.n++
		}
		z.nsecs[s.name] = &heldNSEC{set: s, stored: now, expires: now.Add(p.ttl)}
	}
}

// Synthesize answers q from validated NSEC records, if they prove it has
// no answer: an NXDOMAIN (the name and its wildcard covered) or a NODATA
// (an NSEC at the name without the type). Nil when they do not.
func (v *Validator) Synthesize(q dns.Question) *dns.Msg {
	now := v.now()
	name := canonical(q.Name)
	c := v.nsec
	c.mu.Lock()
	defer c.mu.Unlock()
	var zname string
	var z *zoneNSECs
	for n := name; ; n = parentOf(n) {
		if z = c.zones[n]; z != nil {
			zname = n
			break
		}
		if n == "." {
			return nil
		}
	}
	var live []*dns.NSEC
	held := map[*dns.NSEC]*heldNSEC{}
	for owner, h := range z.nsecs {
		if !now.Before(h.expires) {
			delete(z.nsecs, owner)
			c.n--
			continue
		}
		for _, rr := range h.set.rrs {
			n := rr.(*dns.NSEC)
			live = append(live, n)
			held[n] = h
		}
	}
	var p proof
	if r := nsecDenial(&p, live, zname, name, q.Qtype); r.Security != Secure {
		return nil
	}
	// The NSEC records the proof needs: the one at or covering the name,
	// and the one covering its wildcard.
	m := new(dns.Msg)
	m.Rcode = dns.RcodeSuccess
	if p.nxdomain {
		m.Rcode = dns.RcodeNameError
	}
	var used []*heldNSEC
	for _, n := range live {
		owner := canonical(n.Hdr.Name)
		if owner == name || covers(n, zname, name) || (p.nxdomain && covers(n, zname, "*."+closestEncloser(name, owner))) ||
			owner == "*."+closestEncloser(name, owner) {
			if h := held[n]; !slices.Contains(used, h) {
				used = append(used, h)
			}
		}
	}
	if len(used) == 0 {
		return nil
	}
	soaAge := uint32(now.Sub(z.soaStored) / time.Second)
	if soaAge >= uint32(ttlOf(z.soa.rrs)/time.Second) {
		return nil
	}
	m.Ns = appendAged(m.Ns, z.soa, soaAge)
	for _, h := range used {
		m.Ns = appendAged(m.Ns, h.set, uint32(now.Sub(h.stored)/time.Second))
	}
	m.AuthenticatedData = true
	return m
}

// appendAged appends copies of an RRset and its signatures, aged.
func appendAged(out []dns.RR, s *rrset, age uint32) []dns.RR {
	add := func(rr dns.RR) {
		c := dns.Copy(rr)
		if h := c.Header(); h.Ttl > age {
			h.Ttl -= age
		} else {
			h.Ttl = 0
		}
		out = append(out, c)
	}
	for _, rr := range s.rrs {
		add(rr)
	}
	for _, sig := range s.sigs {
		add(sig)
	}
	return out
}
