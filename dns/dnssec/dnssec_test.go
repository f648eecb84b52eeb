package dnssec

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// hierarchy is test. (the trust anchor) with, below it, a signed zone, an
// unsigned one, one whose data was changed after signing, one whose
// signatures expired, and a signed zone its parent has no DS for.
func hierarchy(t testing.TB) (*testAuth, *Validator) {
	t.Helper()
	valid := func(z *testZone) { z.sign(testNow.Add(-time.Hour), testNow.Add(30*24*time.Hour)) }
	root := newZone("test.", true)
	secure := newZone("secure.test.", true,
		"www.secure.test. 300 IN A 192.0.2.1",
		"alias.secure.test. 300 IN CNAME www.secure.test.",
		"out.secure.test. 300 IN CNAME www.insecure.test.",
		"*.wild.secure.test. 300 IN A 192.0.2.9",
		"a.b.ent.secure.test. 300 IN A 192.0.2.3",
		"zz.secure.test. 300 IN A 192.0.2.4")
	unsigned := newZone("insecure.test.", false, "www.insecure.test. 300 IN A 192.0.2.2")
	broken := newZone("broken.test.", true, "www.broken.test. 300 IN A 192.0.2.5")
	expired := newZone("expired.test.", true, "www.expired.test. 300 IN A 192.0.2.6")
	island := newZone("island.test.", true, "www.island.test. 300 IN A 192.0.2.7")
	for _, c := range []*testZone{secure, unsigned, broken, expired} {
		root.delegate(c)
	}
	root.records = append(root.records, rr("island.test. 3600 IN NS ns.island.test."))
	for _, z := range []*testZone{root, secure, broken, island} {
		valid(z)
	}
	expired.sign(testNow.Add(-60*24*time.Hour), testNow.Add(-24*time.Hour))
	for _, r := range broken.records {
		if a, ok := r.(*dns.A); ok {
			a.A[3] = 66 // changed after signing
		}
	}
	a := &testAuth{zones: []*testZone{root, secure, unsigned, broken, expired, island}, now: testNow}
	anchor := root.ds()
	v, err := New([]dns.RR{anchor})
	if err != nil {
		t.Fatal(err)
	}
	v.now = func() time.Time { return testNow }
	return a, v
}

func (a *testAuth) validate(v *Validator, name string, qtype uint16) (*dns.Msg, Result) {
	q := dns.Question{Name: name, Qtype: qtype, Qclass: dns.ClassINET}
	m := a.answer(q)
	return m, v.Validate(context.Background(), a.ask, q, m)
}

func TestValidate(t *testing.T) {
	a, v := hierarchy(t)
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  Security
		ede   uint16
		rcode int
	}{
		{"www.secure.test.", dns.TypeA, Secure, 0, dns.RcodeSuccess},
		{"WwW.Secure.TEST.", dns.TypeA, Secure, 0, dns.RcodeSuccess},
		{"alias.secure.test.", dns.TypeA, Secure, 0, dns.RcodeSuccess},
		{"x.wild.secure.test.", dns.TypeA, Secure, 0, dns.RcodeSuccess},    // wildcard, with its proof
		{"nothere.secure.test.", dns.TypeA, Secure, 0, dns.RcodeNameError}, // NXDOMAIN
		{"www.secure.test.", dns.TypeAAAA, Secure, 0, dns.RcodeSuccess},    // NODATA
		{"ent.secure.test.", dns.TypeA, Secure, 0, dns.RcodeSuccess},       // an empty non-terminal
		{"x.wild.secure.test.", dns.TypeTXT, Secure, 0, dns.RcodeSuccess},  // NODATA at a wildcard
		{"out.secure.test.", dns.TypeA, Insecure, 0, dns.RcodeSuccess},     // a chain into an unsigned zone
		{"www.insecure.test.", dns.TypeA, Insecure, 0, dns.RcodeSuccess},   // unsigned delegation, proven
		{"nothere.insecure.test.", dns.TypeA, Insecure, 0, dns.RcodeNameError},
		{"www.island.test.", dns.TypeA, Insecure, 0, dns.RcodeSuccess}, // signed, but no DS above
		{"www.broken.test.", dns.TypeA, Bogus, dns.ExtendedErrorCodeDNSBogus, dns.RcodeSuccess},
		{"www.expired.test.", dns.TypeA, Bogus, dns.ExtendedErrorCodeSignatureExpired, dns.RcodeSuccess},
		{"secure.test.", dns.TypeDS, Secure, 0, dns.RcodeSuccess},
		{"insecure.test.", dns.TypeDS, Secure, 0, dns.RcodeSuccess}, // the proof of no DS is itself secure
	} {
		m, got := a.validate(v, tc.name, tc.qtype)
		if got.Security != tc.want || got.EDE != tc.ede || m.Rcode != tc.rcode {
			t.Errorf("%s %s: got %v (EDE %d, %q), rcode %s; want %v (EDE %d), %s", tc.name, dns.TypeToString[tc.qtype],
				got.Security, got.EDE, got.Reason, dns.RcodeToString[m.Rcode], tc.want, tc.ede, dns.RcodeToString[tc.rcode])
		}
		if got.Security == Secure && got.Expires.IsZero() {
			t.Errorf("%s: a secure answer without its signatures' expiry", tc.name)
		}
	}
}

