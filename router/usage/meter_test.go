package usage

import (
	"net/netip"
	"testing"
	"time"
)

func TestMeter(t *testing.T) {
	loc := time.FixedZone("home", 3600)
	a, b := netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("192.168.1.11")
	m := NewMeter(loc)
	t0 := time.Date(2026, 12, 3, 20, 0, 0, 0, loc)
	// The first dump only sets where counting starts.
	m.Poll([]Flow{{ID: 1, Host: a, Up: 5000, Down: 9000, Path: "wan"}}, t0)
	// a's connection carries 1 Mbit/s up and 4 down for 3 s; b opens and
	// closes one between two dumps (only its end is seen).
	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		m.Poll([]Flow{{ID: 1, Host: a, Up: 5000 + uint64(i)*125_000, Down: 9000 + uint64(i)*500_000, Path: "wan"}}, now)
	}
	m.Closed(Flow{ID: 2, Host: b, Up: 700, Down: 3000, Path: "vpn"}, t0.Add(3500*time.Millisecond))
	// A dump taken before b's end must not count it again.
	m.Poll([]Flow{{ID: 1, Host: a, Up: 5000 + 4*125_000, Down: 9000 + 4*500_000, Path: "wan"}, {ID: 2, Host: b, Up: 500, Down: 2000, Path: "vpn"}}, t0.Add(4*time.Second))
	hs := m.Hosts(t0.Add(4 * time.Second))
	if len(hs) != 2 || hs[0].Addr != a || hs[1].Addr != b {
		t.Fatalf("hosts %+v", hs)
	}
	if h := hs[0]; h.UpToday != 500_000 || h.DownToday != 2_000_000 || h.Path != "wan" {
		t.Errorf("a: %+v", h)
	}
	if h := hs[0]; h.UpRate < 0.99e6 || h.UpRate > 1.01e6 || h.DownRate < 3.99e6 || h.DownRate > 4.01e6 {
		t.Errorf("a's rates %.0f / %.0f, want 1e6 / 4e6", h.UpRate, h.DownRate)
	}
	if h := hs[1]; h.UpToday != 700 || h.DownToday != 3000 {
		t.Errorf("b: %+v", h)
	}
	// A restart keeps today's totals, and counts the connections it finds
	// only from then on.
	st, err := m.Save(t0.Add(4 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m2 := NewMeter(loc)
	if err := m2.Load(st, t0.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	m2.Poll([]Flow{{ID: 1, Host: a, Up: 5000 + 5*125_000, Down: 9000 + 5*500_000, Path: "wan"}}, t0.Add(5*time.Second))
	m2.Poll([]Flow{{ID: 1, Host: a, Up: 5000 + 6*125_000, Down: 9000 + 6*500_000, Path: "wan"}}, t0.Add(6*time.Second))
	if h := m2.Hosts(t0.Add(6 * time.Second))[0]; h.UpToday != 625_000 || h.DownToday != 2_500_000 {
		t.Errorf("after a restart: %+v, want 625000 / 2500000", h)
	}
	// Midnight (the router's): the totals start again; yesterday's file
	// is not today's.
	next := time.Date(2026, 12, 4, 0, 0, 1, 0, loc)
	m2.Poll([]Flow{{ID: 1, Host: a, Up: 5000 + 7*125_000, Down: 9000 + 7*500_000, Path: "wan"}}, next)
	if h := m2.Hosts(next)[0]; h.UpToday != 125_000 || h.DownToday != 500_000 {
		t.Errorf("after midnight: %+v, want the one second since", h)
	}
	m3 := NewMeter(loc)
	if err := m3.Load(st, next); err != nil || len(m3.Hosts(next)) != 0 {
		t.Errorf("yesterday's file loaded: %v %+v", err, m3.Hosts(next))
	}
}
