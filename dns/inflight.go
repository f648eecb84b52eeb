package dns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// flights are the questions on their way upstream, by cache key, with
// whoever asked the same meanwhile.
type flights struct {
	mu sync.Mutex
	m  map[cacheKey][]func(*dns.Msg)
}

// join adds wait to the question in flight for key and reports true, or,
// when none is, marks key as in flight (the caller asks) and reports false.
func (f *flights) join(key cacheKey, wait func(*dns.Msg)) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[cacheKey][]func(*dns.Msg){}
	}
	if ws, ok := f.m[key]; ok {
		f.m[key] = append(ws, wait)
		return true
	}
	f.m[key] = nil
	return false
}

// land ends key's flight: each waiter gets the answer as cached (which it
// must not change), or nil when there is none and it asks on its own.
func (f *flights) land(key cacheKey, resp *dns.Msg) {
	f.mu.Lock()
	ws := f.m[key]
	delete(f.m, key)
	f.mu.Unlock()
	for _, w := range ws {
		w(resp)
	}
}

// forwardAsync is forward for the common case, without a goroutine per
// question: it sends q to the first upstream by plain UDP and returns at
// once; the answer is taken into the cache and handed to done on the
// upstream socket's reader, packed as a cache hit would be (reqWire is the
// query as it came, if it came over UDP) or as a message. What that cannot
// finish (no answer in time, SERVFAIL, truncation) goes on in a goroutine
// by the general path, which tries every upstream. False when the question
// needs the general path from the start: mDNS, DNSSEC validation, DNS over
// TLS.
func (r *Resolver) forwardAsync(req *dns.Msg, reqWire []byte, client netip.Addr, iface string, hint Route, done func(*dns.Msg, []byte)) bool {
	q := req.Question[0]
	if r.cfg.Validator != nil || isLocalName(q.Name) {
		return false
	}
	now := time.Now()
	key := r.key(req, q, client, iface, hint)
	fwd := r.forwarder(key.route.View)
	first, ok := fwd.first(now)
	if !ok || first.TLS {
		return false
	}
	e, ok := fwd.asker(first, key.route.Path.Mark()).(*exchanger)
	if !ok {
		return false
	}
	// The same question already on its way: wait for its answer rather
	// than ask again (a forger racing many identical questions gets one
	// chance, not many; the upstream is asked once).
	if r.flights.join(key, func(resp *dns.Msg) {
		if resp == nil {
			r.run.Go(func(context.Context) { done(r.answerSlow(req, client, iface, hint, false), nil) })
			return
		}
		if m, ok := r.blockAnswer(q, resp, client, iface); ok {
			done(r.finish(req, m, false), nil)
			return
		}
		r.logQuery(client, q, resp.Rcode, howUpstream, "")
		done(r.finish(req, resp.Copy(), false), nil)
	}) {
		r.st.merged.Add(1)
		return true
	}
	up := upstreamQuery(q, req.CheckingDisabled, key.do)
	reqWire = slices.Clone(reqWire) // the listener reuses its buffer
	_, _, err := e.start(up, func(resp *dns.Msg, err error) {
		if err == nil && (resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused) {
			err = fmt.Errorf("upstream answered %s", dns.RcodeToString[resp.Rcode])
		}
		fwd.record(first, time.Since(now), err)
		if err != nil || resp.Truncated {
			r.flights.land(key, nil)
			r.run.Go(func(context.Context) { done(r.answerSlow(req, client, iface, hint, false), nil) })
			return
		}
		r.st.forwarded.Add(1)
		// The cache keeps resp itself: nothing here changes it, and the
		// rare answer that cannot be sent packed is finished on a copy.
		resp, w := r.acceptWire(key, q, resp, now, true)
		r.flights.land(key, resp)
		if m, ok := r.blockAnswer(q, resp, client, iface); ok {
			done(r.finish(req, m, false), nil)
			return
		}
		r.logQuery(client, q, resp.Rcode, howUpstream, "")
		if w != nil && reqWire != nil {
			var kb [272]byte
			if wq, ok := parseQuery(reqWire, kb[:]); ok {
				out := make([]byte, len(w.b)+11)
				if n := writeAnswer(w, now, now, reqWire, &wq, out); n > 0 {
					done(nil, out[:n])
					return
				}
			}
		}
		done(r.finish(req, resp.Copy(), false), nil)
	})
	if err != nil {
		r.flights.land(key, nil)
	}
	return err == nil
}
