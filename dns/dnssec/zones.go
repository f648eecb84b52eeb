package dnssec

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Finding the zone a name is in, its keys, and whether a chain of trust
// reaches it: the zone cuts, probed and remembered.

// keysFor asks for name's DNSKEY RRset and accepts it if a key that one
// of trusted (DS or DNSKEY records) names signed it.
func (v *Validator) keysFor(ctx context.Context, ask Asker, name string, trusted []dns.RR) (*zone, Result) {
	now := v.now()
	m, err := ask(ctx, name, dns.TypeDNSKEY)
	if err != nil {
		return nil, bogus(dns.ExtendedErrorCodeNoReachableAuthority, "ask %s DNSKEY: %v", name, err)
	}
	var s *rrset
	for _, set := range rrsets(m.Answer) {
		if set.name == name && set.rtype == dns.TypeDNSKEY {
			s = set
		}
	}
	if s == nil {
		return nil, bogus(dns.ExtendedErrorCodeDNSKEYMissing, "%s has a DS but no DNSKEY", name)
	}
	var keys []*dns.DNSKEY
	for _, rr := range s.rrs {
		if k, ok := rr.(*dns.DNSKEY); ok && k.Flags&dns.ZONE != 0 && k.Protocol == 3 {
			keys = append(keys, k)
		}
	}
	var entry []*dns.DNSKEY // the keys trusted names
	for _, k := range keys {
		if slices.ContainsFunc(trusted, func(t dns.RR) bool { return matches(k, t) }) {
			entry = append(entry, k)
		}
	}
	if len(entry) == 0 {
		return nil, bogus(dns.ExtendedErrorCodeDNSKEYMissing, "no DNSKEY of %s matches its DS", name)
	}
	res := v.verify(&zone{name: name, keys: entry}, s, now)
	if res.Security != Secure {
		res.Reason = "the keys of " + name + ": " + res.Reason
		return nil, res
	}
	return &zone{name: name, keys: keys}, res
}

// matches reports whether key k is the one trust anchor or DS record t names.
func matches(k *dns.DNSKEY, t dns.RR) bool {
	switch t := t.(type) {
	case *dns.DS:
		if t.KeyTag != k.KeyTag() || t.Algorithm != k.Algorithm {
			return false
		}
		ds := k.ToDS(t.DigestType)
		return ds != nil && strings.EqualFold(ds.Digest, t.Digest)
	case *dns.DNSKEY:
		return t.Flags == k.Flags && t.Protocol == k.Protocol && t.Algorithm == k.Algorithm && t.PublicKey == k.PublicKey
	}
	return false
}

// anchorFor returns the closest trust anchor at or above name.
func (v *Validator) anchorFor(name string) (string, bool) {
	for n := canonical(name); ; n = parentOf(n) {
		if _, ok := v.anchors[n]; ok {
			return n, true
		}
		if n == "." {
			return "", false
		}
	}
}

func (v *Validator) cached(name string, now time.Time) (cut, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.zones[name]
	if ok && !now.Before(c.expires) {
		delete(v.zones, name)
		ok = false
	}
	return c, ok
}

func (v *Validator) remember(name string, c cut, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	c.expires = v.now().Add(min(ttl, time.Hour))
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.zones) >= maxZones {
		clear(v.zones)
	}
	v.zones[name] = c
}

// zoneOf walks from the closest trust anchor down to name and returns the
// signed zone name is in. Insecure when the walk meets an unsigned
// delegation, or there is no anchor above name.
func (v *Validator) zoneOf(ctx context.Context, ask Asker, name string) (*zone, Result) {
	name = canonical(name)
	top, ok := v.anchorFor(name)
	if !ok {
		return nil, insecure("no trust anchor above %s", name)
	}
	z, res := v.anchorZone(ctx, ask, top)
	if z == nil {
		return nil, res
	}
	for i, n := range ancestors(name, top) {
		if i >= maxProbes {
			break
		}
		c, ok := v.cached(n, v.now())
		if !ok {
			var ttl time.Duration
			c, ttl, res = v.probe(ctx, ask, z, n)
			if res.Security == Bogus {
				return nil, res
			}
			v.remember(n, c, ttl)
		}
		switch c.kind {
		case secureCut:
			z = c.zone
		case insecureCut:
			return nil, insecure("%s", c.reason)
		case noName:
			return z, Result{Security: Secure}
		}
	}
	return z, Result{Security: Secure}
}

