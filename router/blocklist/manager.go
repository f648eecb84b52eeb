package blocklist

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/routerd/routerd/dns"
	"github.com/routerd/routerd/internal/iprange"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/internal/lowprio"
	"github.com/routerd/routerd/internal/via"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/rules"
)

// List is one configured list.
type List struct {
	Name, URL, File, Format string
	Via                     via.Path
	Refresh                 time.Duration
	MinRatio                float64
	DomainTTLFloor          time.Duration
	Timeout                 time.Duration  // one download attempt
	MaxSize                 int64          // cap on a download's body
	MaxEntries              int            // cap on its entries (0: none)
	RootCAs                 *x509.CertPool // for an https URL; nil: the system's roots
	// Block makes it a DNS block list ([[dns.block]]): its names are
	// answered by the resolver (NXDOMAIN, or with Null an unspecified
	// address) for clients on LANs (all when empty); Via is unset.
	Block bool
	Null  bool
	LANs  []string
}

// Config configures the manager.
type Config struct {
	NS        string // namespace of the lists table ("" main)
	Dir       string // where last good copies are kept
	Lists     []List
	LANIfaces []string
	Mask      uint32
	// Protect returns what no list may capture (asked at every parse, so
	// it can follow the WAN address and the tunnel's endpoint).
	Protect func() *Protected
	// Transport fetches URLs (nil: http.DefaultTransport). The router
	// gives one that resolves names through its own resolver.
	Transport http.RoundTripper
	// Clock is closed once the system clock can be trusted with
	// certificate dates (nil: at once). https downloads wait for it, at
	// most ClockWait after Start, rather than fail on a clock still in
	// 2020: then they try anyway.
	Clock     <-chan struct{}
	ClockWait time.Duration
	// Blocks, when set, are given the DNS block lists as they change.
	Blocks *dns.Blocklists
	Log    *slog.Logger
}

// Manager keeps the lists fresh and applied.
type Manager struct {
	cfg   Config
	lists []*list

	mu      sync.Mutex // serialises applies
	applied map[via.Path]*union
	domains atomic.Pointer[domainIndex]
	domGen  atomic.Uint64             // bumped with each new domain index
	protect atomic.Pointer[Protected] // as last asked of cfg.Protect

	run     lifecycle.Group
	started time.Time
}

type union struct {
	v4 []iprange.R4
	v6 []iprange.R6
}

type list struct {
	List
	kick chan chan struct{}
	tr   http.RoundTripper // the manager's, or one trusting the list's CAs

	mu  sync.Mutex
	cur *saved
	st  Status
}

// Status is one list in routerctl status.
type Status = status.Blocklist

// setsOf maps a path to its sets.
var setsOf = map[via.Path][4]string{
	via.VPN: {rules.SetVPN4, rules.SetVPN6, rules.SetVPN4DNS, rules.SetVPN6DNS},
	via.WAN: {rules.SetWAN4, rules.SetWAN6, rules.SetWAN4DNS, rules.SetWAN6DNS},
}

// New returns a manager for cfg.
func New(cfg Config) *Manager {
	m := &Manager{cfg: cfg, applied: map[via.Path]*union{}}
	for _, l := range cfg.Lists {
		source := l.URL
		if source == "" {
			source = l.File
		}
		tr := cfg.Transport
		if t, ok := tr.(*http.Transport); ok && l.RootCAs != nil {
			t = t.Clone()
			t.TLSClientConfig = &tls.Config{RootCAs: l.RootCAs}
			tr = t
		} else if tr == nil && l.RootCAs != nil {
			t := http.DefaultTransport.(*http.Transport).Clone()
			t.TLSClientConfig = &tls.Config{RootCAs: l.RootCAs}
			tr = t
		}
		via := l.Via.String()
		if l.Block {
			via = "dns block"
		}
		m.lists = append(m.lists, &list{List: l, kick: make(chan chan struct{}), tr: tr,
			st: Status{Name: l.Name, Via: via, Source: source, Format: l.Format}})
	}
	m.domains.Store(&domainIndex{})

	m.protect.Store(&Protected{})
	return m
}

