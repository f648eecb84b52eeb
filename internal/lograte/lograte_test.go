package lograte

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := New(time.Minute)
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	if ok, held := l.Allow("pool", t0); !ok || held != 0 {
		t.Fatalf("first event: %v %d", ok, held)
	}
	for i := range 5 {
		if ok, _ := l.Allow("pool", t0.Add(time.Duration(i+1)*time.Second)); ok {
			t.Fatalf("event %d within the minute allowed", i+2)
		}
	}
	if ok, _ := l.Allow("decline", t0.Add(time.Second)); !ok {
		t.Error("another kind held back")
	}
	if ok, held := l.Allow("pool", t0.Add(time.Minute)); !ok || held != 5 {
		t.Errorf("a minute later: %v, %d held; want allowed with 5 held", ok, held)
	}
}
