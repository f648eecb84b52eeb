package hw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Manager adopts the NICs of its specs and keeps them adopted.
type Manager struct {
	specs   []Spec
	records *records
	log     *slog.Logger

	wake chan struct{} // a link changed somewhere we watch

	mu      sync.Mutex
	binds   []binding     // per spec
	pass    chan struct{} // closed and replaced after each reconcile pass
	subs    []chan Event
	changes int           // mutations made by the last pass
	total   int           // mutations made since start
	wait    time.Duration // how long Start waited for missing NICs

	run lifecycle.Group
}

// binding is what a spec is bound to now.
type binding struct {
	ns         string
	index      int // 0: not present
	adopted    int
	readopted  int
	everBound  bool
	lastChange time.Time
	err        error
}

// NewManager returns a manager for specs that keeps its records (what each
// NIC looked like before routerd changed it) in recordsPath.
func NewManager(specs []Spec, recordsPath string, log *slog.Logger) *Manager {
	return &Manager{
		specs:   specs,
		records: &records{path: recordsPath},
		log:     log,
		wake:    make(chan struct{}, 1),
		binds:   make([]binding, len(specs)),
		pass:    make(chan struct{}),
	}
}

// Subscribe returns a channel of adoption events. It is buffered; a
// subscriber that falls behind misses events rather than stalling hw.
func (m *Manager) Subscribe() <-chan Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := make(chan Event, 16)
	m.subs = append(m.subs, c)
	return c
}

