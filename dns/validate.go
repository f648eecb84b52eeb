package dns

import (
	"context"
	"slices"
	"time"

	"github.com/miekg/dns"
	"github.com/routerd/routerd/dns/dnssec"
)

// bogusTTL is how long a bogus verdict is cached (unbound's val-bogus-ttl):
// long enough that a client retrying in a loop costs no upstream work,
// short enough that a fixed zone is seen soon.
const bogusTTL = 60 * time.Second

// forwardValidated answers q with DNSSEC validation: from the validated
// NSEC records if they prove q has no answer (RFC 8198), else by asking
// upstream with DO and CD set, so that the signatures come, and bogus data
// too, which is judged here rather than by the upstream.
func (r *Resolver) forwardValidated(key cacheKey, q dns.Question) *dns.Msg {
	v := r.cfg.Validator
	now := time.Now()
	if m := v.Synthesize(q); m != nil {
		r.st.synthesized.Add(1)
		r.st.secure.Add(1)
		return r.keep(key, q, m, dnssec.Result{Security: dnssec.Secure}, now)
	}
	up := upstreamQuery(q, true, true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp := r.exchange(ctx, up, key.route)
	if resp.Rcode == dns.RcodeServerFailure {
		return resp
	}
	resp.Id = 0
	stripOPT(resp)
	clampTTLs(resp)
	res := v.Validate(ctx, r.asker(key.route), q, resp)
	switch res.Security {
	case dnssec.Secure:
		r.st.secure.Add(1)
	case dnssec.Insecure:
		r.st.insecure.Add(1)
	default:
		r.st.bogus.Add(1)
		why := q.Name + " " + dns.TypeToString[q.Qtype] + ": " + res.Reason
		r.lastBogus.Store(&why)
		r.cfg.Log.Info("DNSSEC bogus", "q", q.Name, "type", dns.TypeToString[q.Qtype], "why", res.Reason)
	}
	return r.keep(key, q, resp, res, now)
}

// keep caches a validated answer as the client will get it and returns
// it: AD on secure data; bogus data only for a CD question, SERVFAIL with
// an Extended DNS Error otherwise; DNSSEC records only for DO.
func (r *Resolver) keep(key cacheKey, q dns.Question, m *dns.Msg, res dnssec.Result, now time.Time) *dns.Msg {
	m.AuthenticatedData = res.Security == dnssec.Secure
	limit := time.Duration(0)
	if res.Security == dnssec.Secure && !res.Expires.IsZero() {
		limit = max(res.Expires.Sub(now), time.Second)
	}
	if res.Security == dnssec.Bogus {
		limit = bogusTTL
		if !key.cd {
			m = &dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeServerFailure}}
			opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
			opt.Option = []dns.EDNS0{&dns.EDNS0_EDE{InfoCode: res.EDE, ExtraText: res.Reason}}
			m.Extra = []dns.RR{opt}
			r.cache.putFor(key, m, now, 0, limit)
			return m
		}
	}
	if res.Security == dnssec.Secure {
		onlyValidated(m)
	}
	if !key.do {
		stripDNSSEC(m, q.Qtype)
	}
	// As in accept: the hook sees the answer before any client does.
	var gen uint64
	if r.cfg.HookGeneration != nil {
		gen = r.cfg.HookGeneration()
	}
	if r.cfg.OnAnswer != nil && res.Security != dnssec.Bogus {
		r.hook(key.route.Path, q, m)
	}
	r.cache.putFor(key, m, now, gen, limit)
	return m
}

// asker is how the validator asks for keys and delegation proofs: by the
// same route as the question it validates.
func (r *Resolver) asker(rt Route) dnssec.Asker {
	return func(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
		m := upstreamQuery(dns.Question{Name: name, Qtype: qtype, Qclass: dns.ClassINET}, true, true)
		resp, err := r.forwarder(rt.View).exchange(ctx, m, rt.Path)
		if err != nil {
			return nil, err
		}
		stripOPT(resp)
		return resp, nil
	}
}

// stripDNSSEC removes the records a client that did not set DO must not
// get (RFC 4035 §3.2.1), unless it asked for that type.
func stripDNSSEC(m *dns.Msg, qtype uint16) {
	drop := func(rr dns.RR) bool {
		switch t := rr.Header().Rrtype; t {
		case dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3:
			return t != qtype
		}
		return false
	}
	m.Answer = slices.DeleteFunc(m.Answer, drop)
	m.Ns = slices.DeleteFunc(m.Ns, drop)
	m.Extra = slices.DeleteFunc(m.Extra, drop)
}

// onlyValidated drops from a secure answer what the validator did not
// judge, so that AD vouches for everything that is left (RFC 4035
// §3.2.3): the authority section keeps the SOA and the NSEC or NSEC3
// proofs, and the additional section (glue, unsigned) goes.
func onlyValidated(m *dns.Msg) {
	m.Ns = slices.DeleteFunc(m.Ns, func(rr dns.RR) bool {
		t := rr.Header().Rrtype
		if sig, ok := rr.(*dns.RRSIG); ok {
			t = sig.TypeCovered
		}
		return t != dns.TypeSOA && t != dns.TypeNSEC && t != dns.TypeNSEC3
	})
	m.Extra = slices.DeleteFunc(m.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype != dns.TypeOPT })
}