// Forgeries and a stripping upstream: what should be signed and is not, or
// is signed but proves nothing, is bogus.
func TestValidateForged(t *testing.T) {
	a, v := hierarchy(t)
	q := func(name string, qtype uint16) dns.Question {
		return dns.Question{Name: name, Qtype: qtype, Qclass: dns.ClassINET}
	}
	strip := func(m *dns.Msg) *dns.Msg {
		noSig := func(r dns.RR) bool { return r.Header().Rrtype == dns.TypeRRSIG }
		m.Answer = slices.DeleteFunc(m.Answer, noSig)
		m.Ns = slices.DeleteFunc(m.Ns, noSig)
		return m
	}
	for _, tc := range []struct {
		what string
		q    dns.Question
		msg  func() *dns.Msg
		ede  uint16
	}{
		{"signatures stripped", q("www.secure.test.", dns.TypeA), func() *dns.Msg {
			return strip(a.answer(q("www.secure.test.", dns.TypeA)))
		}, dns.ExtendedErrorCodeRRSIGsMissing},
		{"an unsigned NXDOMAIN", q("www.secure.test.", dns.TypeA), func() *dns.Msg {
			m := a.answer(q("nothere.secure.test.", dns.TypeA))
			m.Question[0].Name = "www.secure.test."
			return strip(m)
		}, dns.ExtendedErrorCodeNSECMissing},
		{"a replayed NXDOMAIN for another name", q("www.secure.test.", dns.TypeA), func() *dns.Msg {
			m := a.answer(q("nothere.secure.test.", dns.TypeA))
			m.Question[0].Name = "www.secure.test."
			return m
		}, dns.ExtendedErrorCodeNSECMissing},
		{"a NODATA that lists the type", q("www.secure.test.", dns.TypeA), func() *dns.Msg {
			m := a.answer(q("www.secure.test.", dns.TypeAAAA))
			m.Question[0].Qtype = dns.TypeA
			return m
		}, dns.ExtendedErrorCodeDNSBogus},
		{"a wildcard answer without its proof", q("x.wild.secure.test.", dns.TypeA), func() *dns.Msg {
			m := a.answer(q("x.wild.secure.test.", dns.TypeA))
			m.Ns = nil
			return m
		}, dns.ExtendedErrorCodeNSECMissing},
		{"a wildcard answer for a name that exists", q("www.secure.test.", dns.TypeA), func() *dns.Msg {
			m := a.answer(q("x.wild.secure.test.", dns.TypeA))
			for _, r := range m.Answer {
				r.Header().Name = "www.secure.test."
			}
			return m
		}, dns.ExtendedErrorCodeDNSBogus},
		{"an unsigned answer injected beside a signed one", q("www.secure.test.", dns.TypeA), func() *dns.Msg {
			m := a.answer(q("www.secure.test.", dns.TypeA))
			m.Answer = append(m.Answer, rr("evil.secure.test. 300 IN A 203.0.113.66"))
			return m
		}, dns.ExtendedErrorCodeRRSIGsMissing},
		{"signed by a zone not above the name", q("www.insecure.test.", dns.TypeA), func() *dns.Msg {
			m := a.answer(q("www.secure.test.", dns.TypeA))
			for _, r := range m.Answer {
				r.Header().Name = "www.insecure.test."
			}
			return m
		}, dns.ExtendedErrorCodeDNSBogus},
	} {
		got := v.Validate(context.Background(), a.ask, tc.q, tc.msg())
		if got.Security != Bogus || got.EDE != tc.ede {
			t.Errorf("%s: got %v (EDE %d, %q), want bogus (EDE %d)", tc.what, got.Security, got.EDE, got.Reason, tc.ede)
		}
	}
}

