package config

import (
	"fmt"
	"strconv"
	"strings"
)

// SQM is [sqm]: a CAKE shaper per direction that both paths share.
type SQM struct {
	Upload, Download uint64 // bits/s
	// Overhead, MPU and Framing compensate for the link layer below IP
	// (what the line counts that the router does not see).
	Overhead int
	MPU      int
	Framing  string // "none" | "ptm" | "atm"
	Preset   string // the overhead's name ("ethernet", …; "" for bytes)
	PerHost  bool   // fair between LAN hosts first, then between their flows
}

// overheadPresets are CAKE's keywords of the same names (tc-cake(8)).
var overheadPresets = map[string]struct {
	overhead, mpu int
	framing       string
}{
	"ethernet":  {38, 84, "none"},
	"docsis":    {18, 64, "none"},
	"pppoe-ptm": {30, 0, "ptm"},
	"none":      {0, 0, "none"},
}

func (v *validator) sqm(f *fileSQM) {
	if f == nil {
		return
	}
	s := &SQM{PerHost: true}
	s.Upload = v.rate("sqm.upload", f.Upload)
	s.Download = v.rate("sqm.download", f.Download)
	over := f.Overhead
	if over == nil {
		over = "ethernet"
	}
	switch o := over.(type) {
	case string:
		p, ok := overheadPresets[o]
		if !ok {
			v.p.errf("sqm.overhead", "%q is not one of ethernet, docsis, pppoe-ptm, none, or a number of bytes", o)
			break
		}
		s.Preset, s.Overhead, s.MPU, s.Framing = o, p.overhead, p.mpu, p.framing
	case int64:
		if o < -64 || o > 256 {
			v.p.errf("sqm.overhead", "%d bytes is outside -64-256", o)
			break
		}
		s.Overhead, s.Framing = int(o), "none"
	default:
		v.p.errf("sqm.overhead", "want a preset's name or a number of bytes, got %s", describe(o))
	}
	if f.PerHost != nil {
		s.PerHost = *f.PerHost
	}
	v.c.SQM = s
}

// rate parses a line rate as tc writes them: "38mbit", "950kbit",
// "1gbit" (bits per second).
func (v *validator) rate(path, s string) uint64 {
	if s == "" {
		v.p.errf(path, "required: the line's rate in that direction, a little under what it really carries (e.g. \"38mbit\")")
		return 0
	}
	if s == "auto" {
		v.p.errf(path, "\"auto\" (following a changing link) is not supported yet: give the rate")
		return 0
	}
	units := []struct {
		suffix string
		mult   float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}
	for _, u := range units {
		num, ok := strings.CutSuffix(strings.ToLower(s), u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(num, 64)
		if err != nil || n <= 0 {
			break
		}
		r := uint64(n * u.mult)
		if r < 64e3 || r > 100e9 {
			v.p.errf(path, "%s is outside 64kbit-100gbit", s)
			return 0
		}
		return r
	}
	v.p.errf(path, "%q is not a rate (e.g. \"38mbit\", \"950kbit\", \"1gbit\")", s)
	return 0
}

// OverheadString is the overhead as status shows it.
func (s *SQM) OverheadString() string {
	if s.Preset != "" {
		return s.Preset
	}
	return fmt.Sprintf("%d bytes", s.Overhead)
}
