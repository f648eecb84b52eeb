package dns

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/routerd/routerd/router/status"
)

// stats counts what the resolver did.
type stats struct {
	start                                         time.Time
	queries, local, hits, forwarded, mdns, merged atomic.Uint64
	refused, formerr, servfail, dropped           atomic.Uint64
	secure, insecure, bogus, synthesized          atomic.Uint64
	blocked                                       atomic.Uint64
	perSec                                        [60]atomic.Uint64 // queries by second of the minute
	second                                        atomic.Int64      // the second perSec's current slot is for
}

// tick counts a query in the current second, clearing a slot the first
// time a new second comes round. Racy at the edges by a query or two,
// which is fine for a rate.
func (s *stats) tick() {
	now := time.Now().Unix()
	if old := s.second.Load(); old != now && s.second.CompareAndSwap(old, now) {
		for t := max(old+1, now-59); t <= now; t++ {
			s.perSec[t%60].Store(0)
		}
	}
	s.perSec[now%60].Add(1)
}

// Status is the resolver's section of routerctl status.
type Status = status.DNS

// Status reports the resolver's counters.
func (r *Resolver) Status() Status {
	size, hits, misses := r.cache.stats()
	st := Status{
		Queries: r.st.queries.Load(), Local: r.st.local.Load(), CacheHits: r.st.hits.Load(), CacheSize: size,
		Forwarded: r.st.forwarded.Load(), Merged: r.st.merged.Load(), Refused: r.st.refused.Load(), FormErr: r.st.formerr.Load(),
		ServFail: r.st.servfail.Load(), Upstreams: r.upstreamStatus(), Blocked: r.st.blocked.Load(),
	}
	if hits+misses > 0 {
		st.CacheHitRatio = float64(hits) / float64(hits+misses)
	}
	if v := r.cfg.Validator; v != nil {
		st.DNSSEC = &status.DNSSEC{Anchors: v.Anchors(), Secure: r.st.secure.Load(), Insecure: r.st.insecure.Load(),
			Bogus: r.st.bogus.Load(), Synthesized: r.st.synthesized.Load()}
		if last := r.lastBogus.Load(); last != nil {
			st.DNSSEC.LastBogus = *last
		}
	}
	if r.mdns != nil {
		r.mdns.mu.Lock()
		st.MDNSQueries, st.MDNSAnswered = r.mdns.asked, r.mdns.got
		r.mdns.mu.Unlock()
	}
	var sum uint64
	if now, last := time.Now().Unix(), r.st.second.Load(); now-last < 60 {
		for t := now - 59; t <= last; t++ {
			sum += r.st.perSec[t%60].Load()
		}
	}
	st.QueriesPerSecond = float64(sum) / 60
	r.mu.Lock()
	for a, l := range r.listeners {
		st.Listening = append(st.Listening, fmt.Sprintf("%s (%s)", a, l.iface))
	}
	r.mu.Unlock()
	slices.Sort(st.Listening)
	return st
}

// upstreamStatus is every upstream's health: the configured and the ISP's,
// then each policy's own.
func (r *Resolver) upstreamStatus() []UpstreamStatus {
	out := r.fwd.status()
	for i, f := range r.views {
		for _, u := range f.status() {
			u.Source = "policy " + r.cfg.Views[i].Name
			out = append(out, u)
		}
	}
	return out
}