// The keys and cuts learnt for one answer serve the next: a second name in
// a validated zone costs no question.
func TestValidateCaches(t *testing.T) {
	a, v := hierarchy(t)
	a.validate(v, "www.secure.test.", dns.TypeA)
	if want := []string{"test. DNSKEY", "secure.test. DS", "secure.test. DNSKEY"}; !slices.Equal(a.asked, want) {
		t.Errorf("asked %v, want %v", a.asked, want)
	}
	a.asked = nil
	if _, r := a.validate(v, "zz.secure.test.", dns.TypeA); r.Security != Secure || len(a.asked) != 0 {
		t.Errorf("second name: %v, asked %v", r.Security, a.asked)
	}
	// With no anchor above a name, nothing is asked.
	if r := v.Validate(context.Background(), a.ask, dns.Question{Name: "example.", Qtype: dns.TypeA, Qclass: dns.ClassINET},
		&dns.Msg{Answer: []dns.RR{rr("example. 60 IN A 192.0.2.1")}}); r.Security != Insecure || len(a.asked) != 0 {
		t.Errorf("no anchor: %v, asked %v", r.Security, a.asked)
	}
}

// RFC 8198: after one validated NXDOMAIN and one NODATA, names their NSEC
// records cover are answered without asking; names they do not, are not.
func TestSynthesize(t *testing.T) {
	a, v := hierarchy(t)
	if _, r := a.validate(v, "nothere.secure.test.", dns.TypeA); r.Security != Secure {
		t.Fatalf("NXDOMAIN: %v %s", r.Security, r.Reason)
	}
	if _, r := a.validate(v, "www.secure.test.", dns.TypeAAAA); r.Security != Secure {
		t.Fatalf("NODATA: %v %s", r.Security, r.Reason)
	}
	// nothere. sorts between ent. and out. (its NSEC's span), whose
	// wildcard *.secure.test. sorts before alias.
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int // -1: not synthesized
	}{
		{"nothere.secure.test.", dns.TypeAAAA, dns.RcodeNameError},
		{"nope.secure.test.", dns.TypeA, dns.RcodeNameError},
		{"deeper.nothere.secure.test.", dns.TypeA, dns.RcodeNameError},
		{"www.secure.test.", dns.TypeTXT, dns.RcodeSuccess},
		{"www.secure.test.", dns.TypeCNAME, dns.RcodeSuccess},
		{"www.secure.test.", dns.TypeA, -1},                   // the NSEC lists A
		{"alias.secure.test.", dns.TypeA, -1},                 // no NSEC held for it
		{"zzz.secure.test.", dns.TypeA, -1},                   // outside the span held
		{"www.insecure.test.", dns.TypeA, -1},                 // another zone
		{"a.www.secure.test.", dns.TypeA, dns.RcodeNameError}, // www's NSEC covers a.www and *.www
		{"nothere.secure.test.", dns.TypeDS, dns.RcodeNameError},
	} {
		m := v.Synthesize(dns.Question{Name: tc.name, Qtype: tc.qtype, Qclass: dns.ClassINET})
		switch {
		case m == nil && tc.rcode != -1:
			t.Errorf("%s %s: not synthesized, want %s", tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[tc.rcode])
		case m != nil && tc.rcode == -1:
			t.Errorf("%s %s: synthesized %s, want nothing", tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[m.Rcode])
		case m != nil && m.Rcode != tc.rcode:
			t.Errorf("%s %s: synthesized %s, want %s", tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
		case m != nil:
			// What was synthesized validates as upstream's answer would.
			m.Question = []dns.Question{{Name: tc.name, Qtype: tc.qtype, Qclass: dns.ClassINET}}
			if r := v.Validate(context.Background(), a.ask, m.Question[0], m); r.Security != Secure || !m.AuthenticatedData {
				t.Errorf("%s %s: the synthesized answer validates as %v (%s)", tc.name, dns.TypeToString[tc.qtype], r.Security, r.Reason)
			}
		}
	}
	// Past the negative TTL (the SOA minimum, 300 s), nothing.
	v.now = func() time.Time { return testNow.Add(301 * time.Second) }
	if m := v.Synthesize(dns.Question{Name: "nope.secure.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET}); m != nil {
		t.Errorf("synthesized after expiry: %v", m)
	}
}

func TestCompareNames(t *testing.T) {
	// RFC 4034 §6.1's example, in order.
	want := []string{"example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.", "zABC.a.EXAMPLE.",
		"z.example.", "\\001.z.example.", "*.z.example.", "\\200.z.example."}
	got := slices.Clone(want)
	slices.Reverse(got)
	slices.SortFunc(got, compareNames)
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestAnchors(t *testing.T) {
	root := RootAnchors()
	if len(root) != 2 || root[0].(*dns.DS).KeyTag != 20326 || root[1].(*dns.DS).KeyTag != 38696 {
		t.Errorf("root anchors %v", root)
	}
	for _, tc := range []struct{ text, err string }{
		{"test. IN DS 1 13 2 ABCD\n; a comment\ntest. IN A 192.0.2.1\n", ""},
		{"test. 3600 IN DNSKEY 257 3 13 aGVsbG8=\n", ""},
		{"test. IN A 192.0.2.1\n", "no DS or DNSKEY"},
		{"test. IN DS x y z\n", "anchors.txt"},
	} {
		_, err := ParseAnchors(strings.NewReader(tc.text), "anchors.txt")
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: err %v, want %q", tc.text, err, tc.err)
		}
	}
	// A file that is not anchors at all (an /etc/shadow named by mistake
	// or by an attacker) is refused without a word of its content.
	_, err := ParseAnchors(strings.NewReader("root:$6$s3cr3tHash:19000:0:99999:7:::\n"), "/etc/shadow")
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "root") || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a shadow file as anchors: %v; want line 1 named and nothing of its content", err)
	}
	if _, err := New([]dns.RR{rr("test. IN A 192.0.2.1")}); err == nil {
		t.Error("New took an A record as an anchor")
	}
}