// protected asks for what no list may capture now, and remembers it for
// the resolver's hook, which must not wait on it.
func (m *Manager) protected() *Protected {
	p := &Protected{}
	if m.cfg.Protect != nil {
		p = m.cfg.Protect()
	}
	m.protect.Store(p)
	return p
}

// Retry refreshes at once every list whose last attempt failed or that
// never succeeded, without waiting: the router calls it when the WAN comes
// up, so a box that booted offline does not wait out a backoff.
func (m *Manager) Retry() {
	for _, l := range m.lists {
		l.mu.Lock()
		failed := l.st.LastError != "" || l.st.LastAttempt.IsZero() || l.st.LastSuccess.Before(l.st.LastAttempt)
		l.mu.Unlock()
		if failed {
			select {
			case l.kick <- nil:
			default: // refreshing already
			}
		}
	}
}

// Start creates the lists table, applies every list's last good copy
// (before any download: a box that boots offline already forces), and
// starts the refresh schedule.
func (m *Manager) Start(ctx context.Context) error {
	if err := rules.EnsureLists(m.cfg.NS, &rules.Lists{LANIfaces: m.cfg.LANIfaces, Mask: m.cfg.Mask,
		MarkWAN: via.WAN.Mark(), MarkVPN: via.VPN.Mark()}); err != nil {
		return err
	}
	var errs []error
	for _, l := range m.lists {
		s, err := load(m.cfg.Dir, l.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: last good copy unreadable: %w", l.Name, err))
			continue
		}
		if s != nil {
			l.mu.Lock()
			l.cur = s
			l.st.LastSuccess, l.st.LastResult = s.Meta.LastSuccess, "loaded last good copy"
			l.fill(s)
			l.mu.Unlock()
		}
	}
	m.protected()
	m.setBlocks()
	if err := m.applyAll(true); err != nil {
		errs = append(errs, err)
	}
	m.started = time.Now()
	m.run.Start(ctx)
	for _, l := range m.lists {
		m.run.Go(func(ctx context.Context) { m.schedule(ctx, l) })
	}
	return errors.Join(errs...)
}

// waitClock waits for a trustworthy clock, up to ClockWait after Start,
// and reports false only when ctx ended first.
func (m *Manager) waitClock(ctx context.Context, l *list) bool {
	if m.cfg.Clock == nil {
		return true
	}
	select {
	case <-m.cfg.Clock:
		return true
	default:
	}
	l.mu.Lock()
	l.st.LastResult = "waiting for the clock to be synchronised"
	l.mu.Unlock()
	t := time.NewTimer(time.Until(m.started.Add(m.cfg.ClockWait)))
	defer t.Stop()
	select {
	case <-m.cfg.Clock:
	case <-t.C:
		m.cfg.Log.Warn("the clock is still not synchronised: downloading anyway", "list", l.Name)
	case <-ctx.Done():
		return false
	}
	return true
}

// Stop ends the schedule. The sets keep their contents.
func (m *Manager) Stop(ctx context.Context) error { return m.run.Stop(ctx) }

// schedule refreshes a list at once, then every Refresh (with 10% jitter),
// backing off on failure, and whenever kicked.
func (m *Manager) schedule(ctx context.Context, l *list) {
	const firstBackoff = 15 * time.Second
	backoff := firstBackoff
	next := time.Duration(0)
	for {
		l.mu.Lock()
		l.st.NextRun = time.Now().Add(next)
		l.mu.Unlock()
		t := time.NewTimer(next)
		var done chan struct{}
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case done = <-l.kick:
			t.Stop()
		}
		ok := m.refresh(ctx, l)
		if done != nil {
			close(done)
		}
		if ok {
			backoff = firstBackoff
			jitter := time.Duration(rand.Int64N(int64(l.Refresh)/5+1)) - l.Refresh/10
			next = l.Refresh + jitter
		} else {
			next = min(backoff, l.Refresh)
			backoff = min(backoff*2, l.Refresh)
		}
	}
}

