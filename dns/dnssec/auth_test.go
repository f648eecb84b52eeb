package dnssec

import (
	"context"
	"crypto"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// A signed DNS hierarchy in memory, answering as a recursive resolver
// would (with CD set): each question from the deepest zone that holds it,
// DS questions from the parent's side of the cut. Zones are signed with
// NSEC by miekg/dns's signer; tests break them on purpose.

type testZone struct {
	name    string
	signed  bool
	key     *dns.DNSKEY
	priv    crypto.Signer
	records []dns.RR // the zone's data, signatures and NSECs included
}

type testAuth struct {
	zones []*testZone
	now   time.Time
	asked []string
}

var testNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func rr(s string) dns.RR {
	r, err := dns.NewRR(s)
	if err != nil {
		panic(fmt.Sprintf("%s: %v", s, err))
	}
	return r
}

// newZone makes a zone from records in zone-file text (its SOA and NS
// added), signed (with NSEC) or not.
func newZone(name string, signed bool, text ...string) *testZone {
	z := &testZone{name: canonical(name), signed: signed}
	z.records = append(z.records, rr(z.name+" 3600 IN SOA ns."+z.name+" host."+z.name+" 1 7200 3600 1209600 300"),
		rr(z.name+" 3600 IN NS ns."+z.name))
	for _, t := range text {
		z.records = append(z.records, rr(t))
	}
	if signed {
		z.key = &dns.DNSKEY{Hdr: dns.RR_Header{Name: z.name, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
			Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
		priv, err := z.key.Generate(256)
		if err != nil {
			panic(err)
		}
		z.priv = priv.(crypto.Signer)
		z.records = append(z.records, z.key)
	}
	return z
}

// ds returns the DS record of a signed zone's key.
func (z *testZone) ds() *dns.DS { return z.key.ToDS(dns.SHA256) }

// delegate adds child's delegation (and DS, if signed) to z.
func (z *testZone) delegate(child *testZone) {
	z.records = append(z.records, rr(child.name+" 3600 IN NS ns."+child.name))
	if child.signed {
		ds := child.ds()
		ds.Hdr.Ttl = 3600
		z.records = append(z.records, ds)
	}
}

// below reports whether name is at or below a delegation of z (other than
// its apex), and which.
func (z *testZone) cutAbove(name string) (string, bool) {
	for _, r := range z.records {
		h := r.Header()
		if h.Rrtype == dns.TypeNS && canonical(h.Name) != z.name && isSubdomain(canonical(h.Name), name) {
			return canonical(h.Name), true
		}
	}
	return "", false
}

// sign adds NSEC records and signatures, valid from inception to
// expiration.
func (z *testZone) sign(inception, expiration time.Time) {
	if !z.signed {
		return
	}
	// The NSEC chain over the owner names that are the zone's (not glue).
	var owners []string
	for _, r := range z.records {
		n := canonical(r.Header().Name)
		if cut, ok := z.cutAbove(n); ok && cut != n {
			continue
		}
		if !slices.Contains(owners, n) {
			owners = append(owners, n)
		}
	}
	slices.SortFunc(owners, compareNames)
	for i, o := range owners {
		types := []uint16{dns.TypeNSEC, dns.TypeRRSIG}
		for _, r := range z.records {
			if canonical(r.Header().Name) == o && !slices.Contains(types, r.Header().Rrtype) {
				types = append(types, r.Header().Rrtype)
			}
		}
		if cut, ok := z.cutAbove(o); ok && cut == o && !slices.Contains(types, dns.TypeDS) {
			types = slices.DeleteFunc(types, func(t uint16) bool { return t == dns.TypeRRSIG })
		}
		slices.Sort(types)
		z.records = append(z.records, &dns.NSEC{Hdr: dns.RR_Header{Name: o, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: 300},
			NextDomain: owners[(i+1)%len(owners)], TypeBitMap: types})
	}
	for _, set := range rrsets(z.records) {
		if cut, ok := z.cutAbove(set.name); ok && (cut != set.name || set.rtype == dns.TypeNS) {
			continue // delegation NS and glue are not signed
		}
		z.records = append(z.records, z.signSet(set.rrs, inception, expiration))
	}
}

func (z *testZone) signSet(rrs []dns.RR, inception, expiration time.Time) *dns.RRSIG {
	h := rrs[0].Header()
	labels := dns.CountLabel(h.Name)
	if strings.HasPrefix(h.Name, "*.") {
		labels--
	}
	sig := &dns.RRSIG{Hdr: dns.RR_Header{Name: h.Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: h.Ttl},
		TypeCovered: h.Rrtype, Algorithm: z.key.Algorithm, Labels: uint8(labels), OrigTtl: h.Ttl,
		Expiration: uint32(expiration.Unix()), Inception: uint32(inception.Unix()), KeyTag: z.key.KeyTag(), SignerName: z.name}
	if err := sig.Sign(z.priv, rrs); err != nil {
		panic(err)
	}
	return sig
}

// set returns z's RRset (name, t) and its signatures.
func (z *testZone) set(name string, t uint16) []dns.RR {
	var out []dns.RR
	for _, r := range z.records {
		h := r.Header()
		if canonical(h.Name) != name {
			continue
		}
		if h.Rrtype == t || (h.Rrtype == dns.TypeRRSIG && r.(*dns.RRSIG).TypeCovered == t) {
			out = append(out, dns.Copy(r))
		}
	}
	return out
}

func (z *testZone) has(name string) bool {
	for _, r := range z.records {
		if n := canonical(r.Header().Name); n == name || isSubdomain(name, n) {
			return true // name, or an empty non-terminal above a name
		}
	}
	return false
}

// covering returns the NSEC (and signature) that covers name.
func (z *testZone) covering(name string) []dns.RR {
	for _, r := range z.records {
		if n, ok := r.(*dns.NSEC); ok && covers(n, z.name, name) {
			return z.set(canonical(n.Hdr.Name), dns.TypeNSEC)
		}
	}
	return nil
}

func (a *testAuth) zoneFor(name string, qtype uint16) *testZone {
	var best *testZone
	for _, z := range a.zones {
		if !isSubdomain(z.name, name) || (qtype == dns.TypeDS && z.name == name && name != ".") {
			continue
		}
		if best == nil || dns.CountLabel(z.name) > dns.CountLabel(best.name) {
			best = z
		}
	}
	return best
}

func (a *testAuth) ask(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	a.asked = append(a.asked, name+" "+dns.TypeToString[qtype])
	return a.answer(dns.Question{Name: name, Qtype: qtype, Qclass: dns.ClassINET}), nil
}

func (a *testAuth) answer(q dns.Question) *dns.Msg {
	name := canonical(q.Name)
	m := new(dns.Msg)
	m.SetQuestion(q.Name, q.Qtype)
	m.Response = true
	z := a.zoneFor(name, q.Qtype)
	if z == nil {
		m.Rcode = dns.RcodeRefused
		return m
	}
	if ans := z.set(name, q.Qtype); len(ans) > 0 {
		m.Answer = ans
		return m
	}
	if cn := z.set(name, dns.TypeCNAME); len(cn) > 0 && q.Qtype != dns.TypeDS {
		// Followed, as a recursive resolver does.
		target := cn[0].(*dns.CNAME).Target
		rest := a.answer(dns.Question{Name: target, Qtype: q.Qtype, Qclass: dns.ClassINET})
		m.Answer = append(cn, rest.Answer...)
		m.Ns, m.Rcode = rest.Ns, rest.Rcode
		return m
	}
	soa := z.set(z.name, dns.TypeSOA)
	if z.has(name) {
		m.Ns = append(soa, z.set(name, dns.TypeNSEC)...)
		if len(z.set(name, dns.TypeNSEC)) == 0 {
			m.Ns = append(m.Ns, z.covering(name)...) // an empty non-terminal
		}
		return m
	}
	// A wildcard at the closest encloser?
	ce := name
	for !z.has(ce) {
		ce = parentOf(ce)
	}
	if wc := z.set("*."+ce, q.Qtype); len(wc) > 0 {
		for _, r := range wc {
			r.Header().Name = q.Name
		}
		m.Answer = wc
		m.Ns = z.covering(name)
		return m
	}
	if z.has("*." + ce) {
		// The wildcard, without the type.
		m.Ns = append(append(soa, z.covering(name)...), z.set("*."+ce, dns.TypeNSEC)...)
		return m
	}
	m.Rcode = dns.RcodeNameError
	m.Ns = append(soa, z.covering(name)...)
	if w := z.covering("*." + ce); len(w) > 0 && w[0].Header().Name != m.Ns[len(m.Ns)-1].Header().Name {
		m.Ns = append(m.Ns, w...)
	}
	return m
}