// Until the clock is trusted, signatures' dates are not checked: a box
// that boots with its build time as the clock can still resolve its time
// servers. Bad signatures stay bogus.
func TestTrustClock(t *testing.T) {
	a, v := hierarchy(t)
	synced := false
	v.TrustClock(func() bool { return synced })
	if _, r := a.validate(v, "www.expired.test.", dns.TypeA); r.Security != Secure {
		t.Errorf("clock not set: expired signatures: %v (%s), want secure", r.Security, r.Reason)
	}
	if _, r := a.validate(v, "www.broken.test.", dns.TypeA); r.Security != Bogus {
		t.Errorf("clock not set: a bad signature: %v, want bogus", r.Security)
	}
	synced = true
	a2, v2 := hierarchy(t) // nothing cached
	v2.TrustClock(func() bool { return synced })
	if _, r := a2.validate(v2, "www.expired.test.", dns.TypeA); r.Security != Bogus || r.EDE != dns.ExtendedErrorCodeSignatureExpired {
		t.Errorf("clock set: expired signatures: %v (EDE %d)", r.Security, r.EDE)
	}
}

// nsec3Chain builds the NSEC3 records of zone for the names that exist
// there (with their types), hashed with iterations, each pointing to the
// next hash; optOut sets the opt-out flag on all.
func nsec3Chain(zone string, iterations uint16, optOut bool, names map[string][]uint16) []*dns.NSEC3 {
	type h struct {
		hash  string
		types []uint16
	}
	var hs []h
	for n, types := range names {
		hs = append(hs, h{dns.HashName(n, dns.SHA1, iterations, ""), types})
	}
	slices.SortFunc(hs, func(a, b h) int { return strings.Compare(a.hash, b.hash) })
	var out []*dns.NSEC3
	for i, x := range hs {
		flags := uint8(0)
		if optOut {
			flags = 1
		}
		out = append(out, &dns.NSEC3{Hdr: dns.RR_Header{Name: strings.ToLower(x.hash) + "." + zone, Rrtype: dns.TypeNSEC3, Class: dns.ClassINET, Ttl: 300},
			Hash: dns.SHA1, Flags: flags, Iterations: iterations, SaltLength: 0, Salt: "",
			HashLength: 20, NextDomain: hs[(i+1)%len(hs)].hash, TypeBitMap: x.types})
	}
	return out
}

