package timesync

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/router/status"
)

// Polling. Until the first sync the servers are asked again quickly (2 s,
// doubling to a minute): the WAN may just be coming up. Once synchronised,
// every Poll.
const (
	firstRetry    = 2 * time.Second
	maxRetry      = time.Minute
	defaultPoll   = 17 * time.Minute // 1024 s, chrony's and ntpd's maxpoll
	queryTimeout  = 5 * time.Second
	saveEvery     = time.Hour
	stepThreshold = time.Second
)

// Config configures the service.
type Config struct {
	// Servers are host or host:port (123 by default).
	Servers []string
	// SetClock lets the service set the system clock. Without it the
	// offset is measured, shown and served (the answers are corrected by
	// it), and the system clock is left to whoever owns it.
	SetClock bool
	// Floor is the earliest the clock may be (the build time). The time
	// saved in ClockFile raises it.
	Floor     time.Time
	ClockFile string
	// Serve are the addresses to answer NTP requests on (port 123).
	Serve []netip.Addr
	Port  uint16 // 0: 123

	Clock Clock // nil: SystemClock
	// Query asks one server; nil: SNTP over UDP, names resolved by
	// Resolver.
	Query    func(ctx context.Context, server string) Sample
	Resolver *net.Resolver
	Poll     time.Duration // 0: 1024 s
	// OnStep is told of every step of the clock, with its size, so that
	// what counts elapsed time in wall-clock instants (leases) can move.
	OnStep func(d time.Duration)
	Log    *slog.Logger
}

// Sample is one server's answer, or why there is none.
type Sample struct {
	Server       string // as configured
	Addr         netip.Addr
	Offset       time.Duration // add this to the local clock to get the server's
	RTT          time.Duration
	RootDelay    time.Duration
	RootDisp     time.Duration
	RootDistance time.Duration // the error bound of Offset
	Stratum      uint8
	Err          error // unreachable, or an unusable answer (unsynchronised, stratum 0 or 16, ...)
}

// Service disciplines the clock and serves it.
type Service struct {
	cfg Config
	log *slog.Logger
	run lifecycle.Group

	synced     chan struct{}
	syncedOnce sync.Once

	// offset is the correction of the clock not applied to it (SetClock
	// false), in nanoseconds.
	offset atomic.Int64
	src    atomic.Pointer[Source]

	mu       sync.Mutex
	floor    time.Time
	last     []Sample
	used     int // index in last of the followed sample; -1 none
	outliers map[int]bool
	lastSync time.Time
	server   string // followed at the last sync
	stratum  int
	bestOff  time.Duration
	steps    int
	lastStep string
	err      string
	conns    []*net.UDPConn

	served, dropped atomic.Uint64
}

// New returns a service for cfg; Start starts it.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Poll == 0 {
		cfg.Poll = defaultPoll
	}
	if cfg.Port == 0 {
		cfg.Port = 123
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, log: cfg.Log, synced: make(chan struct{}), used: -1}
	s.src.Store(&Source{})
	if cfg.Query == nil {
		s.cfg.Query = s.sntp
	}
	if len(cfg.Servers) == 0 {
		s.markSynced() // nothing to wait for
	}
	return s
}

// Synced is closed at the first synchronisation (at once without
// servers): from then on the clock can be trusted with certificate dates.
func (s *Service) Synced() <-chan struct{} { return s.synced }

func (s *Service) markSynced() { s.syncedOnce.Do(func() { close(s.synced) }) }

// Now is the router's time: the clock, corrected by the measured offset
// when the service does not set the clock.
func (s *Service) Now() time.Time {
	return s.cfg.Clock.Now().Add(time.Duration(s.offset.Load()))
}

// Start raises the clock to its floor, opens the NTP server's sockets and
// starts polling.
func (s *Service) Start(ctx context.Context) error {
	s.applyFloor()
	var errs []error
	for _, a := range s.cfg.Serve {
		c, err := listen(netip.AddrPortFrom(a, s.cfg.Port))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
	}
	s.run.Start(ctx)
	s.mu.Lock()
	for _, c := range s.conns {
		s.run.Go(func(ctx context.Context) { s.serve(ctx, c) })
	}
	s.mu.Unlock()
	if len(s.cfg.Servers) > 0 {
		s.run.Go(s.poll)
	}
	if s.cfg.SetClock && s.cfg.ClockFile != "" {
		s.run.Go(s.saveClock)
	}
	return errors.Join(errs...)
}

