package dhcp

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/routerd/routerd/internal/atomicfile"
	"github.com/routerd/routerd/router/status"
)

// Lease is one address bound to one client.
type Lease struct {
	Iface    string     `json:"iface"`
	Addr     netip.Addr `json:"addr"`
	MAC      string     `json:"mac,omitempty"`  // DHCPv4: chaddr
	CID      string     `json:"cid,omitempty"`  // DHCPv4: client identifier (hex), when sent
	DUID     string     `json:"duid,omitempty"` // DHCPv6
	IAID     uint32     `json:"iaid,omitempty"` // DHCPv6
	Hostname string     `json:"hostname,omitempty"`
	Expires  time.Time  `json:"expires"`
	Reserved bool       `json:"reserved,omitempty"`
}

// Key identifies the client a lease belongs to.
func (l *Lease) Key() string {
	if l.DUID != "" {
		return fmt.Sprintf("%s|duid=%s/%d", l.Iface, l.DUID, l.IAID)
	}
	if l.CID != "" {
		return l.Iface + "|cid=" + l.CID
	}
	return l.Iface + "|mac=" + l.MAC
}

// Expired reports whether the lease has run out at t.
func (l *Lease) Expired(t time.Time) bool { return !t.Before(l.Expires) }

// record is one journal entry: a lease granted (or renewed), released, or
// an address declined (quarantined until Lease.Expires).
type record struct {
	Seq   uint64 `json:"seq"`
	Op    string `json:"op"` // "grant" | "release" | "decline"
	Lease Lease  `json:"lease"`
}

// Store keeps leases in memory and durably on disk: an append-only journal
// written with group commit (one fsync for every record that arrived while
// the previous fsync ran), compacted into a snapshot now and then. A lease
// is acknowledged to the client only after its record is on disk, so a
// power cut loses no lease a client was told about.
type Store struct {
	dir string
	log *slog.Logger

	mu       sync.Mutex
	byKey    map[string]*Lease
	byAddr   map[netip.Addr]*Lease
	declined map[netip.Addr]time.Time
	// ours are the leases (by key) and quarantines granted by this run,
	// whose expiry was computed from this run's clock (ClockStepped).
	ours         map[string]bool
	oursDeclined map[netip.Addr]bool
	seq          uint64
	subs         []func(Event)

	wmu      sync.Mutex // serialises journal writes and compaction
	journal  *os.File
	pending  []pendingWrite
	pmu      sync.Mutex
	pcond    *sync.Cond
	records  int // records in the journal since the last snapshot
	closed   bool
	commitWG sync.WaitGroup
	stats    StoreStats
}

type pendingWrite struct {
	rec  record
	done chan error
}

// StoreStats counts the journal's writes.
type StoreStats = status.LeaseStore

// Event is a lease change, for subscribers such as the resolver.
type Event struct {
	Lease   Lease
	Removed bool // released, declined, expired or replaced
}

const (
	journalName  = "leases.journal"
	snapshotName = "leases.snapshot"
	// compactEvery bounds the journal: after this many records it is
	// folded into a fresh snapshot.
	compactEvery = 20000
)

// OpenStore loads the leases in dir (snapshot, then the journal over it)
// and opens the journal for appending.
func OpenStore(dir string, log *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lease store: %w", err)
	}
	s := &Store{dir: dir, log: log, byKey: map[string]*Lease{}, byAddr: map[netip.Addr]*Lease{}, declined: map[netip.Addr]time.Time{},
		ours: map[string]bool{}, oursDeclined: map[netip.Addr]bool{}}
	s.pcond = sync.NewCond(&s.pmu)
	if err := s.load(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, journalName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lease journal: %w", err)
	}
	s.journal = f
	s.commitWG.Add(1)
	go s.committer()
	return s, nil
}