// Start adopts every NIC it can, waiting up to wait for those that are not
// there yet, and keeps watching until ctx ends or Stop. It returns an error
// naming the NICs that did not appear (or could not be configured); the
// watch goes on regardless and adopts them when they come.
func (m *Manager) Start(ctx context.Context, wait time.Duration) error {
	if err := m.records.load(); err != nil {
		return err
	}
	m.mu.Lock()
	m.wait = wait
	m.mu.Unlock()
	ctx = m.run.Start(ctx)
	if err := m.subscribe(ctx); err != nil {
		return err
	}
	m.run.Go(m.loop)

	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		pass := m.pass
		missing, failed := m.problemsLocked()
		m.mu.Unlock()
		select {
		case <-pass:
			// a pass finished since we looked; look again
			continue
		default:
		}
		if len(missing) == 0 {
			return errors.Join(failed...)
		}
		select {
		case <-pass:
		case <-deadline.C:
			return m.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stop ends the watch, waiting for it until ctx ends. The NICs stay as
// they are.
func (m *Manager) Stop(ctx context.Context) error { return m.run.Stop(ctx) }

func (m *Manager) problemsLocked() (missing []string, failed []error) {
	for i, s := range m.specs {
		b := m.binds[i]
		switch {
		case b.index == 0:
			missing = append(missing, s.String())
		case b.err != nil:
			failed = append(failed, fmt.Errorf("%s: %w", s.Name, b.err))
		}
	}
	return missing, failed
}

// watched is every namespace a NIC may be found in.
func (m *Manager) watched() []string {
	nss := []string{""}
	for _, s := range m.specs {
		if !slices.Contains(nss, s.NS) {
			nss = append(nss, s.NS)
		}
	}
	return nss
}

func (m *Manager) subscribe(ctx context.Context) error {
	for _, ns := range m.watched() {
		h, err := netns.Open(ns)
		if err != nil {
			return err
		}
		ch := make(chan netlink.LinkUpdate, 64)
		err = netlink.LinkSubscribeWithOptions(ch, ctx.Done(), netlink.LinkSubscribeOptions{
			Namespace: &h,
			ErrorCallback: func(err error) {
				if ctx.Err() != nil {
					return // the subscription's socket closing on Stop
				}
				m.log.Warn("link event subscription", "netns", ns, "err", err)
				m.poke()
			},
		})
		h.Close()
		if err != nil {
			return fmt.Errorf("subscribe to link events in %s: %w", netns.Label(ns), err)
		}
		// The library closes ch once ctx ends.
		m.run.Go(func(context.Context) {
			for range ch {
				m.poke()
			}
		})
	}
	return nil
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Manager) loop(ctx context.Context) {
	for {
		m.reconcile()
		select {
		case <-m.wake:
		case <-ctx.Done():
			return
		}
	}
}

// link is a link found while scanning.
type link struct {
	ns    string
	l     netlink.Link
	taken bool
}

// reconcile binds every spec to its link and converges it. It is idempotent:
// with nothing to do it makes no change, so the events of its own changes
// only cause one more, empty, pass.
func (m *Manager) reconcile() {
	links, err := m.scan()
	if err != nil {
		m.log.Error("scan links", "err", err)
	}
	m.mu.Lock()
	prev := slices.Clone(m.binds)
	m.mu.Unlock()

	var events []Event
	changes := 0
	next := make([]binding, len(m.specs))
	for i := range m.specs {
		s := &m.specs[i]
		b := prev[i]
		found := m.find(s, links)
		if found == nil {
			if b.index != 0 {
				m.log.Warn("NIC gone", "nic", s.Name, "mac", s.MatchMAC.String())
				b.index, b.lastChange, b.err = 0, time.Now(), nil
				events = append(events, Event{Name: s.Name, Role: s.Role, Kind: Lost, Adopted: b.adopted})
			}
			next[i] = b
			continue
		}
		n, idx, err := m.converge(s, found)
		changes += n
		b.err = err
		if err != nil {
			m.log.Error("configure NIC", "nic", s.Name, "err", err)
		}
		if idx != 0 && (b.index != idx || b.ns != s.NS) {
			b.adopted++
			if b.everBound {
				b.readopted++
			}
			b.everBound = true
			b.index, b.ns, b.lastChange = idx, s.NS, time.Now()
			m.log.Info("NIC adopted", "nic", s.Name, "mac", s.MatchMAC.String(), "netns", netns.Label(s.NS), "ifindex", idx, "times", b.adopted)
			events = append(events, Event{Name: s.Name, Role: s.Role, Kind: Adopted, Index: idx, NS: s.NS, Adopted: b.adopted})
		}
		next[i] = b
	}
	if err := m.records.save(); err != nil {
		m.log.Error("save NIC records", "err", err)
	}

	m.mu.Lock()
	m.binds = next
	m.changes = changes
	m.total += changes
	close(m.pass)
	m.pass = make(chan struct{})
	subs := slices.Clone(m.subs)
	m.mu.Unlock()
	for _, e := range events {
		for _, c := range subs {
			select {
			case c <- e:
			default:
				m.log.Warn("NIC event dropped: subscriber is behind", "nic", e.Name, "event", e.Kind)
			}
		}
	}
}

func (m *Manager) scan() ([]*link, error) {
	var out []*link
	var errs []error
	for _, ns := range m.watched() {
		if ns != "" && !netns.Exists(ns) {
			continue
		}
		h, err := netns.Handle(ns)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ls, err := h.LinkList()
		h.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("list links in %s: %w", netns.Label(ns), err))
			continue
		}
		for _, l := range ls {
			out = append(out, &link{ns: ns, l: l})
		}
	}
	return out, errors.Join(errs...)
}

// find returns the link that is s's NIC, if any.
func (m *Manager) find(s *Spec, links []*link) *link {
	take := func(l *link) *link { l.taken = true; return l }
	// 1. The link routerd adopted before (it may carry set_mac by now).
	if r := m.records.get(s.MatchMAC); r != nil && r.Index != 0 {
		for _, l := range links {
			a := l.l.Attrs()
			if !l.taken && l.ns == r.NS && a.Index == r.Index && (s.matches(a.PermHWAddr, a.HardwareAddr) || bytes.Equal(a.HardwareAddr, s.SetMAC) || bytes.Equal(a.PermHWAddr, s.MatchMAC)) {
				return take(l)
			}
		}
	}
	// 2. By permanent (or, lacking one, current) MAC.
	for _, l := range links {
		a := l.l.Attrs()
		if !l.taken && a.EncapType == "ether" && s.matches(a.PermHWAddr, a.HardwareAddr) {
			return take(l)
		}
	}
	// 3. Already in place with set_mac, records lost.
	if s.SetMAC != nil {
		for _, l := range links {
			a := l.l.Attrs()
			if !l.taken && l.ns == s.NS && a.Name == s.Name && bytes.Equal(a.HardwareAddr, s.SetMAC) {
				return take(l)
			}
		}
	}
	return nil
}

