package sqm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/routerd/routerd/internal/rawicmp"
)

// Follower runs an Autorate against the live shapers: every Interval it
// sends each reflector an ICMP timestamp request from the wan namespace
// (by its routes: the uplink that carries the traffic), reads the answers
// until the next round, reads the shapers' counters and sets the rates
// the core asks for. Answers that arrive late (a full buffer) still count:
// their timestamps say how late.
type Follower struct {
	NS         string              // where the uplinks are
	Reflectors func() []netip.Addr // asked each round: the gateway may change
	Interval   time.Duration
	Core       *Autorate
	Log        *slog.Logger

	mu       sync.Mutex
	changes  []Change // the last maxChanges
	targets  []netip.Addr
	answered time.Time // the last answer from a reflector
	started  time.Time
	err      string
}

const maxChanges = 20

// FollowerStatus is what status shows of a Follower.
type FollowerStatus struct {
	Rates      [2]uint64
	Reflectors []netip.Addr
	LastAnswer time.Time // zero: none yet
	Changes    []Change
	Error      string
}

func (f *Follower) Status() FollowerStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := FollowerStatus{Rates: f.Core.Rates(), Reflectors: f.targets, LastAnswer: f.answered, Changes: append([]Change(nil), f.changes...), Error: f.err}
	last := f.started
	if f.answered.After(last) {
		last = f.answered
	}
	if st.Error == "" && !f.started.IsZero() && time.Since(last) > silentAfter {
		if len(f.targets) == 0 {
			st.Error = "no reflector: the WAN has no gateway yet and [sqm] names none; the rates stay where they are"
		} else {
			st.Error = fmt.Sprintf("no answer from the reflectors for %v: the rates stay where they are (do they answer ICMP timestamp requests?)",
				time.Since(last).Round(time.Second))
		}
	}
	return st
}

// silentAfter is how long the reflectors may be silent before status says so.
const silentAfter = 5 * time.Second

func (f *Follower) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.err = ""
	} else {
		f.err = err.Error()
	}
}

// Switch follows another line from now on (the backup uplink's, or the
// primary's again): core's bounds, its rates set at once.
func (f *Follower) Switch(core *Autorate) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Core = core
	r := core.Rates()
	return errors.Join(SetRate(IfbUp, r[Up]), SetRate(IfbDown, r[Down]))
}

// Run follows the line until ctx ends.
func (f *Follower) Run(ctx context.Context) {
	var conn *net.IPConn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	f.mu.Lock()
	f.started = time.Now()
	f.mu.Unlock()
	id := uint16(rand.Uint32())
	var seq uint16
	buf := make([]byte, 1500)
	next := time.Now()
	for ctx.Err() == nil {
		next = next.Add(f.Interval)
		if now := time.Now(); next.Before(now) {
			next = now.Add(f.Interval) // a slow round: do not catch up in a burst
		}
		if conn == nil {
			var err error
			if conn, err = rawicmp.Listen(f.NS, ""); err != nil {
				f.setErr(err)
				sleepUntil(ctx, next)
				continue
			}
		}
		targets := f.Reflectors()
		f.mu.Lock()
		f.targets = targets
		f.mu.Unlock()
		for _, t := range targets {
			seq++
			req := timestampRequest(id, seq, msOfDay(time.Now()))
			_, _ = conn.WriteTo(req, &net.IPAddr{IP: t.AsSlice()}) // a failed send is an unanswered one
		}
		s := Sample{Answers: f.read(ctx, conn, buf, id, next)}
		if len(s.Answers) > 0 {
			f.mu.Lock()
			f.answered = time.Now()
			f.mu.Unlock()
		}
		var errs []error
		for d, ifb := range [2]string{IfbUp, IfbDown} {
			st, err := Read(ifb)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			s.Bytes[d], s.Packets[d] = st.Bytes, st.Packets
		}
		s.At = time.Now()
		if len(errs) > 0 { // the shapers are being replaced: measure next time
			f.setErr(errors.Join(errs...))
			continue
		}
		f.mu.Lock()
		f.apply(f.Core.Handle(s, s.At))
		f.mu.Unlock()
	}
}

// read collects the timestamp replies to id until the deadline.
func (f *Follower) read(ctx context.Context, conn *net.IPConn, buf []byte, id uint16, deadline time.Time) []OWD {
	var out []OWD
	conn.SetReadDeadline(deadline)
	oob := make([]byte, rawicmp.OOBSize)
	for ctx.Err() == nil {
		n, oobn, _, from, err := conn.ReadMsgIP(buf, oob)
		if err != nil {
			break // the deadline
		}
		at, ok := rawicmp.ReceiveTime(oob[:oobn])
		if !ok {
			at = time.Now()
		}
		arrival := msOfDay(at)
		r, ok := parseTimestampReply(rawicmp.Payload(buf[:n]))
		a, aok := netip.AddrFromSlice(from.IP)
		if !ok || !aok || r.ID != id {
			continue
		}
		up, down := r.owd(arrival)
		out = append(out, OWD{Reflector: a.Unmap(), Up: up, Down: down})
	}
	return out
}

// apply sets the rates changes asks for and records them; f.mu is held,
// so that a Switch cannot come between the core's decision and the
// qdiscs.
func (f *Follower) apply(changes []Change) {
	var errs []error
	for _, c := range changes {
		ifb := IfbUp
		if c.Dir == Down {
			ifb = IfbDown
		}
		if err := SetRate(ifb, c.To); err != nil {
			errs = append(errs, err)
			continue
		}
		// Rises come ten a second under load: status has them.
		level := slog.LevelDebug
		if c.To < c.From {
			level = slog.LevelInfo
		}
		f.Log.Log(context.Background(), level, "shaper rate changed", "direction", c.Dir.String(),
			"from", rateString(c.From), "to", rateString(c.To), "why", c.Why)
	}
	f.changes = append(f.changes, changes...)
	if k := len(f.changes) - maxChanges; k > 0 {
		f.changes = f.changes[k:]
	}
	f.err = ""
	if err := errors.Join(errs...); err != nil {
		f.err = err.Error()
	}
}

func sleepUntil(ctx context.Context, t time.Time) {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-tm.C:
	}
}
