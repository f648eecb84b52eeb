// Package lograte limits how often one kind of event is logged. A flood of
// the same warning (a DHCP pool a client starves, DECLINEs, SSH failures
// from a scanner) costs one line per interval and a count of those held
// back, so that logging neither fills the log ring nor stalls the
// appliance behind a slow console.
package lograte

import (
	"sync"
	"time"
)

// Limiter allows one event of each kind per interval.
type Limiter struct {
	every time.Duration

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

// New returns a Limiter allowing one event of a kind per every.
func New(every time.Duration) *Limiter {
	return &Limiter{every: every, last: map[string]time.Time{}, held: map[string]int{}}
}

// Allow reports whether an event of kind key may be logged at now and, if
// so, how many of its kind were held back since the last one logged. Kinds
// are a fixed set (a message, an interface), not per client.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, seen := l.last[key]; seen && now.Sub(last) < l.every {
		l.held[key]++
		return false, 0
	}
	l.last[key] = now
	held = l.held[key]
	delete(l.held, key)
	return true, held
}
