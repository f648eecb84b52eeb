package dns

import (
	"container/list"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// cacheKey identifies a cached answer. The route is part of it: the WAN
// and the VPN can see different answers for the same name (CDNs, ISPs that
// rewrite blocked names), and a VPN client must get the VPN's; a policy's
// own servers may answer what others do not (names of the VPN's network).
type cacheKey struct {
	route Route
	name  string // lower case, fully qualified
	qtype uint16
	class uint16
	do    bool // DNSSEC records requested
	cd    bool // checking disabled, when validating: bogus data wanted too
}

type cacheEntry struct {
	key     cacheKey
	msg     *dns.Msg // as received, TTLs as of stored
	stored  time.Time
	expires time.Time
	hookGen uint64 // the lists' generation the answer hook last saw this answer in
	elem    *list.Element
	wire    *wireAnswer // nil: not servable by the fast path
	wkey    string      // its key in cache.wire
	cost    int         // bytes it holds, roughly (entryCost)
}

// cache is an LRU of answers bounded by entry count and by the memory
// they hold, honouring TTLs and caching negative answers for their SOA
// minimum (RFC 2308). An answer too large to be worth keeping is not
// cached at all: a domain whose answers hold thousands of records, looked
// up from a browser, must not fill the router's memory.
type cache struct {
	max      int
	maxBytes int
	bytes    int

	mu      sync.Mutex
	entries map[cacheKey]*cacheEntry
	wire    map[string]*cacheEntry // by wireKey, for the fast path
	lru     *list.List             // front: most recently used
	hits    uint64
	misses  uint64
}

// Negative answers without an SOA are kept this long; no answer is kept
// longer than maxTTL (a day, like unbound's cache-max-ttl default).
const (
	defaultNegTTL = 60 * time.Second
	maxTTL        = 24 * time.Hour
)

// Memory bounds: bytesPerEntry on average over the entry count, at most
// maxCacheBytes in all; and no answer over maxAnswerRecords records or
// maxAnswerBytes packed (real answers, DNSSEC's included, hold a few
// dozen records and a few KiB).
const (
	bytesPerEntry    = 2 << 10
	maxCacheBytes    = 64 << 20
	maxAnswerRecords = 256
	maxAnswerBytes   = 16 << 10
)

func newCache(max int) *cache {
	return &cache{max: max, maxBytes: min(max*bytesPerEntry, maxCacheBytes),
		entries: map[cacheKey]*cacheEntry{}, wire: map[string]*cacheEntry{}, lru: list.New()}
}

// entryCost estimates the memory an entry holds: the parsed message
// (records' headers and names, about twice the packed size) and the packed
// copy for the fast path.
func entryCost(m *dns.Msg, packed int, w *wireAnswer) int {
	n := 256 + 2*packed + 96*(len(m.Answer)+len(m.Ns)+len(m.Extra))
	if w != nil {
		n += len(w.b) + 2*len(w.ttls)
	}
	return n
}

func keyOf(rt Route, q dns.Question, do bool) cacheKey {
	return cacheKey{route: rt, name: strings.ToLower(q.Name), qtype: q.Qtype, class: q.Qclass, do: do}
}

// get returns a copy of the cached answer with TTLs aged, or nil.
func (c *cache) get(k cacheKey, now time.Time) *dns.Msg {
	m, _ := c.getGen(k, now, 0)
	return m
}

// getGen is get that also tells whether the answer hook has not seen this
// answer in generation gen yet (and records that it now has).
func (c *cache) getGen(k cacheKey, now time.Time, gen uint64) (*dns.Msg, bool) {
	if c.max <= 0 {
		return nil, false
	}
	c.mu.Lock()
	e, ok := c.entries[k]
	if !ok || !now.Before(e.expires) {
		if ok {
			c.removeLocked(e)
		}
		c.misses++
		c.mu.Unlock()
		return nil, false
	}
	c.lru.MoveToFront(e.elem)
	c.hits++
	stale := e.hookGen != gen
	e.hookGen = gen
	msg, age := e.msg, uint32(now.Sub(e.stored)/time.Second)
	c.mu.Unlock()
	out := msg.Copy()
	for _, sec := range [][]dns.RR{out.Answer, out.Ns, out.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue
			}
			if h.Ttl > age {
				h.Ttl -= age
			} else {
				h.Ttl = 0
			}
		}
	}
	return out, stale
}

// put caches a response for its lifetime: the smallest TTL among its
// records, or for a negative answer the SOA's minimum (RFC 2308 §5).
func (c *cache) put(k cacheKey, m *dns.Msg, now time.Time) { c.putFor(k, m, now, 0, 0) }