// RefreshNow refreshes the named list (or every list for "") and waits.
func (m *Manager) RefreshNow(ctx context.Context, name string) ([]Status, error) {
	var waits []chan struct{}
	found := false
	for _, l := range m.lists {
		if name != "" && l.Name != name {
			continue
		}
		found = true
		done := make(chan struct{})
		select {
		case l.kick <- done:
			waits = append(waits, done)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if !found {
		return nil, fmt.Errorf("no blocklist named %q", name)
	}
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var out []Status
	for _, st := range m.Status() {
		if name == "" || st.Name == name {
			out = append(out, st)
		}
	}
	return out, nil
}

// refresh fetches and parses a list and, when it is good, makes it the
// list. It reports whether the list is in a good state afterwards. It runs
// at a low CPU priority: a big list takes a core for a moment, which the
// resolver's answers must not wait for (BenchmarkDNSTail).
func (m *Manager) refresh(ctx context.Context, l *list) bool {
	var ok bool
	lowprio.Run(func() { ok = m.refreshNow(ctx, l) })
	return ok
}

func (m *Manager) refreshNow(ctx context.Context, l *list) bool {
	now := time.Now()
	l.mu.Lock()
	prev := l.cur
	var v validators
	if prev != nil {
		v = prev.Meta.Validators
	}
	l.st.LastAttempt = now
	l.mu.Unlock()
	fail := func(err error) bool {
		m.cfg.Log.Warn("blocklist refresh failed; keeping the last good copy", "list", l.Name, "err", err)
		l.mu.Lock()
		l.st.LastError, l.st.LastResult = err.Error(), "kept last good copy"
		l.mu.Unlock()
		return false
	}
	if strings.HasPrefix(l.URL, "https://") && !m.waitClock(ctx, l) {
		return fail(ctx.Err())
	}
	rc, nv, err := open(ctx, &l.List, l.tr, v)
	if errors.Is(err, errNotModified) {
		l.mu.Lock()
		l.st.LastSuccess, l.st.LastError, l.st.LastResult = now, "", "not modified"
		l.mu.Unlock()
		return true
	}
	if err != nil {
		return fail(fmt.Errorf("fetch: %w", err))
	}
	if l.Block {
		if err := m.refreshBlock(l, rc, nv, now); err != nil {
			return fail(err)
		}
		return true
	}
	p, err := ParseMax(rc, l.Format, m.protected(), l.MaxEntries)
	rc.Close()
	if err != nil {
		return fail(err)
	}
	if err := l.plausible(p.Lines, p.Entries, p.Rejected, entriesOf(prev), p.Samples); err != nil {
		return fail(err)
	}
	s := &saved{V4: p.V4, V6: p.V6, Domains: p.Domains, Meta: meta{Validators: nv, Format: p.Format, Entries: p.Entries,
		Lines: p.Lines, Rejected: p.Rejected, Refused: p.Refused, LastSuccess: now}}
	if err := save(m.cfg.Dir, l.Name, s); err != nil {
		m.cfg.Log.Error("save blocklist", "list", l.Name, "err", err)
	}
	l.mu.Lock()
	l.cur = s
	l.fill(s)
	l.st.Samples, l.st.RefusedSamples = p.Samples, p.RefusedSamples
	l.st.LastSuccess, l.st.LastError, l.st.LastResult = now, "", "updated"
	l.mu.Unlock()
	if err := m.applyVia(l.Via, false); err != nil {
		return fail(fmt.Errorf("apply: %w", err))
	}
	m.cfg.Log.Info("blocklist updated", "list", l.Name, "v4", len(p.V4), "v6", len(p.V6), "domains", len(p.Domains),
		"rejected", p.Rejected, "refused", p.Refused)
	return true
}

// plausible refuses a parsed list that looks wrong: mostly unreadable,
// empty, or shrunk below min_ratio of the last good copy's entries.
func (l *list) plausible(lines, entries, rejected, prevEntries int, samples []string) error {
	switch {
	case rejected*2 > lines:
		return fmt.Errorf("garbage: %d of %d lines unreadable (e.g. %q)", rejected, lines, first(samples))
	case entries == 0:
		return fmt.Errorf("empty: %d lines, none usable", lines)
	case prevEntries > 0 && float64(entries) < l.MinRatio*float64(prevEntries):
		return fmt.Errorf("shrunk from %d to %d entries, below min_ratio %.2f", prevEntries, entries, l.MinRatio)
	}
	return nil
}

func entriesOf(s *saved) int {
	if s == nil {
		return 0
	}
	return s.Meta.Entries
}

func first(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[0]
}

func (l *list) fill(s *saved) {
	l.st.Format = s.Meta.Format
	if s.Block != nil {
		l.st.Domains, l.st.Exceptions = s.Block.Names.Len(), s.Block.Except.Len()
		l.st.Lines, l.st.Rejected = s.Meta.Lines, s.Meta.Rejected
		return
	}
	l.st.Prefixes4, l.st.Prefixes6, l.st.Domains = len(s.V4), len(s.V6), len(s.Domains)
	l.st.Lines, l.st.Rejected, l.st.Refused = s.Meta.Lines, s.Meta.Rejected, s.Meta.Refused
}

// applyAll applies every path's union; at start (replace) the sets are
// emptied and refilled in one transaction, since what they hold from
// before a restart is not known here.
func (m *Manager) applyAll(replace bool) error {
	var errs []error
	for _, p := range []via.Path{via.VPN, via.WAN} {
		errs = append(errs, m.applyVia(p, replace))
	}
	return errors.Join(errs...)
}

// applyVia makes the path's sets hold the union of its lists, as a diff
// against what was applied, in one transaction; and rebuilds the domain
// index.
func (m *Manager) applyVia(p via.Path, replace bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := &union{}
	for _, l := range m.lists {
		if l.Via != p {
			continue
		}
		l.mu.Lock()
		if l.cur != nil {
			u.v4 = append(u.v4, l.cur.V4...)
			u.v6 = append(u.v6, l.cur.V6...)
		}
		l.mu.Unlock()
	}
	u.v4, u.v6 = iprange.Merge4(u.v4), iprange.Merge6(u.v6)
	// What is protected may have grown since a copy was parsed (a new LAN,
	// another WAN address): nothing protected is ever applied.
	prot := m.protect.Load()
	u.v4 = slices.DeleteFunc(u.v4, func(r iprange.R4) bool { return iprange.Overlaps4(r, prot.V4) })
	u.v6 = slices.DeleteFunc(u.v6, func(r iprange.R6) bool { return iprange.Overlaps6(r, prot.V6) })
	sets := setsOf[p]
	old := m.applied[p]
	var err error
	added := rules.ListDiff{Add4: u.v4, Add6: u.v6}
	if replace || old == nil {
		err = rules.ReplaceLists(m.cfg.NS, []rules.ListDiff{{Set4: sets[0], Set6: sets[1], Add4: u.v4, Add6: u.v6}})
	} else {
		d := rules.ListDiff{Set4: sets[0], Set6: sets[1]}
		d.Add4, d.Del4 = iprange.Diff4(old.v4, u.v4)
		d.Add6, d.Del6 = iprange.Diff6(old.v6, u.v6)
		err = rules.ApplyListDiffs(m.cfg.NS, []rules.ListDiff{d})
		added = d
	}
	if err != nil {
		return err
	}
	m.applied[p] = u
	m.move(p, added.Add4, added.Add6)
	m.domains.Store(m.buildDomains())
	m.domGen.Add(1)
	return nil
}

// move ends the LAN's connections to newly listed destinations that took
// the other path: the list decides a connection's path only when it
// starts, and a connection keeps its path after, offloaded or not. Ended,
// its next packet starts a new one, which the list sends its way (a TCP
// connection moved so breaks, and its application connects again: by the
// list's path). Connections no path was decided for (the router's own)
// are left alone.
func (m *Manager) move(p via.Path, v4 []iprange.R4, v6 []iprange.R6) {
	if len(v4)+len(v6) == 0 {
		return
	}
	want := p.Mark()
	n, err := rules.DeleteConns(m.cfg.NS, func(c rules.Conn) bool {
		mark := c.Mark & m.cfg.Mask
		return mark != 0 && mark != want && iprange.Contains(c.Dst, v4, v6)
	})
	if err != nil {
		m.cfg.Log.Warn("end connections to newly listed destinations", "via", p, "ended", n, "err", err)
		return
	}
	if n > 0 {
		m.cfg.Log.Info("connections to newly listed destinations ended, to take the list's path", "via", p, "ended", n)
	}
}

// domainIndex maps every listed domain to its path and address lifetime.
type domainIndex struct {
	by map[string]domainEntry
}

type domainEntry struct {
	via   via.Path
	floor time.Duration
}

func (m *Manager) buildDomains() *domainIndex {
	idx := &domainIndex{by: map[string]domainEntry{}}
	for _, p := range []via.Path{via.WAN, via.VPN} { // vpn last: it wins a tie
		for _, l := range m.lists {
			if l.Via != p {
				continue
			}
			l.mu.Lock()
			if l.cur != nil {
				for _, d := range l.cur.Domains {
					idx.by[d] = domainEntry{via: p, floor: l.DomainTTLFloor}
				}
			}
			l.mu.Unlock()
		}
	}
	return idx
}

// match finds the entry for name or its closest listed parent.
func (idx *domainIndex) match(name string) (domainEntry, bool) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	for {
		if e, ok := idx.by[name]; ok {
			return e, true
		}
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return domainEntry{}, false
		}
		name = name[i+1:]
	}
}