// converge brings the NIC to its spec and returns the number of changes and
// its final ifindex.
func (m *Manager) converge(s *Spec, found *link) (changes, index int, err error) {
	a := found.l.Attrs()
	rec := m.records.adopt(s.MatchMAC, found.ns, a)

	l := found.l
	if found.ns != s.NS {
		n, moved, err := move(l, found.ns, s.NS)
		changes += n
		if err != nil {
			return changes, 0, err
		}
		l = moved
	}
	h, err := netns.Handle(s.NS)
	if err != nil {
		return changes, 0, err
	}
	defer h.Close()
	if l.Attrs().Name != s.Name {
		n, err := rename(h, l, s.Name)
		changes += n
		if err != nil {
			return changes, 0, err
		}
	}
	if s.SetMAC != nil && !bytes.Equal(l.Attrs().HardwareAddr, s.SetMAC) {
		n, err := setDown(h, l)
		changes += n
		if err != nil {
			return changes, 0, err
		}
		if err := h.LinkSetHardwareAddr(l, s.SetMAC); err != nil {
			return changes, 0, fmt.Errorf("set MAC of %s (permanent %s) to %s: %w", s.Name, s.MatchMAC, s.SetMAC, err)
		}
		changes++
	}
	if s.MTU != 0 && l.Attrs().MTU != s.MTU {
		if err := h.LinkSetMTU(l, s.MTU); err != nil {
			return changes, 0, fmt.Errorf("set MTU of %s to %d: %w", s.Name, s.MTU, err)
		}
		changes++
	}
	l, err = h.LinkByName(s.Name)
	if err != nil {
		return changes, 0, fmt.Errorf("look up %s: %w", s.Name, err)
	}
	n, err := netns.SetSysctls(s.Sysctls)
	changes += n
	if err != nil {
		return changes, 0, err
	}
	if s.Master != "" {
		br, err := h.LinkByName(s.Master)
		if err != nil {
			return changes, 0, fmt.Errorf("look up bridge %s for %s: %w", s.Master, s.Name, err)
		}
		if l.Attrs().MasterIndex != br.Attrs().Index {
			if err := h.LinkSetMasterByIndex(l, br.Attrs().Index); err != nil {
				return changes, 0, fmt.Errorf("make %s a port of %s: %w", s.Name, s.Master, err)
			}
			changes++
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return changes, 0, fmt.Errorf("set %s up: %w", s.Name, err)
		}
		changes++
	}
	if s.Addrs != nil {
		n, err := netns.SyncAddrs(h, l, s.Addrs, false)
		changes += n
		if err != nil {
			return changes, 0, err
		}
		// Addresses an earlier config gave it, no longer wanted.
		for _, old := range rec.Addrs {
			if !slices.Contains(s.Addrs, old) {
				if err := h.AddrDel(l, &netlink.Addr{IPNet: netns.IPNet(old)}); err == nil {
					changes++
				}
			}
		}
		rec.Addrs = slices.Clone(s.Addrs)
	}
	rec.NS, rec.Index = s.NS, l.Attrs().Index
	return changes, l.Attrs().Index, nil
}

// move moves l from namespace from to namespace to. A link of the same name
// in the target would make the move fail, so l then gets a temporary name
// first.
func move(l netlink.Link, from, to string) (int, netlink.Link, error) {
	changes := 0
	src, err := netns.Handle(from)
	if err != nil {
		return 0, nil, err
	}
	defer src.Close()
	dst, err := netns.Handle(to)
	if err != nil {
		return 0, nil, err
	}
	defer dst.Close()
	name := l.Attrs().Name
	if _, err := dst.LinkByName(name); err == nil {
		name = tempName(l.Attrs().Index)
		n, err := setDown(src, l)
		changes += n
		if err != nil {
			return changes, nil, err
		}
		if err := src.LinkSetName(l, name); err != nil {
			return changes, nil, fmt.Errorf("rename %s to %s before the move: %w", l.Attrs().Name, name, err)
		}
		changes++
	}
	fd, err := netns.Open(to)
	if err != nil {
		return changes, nil, err
	}
	defer fd.Close()
	if err := src.LinkSetNsFd(l, int(fd)); err != nil {
		return changes, nil, fmt.Errorf("move %s to %s: %w", name, netns.Label(to), err)
	}
	changes++
	moved, err := dst.LinkByName(name)
	if err != nil {
		return changes, nil, fmt.Errorf("find %s in %s after the move: %w", name, netns.Label(to), err)
	}
	return changes, moved, nil
}

