package failover

import (
	"strings"
	"testing"
	"time"
)

// TestMonitorStates walks the monitor through a primary that fails and
// recovers, a link that drops, and both uplinks down, round by round.
func TestMonitorStates(t *testing.T) {
	ok := Result{Sent: 2, Answered: 2, RTT: 10 * time.Millisecond}
	half := Result{Sent: 2, Answered: 1, RTT: 12 * time.Millisecond}
	lost := Result{Sent: 2}
	nolink := Result{LinkDown: true}
	type step struct {
		primary, backup Result
		active          string // after the round
		switched        string // the switch's reason contains this ("": none)
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"primary silent, then back", []step{
			{ok, ok, "wan", ""},
			{lost, ok, "wan", ""},
			{half, ok, "wan", ""}, // one target answering keeps it up, and the count starts again
			{lost, ok, "wan", ""},
			{lost, ok, "wan", ""},
			{lost, ok, "wwan", "unanswered 3 times"},
			{ok, ok, "wwan", ""},
			{ok, lost, "wwan", ""},
			{lost, ok, "wwan", ""}, // a miss in the run: it starts again
			{ok, ok, "wwan", ""},
			{ok, ok, "wwan", ""},
			{ok, ok, "wan", "wan is up again"},
		}},
		{"link down: at once", []step{
			{ok, ok, "wan", ""},
			{nolink, ok, "wwan", "lost its link"},
			{nolink, ok, "wwan", ""},
			{ok, ok, "wwan", ""},
			{ok, ok, "wwan", ""},
			{ok, ok, "wan", "up again"},
		}},
		{"both down: the traffic stays", []step{
			{nolink, nolink, "wan", ""},
			{ok, nolink, "wan", ""},
			{ok, ok, "wan", ""},
		}},
		{"backup down, primary down later", []step{
			{ok, lost, "wan", ""}, {ok, lost, "wan", ""}, {ok, lost, "wan", ""},
			{lost, lost, "wan", ""}, {lost, lost, "wan", ""}, {lost, lost, "wan", ""},
			{lost, ok, "wan", ""}, {lost, ok, "wan", ""},
			{lost, ok, "wwan", "unanswered"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Date(2026, 12, 2, 20, 0, 0, 0, time.UTC)
			m := NewMonitor(Config{Uplinks: []string{"wan", "wwan"}, DownFor: 3, UpFor: 3}, now)
			for i, s := range tc.steps {
				now = now.Add(2 * time.Second)
				sw := m.Handle([]Result{s.primary, s.backup}, now)
				if got := m.Active(); got != s.active {
					t.Fatalf("round %d: active %s, want %s (%+v)", i, got, s.active, m.Uplinks())
				}
				switch {
				case s.switched == "" && sw != nil:
					t.Fatalf("round %d: switched %+v, want no switch", i, *sw)
				case s.switched != "" && sw == nil:
					t.Fatalf("round %d: no switch, want one (%s)", i, s.switched)
				case sw != nil && (!strings.Contains(sw.Why, s.switched) || sw.To != s.active || !sw.At.Equal(now)):
					t.Fatalf("round %d: switch %+v, want to %s because %q", i, *sw, s.active, s.switched)
				}
			}
		})
	}
}

// TestMonitorLossAndRTT: the loss ratio covers the last LossOver probes;
// the RTT is the last answered round's.
func TestMonitorLossAndRTT(t *testing.T) {
	now := time.Now()
	m := NewMonitor(Config{Uplinks: []string{"wan", "wwan"}, DownFor: 3, UpFor: 3, LossOver: 4}, now)
	m.Handle([]Result{{Sent: 2, Answered: 2, RTT: 7 * time.Millisecond}, {Sent: 2}}, now)
	m.Handle([]Result{{Sent: 2, Answered: 1, RTT: 9 * time.Millisecond}, {Sent: 2}}, now)
	m.Handle([]Result{{Sent: 2}, {Sent: 2, Answered: 2, RTT: 30 * time.Millisecond}}, now)
	u := m.Uplinks()
	if u[0].Loss != 0.75 || u[0].RTT != 9*time.Millisecond || u[0].Probes != 6 {
		t.Errorf("primary: %+v, want loss 0.75 of the last 4, RTT 9ms, 6 probes", u[0])
	}
	if u[1].Loss != 0.5 || u[1].RTT != 30*time.Millisecond {
		t.Errorf("backup: %+v, want loss 0.5, RTT 30ms", u[1])
	}
	if len(m.History()) != 0 {
		t.Errorf("history %+v, want none", m.History())
	}
}

// TestMonitorResume: a monitor resumed on the backup keeps it until the
// primary has answered UpFor rounds.
func TestMonitorResume(t *testing.T) {
	now := time.Now()
	m := NewMonitor(Config{Uplinks: []string{"wan", "wwan"}, DownFor: 3, UpFor: 2}, now)
	m.Resume("wwan", now)
	ok := Result{Sent: 1, Answered: 1}
	if sw := m.Handle([]Result{ok, ok}, now); sw != nil || m.Active() != "wwan" {
		t.Fatalf("after one answered round: active %s, switch %+v; want wwan kept", m.Active(), sw)
	}
	if sw := m.Handle([]Result{ok, ok}, now); sw == nil || m.Active() != "wan" {
		t.Fatalf("after two: active %s, switch %+v; want back on wan", m.Active(), sw)
	}
	m.Resume("nonesuch", now)
	if m.Active() != "wan" {
		t.Errorf("resumed on an unknown uplink: active %s", m.Active())
	}
}

// TestMonitorTally: a round a newer one overtook counts in the loss but
// moves no state: its miss, from before the line came back, does not break
// the run of answers.
func TestMonitorTally(t *testing.T) {
	t0 := time.Now()
	m := NewMonitor(Config{Uplinks: []string{"primary", "backup"}, DownFor: 1, UpFor: 2}, t0)
	miss, ok := Result{Sent: 1}, Result{Sent: 1, Answered: 1}
	m.Handle([]Result{miss, ok}, t0)
	if m.Active() != "backup" {
		t.Fatalf("active %s after the primary's miss, want backup", m.Active())
	}
	m.Handle([]Result{ok, ok}, t0.Add(time.Second))
	m.Tally([]Result{miss, ok})
	if sw := m.Handle([]Result{ok, ok}, t0.Add(2*time.Second)); sw == nil || sw.To != "primary" {
		t.Errorf("two answers in a row with a stale miss between: %+v, want back on the primary", sw)
	}
	if u := m.Uplinks()[0]; u.Probes != 4 || u.Loss != 0.5 {
		t.Errorf("primary %+v: want 4 probes, half lost (the stale miss counted)", u)
	}
}