// Observe is the resolver's hook: when an answer's names (the question
// and its CNAME chain) are on a domain list, its addresses join the list's
// path, for max(TTL, floor), before the client gets the answer.
// DomainsGeneration changes whenever the domain lists do: the resolver
// runs Observe again for answers it serves from its cache after a change,
// so a domain added to a list is routed at once, not when the client's
// cached answer expires.
func (m *Manager) DomainsGeneration() uint64 { return m.domGen.Load() }

func (m *Manager) Observe(path via.Path, names []string, addrs []netip.Addr, ttl time.Duration) {
	idx := m.domains.Load()
	if len(idx.by) == 0 {
		return
	}
	var hit *domainEntry
	for _, n := range names {
		if e, ok := idx.match(n); ok {
			if hit == nil || e.via == via.VPN {
				e := e
				hit = &e
			}
		}
	}
	if hit == nil {
		return
	}
	p := m.protect.Load()
	addrs = slices.DeleteFunc(slices.Clone(addrs), func(a netip.Addr) bool { return iprange.Contains(a, p.V4, p.V6) })
	if len(addrs) == 0 {
		return
	}
	sets := setsOf[hit.via]
	if err := rules.AddDynamic(m.cfg.NS, sets[2], sets[3], addrs, max(ttl, hit.floor)); err != nil {
		m.cfg.Log.Warn("route a listed domain's addresses", "names", names, "err", err)
	}
}

// Status reports every list.
func (m *Manager) Status() []Status {
	var out []Status
	for _, l := range m.lists {
		l.mu.Lock()
		out = append(out, l.st)
		l.mu.Unlock()
	}
	return out
}

// Teardown removes the lists table. The saved copies stay: they are data.
func Teardown(ns string) error { return rules.RemoveLists(ns) }