func (s *Store) load() error {
	var snap struct {
		Seq      uint64               `json:"seq"`
		Leases   []Lease              `json:"leases"`
		Declined map[string]time.Time `json:"declined"`
	}
	b, err := os.ReadFile(filepath.Join(s.dir, snapshotName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read lease snapshot: %w", err)
	default:
		if err := json.Unmarshal(b, &snap); err != nil {
			return fmt.Errorf("parse lease snapshot: %w", err)
		}
		for i := range snap.Leases {
			s.put(&snap.Leases[i])
		}
		for a, t := range snap.Declined {
			if addr, err := netip.ParseAddr(a); err == nil {
				s.declined[addr] = t
			}
		}
		s.seq = snap.Seq
	}
	f, err := os.Open(filepath.Join(s.dir, journalName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read lease journal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			// A torn last line (power cut mid-write) is expected: its
			// client was never acknowledged.
			s.log.Warn("lease journal: skipping unreadable record", "err", err)
			continue
		}
		if r.Seq <= snap.Seq {
			continue
		}
		s.apply(r)
		s.seq = r.Seq
		s.records++
	}
	return sc.Err()
}

func (s *Store) put(l *Lease) {
	if old := s.byKey[l.Key()]; old != nil {
		delete(s.byAddr, old.Addr)
	}
	if old := s.byAddr[l.Addr]; old != nil {
		delete(s.byKey, old.Key())
	}
	s.byKey[l.Key()] = l
	s.byAddr[l.Addr] = l
}

func (s *Store) remove(l *Lease) {
	if cur := s.byKey[l.Key()]; cur != nil && cur.Addr == l.Addr {
		delete(s.byKey, l.Key())
	}
	if cur := s.byAddr[l.Addr]; cur != nil && cur.Key() == l.Key() {
		delete(s.byAddr, l.Addr)
	}
}

// apply changes the in-memory state for r and returns the events it makes.
func (s *Store) apply(r record) []Event {
	l := r.Lease
	var ev []Event
	switch r.Op {
	case "grant":
		if old := s.byKey[l.Key()]; old != nil && old.Addr != l.Addr {
			ev = append(ev, Event{Lease: *old, Removed: true})
		}
		if old := s.byAddr[l.Addr]; old != nil && old.Key() != l.Key() {
			ev = append(ev, Event{Lease: *old, Removed: true})
		}
		s.put(&l)
		delete(s.declined, l.Addr)
		ev = append(ev, Event{Lease: l})
	case "release":
		if cur := s.byAddr[l.Addr]; cur != nil && cur.Key() == l.Key() {
			s.remove(cur)
			ev = append(ev, Event{Lease: *cur, Removed: true})
		}
	case "decline":
		if cur := s.byAddr[l.Addr]; cur != nil {
			s.remove(cur)
			ev = append(ev, Event{Lease: *cur, Removed: true})
		}
		s.declined[l.Addr] = l.Expires
	}
	return ev
}

// ClockStepped moves, by d, the expiry of every lease and quarantine this
// run granted, after the wall clock was stepped by d: a lease lasts its
// lease time of elapsed time whatever the clock does. A step forward by a
// year expires nothing, a step back extends nothing. Leases loaded from
// disk keep their dates: an earlier boot wrote them from its clock, and
// time the box spent off does count against them. The moved expiries are
// saved at once (a snapshot), so a restart sees them too.
func (s *Store) ClockStepped(d time.Duration) error {
	s.mu.Lock()
	for k := range s.ours {
		if l := s.byKey[k]; l != nil {
			// Round(0) drops the monotonic reading, which the step did
			// not move: from now on the (stepped) wall clock counts.
			l.Expires = l.Expires.Round(0).Add(d)
		}
	}
	for a := range s.oursDeclined {
		if t, ok := s.declined[a]; ok {
			s.declined[a] = t.Round(0).Add(d)
		}
	}
	s.mu.Unlock()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.compactLocked()
}

// Subscribe calls fn for every lease change from now on (from the goroutine
// that made it: fn must be quick).
func (s *Store) Subscribe(fn func(Event)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, fn)
}

// ErrTaken means the address belongs to another client (or is declined).
var ErrTaken = errors.New("address is taken")

// commit applies r in memory and waits until it is durable. The in-memory
// change happens first so that concurrent allocations see it. check, when
// given, runs under the store's lock first and can refuse the change: the
// test and the grant are one atomic step.
func (s *Store) commit(r record, check func() error) error {
	done := make(chan error, 1)
	s.mu.Lock()
	if check != nil {
		if err := check(); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	s.pmu.Lock()
	if s.closed {
		s.pmu.Unlock()
		s.mu.Unlock()
		return errors.New("lease store closed")
	}
	s.seq++
	r.Seq = s.seq
	ev := s.apply(r)
	switch r.Op {
	case "grant":
		s.ours[r.Lease.Key()] = true
	case "decline":
		s.oursDeclined[r.Lease.Addr] = true
	}
	subs := s.subs
	// Queued under the state lock, so the journal's order is the order
	// the changes were made in memory.
	s.pending = append(s.pending, pendingWrite{rec: r, done: done})
	s.pcond.Signal()
	s.pmu.Unlock()
	s.mu.Unlock()
	err := <-done
	if err == nil {
		for _, e := range ev {
			for _, fn := range subs {
				fn(e)
			}
		}
	}
	return err
}

// committer writes pending records in batches, one fsync per batch.
func (s *Store) committer() {
	defer s.commitWG.Done()
	for {
		s.pmu.Lock()
		for len(s.pending) == 0 && !s.closed {
			s.pcond.Wait()
		}
		batch := s.pending
		s.pending = nil
		closed := s.closed
		s.pmu.Unlock()
		if len(batch) > 0 {
			err := s.writeBatch(batch)
			for _, p := range batch {
				p.done <- err
			}
		}
		if closed {
			return
		}
	}
}

func (s *Store) writeBatch(batch []pendingWrite) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var buf []byte
	for _, p := range batch {
		b, _ := json.Marshal(p.rec)
		buf = append(append(buf, b...), '\n')
	}
	if _, err := s.journal.Write(buf); err != nil {
		return fmt.Errorf("write lease journal: %w", err)
	}
	if err := s.journal.Sync(); err != nil {
		return fmt.Errorf("sync lease journal: %w", err)
	}
	s.stats.Commits++
	s.stats.Records += int64(len(batch))
	s.records += len(batch)
	if s.records >= compactEvery {
		if err := s.compactLocked(); err != nil {
			s.log.Error("compact lease journal", "err", err)
		}
	}
	return nil
}