// putFor is put for an answer the hook has seen in generation gen, with
// a limit (if not 0) on how long it is kept: a validated answer's
// signatures expire. A SERVFAIL is cached only with a limit, for as long
// as it says (a bogus answer's verdict). It returns the answer's packed
// form, if it was cached and can be served packed.
func (c *cache) putFor(k cacheKey, m *dns.Msg, now time.Time, gen uint64, limit time.Duration) *wireAnswer {
	if c.max <= 0 || m.Truncated {
		return nil
	}
	return c.store(k, m.Copy(), now, gen, limit)
}

// putOwned is putFor(k, m, now, gen, 0) for a message the caller gives
// away: the cache keeps m itself, which nobody may change from then on.
func (c *cache) putOwned(k cacheKey, m *dns.Msg, now time.Time, gen uint64) *wireAnswer {
	if c.max <= 0 || m.Truncated {
		return nil
	}
	return c.store(k, m, now, gen, 0)
}

func (c *cache) store(k cacheKey, m *dns.Msg, now time.Time, gen uint64, limit time.Duration) *wireAnswer {
	clampTTLs(m)
	ttl, ok := cacheTTL(m)
	if m.Rcode == dns.RcodeServerFailure && limit > 0 {
		ttl, ok = limit, true
	}
	if limit > 0 {
		ttl = min(ttl, limit)
	}
	if !ok || ttl <= 0 {
		return nil
	}
	packed := m.Len()
	if len(m.Answer)+len(m.Ns)+len(m.Extra) > maxAnswerRecords || packed > maxAnswerBytes {
		return nil
	}
	e := &cacheEntry{key: k, msg: m, stored: now, expires: now.Add(ttl), hookGen: gen}
	if !k.cd && m.Rcode != dns.RcodeServerFailure {
		e.wire = packWire(m) // outside the lock: it is most of the work
	}
	e.cost = entryCost(m, packed, e.wire)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[k]; ok {
		c.removeLocked(old)
	}
	if e.wire != nil {
		e.wkey = wireKey(k)
		c.wire[e.wkey] = e
	}
	e.elem = c.lru.PushFront(e)
	c.entries[k] = e
	c.bytes += e.cost
	for c.lru.Len() > c.max || c.bytes > c.maxBytes && c.lru.Len() > 1 {
		c.removeLocked(c.lru.Back().Value.(*cacheEntry))
	}
	return e.wire
}

func (c *cache) removeLocked(e *cacheEntry) {
	c.bytes -= e.cost
	c.lru.Remove(e.elem)
	delete(c.entries, e.key)
	if e.wire != nil {
		delete(c.wire, e.wkey)
	}
}

// getWire returns the packed answer for a wire key and when it was
// stored, if it is cached, fresh, and was seen by the answer hook in
// generation gen; otherwise the ordinary path answers (and counts the
// miss).
func (c *cache) getWire(key []byte, now time.Time, gen uint64) (*wireAnswer, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.wire[string(key)]
	if e == nil || !now.Before(e.expires) || e.hookGen != gen {
		return nil, time.Time{}, false
	}
	c.lru.MoveToFront(e.elem)
	c.hits++
	return e.wire, e.stored, true
}

func cacheTTL(m *dns.Msg) (time.Duration, bool) {
	switch m.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return 0, false // SERVFAIL, REFUSED...: not cached
	}
	min := uint32(maxTTL / time.Second)
	found := false
	for _, rr := range m.Answer {
		found = true
		if rr.Header().Ttl < min {
			min = rr.Header().Ttl
		}
	}
	if !found || m.Rcode == dns.RcodeNameError {
		// Negative: NXDOMAIN or NODATA. RFC 2308: the lesser of the SOA's
		// TTL and its MINIMUM field.
		neg := uint32(defaultNegTTL / time.Second)
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				neg = min32(soa.Hdr.Ttl, soa.Minttl)
			}
		}
		min = min32(min, neg)
	}
	return time.Duration(min) * time.Second, true
}

// clampTTLs caps every record's TTL at maxTTL, and reads TTLs with the
// top bit set as 0 (RFC 2181 §8): an upstream cannot make a client hold a
// record for 136 years.
func clampTTLs(m *dns.Msg) {
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			switch {
			case h.Rrtype == dns.TypeOPT:
			case h.Ttl >= 1<<31:
				h.Ttl = 0
			case h.Ttl > uint32(maxTTL/time.Second):
				h.Ttl = uint32(maxTTL / time.Second)
			}
		}
	}
}

func min32(a, b uint32) uint32 {
	if a < b {
		return a
	}
	return b
}

// stats returns the cache's size and hit counters.
func (c *cache) stats() (size int, hits, misses uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.hits, c.misses
}
