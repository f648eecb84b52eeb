package sqm

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/rawicmp"
)

// line is a fluid model of a bloated access line in one direction: a
// buffer in front of a link of capacity bits/s, fed by the shaper at its
// rate (the household saturates it: TCP fills whatever the shaper lets
// through). It is what the autorate loop controls, without a kernel.
type line struct {
	capacity float64 // bits/s
	queue    float64 // bits
	buffer   float64 // bits: beyond this the modem drops
	counted  float64 // bits the shaper passed (its byte counter ×8)
}

// step advances the line by dt with the shaper at rate; it returns the
// queueing delay a probe crossing it now sees.
func (l *line) step(rate float64, dt time.Duration, download bool) time.Duration {
	s := dt.Seconds()
	in := rate * s
	if download && l.queue > 0 {
		// The shaper sees what the line delivers: the line's rate while
		// its buffer holds anything.
		in = min(rate, l.capacity) * s
	}
	l.counted += in
	l.queue = min(max(l.queue+rate*s-l.capacity*s, 0), l.buffer)
	return time.Duration(l.queue / l.capacity * float64(time.Second))
}

func TestAutorateFollowsTheLine(t *testing.T) {
	const tick = 100 * time.Millisecond
	cfg := AutorateConfig{Min: [2]uint64{1e6, 4e6}, Max: [2]uint64{8e6, 30e6}, Threshold: 15 * time.Millisecond}
	a := NewAutorate(cfg)
	refl := netip.MustParseAddr("192.0.2.1")
	lines := [2]*line{{capacity: 5e6, buffer: 5e6 / 2}, {capacity: 20e6, buffer: 20e6 / 2}} // 500 ms buffers
	start := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	// The capacity per phase: 20/5 → 8/2 → 20/5 Mbit/s, 40 s each.
	phases := [][2]float64{{5e6, 20e6}, {2e6, 8e6}, {5e6, 20e6}}
	const phase = 40 * time.Second
	var added [3][2][]time.Duration // per phase and direction, from 5 s into it
	for i := 0; time.Duration(i)*tick < 3*phase; i++ {
		el := time.Duration(i) * tick
		ph := int(el / phase)
		inPhase := el - time.Duration(ph)*phase
		var owd [2]time.Duration
		var bytes [2]uint64
		for d := range lines {
			lines[d].capacity = phases[ph][d]
			owd[d] = 5*time.Millisecond + lines[d].step(float64(a.Rates()[d]), tick, d == int(Down))
			bytes[d] = uint64(lines[d].counted / 8)
		}
		now := start.Add(el)
		a.Handle(Sample{At: now, Bytes: bytes, Answers: []OWD{{Reflector: refl, Up: owd[0] + 3*time.Hour, Down: owd[1] - 3*time.Hour}}}, now)
		for d := range lines {
			r, c := float64(a.Rates()[d]), phases[ph][d]
			if inPhase >= 5*time.Second {
				added[ph][d] = append(added[ph][d], owd[d]-5*time.Millisecond)
				if owd[d] > 60*time.Millisecond {
					t.Errorf("%v (phase %d +%v): %s delay %v with the line at %.0f and the shaper at %.0f", el, ph, inPhase, Direction(d), owd[d], c, r)
				}
			}
			if inPhase >= 20*time.Second && (r > 1.1*c || r < 0.7*c) {
				t.Errorf("%v (phase %d +%v): %s shaper at %.0f, the line at %.0f", el, ph, inPhase, Direction(d), r, c)
			}
		}
	}
	for ph := range added {
		for d, ds := range added[ph] {
			slices.Sort(ds)
			p95 := ds[len(ds)*95/100]
			t.Logf("phase %d, %s: added delay p95 %v", ph, Direction(d), p95)
			if p95 > 30*time.Millisecond {
				t.Errorf("phase %d, %s: added delay p95 %v, want ≤ 30ms", ph, Direction(d), p95)
			}
		}
	}
}

