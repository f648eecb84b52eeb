package domainset

import (
	"fmt"
	"testing"
)

func TestMatch(t *testing.T) {
	var b Builder
	for _, n := range []string{"ads.example", "Tracker.Example.NET.", "doubleclick.net"} {
		b.Add(n)
	}
	s := b.Set()
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"ads.example", "ads.example", true},
		{"ADS.example.", "ADS.example.", true},
		{"x.y.ads.example.", "ads.example.", true},
		{"notads.example", "", false},
		{"example", "", false},
		{"tracker.example.net", "tracker.example.net", true},
		{"stats.g.doubleclick.net.", "doubleclick.net.", true},
		{"net.", "", false},
		{"", "", false},
		{".", "", false},
	} {
		got, ok := s.Match([]byte(tc.name))
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("Match(%q) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	if !s.Has([]byte("ads.example.")) || s.Has([]byte("x.ads.example")) {
		t.Error("Has matches a name exactly")
	}
	raw, _ := s.MarshalBinary()
	var back Set
	if err := back.UnmarshalBinary(raw); err != nil || back.Len() != 3 {
		t.Fatalf("round trip: %v, %d names", err, back.Len())
	}
	if err := back.UnmarshalBinary(raw[:5]); err == nil {
		t.Error("a truncated set was read")
	}
}

func TestMatchAllocs(t *testing.T) {
	var b Builder
	for i := range 1000 {
		b.Add(fmt.Sprintf("host%d.example", i))
	}
	s := b.Set()
	name := []byte("a.b.c.host500.example.")
	if n := testing.AllocsPerRun(100, func() { s.Match(name) }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}

func BenchmarkBuild1M(b *testing.B) {
	names := make([]string, 1_000_000)
	for i := range names {
		names[i] = fmt.Sprintf("ad%d.tracker%d.example", i, i%977)
	}
	b.ResetTimer()
	for range b.N {
		var bl Builder
		for _, n := range names {
			bl.Add(n)
		}
		_ = bl.Set()
	}
}