// anchorZone returns the keys of a trust anchor's zone.
func (v *Validator) anchorZone(ctx context.Context, ask Asker, name string) (*zone, Result) {
	if c, ok := v.cached(name, v.now()); ok && c.kind == secureCut {
		return c.zone, Result{Security: Secure}
	}
	z, res := v.keysFor(ctx, ask, name, v.anchors[name])
	if z == nil {
		return nil, res
	}
	v.remember(name, cut{kind: secureCut, zone: z}, res.Expires.Sub(v.now()))
	return z, res
}

// probe asks for n's DS records to learn what lies at n, whose closest
// signed ancestor zone is z.
func (v *Validator) probe(ctx context.Context, ask Asker, z *zone, n string) (cut, time.Duration, Result) {
	now := v.now()
	m, err := ask(ctx, n, dns.TypeDS)
	if err != nil {
		return cut{}, 0, bogus(dns.ExtendedErrorCodeNoReachableAuthority, "ask %s DS: %v", n, err)
	}
	sets := rrsets(m.Answer)
	for _, s := range sets {
		if s.name != n {
			continue
		}
		switch s.rtype {
		case dns.TypeCNAME:
			// An alias has nothing below it: the walk ends in z.
			return cut{kind: noName}, ttlOf(s.rrs), Result{Security: Secure}
		case dns.TypeDS:
			if res := v.verify(z, s, now); res.Security != Secure {
				return cut{}, 0, res
			}
			var usable []dns.RR
			for _, rr := range s.rrs {
				if ds := rr.(*dns.DS); supported(ds.Algorithm) && supportedDigest(ds.DigestType) {
					usable = append(usable, ds)
				}
			}
			if len(usable) == 0 {
				// RFC 4035 §5.2: a zone signed only with algorithms the
				// validator lacks is treated as unsigned.
				return cut{kind: insecureCut, reason: n + " is signed only with algorithms not supported here"}, ttlOf(s.rrs), Result{Security: Insecure}
			}
			child, res := v.keysFor(ctx, ask, n, usable)
			if child == nil {
				return cut{}, 0, res
			}
			return cut{kind: secureCut, zone: child}, min(ttlOf(s.rrs), res.Expires.Sub(now)), res
		}
	}
	if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
		return cut{}, 0, bogus(dns.ExtendedErrorCodeNoReachableAuthority, "ask %s DS: %s", n, dns.RcodeToString[m.Rcode])
	}
	d, res := v.denial(z, m, n, dns.TypeDS, now)
	if res.Security != Secure {
		if res.Security == Insecure {
			// An opt-out NSEC3 span: an unsigned delegation may be here.
			return cut{kind: insecureCut, reason: n + ": " + res.Reason}, d.ttl, res
		}
		res.Reason = "no DS for " + n + ": " + res.Reason
		return cut{}, 0, res
	}
	switch {
	case d.nxdomain:
		return cut{kind: noName}, d.ttl, res
	case d.delegation:
		return cut{kind: insecureCut, reason: n + " is an unsigned delegation from " + z.name}, d.ttl, Result{Security: Insecure}
	}
	return cut{kind: noCut}, d.ttl, res
}

func ttlOf(rrs []dns.RR) time.Duration {
	t := uint32(1 << 31)
	for _, rr := range rrs {
		t = min(t, rr.Header().Ttl)
	}
	return time.Duration(t) * time.Second
}