// The NSEC3 proofs of RFC 5155 §8, on a chain built here: NODATA at a
// name, NXDOMAIN by the closest encloser proof, a DS denial at an unsigned
// delegation and in an opt-out span, and what must not pass.
func TestNSEC3Denial(t *testing.T) {
	zone := "z.test."
	names := map[string][]uint16{
		zone:                {dns.TypeSOA, dns.TypeNS, dns.TypeDNSKEY, dns.TypeNSEC3PARAM, dns.TypeRRSIG},
		"www." + zone:       {dns.TypeA, dns.TypeRRSIG},
		"b." + zone:         {}, // an empty non-terminal
		"a.b." + zone:       {dns.TypeA, dns.TypeRRSIG},
		"child." + zone:     {dns.TypeNS}, // an unsigned delegation
		"*.wild." + zone:    {dns.TypeA, dns.TypeRRSIG},
		"wild." + zone:      {},
		"signedkid." + zone: {dns.TypeNS, dns.TypeDS, dns.TypeRRSIG},
	}
	chain := nsec3Chain(zone, 0, false, names)
	for _, tc := range []struct {
		what       string
		chain      []*dns.NSEC3
		name       string
		qtype      uint16
		want       Security
		nxdomain   bool
		delegation bool
	}{
		{"NODATA at a name", chain, "www." + zone, dns.TypeAAAA, Secure, false, false},
		{"NODATA at an empty non-terminal", chain, "b." + zone, dns.TypeA, Secure, false, false},
		{"NXDOMAIN", chain, "nope." + zone, dns.TypeA, Secure, true, false},
		{"NXDOMAIN below a name", chain, "x.www." + zone, dns.TypeA, Secure, true, false},
		{"NODATA at a wildcard", chain, "any.wild." + zone, dns.TypeTXT, Secure, false, false},
		{"no DS at an unsigned delegation", chain, "child." + zone, dns.TypeDS, Secure, false, true},
		{"the type exists", chain, "www." + zone, dns.TypeA, Bogus, false, false},
		{"a name below a delegation", chain, "host.child." + zone, dns.TypeA, Bogus, false, false},
		{"the parent side of a cut, for a type other than DS", chain, "child." + zone, dns.TypeA, Bogus, false, false},
		{"a DS that exists", chain, "signedkid." + zone, dns.TypeDS, Bogus, false, false},
		{"a name in an opt-out span: insecure", nsec3Chain(zone, 0, true, names), "nope." + zone, dns.TypeA, Insecure, false, false},
		{"a DS in an opt-out span: an unsigned delegation", nsec3Chain(zone, 0, true, names), "unlisted." + zone, dns.TypeDS, Secure, false, true},
		{"too many iterations: insecure", nsec3Chain(zone, 151, false, names), "nope." + zone, dns.TypeA, Insecure, false, false},
		{"no closest encloser", chain[:1], "nope." + zone, dns.TypeA, Bogus, false, false},
	} {
		var p proof
		got := nsec3Denial(&p, tc.chain, zone, tc.name, tc.qtype)
		if got.Security != tc.want || (got.Security == Secure && (p.nxdomain != tc.nxdomain || p.delegation != tc.delegation)) {
			t.Errorf("%s: got %v (%s), nxdomain %v, delegation %v; want %v, %v, %v", tc.what, got.Security, got.Reason,
				p.nxdomain, p.delegation, tc.want, tc.nxdomain, tc.delegation)
		}
	}
}
