package sqm

import (
	"fmt"
	"math"
	"net/netip"
	"time"
)

// Direction is a shaper's direction: Up (uploads, sqm-up) or Down.
type Direction int

const (
	Up Direction = iota
	Down
)

func (d Direction) String() string {
	if d == Up {
		return "upload"
	}
	return "download"
}

// AutorateConfig bounds the rates Autorate may set. A direction whose
// Min equals its Max is fixed: Autorate leaves it alone.
type AutorateConfig struct {
	Min, Max [2]uint64 // bits/s, by Direction
	// Threshold is the queueing delay, over the line's idle one-way delay,
	// that says the line's buffer is filling (bufferbloat).
	Threshold time.Duration
	// Overhead is what the shapers add to each packet's length for their
	// rates (bytes): the achieved rate is counted the same way.
	Overhead int
	// Start is where each direction begins (bits/s; 0: at Min), kept
	// within Min and Max.
	Start [2]uint64
}

// OWD is one reflector's answer: the one-way delays it measured, each
// offset by the difference of the two clocks (a constant the baseline
// takes out).
type OWD struct {
	Reflector netip.Addr
	Up, Down  time.Duration
}

// Sample is what the loop saw since the previous one: the shapers' byte
// and packet counters (cumulative, as the kernel keeps them) and the
// answers that arrived.
type Sample struct {
	At      time.Time
	Bytes   [2]uint64
	Packets [2]uint32
	Answers []OWD
}

// Change is one rate adjustment, for the log and status.
type Change struct {
	At       time.Time
	Dir      Direction
	From, To uint64
	Why      string
}

// Autorate follows a line whose capacity changes (LTE, Starlink, a shared
// cable segment), as cake-autorate does: it lowers a direction's rate
// when that direction's one-way delay to the reflectors rises over their
// baseline (the line's buffer fills: the shaper is above what the line
// carries now), and raises it while the direction is busy and the delay
// stays low (the line may carry more). The one-way delays come from ICMP
// timestamps, so a filling download buffer lowers the download rate only.
// It is the pure core: Handle(sample, now) → changes; the loop owns the
// sockets and the qdiscs.
type Autorate struct {
	cfg   AutorateConfig
	rates [2]uint64
	// Per reflector and direction: the lowest one-way delay seen, drifting
	// up slowly so that a route or clock change is followed.
	base map[netip.Addr]*[2]time.Duration
	// The last samples' verdicts per direction (true: over the threshold),
	// newest last; cleared when the rate drops so that the next drop
	// waits for fresh evidence (the queue needs a moment to drain).
	window [2][]bool
	// Where bloat was seen last: the rate climbs carefully near it.
	bloatAt [2]uint64
	// When the rate was last lowered: the buffer drains for a moment
	// after, and its delay then is no reason to lower it again.
	loweredAt [2]time.Time
	prev      *Sample
}

// Autorate's tuning: cake-autorate's defaults, adapted to a loop of a few
// hundred milliseconds.
const (
	windowLen     = 6    // verdicts kept per direction
	bloatVerdict  = 3    // of them over the threshold: bloat
	loadHigh      = 0.85 // achieved/rate: busy enough to try more
	downFactor    = 0.9  // on bloat: this much of what the line carried,
	downFactorMin = 0.5  // down to this much with the buffer full
	upFast        = 1.12 // per second, far from the last bloat
	upNear        = 1.03 // per second, near it
	baseDrift     = 0.001
	refractory    = time.Second     // after lowering a rate, before changing it again
	holdAfterCut  = 3 * time.Second // before raising it again
)

// NewAutorate starts where cfg.Start says, or at each direction's
// minimum: safe until the line shows it carries more, which takes
// seconds under load.
func NewAutorate(cfg AutorateConfig) *Autorate {
	a := &Autorate{cfg: cfg, base: map[netip.Addr]*[2]time.Duration{}}
	for d := range a.rates {
		a.rates[d] = cfg.Min[d]
		if cfg.Start[d] != 0 {
			a.rates[d] = min(max(cfg.Start[d], cfg.Min[d]), cfg.Max[d])
		}
	}
	return a
}

