// Package dnssec validates DNS answers (RFC 4033–4035, RFC 5155): it
// builds the chain of trust from a trust anchor down to the zone that
// signed an answer, asking for the DS and DNSKEY records it needs, checks
// every RRset's signatures, and checks the NSEC and NSEC3 proofs of
// negative answers, wildcard answers and unsigned delegations. Validated
// NSEC records are kept to answer, without asking, for names they prove
// absent (RFC 8198).
//
// The signature arithmetic is miekg/dns's. What is trusted, and why, is
// this package's: a record is secure only by a chain of signatures from an
// anchor; an unsigned record is insecure only where a signed proof says its
// zone is unsigned; anything else is bogus.
package dnssec

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Security is a validation verdict (RFC 4033 §5).
type Security uint8

const (
	// Secure: every RRset is signed, by a chain of trust from an anchor.
	Secure Security = iota + 1
	// Insecure: no chain of trust covers the data; a signed proof says the
	// zone is unsigned, or no trust anchor is above it.
	Insecure
	// Bogus: it should be signed and is not, or its signatures or proofs
	// fail.
	Bogus
)

func (s Security) String() string {
	switch s {
	case Insecure:
		return "insecure"
	case Secure:
		return "secure"
	case Bogus:
		return "bogus"
	}
	return "indeterminate"
}

// Result is the verdict on one answer.
type Result struct {
	Security Security
	// EDE is the Extended DNS Error (RFC 8914) info code of a bogus answer.
	EDE uint16
	// Reason says what failed (bogus) or where the chain ends (insecure).
	Reason string
	// Expires is the earliest expiration among the signatures a secure
	// answer rests on: it may not be cached beyond it (RFC 4035 §5.3.3).
	Expires time.Time
}

func bogus(ede uint16, format string, args ...any) Result {
	return Result{Security: Bogus, EDE: ede, Reason: fmt.Sprintf(format, args...)}
}

func insecure(format string, args ...any) Result {
	return Result{Security: Insecure, Reason: fmt.Sprintf(format, args...)}
}