// Stop ends polling and serving, and saves the clock.
func (s *Service) Stop(ctx context.Context) error {
	err := s.run.Stop(ctx)
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	return err
}

// applyFloor steps the clock up to its floor when it is below: a dead RTC
// must not take the box back to 1970 or 2020.
func (s *Service) applyFloor() {
	floor, why := s.cfg.Floor, "the build time"
	if s.cfg.ClockFile != "" {
		t, err := readClockFile(s.cfg.ClockFile)
		if err != nil {
			s.log.Warn("clock file unreadable", "file", s.cfg.ClockFile, "err", err)
		}
		if t.After(floor) {
			floor, why = t, "the time saved in "+s.cfg.ClockFile
		}
	}
	s.mu.Lock()
	s.floor = floor
	s.mu.Unlock()
	now := s.cfg.Clock.Now()
	if !now.Before(floor) {
		return
	}
	if !s.cfg.SetClock {
		s.log.Warn("the clock is below its floor and time.set_clock is false", "clock", now.Format(time.RFC3339), "floor", floor.Format(time.RFC3339))
		return
	}
	s.step(floor.Sub(now), "raised to its floor, "+why)
}

// step steps the clock by d and tells OnStep.
func (s *Service) step(d time.Duration, why string) bool {
	from := s.cfg.Clock.Now()
	if err := s.cfg.Clock.Step(d); err != nil {
		s.log.Error("cannot set the clock", "err", err)
		s.setErr(err.Error())
		return false
	}
	to := s.cfg.Clock.Now()
	s.log.Info("clock stepped", "by", d.Round(time.Millisecond), "from", from.Format(time.RFC3339), "to", to.Format(time.RFC3339), "why", why)
	s.mu.Lock()
	s.steps++
	s.lastStep = fmt.Sprintf("%s by %s (%s)", to.Format(time.RFC3339), d.Round(time.Millisecond), why)
	s.mu.Unlock()
	if s.cfg.OnStep != nil {
		s.cfg.OnStep(d)
	}
	if s.cfg.ClockFile != "" {
		if err := writeClockFile(s.cfg.ClockFile, to); err != nil {
			s.log.Warn("save the clock", "file", s.cfg.ClockFile, "err", err)
		}
	}
	return true
}

func (s *Service) setErr(e string) {
	s.mu.Lock()
	s.err = e
	s.mu.Unlock()
}

