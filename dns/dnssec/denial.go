package dnssec

import (
	"slices"
	"time"

	"github.com/miekg/dns"
)

// maxNSEC3Iterations: NSEC3 chains hashed more often than this are
// treated as unsigned (RFC 9276 §3.2), as unbound and BIND do: checking
// them would let a zone make the validator hash without end.
const maxNSEC3Iterations = 150

// proof is what a validated denial says.
type proof struct {
	nxdomain   bool          // the name does not exist (else: no RRset of the type)
	delegation bool          // a DS denial at a delegation: the child is unsigned
	ttl        time.Duration // how long the denial holds (RFC 9077)
	nsecs      []*rrset      // the NSEC RRsets it rests on
	soa        *rrset
}

// denial checks m's authority section, signed by z, proves that name has
// no qtype records (or does not exist at all).
func (v *Validator) denial(z *zone, m *dns.Msg, name string, qtype uint16, now time.Time) (proof, Result) {
	var p proof
	res := Result{Security: Secure}
	ttl := uint32(1 << 31)
	var nsecs []*dns.NSEC
	var nsec3s []*dns.NSEC3
	for _, s := range rrsets(m.Ns) {
		switch s.rtype {
		case dns.TypeSOA, dns.TypeNSEC, dns.TypeNSEC3:
		default:
			continue
		}
		r := v.verify(z, s, now)
		if r.Security != Secure {
			return p, r
		}
		res = res.and(r)
		for _, rr := range s.rrs {
			ttl = min(ttl, rr.Header().Ttl)
			switch rr := rr.(type) {
			case *dns.SOA:
				ttl = min(ttl, rr.Minttl)
				p.soa = s
			case *dns.NSEC:
				nsecs = append(nsecs, rr)
			case *dns.NSEC3:
				nsec3s = append(nsec3s, rr)
			}
		}
		if s.rtype == dns.TypeNSEC {
			p.nsecs = append(p.nsecs, s)
		}
	}
	if ttl == 1<<31 {
		ttl = 0
	}
	p.ttl = time.Duration(ttl) * time.Second
	var r Result
	switch {
	case len(nsecs) > 0:
		r = nsecDenial(&p, nsecs, z.name, name, qtype)
	case len(nsec3s) > 0:
		r = nsec3Denial(&p, nsec3s, z.name, name, qtype)
	default:
		r = bogus(dns.ExtendedErrorCodeNSECMissing, "no NSEC or NSEC3 record proves that %s %s does not exist", name, dns.TypeToString[qtype])
	}
	if r.Security != Secure {
		return p, r
	}
	return p, res
}

// hasType reports whether a type bitmap lists t.
func hasType(bitmap []uint16, t uint16) bool { return slices.Contains(bitmap, t) }

// nodata checks a record at name (NSEC or NSEC3, its bitmap given) proves
// that name has no qtype records.
func nodata(p *proof, bitmap []uint16, name string, qtype uint16) Result {
	if hasType(bitmap, qtype) || hasType(bitmap, dns.TypeCNAME) {
		return bogus(dns.ExtendedErrorCodeDNSBogus, "the denial of %s %s lists that type", name, dns.TypeToString[qtype])
	}
	delegation := hasType(bitmap, dns.TypeNS) && !hasType(bitmap, dns.TypeSOA)
	if delegation && qtype != dns.TypeDS {
		// RFC 6840 §4.4: the parent's record at a cut says nothing of
		// the child's data.
		return bogus(dns.ExtendedErrorCodeDNSBogus, "the denial of %s %s is the parent side of a delegation", name, dns.TypeToString[qtype])
	}
	p.delegation = delegation && qtype == dns.TypeDS
	return Result{Security: Secure}
}

// covers reports whether NSEC n proves name absent: name sorts strictly
// between its owner and next name, in zone.
func covers(n *dns.NSEC, zone, name string) bool {
	owner, next := canonical(n.Hdr.Name), canonical(n.NextDomain)
	if !isSubdomain(zone, name) || compareNames(owner, name) >= 0 {
		return false
	}
	if compareNames(owner, next) >= 0 {
		return true // the zone's last NSEC: its next name is the apex
	}
	return compareNames(name, next) < 0
}

// delegates reports whether NSEC n is at a zone cut or DNAME above name,
// so that it says nothing of names below (RFC 6840 §4.1).
func delegates(owner string, bitmap []uint16, name string) bool {
	if owner == name || !isSubdomain(owner, name) {
		return false
	}
	return hasType(bitmap, dns.TypeDNAME) || (hasType(bitmap, dns.TypeNS) && !hasType(bitmap, dns.TypeSOA))
}