func TestAutorateBounds(t *testing.T) {
	cfg := AutorateConfig{Min: [2]uint64{2e6, 10e6}, Max: [2]uint64{2e6, 20e6}, Threshold: 15 * time.Millisecond}
	a := NewAutorate(cfg)
	refl := netip.MustParseAddr("192.0.2.1")
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	var bytes [2]uint64
	// Busy with a low delay: the download climbs to its maximum, the
	// fixed upload stays.
	for i := 0; i < 200; i++ {
		now = now.Add(250 * time.Millisecond)
		for d := range bytes {
			bytes[d] += a.Rates()[d] / 8 / 4
		}
		a.Handle(Sample{At: now, Bytes: bytes, Answers: []OWD{{Reflector: refl, Up: 5 * time.Millisecond, Down: 5 * time.Millisecond}}}, now)
	}
	if r := a.Rates(); r != [2]uint64{2e6, 20e6} {
		t.Fatalf("busy, no delay: rates %v, want the upload fixed at 2e6 and the download at its maximum 20e6", r)
	}
	// Idle and no answers: nothing changes.
	for i := 0; i < 20; i++ {
		now = now.Add(250 * time.Millisecond)
		if c := a.Handle(Sample{At: now, Bytes: bytes}, now); len(c) > 0 {
			t.Fatalf("idle without answers: %v", c)
		}
	}
	// The delay rises while busy: down to the minimum, never below it.
	for i := 0; i < 200; i++ {
		now = now.Add(250 * time.Millisecond)
		for d := range bytes {
			bytes[d] += a.Rates()[d] / 8 / 4
		}
		a.Handle(Sample{At: now, Bytes: bytes, Answers: []OWD{{Reflector: refl, Up: 5 * time.Millisecond, Down: 500 * time.Millisecond}}}, now)
	}
	if r := a.Rates(); r != [2]uint64{2e6, 10e6} {
		t.Fatalf("bloated: rates %v, want the download at its minimum 10e6", r)
	}
}

func TestTimestamp(t *testing.T) {
	req := timestampRequest(7, 9, 1234)
	if checksum(req) != 0 {
		t.Fatal("request checksum")
	}
	// The reflector's answer (as Linux makes it): type 14, both its
	// times, the checksum redone.
	rep := append([]byte(nil), req...)
	rep[0], rep[2], rep[3] = icmpTimestampReply, 0, 0
	for _, off := range []int{12, 16} {
		rep[off], rep[off+1], rep[off+2], rep[off+3] = 0, 0, 0x04, 0xd2+10 // 1244
	}
	c := checksum(rep)
	rep[2], rep[3] = byte(c>>8), byte(c)
	r, ok := parseTimestampReply(rep)
	if !ok || r.ID != 7 || r.Seq != 9 {
		t.Fatalf("parse: %+v %v", r, ok)
	}
	if up, down := r.owd(1250); up != 10*time.Millisecond || down != 6*time.Millisecond {
		t.Fatalf("owd: %v %v", up, down)
	}
	// Midnight between the request and the answer.
	r = timestampReply{Originate: dayMs - 5, Receive: 3, Transmit: 3}
	if up, down := r.owd(dayMs - 1); up != 8*time.Millisecond || down != -4*time.Millisecond {
		t.Fatalf("owd over midnight: %v %v", up, down)
	}
	rep[5] ^= 1
	if _, ok := parseTimestampReply(rep); ok {
		t.Fatal("a bad checksum parsed")
	}
}

func FuzzTimestampReply(f *testing.F) {
	f.Add(timestampRequest(1, 2, 3))
	f.Add(append([]byte{0x45, 0, 0, 40, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1}, timestampRequest(1, 2, 3)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range [][]byte{b, rawicmp.Payload(b)} {
			if r, ok := parseTimestampReply(m); ok {
				r.owd(msOfDay(time.Now()))
			}
		}
	})
}

// TestAutorateStart: a core starts where it is told (a reload resumes at
// the shapers' rates), kept within its bounds, or at its minimum.
func TestAutorateStart(t *testing.T) {
	cfg := AutorateConfig{Min: [2]uint64{1e6, 4e6}, Max: [2]uint64{8e6, 30e6}}
	for _, c := range []struct {
		start, want [2]uint64
	}{
		{[2]uint64{}, [2]uint64{1e6, 4e6}},
		{[2]uint64{5e6, 20e6}, [2]uint64{5e6, 20e6}},
		{[2]uint64{100e6, 1e3}, [2]uint64{8e6, 4e6}},
		{[2]uint64{0, 12e6}, [2]uint64{1e6, 12e6}},
	} {
		cfg.Start = c.start
		if got := NewAutorate(cfg).Rates(); got != c.want {
			t.Errorf("start %v: rates %v, want %v", c.start, got, c.want)
		}
	}
}
