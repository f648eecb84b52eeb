package timesync

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves, recording what the service did.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	steps  []time.Duration
	slews  []time.Duration
	failed bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Step(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed {
		return errors.New("operation not permitted")
	}
	c.now = c.now.Add(d)
	c.steps = append(c.steps, d)
	return nil
}

func (c *fakeClock) Slew(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slews = append(c.slews, d)
	return nil
}

func (c *fakeClock) record() (steps, slews []time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.steps...), append([]time.Duration(nil), c.slews...)
}

var (
	built = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	rtc   = time.Date(2020, 1, 1, 0, 0, 5, 0, time.UTC) // a dead RTC's idea of now
)

func TestFloor(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "clock")
	saved := built.Add(30 * 24 * time.Hour)
	for _, tc := range []struct {
		name     string
		file     string // content; "" no file
		clock    time.Time
		setClock bool
		want     time.Time
	}{
		{"dead RTC, no clock file: the build time", "", rtc, true, built},
		{"dead RTC, clock file: the saved time", saved.Format(time.RFC3339Nano), rtc, true, saved},
		{"clock file older than the build", built.Add(-time.Hour).Format(time.RFC3339Nano), rtc, true, built},
		{"a good clock is left alone", saved.Format(time.RFC3339Nano), saved.Add(time.Hour), true, saved.Add(time.Hour)},
		{"set_clock false: measured only", "", rtc, false, rtc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(file)
			if tc.file != "" {
				os.WriteFile(file, []byte(tc.file+"\n"), 0o644)
			}
			c := &fakeClock{now: tc.clock}
			var stepped []time.Duration
			s := New(Config{Floor: built, ClockFile: file, SetClock: tc.setClock, Clock: c, OnStep: func(d time.Duration) { stepped = append(stepped, d) }})
			s.applyFloor()
			if got := c.Now(); !got.Equal(tc.want) {
				t.Errorf("clock after start = %s, want %s", got, tc.want)
			}
			if steps, _ := c.record(); len(steps) != len(stepped) {
				t.Errorf("OnStep told of %v, the clock was stepped by %v", stepped, steps)
			}
		})
	}
}

func TestClockFileFallsBackToModTime(t *testing.T) {
	file := filepath.Join(t.TempDir(), "clock")
	os.WriteFile(file, nil, 0o644) // systemd-timesyncd's kind: empty, the mtime is the time
	when := built.Add(48 * time.Hour)
	os.Chtimes(file, when, when)
	got, err := readClockFile(file)
	if err != nil || !got.Equal(when) {
		t.Errorf("readClockFile = %s, %v; want %s", got, err, when)
	}
}

func sample(server string, off, dist time.Duration) Sample {
	return Sample{Server: server, Addr: netip.MustParseAddr("192.0.2.1"), Offset: off, RootDistance: dist, Stratum: 2, RTT: time.Millisecond}
}

func TestSelect(t *testing.T) {
	ms := time.Millisecond
	bad := Sample{Server: "x", Err: errors.New("leap alarm")}
	for _, tc := range []struct {
		name         string
		samples      []Sample
		best         int
		wantOutliers []int
	}{
		{"none", nil, -1, nil},
		{"all unusable", []Sample{bad, bad}, -1, nil},
		{"one", []Sample{sample("a", 5*ms, 10*ms)}, 0, nil},
		{"two: the tighter bound, no outlier test", []Sample{sample("a", 5*ms, 10*ms), sample("b", 900*time.Second, 2*ms)}, 1, nil},
		{"three: the liar is outvoted", []Sample{sample("a", 5*ms, 10*ms), sample("b", 3600*time.Second, 1*ms), sample("c", 7*ms, 20*ms)}, 0, []int{1}},
		{"unusable answers do not vote", []Sample{bad, sample("a", 5*ms, 10*ms), sample("b", 3*ms, 8*ms), bad}, 2, nil},
		{"close enough is no outlier", []Sample{sample("a", 0, 30*ms), sample("b", 60*ms, 20*ms), sample("c", -40*ms, 10*ms)}, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			best, outliers := Select(tc.samples)
			if best != tc.best {
				t.Errorf("best = %d, want %d", best, tc.best)
			}
			var got []int
			for i := range tc.samples {
				if outliers[i] {
					got = append(got, i)
				}
			}
			if !slices.Equal(got, tc.wantOutliers) {
				t.Errorf("outliers = %v, want %v", got, tc.wantOutliers)
			}
		})
	}
}