// nsecDenial checks the NSEC proofs of RFC 4035 §5.4.
func nsecDenial(p *proof, nsecs []*dns.NSEC, zone, name string, qtype uint16) Result {
	for _, n := range nsecs {
		if canonical(n.Hdr.Name) == name {
			return nodata(p, n.TypeBitMap, name, qtype)
		}
	}
	var cover *dns.NSEC
	for _, n := range nsecs {
		if covers(n, zone, name) && !delegates(canonical(n.Hdr.Name), n.TypeBitMap, name) {
			cover = n
			break
		}
	}
	if cover == nil {
		return bogus(dns.ExtendedErrorCodeNSECMissing, "no NSEC proves %s absent", name)
	}
	if next := canonical(cover.NextDomain); next != name && isSubdomain(name, next) {
		// An empty non-terminal: name exists, with no records at all.
		return Result{Security: Secure}
	}
	ce := closestEncloser(name, cover.Hdr.Name)
	if o := closestEncloser(name, cover.NextDomain); dns.CountLabel(o) > dns.CountLabel(ce) {
		ce = o
	}
	wc := "*." + ce
	for _, n := range nsecs {
		if canonical(n.Hdr.Name) == wc {
			// The wildcard exists without the type: NODATA by wildcard.
			return nodata(p, n.TypeBitMap, name, qtype)
		}
	}
	for _, n := range nsecs {
		if covers(n, zone, wc) {
			p.nxdomain = true
			return Result{Security: Secure}
		}
	}
	return bogus(dns.ExtendedErrorCodeNSECMissing, "no NSEC proves the wildcard %s absent", wc)
}

// nsec3Denial checks the NSEC3 proofs of RFC 5155 §8.
func nsec3Denial(p *proof, nsec3s []*dns.NSEC3, zone, name string, qtype uint16) Result {
	for _, n := range nsec3s {
		if n.Hash != dns.SHA1 {
			return insecure("NSEC3 hash algorithm %d is not supported here", n.Hash)
		}
		if n.Iterations > maxNSEC3Iterations {
			return insecure("NSEC3 with %d iterations (over %d) is treated as unsigned", n.Iterations, maxNSEC3Iterations)
		}
	}
	match := func(n string) *dns.NSEC3 {
		for _, r := range nsec3s {
			if r.Match(n) {
				return r
			}
		}
		return nil
	}
	cover := func(n string) *dns.NSEC3 {
		for _, r := range nsec3s {
			if r.Cover(n) {
				return r
			}
		}
		return nil
	}
	if m := match(name); m != nil {
		return nodata(p, m.TypeBitMap, name, qtype)
	}
	// The closest encloser proof (§8.3): the closest existing ancestor
	// matches, and the name one label below it is covered.
	ce, nc := "", name
	for a := name; a != zone && a != "."; {
		parent := parentOf(a)
		if m := match(parent); m != nil {
			if delegates(parent, m.TypeBitMap, name) {
				return bogus(dns.ExtendedErrorCodeDNSBogus, "the closest encloser of %s is a delegation", name)
			}
			ce, nc = parent, a
			break
		}
		a = parent
	}
	if ce == "" {
		return bogus(dns.ExtendedErrorCodeNSECMissing, "no NSEC3 proves a closest encloser of %s", name)
	}
	ncCover := cover(nc)
	if ncCover == nil {
		return bogus(dns.ExtendedErrorCodeNSECMissing, "no NSEC3 covers %s", nc)
	}
	optOut := ncCover.Flags&1 != 0
	if qtype == dns.TypeDS && optOut {
		// §8.6: an unsigned delegation may hide in an opt-out span.
		p.delegation = true
		return Result{Security: Secure}
	}
	wc := "*." + ce
	if m := match(wc); m != nil {
		return nodata(p, m.TypeBitMap, name, qtype)
	}
	if cover(wc) == nil {
		return bogus(dns.ExtendedErrorCodeNSECMissing, "no NSEC3 proves the wildcard %s absent", wc)
	}
	if optOut {
		return insecure("%s is in an opt-out NSEC3 span: it may be an unsigned delegation", nc)
	}
	p.nxdomain = true
	return Result{Security: Secure}
}

// wildcard checks the proof that came with an answer expanded from a
// wildcard (RFC 4035 §5.3.4, RFC 5155 §8.8): no name closer to owner
// than the wildcard's parent exists.
func (v *Validator) wildcard(z *zone, m *dns.Msg, owner string, sigLabels int, now time.Time) Result {
	idx := dns.Split(owner)
	nc := owner[idx[len(idx)-sigLabels-1]:]
	res := Result{Security: Secure}
	for _, s := range rrsets(m.Ns) {
		if s.rtype != dns.TypeNSEC && s.rtype != dns.TypeNSEC3 {
			continue
		}
		r := v.verify(z, s, now)
		if r.Security != Secure {
			return r
		}
		for _, rr := range s.rrs {
			switch rr := rr.(type) {
			case *dns.NSEC:
				if covers(rr, z.name, owner) {
					return res.and(r)
				}
			case *dns.NSEC3:
				if rr.Cover(nc) {
					return res.and(r)
				}
			}
		}
	}
	return bogus(dns.ExtendedErrorCodeNSECMissing, "%s was expanded from a wildcard, with no proof that it does not exist itself", owner)
}
