package config

import (
	"os"
	"strings"
	"time"

	"github.com/routerd/routerd/dns/dnssec"
)

// [dns]: the resolver.

func (v *validator) dns(f *fileDNS) {
	d := &v.c.DNS
	d.Domain, d.CacheSize = "lan", 10000
	if f == nil {
		f = &fileDNS{}
	}
	if f.Listen == nil {
		for _, l := range v.c.LAN {
			d.Listen = append(d.Listen, l.Name)
		}
	}
	for i, name := range f.Listen {
		if !v.isLAN(name) {
			v.p.errf(idx("dns.listen", i), "%q is not a [[lan]] name", name)
			continue
		}
		d.Listen = append(d.Listen, name)
	}
	for i, s := range f.Upstream {
		ap, err := parseUpstream(s)
		if err != nil {
			v.p.errf(idx("dns.upstream", i), "%q: %v", s, err)
			continue
		}
		d.Upstream = append(d.Upstream, ap)
	}
	d.TLSCAFile = f.TLSCAFile
	for i, a := range f.Allow {
		n, ok := strings.CutPrefix(strings.ToLower(strings.TrimSuffix(a, ".")), "*.")
		if !ok {
			n = strings.ToLower(strings.TrimSuffix(a, "."))
		}
		if !validDomain(n) {
			v.p.errf(idx("dns.allow", i), "%q is not a domain name", a)
			continue
		}
		d.Allow = append(d.Allow, n)
	}
	if f.QueryLog != "" {
		d.QueryLog = v.duration("dns.query_log", f.QueryLog)
		if d.QueryLog < 0 || d.QueryLog > 7*24*time.Hour {
			v.p.errf("dns.query_log", "%s is outside 0-168h (kept in memory)", f.QueryLog)
		}
	}
	d.Reflect = v.reflect("dns.mdns_reflect", f.Reflect)
	if f.Domain != nil {
		d.Domain = strings.TrimSuffix(strings.ToLower(*f.Domain), ".")
		if d.Domain != "" && !validDomain(d.Domain) {
			v.p.errf("dns.domain", "%q is not a valid domain name", *f.Domain)
		}
		if d.Domain == "local" {
			v.p.errf("dns.domain", "\"local\" is reserved for mDNS (RFC 6762); use e.g. \"lan\" or \"home.arpa\"")
		}
	}
	d.MDNS = f.MDNS
	d.DNSSEC, d.TrustAnchorsFile = f.DNSSEC, f.Anchors
	if f.Anchors != "" && !f.DNSSEC {
		v.p.errf("dns.trust_anchors", "trust anchors are for DNSSEC validation: set dns.dnssec = true")
	}
	if f.CacheSize != nil {
		if *f.CacheSize < 0 || *f.CacheSize > 10_000_000 {
			v.p.errf("dns.cache_size", "%d is outside 0-10000000", *f.CacheSize)
		} else {
			d.CacheSize = int(*f.CacheSize)
		}
	}
	for i, r := range f.Record {
		rp := idx("dns.record", i)
		rec := Record{Name: strings.TrimSuffix(strings.ToLower(r.Name), ".")}
		if !validDomain(rec.Name) {
			v.p.errf(rp+".name", "%q is not a valid domain name", r.Name)
		}
		if len(r.Addresses) == 0 {
			v.p.errf(rp+".addresses", "at least one address is required")
		}
		for j, s := range r.Addresses {
			if a := v.addr(idx(rp+".addresses", j), s, famAny); a.IsValid() {
				rec.Addresses = append(rec.Addresses, a)
			}
		}
		d.Records = append(d.Records, rec)
	}
}

// loadAnchors reads dns.trust_anchors (relative to dir): DS or DNSKEY
// records in zone-file form.
func (d *DNS) loadAnchors(dir string) []FieldError {
	if d.TrustAnchorsFile == "" {
		return nil
	}
	d.TrustAnchorsFile = inDir(dir, d.TrustAnchorsFile)
	f, err := os.Open(d.TrustAnchorsFile)
	if err != nil {
		return []FieldError{{Path: "dns.trust_anchors", Msg: err.Error()}}
	}
	defer f.Close()
	rrs, err := dnssec.ParseAnchors(f, d.TrustAnchorsFile)
	if err != nil {
		return []FieldError{{Path: "dns.trust_anchors", Msg: err.Error()}}
	}
	d.TrustAnchors = rrs
	return nil
}