// poll asks the servers until the first sync, quickly, then every Poll.
func (s *Service) poll(ctx context.Context) {
	retry := firstRetry
	for {
		next := s.cfg.Poll
		if !s.round(ctx) {
			next, retry = retry, min(retry*2, maxRetry)
		} else {
			retry = firstRetry
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// round asks every server once, picks the sample to follow and corrects
// the clock by it. It reports whether the clock is synchronised after it.
func (s *Service) round(ctx context.Context) bool {
	samples := make([]Sample, len(s.cfg.Servers))
	var wg sync.WaitGroup
	for i, srv := range s.cfg.Servers {
		wg.Go(func() { samples[i] = s.cfg.Query(ctx, srv) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return false
	}
	best, outliers := Select(samples)
	s.mu.Lock()
	s.last, s.used, s.outliers = samples, best, outliers
	s.mu.Unlock()
	if best < 0 {
		s.setErr("no usable answer from any server")
		return false
	}
	smp := samples[best]
	first := !s.isSynced()
	switch {
	case !s.cfg.SetClock:
		s.offset.Store(int64(smp.Offset))
	case smp.Offset > stepThreshold || smp.Offset < -stepThreshold:
		why := "first synchronisation with " + smp.Server
		if !first {
			// Someone else set the clock, or the box was suspended:
			// slewing a second or more would take hours.
			why = "off by more than a second since the last synchronisation, with " + smp.Server
			s.log.Warn("clock off by more than a second after synchronisation", "offset", smp.Offset, "server", smp.Server)
		}
		if !s.step(smp.Offset, why) {
			return false
		}
	default:
		if err := s.cfg.Clock.Slew(smp.Offset); err != nil {
			s.log.Error("cannot slew the clock", "err", err)
			s.setErr(err.Error())
			return false
		}
	}
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	s.lastSync, s.bestOff, s.err = now, smp.Offset, ""
	s.server, s.stratum = smp.Server, int(smp.Stratum)
	s.mu.Unlock()
	s.src.Store(&Source{Synced: true, Stratum: smp.Stratum, RefID: refID(smp.Addr), RefTime: s.Now(),
		RootDelay: smp.RootDelay + smp.RTT, RootDisp: smp.RootDisp + smp.RTT/2})
	if first {
		s.log.Info("time synchronised", "server", smp.Server, "address", smp.Addr, "stratum", smp.Stratum, "offset", smp.Offset)
	}
	s.markSynced()
	return true
}

func (s *Service) isSynced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.lastSync.IsZero()
}

// outlierMin is the least distance from the median that makes a sample an
// outlier: path asymmetry alone puts honest servers tens of milliseconds
// apart.
const outlierMin = 100 * time.Millisecond

// Select picks the sample to follow from one round's answers and returns
// its index (-1: none usable) and the samples it dropped as outliers.
// Answers with Err are unusable. With three or more usable answers, those
// further from the median offset than max(100 ms, 3 × the median absolute
// deviation) are outliers (a server that is simply wrong cannot outvote
// two that agree). Of the rest, the one with the smallest root distance
// (the tightest error bound) wins.
func Select(samples []Sample) (best int, outliers map[int]bool) {
	var ok []int
	for i, s := range samples {
		if s.Err == nil {
			ok = append(ok, i)
		}
	}
	outliers = map[int]bool{}
	if len(ok) >= 3 {
		offs := make([]time.Duration, len(ok))
		for j, i := range ok {
			offs[j] = samples[i].Offset
		}
		med := median(offs)
		devs := make([]time.Duration, len(ok))
		for j, o := range offs {
			devs[j] = abs(o - med)
		}
		limit := max(outlierMin, 3*median(devs))
		for j, i := range ok {
			if devs[j] > limit {
				outliers[i] = true
			}
		}
	}
	best = -1
	for _, i := range ok {
		if outliers[i] {
			continue
		}
		if best < 0 || samples[i].RootDistance < samples[best].RootDistance {
			best = i
		}
	}
	return best, outliers
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := 1; i < len(s); i++ { // insertion sort: a handful of servers
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// refID is the reference identifier a server announces for its upstream:
// its IPv4 address, or the first four bytes of the MD5 of its IPv6 one
// (RFC 5905 §7.3).
func refID(a netip.Addr) uint32 {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return binary.BigEndian.Uint32(b[:])
	}
	b := a.As16()
	h := md5.Sum(b[:])
	return binary.BigEndian.Uint32(h[:4])
}

// saveClock writes the clock file every hour and when stopped, so that
// the next boot's floor is at most an hour (plus the time the box was off)
// behind.
func (s *Service) saveClock(ctx context.Context) {
	t := time.NewTicker(saveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.save()
			return
		case <-t.C:
			s.save()
		}
	}
}

func (s *Service) save() {
	if err := writeClockFile(s.cfg.ClockFile, s.Now()); err != nil {
		s.log.Warn("save the clock", "file", s.cfg.ClockFile, "err", err)
	}
}

// Status reports the clock, the servers' last answers and the server's
// counters.
func (s *Service) Status() status.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := status.Time{SetsClock: s.cfg.SetClock, Now: s.Now(), Floor: s.floor, Synced: !s.lastSync.IsZero(),
		LastSync: s.lastSync, Server: s.server, Stratum: s.stratum, OffsetMS: ms(s.bestOff), Steps: s.steps, LastStep: s.lastStep, Error: s.err,
		Served: s.served.Load(), Dropped: s.dropped.Load()}
	for i, name := range s.cfg.Servers {
		ts := status.TimeServer{Name: name, Error: "not asked yet"}
		if i < len(s.last) {
			smp := s.last[i]
			ts = status.TimeServer{Name: name, Stratum: int(smp.Stratum), OffsetMS: ms(smp.Offset), RTTMS: ms(smp.RTT),
				Used: i == s.used, Outlier: s.outliers[i]}
			if smp.Addr.IsValid() {
				ts.Addr = smp.Addr.String()
			}
			if smp.Err != nil {
				ts.Error = smp.Err.Error()
			}
		}
		st.Servers = append(st.Servers, ts)
	}
	for _, c := range s.conns {
		st.Serving = append(st.Serving, c.LocalAddr().String())
	}
	return st
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