// rename gives l the name want, moving another link that has it out of the
// way to a temporary name. Renaming needs the link down.
func rename(h *netlink.Handle, l netlink.Link, want string) (int, error) {
	changes := 0
	if other, err := h.LinkByName(want); err == nil && other.Attrs().Index != l.Attrs().Index {
		n, err := setDown(h, other)
		changes += n
		if err != nil {
			return changes, err
		}
		tmp := tempName(other.Attrs().Index)
		if err := h.LinkSetName(other, tmp); err != nil {
			return changes, fmt.Errorf("rename %s out of the way to %s: %w", want, tmp, err)
		}
		changes++
	}
	n, err := setDown(h, l)
	changes += n
	if err != nil {
		return changes, err
	}
	if err := h.LinkSetName(l, want); err != nil {
		return changes, fmt.Errorf("rename %s to %s: %w", l.Attrs().Name, want, err)
	}
	return changes + 1, nil
}

func setDown(h *netlink.Handle, l netlink.Link) (int, error) {
	cur, err := h.LinkByIndex(l.Attrs().Index)
	if err != nil {
		return 0, fmt.Errorf("look up %s: %w", l.Attrs().Name, err)
	}
	if cur.Attrs().Flags&net.FlagUp == 0 {
		return 0, nil
	}
	if err := h.LinkSetDown(l); err != nil {
		return 0, fmt.Errorf("set %s down: %w", l.Attrs().Name, err)
	}
	return 1, nil
}

func tempName(index int) string { return fmt.Sprintf("rdtmp%d", index) }

// Changes returns the mutations made by the last reconcile pass and since
// start: a converged machine shows 0 for the last pass.
func (m *Manager) Changes() (last, total int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changes, m.total
}

// Status returns each NIC's state and counters, read from the kernel.
func (m *Manager) Status() []NICStatus {
	m.mu.Lock()
	binds := slices.Clone(m.binds)
	m.mu.Unlock()
	out := make([]NICStatus, len(m.specs))
	for i, s := range m.specs {
		b := binds[i]
		st := NICStatus{Name: s.Name, Role: s.Role, MatchMAC: s.MatchMAC.String(), Namespace: netns.Label(s.NS),
			State: "missing", Adopted: b.adopted, Readopted: b.readopted, LastChange: b.lastChange}
		if b.err != nil {
			st.Error = b.err.Error()
		}
		if b.index != 0 {
			if h, err := netns.Handle(b.ns); err == nil {
				if l, err := h.LinkByIndex(b.index); err == nil {
					fillLink(&st, l)
				}
				h.Close()
			}
		}
		out[i] = st
	}
	return out
}

func fillLink(st *NICStatus, l netlink.Link) {
	a := l.Attrs()
	st.CurrentMAC = a.HardwareAddr.String()
	st.MTU, st.Index = a.MTU, a.Index
	switch {
	case a.Flags&net.FlagUp == 0:
		st.State = "down"
	case a.RawFlags&unix.IFF_LOWER_UP == 0:
		st.State = "no-carrier"
	default:
		st.State = "up"
	}
	if s := a.Statistics; s != nil {
		st.RxBytes, st.TxBytes = s.RxBytes, s.TxBytes
		st.RxPackets, st.TxPackets = s.RxPackets, s.TxPackets
		st.RxErrors, st.TxErrors = s.RxErrors, s.TxErrors
		st.RxDropped, st.TxDropped = s.RxDropped, s.TxDropped
	}
}

// Err returns what is wrong now: NICs missing or failing to configure.
func (m *Manager) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	missing, failed := m.problemsLocked()
	var errs []error
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("not found within %s (still watching): %s", m.wait, strings.Join(missing, ", ")))
	}
	return errors.Join(append(errs, failed...)...)
}
