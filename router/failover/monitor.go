// Package failover owns the choice of uplink when the WAN has a backup:
// each uplink is probed with ICMP echoes sent through it (Prober), and
// Monitor, a state machine fed each round's results and the clock, says
// which uplink carries the household's traffic. Moving the routes and the
// connections is the caller's.
package failover

import (
	"fmt"
	"time"
)

// State is an uplink's health as the probes tell it.
type State string

const (
	Up   State = "up"
	Down State = "down"
)

// Config is how the probes are judged.
type Config struct {
	Uplinks  []string // by preference: the primary first
	DownFor  int      // unanswered rounds in a row that make an up uplink down
	UpFor    int      // answered rounds in a row that make a down uplink up
	LossOver int      // probes remembered for the loss ratio
}

// Result is one uplink's round of probes.
type Result struct {
	LinkDown bool          // no carrier, or no interface: down at once
	Sent     int           // echoes sent (one per target)
	Answered int           // of them, answered in time
	RTT      time.Duration // the answered ones' mean
}

// answered: a round counts as answered when any target answered, so that
// one target's outage is not the line's.
func (r Result) answered() bool { return !r.LinkDown && r.Answered > 0 }

// Uplink is what Monitor knows of one uplink.
type Uplink struct {
	Name   string
	State  State
	Since  time.Time
	Active bool
	RTT    time.Duration // the last answered round's
	Loss   float64       // of the last LossOver probes
	Probes int           // sent in all

	streak  int    // rounds in a row against the state
	history []bool // the last LossOver probes, answered or not
}

// Switch is one move of the traffic from an uplink to another.
type Switch struct {
	At       time.Time
	From, To string
	Why      string
}

// Monitor decides which uplink is active. It starts on the primary with
// every uplink up: a line is trusted until its probes say otherwise.
type Monitor struct {
	cfg     Config
	ups     []*Uplink
	active  int
	history []Switch
}

// maxHistory bounds the switches kept for status.
const maxHistory = 20

func NewMonitor(cfg Config, now time.Time) *Monitor {
	if cfg.LossOver == 0 {
		cfg.LossOver = 20
	}
	m := &Monitor{cfg: cfg}
	for i, n := range cfg.Uplinks {
		m.ups = append(m.ups, &Uplink{Name: n, State: Up, Since: now, Active: i == 0})
	}
	return m
}

// Resume starts from a switch an earlier monitor made (routerd restarted,
// or its config reloaded, while the backup carried the traffic): active
// stays active, and the uplinks preferred to it are down until their
// probes say otherwise, as they were.
func (m *Monitor) Resume(active string, now time.Time) {
	for i, u := range m.ups {
		if u.Name != active {
			continue
		}
		m.ups[m.active].Active = false
		m.active, u.Active = i, true
		for _, p := range m.ups[:i] {
			p.State, p.Since, p.streak = Down, now, 0
		}
	}
}

// Handle takes one round's results, an entry per uplink in Config's
// order, and returns the switch it made, if any.
func (m *Monitor) Handle(round []Result, now time.Time) *Switch {
	var why []string
	for i, r := range round {
		if i >= len(m.ups) {
			break
		}
		u := m.ups[i]
		m.tally(u, r)
		if r.answered() {
			u.RTT = r.RTT
		}
		why = append(why, m.judge(u, r, now))
	}
	next := m.pick()
	if next == m.active {
		return nil
	}
	s := Switch{At: now, From: m.ups[m.active].Name, To: m.ups[next].Name, Why: why[m.active]}
	if m.ups[m.active].State == Up {
		s.Why = fmt.Sprintf("%s is up again", m.ups[next].Name)
	}
	m.ups[m.active].Active, m.ups[next].Active = false, true
	m.active = next
	m.history = append(m.history, s)
	if n := len(m.history) - maxHistory; n > 0 {
		m.history = m.history[n:]
	}
	return &s
}

// Tally takes the results of a round that a newer one overtook (its
// answers came later than the newer round's): its probes count in the
// uplinks' loss, but it moves no state, as what the newer round said is
// the more recent news.
func (m *Monitor) Tally(round []Result) {
	for i, r := range round {
		if i < len(m.ups) {
			m.tally(m.ups[i], r)
		}
	}
}

// tally counts r's probes in u's loss.
func (m *Monitor) tally(u *Uplink, r Result) {
	u.Probes += r.Sent
	for k := 0; k < r.Sent; k++ {
		u.history = append(u.history, k < r.Answered)
	}
	if n := len(u.history) - m.cfg.LossOver; n > 0 {
		u.history = u.history[n:]
	}
	lost := 0
	for _, ok := range u.history {
		if !ok {
			lost++
		}
	}
	if len(u.history) > 0 {
		u.Loss = float64(lost) / float64(len(u.history))
	}
}

// judge moves u's state by r and says why it is down, if it is.
func (m *Monitor) judge(u *Uplink, r Result, now time.Time) string {
	set := func(s State) {
		u.State, u.Since, u.streak = s, now, 0
	}
	switch {
	case r.LinkDown:
		if u.State == Up {
			set(Down)
		}
		u.streak = 0
		return fmt.Sprintf("%s lost its link", u.Name)
	case u.State == Up && !r.answered():
		if u.streak++; u.streak >= m.cfg.DownFor {
			set(Down)
		}
	case u.State == Down && r.answered():
		if u.streak++; u.streak >= m.cfg.UpFor {
			set(Up)
		}
	default:
		u.streak = 0
	}
	return fmt.Sprintf("%s's probes went unanswered %d times in a row", u.Name, m.cfg.DownFor)
}

// pick is the most preferred uplink that is up; with none up, the
// current one stays (nothing would be gained by moving).
func (m *Monitor) pick() int {
	for i, u := range m.ups {
		if u.State == Up {
			return i
		}
	}
	return m.active
}

// Active is the name of the uplink that carries the traffic.
func (m *Monitor) Active() string { return m.ups[m.active].Name }

// Uplinks returns a copy of what is known of each uplink.
func (m *Monitor) Uplinks() []Uplink {
	out := make([]Uplink, len(m.ups))
	for i, u := range m.ups {
		out[i] = *u
		out[i].history = nil
	}
	return out
}

// History returns the last switches, oldest first.
func (m *Monitor) History() []Switch { return append([]Switch(nil), m.history...) }
