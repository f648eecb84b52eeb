// Package usage owns "who is using the line": each LAN host's traffic,
// counted from the main namespace's connection tracking (where both
// paths' connections carry the LAN host's own address, before NAT and
// outside the tunnel, and where flow offload keeps counting), as current
// rates and totals since local midnight. Meter is the pure core; the
// conntrack reading and the state file are the component's.
package usage

import (
	"encoding/json"
	"net/netip"
	"slices"
	"time"
)

// Flow is one tracked connection's counters so far, seen from its LAN
// host: Up is what the host sent, Down what it received.
type Flow struct {
	ID       uint32
	Host     netip.Addr
	Up, Down uint64 // bytes
	Path     string // "wan" | "vpn" | "" (not decided: the router's own)
}

// Host is one LAN host's use of the line.
type Host struct {
	Addr                 netip.Addr
	UpToday, DownToday   uint64  // bytes since local midnight
	UpRate, DownRate     float64 // bits/s over the last RateWindow
	Path                 string  // the path of its busiest connection now
	LastSeen             time.Time
	samples              []sample
	busiest, busiestPath uint64
}

type sample struct {
	at       time.Time
	up, down uint64 // the host's totals then
}

// RateWindow is what a rate is averaged over.
const RateWindow = 3 * time.Second

// Meter turns conntrack's per-connection counters into per-host totals
// and rates.
type Meter struct {
	loc   *time.Location
	day   string
	seen  map[uint32]Flow // by conntrack id: the counters counted so far
	hosts map[netip.Addr]*Host
	// polled: the first Poll only takes the counters as they are (what the
	// connections carried before is in the state file, or not ours).
	polled bool
	// closed are connections Closed counted to the end, for a while: a
	// dump taken before their end must not count them again.
	closed map[uint32]time.Time
}

// NewMeter counts days in loc (the router's local time).
func NewMeter(loc *time.Location) *Meter {
	return &Meter{loc: loc, seen: map[uint32]Flow{}, hosts: map[netip.Addr]*Host{}, closed: map[uint32]time.Time{}}
}

func (m *Meter) newDay(now time.Time) {
	day := now.In(m.loc).Format(time.DateOnly)
	if day == m.day {
		return
	}
	m.day = day
	for _, h := range m.hosts {
		h.UpToday, h.DownToday, h.samples = 0, 0, nil
	}
}

func (m *Meter) host(a netip.Addr) *Host {
	h := m.hosts[a]
	if h == nil {
		h = &Host{Addr: a}
		m.hosts[a] = h
	}
	return h
}

// count adds what f carried since it was last counted.
func (m *Meter) count(f Flow, now time.Time) {
	was, ok := m.seen[f.ID]
	if ok && (was.Host != f.Host || f.Up < was.Up || f.Down < was.Down) {
		ok = false // the id was reused for another connection
	}
	if !ok {
		was = Flow{}
	}
	h := m.host(f.Host)
	h.UpToday += f.Up - was.Up
	h.DownToday += f.Down - was.Down
	h.LastSeen = now
	if d := (f.Up - was.Up) + (f.Down - was.Down); f.Path != "" && d >= h.busiest {
		h.busiest, h.Path = d, f.Path
	}
}

// Poll takes a dump of the table: each connection's counters. Those that
// ended since are forgotten (Closed counted their last bytes).
func (m *Meter) Poll(flows []Flow, now time.Time) {
	m.newDay(now)
	for _, h := range m.hosts {
		h.busiest = 0
	}
	for id, at := range m.closed {
		if now.Sub(at) > closedFor {
			delete(m.closed, id)
		}
	}
	next := make(map[uint32]Flow, len(flows))
	for _, f := range flows {
		if _, done := m.closed[f.ID]; done {
			continue
		}
		if m.polled {
			m.count(f, now)
		}
		next[f.ID] = f
	}
	m.seen, m.polled = next, true
	for _, h := range m.hosts {
		h.samples = append(h.samples, sample{now, h.UpToday, h.DownToday})
		for len(h.samples) > 1 && now.Sub(h.samples[1].at) >= RateWindow {
			h.samples = h.samples[1:]
		}
		h.UpRate, h.DownRate = 0, 0
		if first := h.samples[0]; now.Sub(first.at) > 0 {
			secs := now.Sub(first.at).Seconds()
			h.UpRate = float64(h.UpToday-first.up) * 8 / secs
			h.DownRate = float64(h.DownToday-first.down) * 8 / secs
		}
	}
}

// Closed takes a connection's last counters (conntrack's destroy event).
func (m *Meter) Closed(f Flow, now time.Time) {
	m.newDay(now)
	if !m.polled {
		return
	}
	m.count(f, now)
	delete(m.seen, f.ID)
	m.closed[f.ID] = now
}

// closedFor is how long a Closed connection is not counted from dumps.
const closedFor = 10 * time.Second

// Hosts are the hosts seen today, the busiest (by today's total) first.
func (m *Meter) Hosts(now time.Time) []Host {
	m.newDay(now)
	out := make([]Host, 0, len(m.hosts))
	for _, h := range m.hosts {
		c := *h
		c.samples = nil
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Host) int {
		ta, tb := a.UpToday+a.DownToday, b.UpToday+b.DownToday
		switch {
		case ta != tb && ta > tb:
			return -1
		case ta != tb:
			return 1
		}
		return a.Addr.Compare(b.Addr)
	})
	return out
}

// saved is the state file: today's totals, so that a restart loses none.
type saved struct {
	Day   string               `json:"day"`
	Hosts map[string][2]uint64 `json:"hosts"` // address → up, down bytes
}

// Save is today's totals as the state file keeps them.
func (m *Meter) Save(now time.Time) ([]byte, error) {
	m.newDay(now)
	s := saved{Day: m.day, Hosts: map[string][2]uint64{}}
	for a, h := range m.hosts {
		s.Hosts[a.String()] = [2]uint64{h.UpToday, h.DownToday}
	}
	return json.Marshal(s)
}

// Load takes the totals of a state file, if they are today's: what a
// connection carried before the restart is counted from the file, and
// its counters from now on only beyond what they were at the first Poll.
func (m *Meter) Load(b []byte, now time.Time) error {
	var s saved
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	m.newDay(now)
	if s.Day != m.day {
		return nil
	}
	for a, t := range s.Hosts {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			continue
		}
		h := m.host(addr)
		h.UpToday, h.DownToday = t[0], t[1]
	}
	return nil
}