// Rates are the rates the shapers should have now, by Direction.
func (a *Autorate) Rates() [2]uint64 { return a.rates }

// Handle takes one sample and returns the rate changes it calls for.
func (a *Autorate) Handle(s Sample, now time.Time) []Change {
	var verdict, rising [2]bool
	var worst [2]time.Duration // the largest delay over the baseline
	var answered bool
	for _, o := range s.Answers {
		answered = true
		b := a.base[o.Reflector]
		if b == nil {
			b = &[2]time.Duration{o.Up, o.Down}
			a.base[o.Reflector] = b
		}
		for d, owd := range [2]time.Duration{o.Up, o.Down} {
			if owd < b[d] {
				b[d] = owd
			} else {
				b[d] += time.Duration(float64(owd-b[d]) * baseDrift)
			}
			worst[d] = max(worst[d], owd-b[d])
			if owd-b[d] > a.cfg.Threshold {
				verdict[d] = true
			}
			if owd-b[d] > a.cfg.Threshold/3 {
				rising[d] = true // not bloat yet, but no time to ask for more
			}
		}
	}
	prev := a.prev
	a.prev = &s
	if prev == nil || !s.At.After(prev.At) {
		return nil
	}
	secs := s.At.Sub(prev.At).Seconds()
	var out []Change
	for d := Up; d <= Down; d++ {
		if a.cfg.Min[d] == a.cfg.Max[d] {
			continue
		}
		if answered {
			a.window[d] = append(a.window[d], verdict[d])
			if len(a.window[d]) > windowLen {
				a.window[d] = a.window[d][1:]
			}
		}
		// As the shaper counts: each packet with the overhead.
		sent := float64(s.Bytes[d]-prev.Bytes[d]) + float64(s.Packets[d]-prev.Packets[d])*float64(a.cfg.Overhead)
		achieved := uint64(sent * 8 / secs)
		if s.Bytes[d] < prev.Bytes[d] { // the qdisc was replaced: no measure
			achieved = 0
		}
		rate := a.rates[d]
		var to uint64
		var why string
		switch bloats := count(a.window[d]); {
		case now.Sub(a.loweredAt[d]) < refractory:
			continue
		case bloats < bloatVerdict && now.Sub(a.loweredAt[d]) < holdAfterCut:
			continue
		case bloats >= bloatVerdict:
			// The fuller the buffer, the further below what the line
			// carries, so that it drains in a moment.
			f := downFactor - (downFactor-downFactorMin)*min(1, float64(worst[d]-a.cfg.Threshold)/float64(10*a.cfg.Threshold))
			to = uint64(float64(min(rate, max(achieved, a.cfg.Min[d]))) * min(downFactor, f))
			why = fmt.Sprintf("the %s's delay rose over %v (%v, %d of the last %d samples) at %s",
				d, a.cfg.Threshold, worst[d].Round(time.Millisecond), bloats, len(a.window[d]), rateString(achieved))
			a.window[d] = a.window[d][:0]
			a.bloatAt[d] = min(rate, max(achieved, a.cfg.Min[d]))
			a.loweredAt[d] = now
		case bloats == 0 && answered && !rising[d] && float64(achieved) >= loadHigh*float64(rate):
			f := upFast
			if b := float64(a.bloatAt[d]); float64(rate) >= 0.95*b && float64(rate) <= 1.1*b {
				f = upNear
			}
			to = uint64(float64(rate) * math.Pow(f, secs))
			why = fmt.Sprintf("busy (%s) with a low delay", rateString(achieved))
		default:
			continue
		}
		to = min(max(to, a.cfg.Min[d]), a.cfg.Max[d])
		if to == rate {
			continue
		}
		a.rates[d] = to
		out = append(out, Change{At: now, Dir: d, From: rate, To: to, Why: why})
	}
	return out
}

func count(bs []bool) (n int) {
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// rateString writes bits/s as tc does.
func rateString(r uint64) string {
	switch {
	case r >= 1e9:
		return fmt.Sprintf("%.2fgbit", float64(r)/1e9)
	case r >= 1e6:
		return fmt.Sprintf("%.2fmbit", float64(r)/1e6)
	default:
		return fmt.Sprintf("%.0fkbit", float64(r)/1e3)
	}
}