// TestStepThenSlew: the first sync steps a clock that is off by more than
// a second; later small offsets are slewed; a small first offset is
// slewed too.
func TestStepThenSlew(t *testing.T) {
	ms := time.Millisecond
	c := &fakeClock{now: built}
	offsets := []time.Duration{3 * time.Hour, 40 * ms, -20 * ms}
	i := 0
	var stepped []time.Duration
	s := New(Config{Servers: []string{"ntp"}, SetClock: true, Floor: built, Clock: c,
		OnStep: func(d time.Duration) { stepped = append(stepped, d) },
		Query:  func(ctx context.Context, server string) Sample { i++; return sample(server, offsets[i-1], ms) }})
	select {
	case <-s.Synced():
		t.Fatal("synced before any answer")
	default:
	}
	for range offsets {
		if !s.round(context.Background()) {
			t.Fatal("round failed")
		}
	}
	<-s.Synced()
	steps, slews := c.record()
	if want := []time.Duration{3 * time.Hour}; !slices.Equal(steps, want) || !slices.Equal(stepped, want) {
		t.Errorf("steps %v (OnStep %v), want %v", steps, stepped, want)
	}
	if want := offsets[1:]; !slices.Equal(slews, want) {
		t.Errorf("slews %v, want %v", slews, want)
	}
	st := s.Status()
	if !st.Synced || st.Server != "ntp" || st.Stratum != 2 || st.Steps != 1 || !strings.Contains(st.LastStep, "first synchronisation") {
		t.Errorf("status %+v", st)
	}

	c2 := &fakeClock{now: built}
	s2 := New(Config{Servers: []string{"ntp"}, SetClock: true, Floor: built, Clock: c2,
		Query: func(ctx context.Context, server string) Sample { return sample(server, 300*ms, ms) }})
	s2.round(context.Background())
	if steps, slews := c2.record(); len(steps) != 0 || !slices.Equal(slews, []time.Duration{300 * ms}) {
		t.Errorf("a first offset under a second: steps %v slews %v, want one slew", steps, slews)
	}
}

// TestMeasureOnly: with set_clock false the clock is never touched; Now
// and the served time carry the offset.
func TestMeasureOnly(t *testing.T) {
	c := &fakeClock{now: rtc}
	s := New(Config{Servers: []string{"ntp"}, Floor: built, Clock: c,
		Query: func(ctx context.Context, server string) Sample { return sample(server, time.Hour, time.Millisecond) }})
	s.applyFloor()
	s.round(context.Background())
	if steps, slews := c.record(); len(steps)+len(slews) != 0 {
		t.Errorf("the clock was set: steps %v slews %v", steps, slews)
	}
	if got, want := s.Now(), rtc.Add(time.Hour); !got.Equal(want) {
		t.Errorf("Now = %s, want %s", got, want)
	}
}

func TestUnusableAnswersDoNotSync(t *testing.T) {
	c := &fakeClock{now: built}
	s := New(Config{Servers: []string{"a", "b"}, SetClock: true, Floor: built, Clock: c,
		Query: func(ctx context.Context, server string) Sample {
			return Sample{Server: server, Err: errors.New("unsynchronised (leap alarm)")}
		}})
	if s.round(context.Background()) {
		t.Error("synced on unusable answers")
	}
	st := s.Status()
	if st.Synced || len(st.Servers) != 2 || st.Servers[0].Error == "" || st.Error == "" {
		t.Errorf("status %+v", st)
	}
}

// TestServeAndQuery runs the server on loopback and queries it with the
// real client (beevik/ntp's parser and validation): a synchronised server
// is usable at upstream stratum + 1 and its offset is measured; an
// unsynchronised one is refused.
func TestServeAndQuery(t *testing.T) {
	const port = 12123
	release := make(chan struct{}) // the upstream answers once the test has seen the server unsynchronised
	server := New(Config{Servers: []string{"upstream"}, Serve: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Port: port,
		Clock: wallClock{}, Floor: built,
		Query: func(ctx context.Context, s string) Sample {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return sample(s, 2*time.Second, time.Millisecond)
		}})
	ctx := context.Background()
	if err := server.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer server.Stop(ctx)
	client := New(Config{Servers: []string{"127.0.0.1:12123"}, Clock: wallClock{}, Floor: built})

	// Before the server's first sync: leap alarm, stratum 16.
	srv0 := client.cfg.Query(ctx, "127.0.0.1:12123")
	if srv0.Err == nil {
		t.Errorf("an unsynchronised server's answer was usable: %+v", srv0)
	}

	close(release)
	<-server.Synced()
	got := client.cfg.Query(ctx, "127.0.0.1:12123")
	if got.Err != nil {
		t.Fatalf("query: %v", got.Err)
	}
	if got.Stratum != 3 {
		t.Errorf("stratum %d, want the upstream's 2 + 1", got.Stratum)
	}
	if d := got.Offset - 2*time.Second; d > 50*time.Millisecond || d < -50*time.Millisecond {
		t.Errorf("offset %s, want about the server's measured 2s", got.Offset)
	}
	if st := server.Status(); st.Served < 2 || len(st.Serving) != 1 {
		t.Errorf("server status %+v", st)
	}
}