// compactLocked writes a snapshot of the current state and starts an empty
// journal. Records up to the snapshot's sequence number are in it; a crash
// between the two steps replays the journal over the snapshot, skipping
// what the snapshot already holds.
func (s *Store) compactLocked() error {
	s.mu.Lock()
	snap := struct {
		Seq      uint64               `json:"seq"`
		Leases   []Lease              `json:"leases"`
		Declined map[string]time.Time `json:"declined"`
	}{Seq: s.seq, Declined: map[string]time.Time{}}
	for _, l := range s.byKey {
		snap.Leases = append(snap.Leases, *l)
	}
	for a, t := range s.declined {
		snap.Declined[a.String()] = t
	}
	s.mu.Unlock()
	b, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(s.dir, snapshotName), b, 0o600); err != nil {
		return err
	}
	if err := s.journal.Truncate(0); err != nil {
		return err
	}
	if _, err := s.journal.Seek(0, io.SeekStart); err != nil {
		return err
	}
	s.records = 0
	return s.journal.Sync()
}

// Close flushes pending records and closes the journal.
func (s *Store) Close() error {
	s.pmu.Lock()
	s.closed = true
	s.pcond.Signal()
	s.pmu.Unlock()
	s.commitWG.Wait()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.journal.Close()
}

// Grant records a lease (new or renewed) durably, unless its address is
// held by another client's unexpired lease or quarantined: then ErrTaken.
func (s *Store) Grant(l Lease) error {
	now := time.Now()
	return s.commit(record{Op: "grant", Lease: l}, func() error {
		if cur := s.byAddr[l.Addr]; cur != nil && cur.Key() != l.Key() && !cur.Expired(now) {
			return ErrTaken
		}
		if until, ok := s.declined[l.Addr]; ok && now.Before(until) {
			return ErrTaken
		}
		return nil
	})
}

// Release frees a lease durably.
func (s *Store) Release(l Lease) error { return s.commit(record{Op: "release", Lease: l}, nil) }

// Decline quarantines an address until the given time.
func (s *Store) Decline(iface string, a netip.Addr, until time.Time) error {
	return s.commit(record{Op: "decline", Lease: Lease{Iface: iface, Addr: a, Expires: until}}, nil)
}

// ByKey returns the lease of a client, if any (expired ones included: a
// returning client gets its old address back while nobody else took it).
func (s *Store) ByKey(key string) (Lease, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.byKey[key]
	if !ok {
		return Lease{}, false
	}
	return *l, true
}

// ByAddr returns the lease holding an address, if any.
func (s *Store) ByAddr(a netip.Addr) (Lease, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.byAddr[a]
	if !ok {
		return Lease{}, false
	}
	return *l, true
}

// Declined reports whether an address is quarantined at t.
func (s *Store) Declined(a netip.Addr, t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.declined[a]
	return ok && t.Before(until)
}

// Leases returns every lease not expired at t.
func (s *Store) Leases(t time.Time) []Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Lease
	for _, l := range s.byKey {
		if !l.Expired(t) {
			out = append(out, *l)
		}
	}
	return out
}

// CountMAC counts the leases on iface not expired at t that hardware
// address mac holds under other keys than except (other client ids), without
// copying the store: it runs for every DISCOVER and REQUEST.
func (s *Store) CountMAC(iface, mac, except string, t time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, l := range s.byKey {
		if l.MAC == mac && l.Iface == iface && k != except && l.Addr.Is4() && !l.Expired(t) {
			n++
		}
	}
	return n
}

// Expire tells subscribers about leases that ran out since the last call.
// The leases stay in the store (a returning client gets its address back)
// until the address is given to someone else.
func (s *Store) Expire(now time.Time, since time.Time) {
	s.mu.Lock()
	var ev []Event
	for _, l := range s.byKey {
		if l.Expired(now) && !l.Expired(since) {
			ev = append(ev, Event{Lease: *l, Removed: true})
		}
	}
	subs := s.subs
	s.mu.Unlock()
	for _, e := range ev {
		for _, fn := range subs {
			fn(e)
		}
	}
}

// Stats returns the store's disk counters.
func (s *Store) Stats() StoreStats {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.stats
}