// and combines the verdicts on two parts of one answer: the worst wins
// (secure, then insecure, then bogus).
func (r Result) and(o Result) Result {
	if o.Security > r.Security || r.Security == 0 {
		o.Expires = earliest(r.Expires, o.Expires)
		return o
	}
	r.Expires = earliest(r.Expires, o.Expires)
	return r
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// Asker asks an upstream one question with DO and CD set (so that it
// returns signatures, and bogus data too, for this package to judge), by
// the path of the question being validated.
type Asker func(ctx context.Context, name string, qtype uint16) (*dns.Msg, error)

// maxProbes bounds the DS lookups of one validation: a name of many labels
// cannot make the validator ask without end. Hitting it leaves the zone
// found so far in force, which can only make a verdict stricter.
const maxProbes = 24

// maxZones bounds the zone-cut cache.
const maxZones = 10000

// Validator validates answers. It keeps what it learnt of zone cuts and
// keys, and the NSEC records of validated negative answers, across calls;
// it is safe for concurrent use.
type Validator struct {
	anchors map[string][]dns.RR // by zone: its DS or DNSKEY records
	now     func() time.Time
	// clockOK says whether the clock can be trusted yet; until it can,
	// signatures' validity periods are not checked.
	clockOK func() bool

	mu    sync.Mutex
	zones map[string]cut // by name: what a DS probe (or an anchor) found there

	nsec *nsecCache
}

// cutKind is what lies at a name on the way from an anchor down.
type cutKind uint8

const (
	noCut       cutKind = iota + 1 // inside the zone above
	secureCut                      // a signed zone starts here
	insecureCut                    // an unsigned delegation: nothing below is signed
	noName                         // the name does not exist, so nothing below does
)

type cut struct {
	kind    cutKind
	zone    *zone // secureCut
	reason  string
	expires time.Time
}

// zone is a signed zone and its validated keys.
type zone struct {
	name string
	keys []*dns.DNSKEY
}

// New returns a validator trusting anchors: DS or DNSKEY records (the
// root's, RootAnchors, or a private root's).
func New(anchors []dns.RR) (*Validator, error) {
	v := &Validator{anchors: map[string][]dns.RR{}, zones: map[string]cut{}, nsec: newNSECCache(), now: time.Now}
	for _, rr := range anchors {
		switch rr.(type) {
		case *dns.DS, *dns.DNSKEY:
		default:
			return nil, fmt.Errorf("trust anchor %s: not a DS or DNSKEY record", rr.Header().Name)
		}
		name := canonical(rr.Header().Name)
		v.anchors[name] = append(v.anchors[name], rr)
	}
	if len(v.anchors) == 0 {
		return nil, fmt.Errorf("no trust anchor")
	}
	return v, nil
}

// TrustClock makes the validator check signatures' validity periods only
// once ok says the clock is right. A box with a dead RTC boots with the
// clock at its build time, when every signature looks expired or not yet
// valid, and the names of its time servers could never be resolved;
// dnsmasq's dnssec-no-timecheck does the same.
func (v *Validator) TrustClock(ok func() bool) { v.clockOK = ok }

// Anchors returns the zones with a trust anchor, sorted.
func (v *Validator) Anchors() []string {
	var out []string
	for z := range v.anchors {
		out = append(out, z)
	}
	slices.Sort(out)
	return out
}

// rrset is one RRset of a message with the signatures that cover it.
type rrset struct {
	name  string // canonical
	rtype uint16
	rrs   []dns.RR
	sigs  []*dns.RRSIG
}

// rrsets groups a section's records into RRsets, in order of appearance,
// with their signatures.
func rrsets(section []dns.RR) []*rrset {
	var out []*rrset
	find := func(name string, t uint16) *rrset {
		for _, s := range out {
			if s.name == name && s.rtype == t {
				return s
			}
		}
		s := &rrset{name: name, rtype: t}
		out = append(out, s)
		return s
	}
	for _, rr := range section {
		h := rr.Header()
		if h.Class != dns.ClassINET || h.Rrtype == dns.TypeOPT {
			continue
		}
		if sig, ok := rr.(*dns.RRSIG); ok {
			s := find(canonical(h.Name), sig.TypeCovered)
			s.sigs = append(s.sigs, sig)
			continue
		}
		s := find(canonical(h.Name), h.Rrtype)
		s.rrs = append(s.rrs, rr)
	}
	// Signatures over nothing in the message say nothing.
	return slices.DeleteFunc(out, func(s *rrset) bool { return len(s.rrs) == 0 })
}

// verify checks that one of s's signatures is by one of z's keys, valid
// now. It caps the records' TTLs at the signatures' original TTL.
func (v *Validator) verify(z *zone, s *rrset, now time.Time) Result {
	checkTime := v.clockOK == nil || v.clockOK()
	if len(s.sigs) == 0 {
		return bogus(dns.ExtendedErrorCodeRRSIGsMissing, "%s %s in signed zone %s has no signature", s.name, dns.TypeToString[s.rtype], z.name)
	}
	res := bogus(dns.ExtendedErrorCodeDNSKEYMissing, "no key of %s made %s %s's signature", z.name, s.name, dns.TypeToString[s.rtype])
	for _, sig := range s.sigs {
		if canonical(sig.SignerName) != z.name || !isSubdomain(z.name, s.name) {
			continue
		}
		for _, k := range z.keys {
			if k.KeyTag() != sig.KeyTag || k.Algorithm != sig.Algorithm {
				continue
			}
			if err := sig.Verify(k, s.rrs); err != nil {
				res = bogus(dns.ExtendedErrorCodeDNSBogus, "%s %s: signature by key %d of %s: %v", s.name, dns.TypeToString[s.rtype], sig.KeyTag, z.name, err)
				continue
			}
			if checkTime && !sig.ValidityPeriod(now) {
				code, what := dns.ExtendedErrorCodeSignatureExpired, "expired"
				if int64(sig.Inception) > now.Unix() {
					code, what = dns.ExtendedErrorCodeSignatureNotYetValid, "not yet valid"
				}
				res = bogus(code, "%s %s: signature by key %d of %s %s", s.name, dns.TypeToString[s.rtype], sig.KeyTag, z.name, what)
				continue
			}
			for _, rr := range s.rrs {
				if h := rr.Header(); h.Ttl > sig.OrigTtl {
					h.Ttl = sig.OrigTtl
				}
			}
			return Result{Security: Secure, Expires: time.Unix(int64(sig.Expiration), 0)}
		}
	}
	return res
}

// supported reports whether miekg/dns can check signatures of algorithm
// alg (RFC 8624's must-implement ones and more).
func supported(alg uint8) bool {
	switch alg {
	case dns.RSASHA1, dns.RSASHA1NSEC3SHA1, dns.RSASHA256, dns.RSASHA512,
		dns.ECDSAP256SHA256, dns.ECDSAP384SHA384, dns.ED25519:
		return true
	}
	return false
}

func supportedDigest(t uint8) bool {
	return t == dns.SHA1 || t == dns.SHA256 || t == dns.SHA384
}

// Validate judges upstream's answer m to q, asking through ask for the
// keys and delegation proofs it needs. It may lower m's TTLs to their
// signatures' original TTLs. A secure negative answer's NSEC records are
// kept for Synthesize.
func (v *Validator) Validate(ctx context.Context, ask Asker, q dns.Question, m *dns.Msg) Result {
	now := v.now()
	qname := canonical(q.Name)
	var res Result
	answer := rrsets(m.Answer)
	// The zones of the RRsets, so that a CNAME chain within one zone
	// costs one walk.
	zones := map[string]*zone{}
	target, answered := follow(answer, qname, q.Qtype)
	for _, s := range answer {
		if len(s.sigs) == 0 && s.rtype == dns.TypeCNAME && synthesized(s, answer) {
			continue // from a DNAME, which is validated in its own right
		}
		res = res.and(v.rrsetSecurity(ctx, ask, s, m, zones, now))
		if res.Security == Bogus {
			return res
		}
	}
	negative := m.Rcode == dns.RcodeNameError || (m.Rcode == dns.RcodeSuccess && !answered)
	if negative {
		res = res.and(v.negative(ctx, ask, m, target, q.Qtype, now))
	}
	if res.Security == 0 {
		res = insecure("empty answer")
	}
	return res
}

// follow follows the CNAME chain from qname through the answer and
// returns where it ends, and whether an RRset of qtype is there.
func follow(answer []*rrset, qname string, qtype uint16) (string, bool) {
	name := qname
	for range 16 {
		next := ""
		for _, s := range answer {
			if s.name != name {
				continue
			}
			if s.rtype == qtype || qtype == dns.TypeANY {
				return name, true
			}
			if s.rtype == dns.TypeCNAME {
				next = canonical(s.rrs[0].(*dns.CNAME).Target)
			}
		}
		if next == "" {
			break
		}
		name = next
	}
	return name, false
}

// synthesized reports whether an unsigned CNAME s was made from a DNAME in
// the same answer (RFC 6672 §5.3.1): its owner below the DNAME's, its
// target the owner with the DNAME's owner replaced by its target.
func synthesized(s *rrset, answer []*rrset) bool {
	cn, ok := s.rrs[0].(*dns.CNAME)
	if !ok || len(s.rrs) != 1 {
		return false
	}
	for _, d := range answer {
		if d.rtype != dns.TypeDNAME || len(d.rrs) != 1 || d.name == s.name || !isSubdomain(d.name, s.name) {
			continue
		}
		prefix := strings.TrimSuffix(s.name, d.name)
		if canonical(cn.Target) == canonical(prefix+d.rrs[0].(*dns.DNAME).Target) {
			return true
		}
	}
	return false
}

// rrsetSecurity validates one RRset of an answer: signed, by its signer's
// keys, and when expanded from a wildcard, with the proof that no closer
// name exists; unsigned, only where its zone is proven unsigned.
func (v *Validator) rrsetSecurity(ctx context.Context, ask Asker, s *rrset, m *dns.Msg, zones map[string]*zone, now time.Time) Result {
	if len(s.sigs) == 0 {
		z, res := v.zoneOf(ctx, ask, s.name)
		if z == nil {
			return res
		}
		return bogus(dns.ExtendedErrorCodeRRSIGsMissing, "%s %s in signed zone %s has no signature", s.name, dns.TypeToString[s.rtype], z.name)
	}
	signer := canonical(s.sigs[0].SignerName)
	if !isSubdomain(signer, s.name) {
		return bogus(dns.ExtendedErrorCodeDNSBogus, "%s signed by %s, which is not above it", s.name, signer)
	}
	z := zones[signer]
	if z == nil {
		var res Result
		z, res = v.zoneOf(ctx, ask, signer)
		if z == nil {
			return res
		}
		if z.name != signer {
			return bogus(dns.ExtendedErrorCodeDNSBogus, "%s signed by %s, which is not a signed zone (%s is)", s.name, signer, z.name)
		}
		zones[signer] = z
	}
	res := v.verify(z, s, now)
	if res.Security != Secure {
		return res
	}
	if sigLabels := int(s.sigs[0].Labels); sigLabels < dns.CountLabel(s.name) {
		return res.and(v.wildcard(z, m, s.name, sigLabels, now))
	}
	return res
}

// negative validates a negative answer (NXDOMAIN or NODATA) for name and
// qtype: the authority section's SOA and NSEC or NSEC3 records, signed by
// name's zone, and the proof they make.
func (v *Validator) negative(ctx context.Context, ask Asker, m *dns.Msg, name string, qtype uint16, now time.Time) Result {
	var signer string
	for _, s := range rrsets(m.Ns) {
		if len(s.sigs) > 0 && (s.rtype == dns.TypeSOA || s.rtype == dns.TypeNSEC || s.rtype == dns.TypeNSEC3) {
			signer = canonical(s.sigs[0].SignerName)
			break
		}
	}
	if signer == "" {
		z, res := v.zoneOf(ctx, ask, name)
		if z == nil {
			return res
		}
		return bogus(dns.ExtendedErrorCodeNSECMissing, "no signed proof that %s %s does not exist, in signed zone %s", name, dns.TypeToString[qtype], z.name)
	}
	if !isSubdomain(signer, name) {
		return bogus(dns.ExtendedErrorCodeDNSBogus, "the denial of %s is signed by %s, which is not above it", name, signer)
	}
	z, res := v.zoneOf(ctx, ask, signer)
	if z == nil {
		return res
	}
	if z.name != signer {
		return bogus(dns.ExtendedErrorCodeDNSBogus, "the denial of %s is signed by %s, which is not a signed zone", name, signer)
	}
	d, res := v.denial(z, m, name, qtype, now)
	if res.Security == Secure && d.nxdomain != (m.Rcode == dns.RcodeNameError) {
		return bogus(dns.ExtendedErrorCodeDNSBogus, "%s: the proof and the rcode (%s) disagree", name, dns.RcodeToString[m.Rcode])
	}
	if res.Security == Secure {
		v.nsec.add(z.name, m, d, now)
	}
	return res
}
