package dns

import (
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/routerd/routerd/router/status"
)

// The query log (dns.query_log): every question, who asked, how it was
// answered, kept in memory for a while. Off by default: it is what the
// household looked up.

// How a question was answered.
const (
	howLocal    = "local"    // the router's own names
	howCache    = "cache"    // from the cache
	howUpstream = "upstream" // asked upstream
	howMDNS     = "mdns"     // asked the LAN over multicast DNS
	howBlocked  = "blocked"  // [[dns.block]]
	howRefused  = "refused"  // not a client the resolver serves
)

// maxQueryLog bounds the log whatever its age limit: 200,000 questions
// (about 40 MiB) is a busy household's day.
const maxQueryLog = 200_000

type queryEntry struct {
	at     time.Time
	client netip.Addr
	name   string
	qtype  uint16
	rcode  int
	how    string
	list   string
}

// queryLog is a ring of the last questions, at most keep old.
type queryLog struct {
	keep time.Duration

	mu   sync.Mutex
	ring []queryEntry
	next int // where the next entry goes once the ring is full
	subs map[chan status.DNSQuery]struct{}
}

func newQueryLog(keep time.Duration) *queryLog {
	if keep <= 0 {
		return nil
	}
	return &queryLog{keep: keep, subs: map[chan status.DNSQuery]struct{}{}}
}

func (l *queryLog) add(e queryEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) < maxQueryLog {
		l.ring = append(l.ring, e)
	} else {
		l.ring[l.next] = e
		l.next = (l.next + 1) % maxQueryLog
	}
	if len(l.subs) > 0 {
		q := e.status()
		for ch := range l.subs {
			select {
			case ch <- q:
			default: // a follower that does not keep up misses lines
			}
		}
	}
}

func (e queryEntry) status() status.DNSQuery {
	return status.DNSQuery{Time: e.at, Client: e.client.String(), Name: e.name, Type: dns.TypeToString[e.qtype],
		Rcode: dns.RcodeToString[e.rcode], Answer: e.how, List: e.list}
}

// since returns the questions still kept, oldest first, of client if not
// the zero address.
func (l *queryLog) since(client netip.Addr) []status.DNSQuery {
	l.mu.Lock()
	defer l.mu.Unlock()
	cutoff := time.Now().Add(-l.keep)
	var out []status.DNSQuery
	for i := range l.ring {
		e := l.ring[(l.next+i)%len(l.ring)]
		if e.at.Before(cutoff) || (client.IsValid() && e.client != client) {
			continue
		}
		out = append(out, e.status())
	}
	return out
}

// follow returns the questions as they come, until stop.
func (l *queryLog) follow() (<-chan status.DNSQuery, func()) {
	ch := make(chan status.DNSQuery, 256)
	l.mu.Lock()
	l.subs[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.subs, ch)
		l.mu.Unlock()
	}
}

// logQuery records a question and its answer, when the log is on.
func (r *Resolver) logQuery(client netip.Addr, q dns.Question, rcode int, how, list string) {
	if r.qlog == nil {
		return
	}
	r.qlog.add(queryEntry{at: time.Now(), client: client, name: q.Name, qtype: q.Qtype, rcode: rcode, how: how, list: list})
}

// QueryLog returns the logged questions (of client, if valid), and with
// follow a channel of those to come and a function that stops it. ok is
// false when the log is off.
func (r *Resolver) QueryLog(client netip.Addr, follow bool) (past []status.DNSQuery, next <-chan status.DNSQuery, stop func(), ok bool) {
	if r.qlog == nil {
		return nil, nil, func() {}, false
	}
	past = r.qlog.since(client)
	stop = func() {}
	if follow {
		next, stop = r.qlog.follow()
	}
	return past, next, stop, true
}
