package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// SQM is [sqm]: a CAKE shaper per direction that both paths share.
type SQM struct {
	SQMRates // the primary uplink's
	// Backup is [sqm.backup]: the rates while the backup uplink carries
	// the traffic (nil: the primary's).
	Backup *SQMRates
	// Reflectors answer autorate's ICMP timestamp requests; none: the
	// WAN's gateway.
	Reflectors []netip.Addr
	// BloatThreshold is the rise in a direction's delay that lowers its
	// rate.
	BloatThreshold time.Duration
	// Classes put hosts' or ports' packets in a tin ([[sqm.class]]).
	Classes []SQMClass
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
	s.Upload, s.UploadAuto = v.sqmRate("sqm.upload", f.Upload, f.UploadMin, f.UploadMax)
	s.Download, s.DownloadAuto = v.sqmRate("sqm.download", f.Download, f.DownloadMin, f.DownloadMax)
	if b := f.Backup; b != nil {
		if v.c.WAN.Backup == nil {
			v.p.errf("sqm.backup", "the backup uplink's rates, but there is no [wan.backup]")
		}
		s.Backup = &SQMRates{}
		s.Backup.Upload, s.Backup.UploadAuto = v.sqmRate("sqm.backup.upload", b.Upload, b.UploadMin, b.UploadMax)
		s.Backup.Download, s.Backup.DownloadAuto = v.sqmRate("sqm.backup.download", b.Download, b.DownloadMin, b.DownloadMax)
	}
	v.autorate(f, s)
	v.sqmClasses(f.Class, s)
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

// SQMRates are an uplink's rates.
type SQMRates struct {
	// The rates, bits/s: fixed, or with "auto" where autorate starts (the
	// minimum).
	Upload, Download uint64
	// Autorate: set for a direction whose rate is "auto", nil for one
	// whose rate is fixed.
	UploadAuto, DownloadAuto *RateRange
}

// Auto says whether either direction follows the line.
func (r *SQMRates) Auto() bool { return r.UploadAuto != nil || r.DownloadAuto != nil }

// RateRange is where autorate may move a direction's rate, bits/s.
type RateRange struct{ Min, Max uint64 }

// Autorate says whether either direction of either uplink follows the
// line.
func (s *SQM) Autorate() bool { return s.SQMRates.Auto() || s.Backup != nil && s.Backup.Auto() }

// sqmRate parses one direction: a fixed rate, or "auto" between its
// minimum and maximum.
func (v *validator) sqmRate(path, s, minS, maxS string) (uint64, *RateRange) {
	if s != "auto" {
		if minS != "" || maxS != "" {
			v.p.errf(path+"_min", "%s_min and %s_max are for an \"auto\" rate; this one is fixed (%q)", path, path, s)
		}
		return v.rate(path, s), nil
	}
	if minS == "" || maxS == "" {
		v.p.errf(path, "\"auto\" follows the line between %s_min and %s_max: give both (e.g. the line's worst and best rates)", path, path)
		return 0, nil
	}
	r := &RateRange{Min: v.rate(path+"_min", minS), Max: v.rate(path+"_max", maxS)}
	if r.Min != 0 && r.Max != 0 && r.Min >= r.Max {
		v.p.errf(path+"_max", "%s is not above %s_min (%s)", maxS, path, minS)
	}
	return r.Min, r
}

// autorate checks the keys that tune "auto" rates.
func (v *validator) autorate(f *fileSQM, s *SQM) {
	if !s.Autorate() {
		if len(f.Reflectors) > 0 || f.BloatThreshold != "" {
			v.p.errf("sqm.reflectors", "reflectors and bloat_threshold tune \"auto\" rates; neither rate is \"auto\"")
		}
		return
	}
	if len(f.Reflectors) > 8 {
		v.p.errf("sqm.reflectors", "%d reflectors: at most 8", len(f.Reflectors))
	}
	for i, r := range f.Reflectors {
		if a := v.addr(idx("sqm.reflectors", i), r, fam4); a.IsValid() {
			if !a.IsGlobalUnicast() {
				v.p.errf(idx("sqm.reflectors", i), "%s: reflectors are unicast IPv4 hosts that answer ICMP timestamp requests (the ISP's gateway, or beyond it)", a)
				continue
			}
			s.Reflectors = append(s.Reflectors, a)
		}
	}
	s.BloatThreshold = v.duration("sqm.bloat_threshold", or(f.BloatThreshold, "10ms"))
	if s.BloatThreshold != 0 && (s.BloatThreshold < 2*time.Millisecond || s.BloatThreshold > time.Second) {
		v.p.errf("sqm.bloat_threshold", "%v is outside 2ms-1s", s.BloatThreshold)
	}
}

// rate parses a line rate as tc writes them: "38mbit", "950kbit",
// "1gbit" (bits per second).
func (v *validator) rate(path, s string) uint64 {
	if s == "" {
		v.p.errf(path, "required: the line's rate in that direction, a little under what it really carries (e.g. \"38mbit\")")
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

// SQMClass is one [[sqm.class]]: its hosts' packets, or those to and
// from its ports, go in Tin whatever their DSCP marks say.
type SQMClass struct {
	Tin   string // "bulk" | "best_effort" | "video" | "voice"
	Hosts []netip.Prefix
	Ports []PortRange
}

func (v *validator) sqmClasses(fs []fileSQMClass, s *SQM) {
	if len(fs) > 16 {
		v.p.errf("sqm.class", "%d classes: at most 16", len(fs))
	}
	for i, f := range fs {
		path := idx("sqm.class", i)
		c := SQMClass{Tin: v.enum(path+".tin", f.Tin, "bulk", "best_effort", "video", "voice")}
		if len(f.Hosts) == 0 && len(f.Ports) == 0 {
			v.p.errf(path, "a class needs hosts, ports or both")
		}
		if len(f.Hosts) > 16 || len(f.Ports) > 16 {
			v.p.errf(path, "at most 16 hosts and 16 ports")
		}
		for j, h := range f.Hosts {
			hp := idx(path+".hosts", j)
			if p, err := netip.ParsePrefix(h); err == nil {
				c.Hosts = append(c.Hosts, p.Masked())
			} else if a, err := netip.ParseAddr(h); err == nil && a.Zone() == "" {
				c.Hosts = append(c.Hosts, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			} else {
				v.p.errf(hp, "%q is not a LAN host's address or a prefix", h)
			}
		}
		for j, p := range f.Ports {
			r, err := ParsePortRange(p)
			if err != nil {
				v.p.errf(idx(path+".ports", j), "%q: %v", p, err)
				continue
			}
			c.Ports = append(c.Ports, r)
		}
		s.Classes = append(s.Classes, c)
	}
}