// wallClock is the real time, never set.
type wallClock struct{}

func (wallClock) Now() time.Time             { return time.Now() }
func (wallClock) Step(d time.Duration) error { return errors.New("not in a test") }
func (wallClock) Slew(d time.Duration) error { return errors.New("not in a test") }

func TestReply(t *testing.T) {
	req := make([]byte, packetLen)
	req[0] = 0<<6 | 4<<3 | modeClient
	req[2] = 6
	binary.BigEndian.PutUint64(req[40:], 0x1122334455667788)
	rx := time.Date(2026, 11, 30, 12, 0, 0, 500_000_000, time.UTC)
	src := Source{Synced: true, Stratum: 1, RefID: 0xc0000201, RefTime: rx.Add(-time.Minute), RootDelay: 10 * time.Millisecond}
	out := Reply(req, rx, rx.Add(time.Millisecond), src)
	if len(out) != packetLen {
		t.Fatalf("reply of %d bytes", len(out))
	}
	if got, want := out[0], byte(0<<6|4<<3|modeServer); got != want {
		t.Errorf("LI/VN/mode = %#x, want %#x", got, want)
	}
	if out[1] != 2 || out[2] != 6 {
		t.Errorf("stratum %d poll %d, want 2 and the request's 6", out[1], out[2])
	}
	if got := binary.BigEndian.Uint64(out[24:]); got != 0x1122334455667788 {
		t.Errorf("origin %#x, want the request's transmit time", got)
	}
	if got := fromTimestamp(binary.BigEndian.Uint64(out[32:])); got.Sub(rx).Abs() > time.Microsecond {
		t.Errorf("receive %s, want %s", got, rx)
	}
	if got := binary.BigEndian.Uint32(out[12:]); got != src.RefID {
		t.Errorf("refid %#x, want %#x", got, src.RefID)
	}
	if got := binary.BigEndian.Uint32(out[4:]); got != 655 { // 10 ms in 16.16
		t.Errorf("root delay %d, want 655", got)
	}

	unsync := Reply(req, rx, rx, Source{})
	if unsync[0]>>6 != leapAlarm || unsync[1] != stratumUnsync || string(unsync[12:16]) != "INIT" {
		t.Errorf("unsynchronised answer: LI %d stratum %d refid %q", unsync[0]>>6, unsync[1], unsync[12:16])
	}

	for name, bad := range map[string][]byte{
		"short":     req[:47],
		"server":    append([]byte{4<<3 | modeServer}, req[1:]...),
		"broadcast": append([]byte{4<<3 | 5}, req[1:]...),
		"version 0": append([]byte{modeClient}, req[1:]...),
		"version 5": append([]byte{5<<3 | modeClient}, req[1:]...),
	} {
		if out := Reply(bad, rx, rx, src); out != nil {
			t.Errorf("%s request answered", name)
		}
	}
}

func TestTimestampEras(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 11, 30, 0, 0, 0, 123456789, time.UTC),
		time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC), // era 1 begins
		time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		if got := fromTimestamp(timestamp(tm)); got.Sub(tm).Abs() > time.Nanosecond {
			t.Errorf("%s round-trips to %s", tm, got)
		}
	}
}

func FuzzReply(f *testing.F) {
	req := make([]byte, packetLen)
	req[0] = 4<<3 | modeClient
	f.Add(req)
	f.Add(append([]byte{3<<3 | modeClient}, make([]byte, 67)...)) // with a MAC
	f.Add([]byte{0x1b})
	rx := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, src := range []Source{{}, {Synced: true, Stratum: 15, RootDelay: time.Hour * 24 * 365}} {
			out := Reply(b, rx, rx, src)
			if out == nil {
				continue
			}
			if len(out) != packetLen || out[0]&7 != modeServer || out[1] == 0 || out[1] > stratumUnsync {
				t.Fatalf("bad reply % x to % x", out, b)
			}
		}
	})
}

// fromTimestamp is the inverse of timestamp for era 0 and 1 (1968-2104):
// a value with the top bit clear is taken to be after 2036.
func fromTimestamp(ts uint64) time.Time {
	secs, frac := int64(ts>>32), int64(ts&0xffffffff)
	if secs < 1<<31 {
		secs += 1 << 32 // era 1
	}
	return time.Unix(secs-ntpEpochOffset, frac*1e9>>32)
}
