package config

import (
	"net/netip"
	"time"
)

// [wan.backup]: a second uplink and how the uplinks are probed.

// defaultProbes are probed when wan.backup.probe is not set: two
// anycast resolvers of different operators, so that one operator's
// outage does not look like the line's.
var defaultProbes = []string{"1.1.1.1", "9.9.9.9"}

func (v *validator) backup(f *fileWAN) {
	if len(f.Probe) > 0 || f.ProbeInterval != "" || f.ProbeTimeout != "" || f.ProbeDown != nil || f.ProbeUp != nil {
		v.p.errf("wan", "probe, probe_interval, probe_timeout, probe_down and probe_up belong in [wan.backup]: without a backup there is nothing to fail over to")
	}
	if f.Backup == nil {
		return
	}
	const path = "wan.backup"
	fb := *f.Backup
	if fb.Backup != nil {
		v.p.errf(path+".backup", "a backup uplink has no backup of its own")
	}
	if fb.IPv6 == "" {
		fb.IPv6 = "slaac"
	}
	b := &Backup{}
	v.uplink(path, &fb, &b.WAN, "wan1")
	// Names and MACs taken twice are the validator's (ifname, matchMAC).
	if b.IPv6 == "dhcp" {
		// The LANs' global prefixes are the primary's delegation; a
		// second one would renumber the household at each switch.
		v.p.errf(path+".ipv6", "\"dhcp\" on the backup: use \"slaac\", \"static\" or \"off\" (the LANs' prefixes come from the primary's delegation)")
	}
	if b.Prefix6.IsValid() {
		v.p.errf(path+".prefix6", "the LANs' prefixes come from the primary uplink (wan.prefix6)")
	}
	probes := f.Backup.Probe
	if len(probes) == 0 {
		probes = defaultProbes
	}
	if len(probes) > 8 {
		v.p.errf(path+".probe", "%d targets: at most 8", len(probes))
	}
	for i, s := range probes {
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil:
			v.p.errf(idx(path+".probe", i), "%q is not an IP address", s)
		case !a.Is4() || !a.IsGlobalUnicast():
			v.p.errf(idx(path+".probe", i), "%s: probe targets are unicast IPv4 addresses beyond the ISP's gateway (e.g. 1.1.1.1)", a)
		default:
			b.Probe = append(b.Probe, a)
		}
	}
	b.ProbeInterval = v.duration(path+".probe_interval", or(f.Backup.ProbeInterval, "2s"))
	if b.ProbeInterval < 500*time.Millisecond || b.ProbeInterval > time.Minute {
		v.p.errf(path+".probe_interval", "%s is outside 500ms-1m", b.ProbeInterval)
	}
	// An answer may come after the next round has started: a line whose
	// modem buffer a household's upload fills answers a second or two
	// late, and is loaded, not down (mwan3 waits 4 s).
	b.ProbeTimeout = v.duration(path+".probe_timeout", or(f.Backup.ProbeTimeout, "3s"))
	if b.ProbeTimeout < 500*time.Millisecond || b.ProbeTimeout > 30*time.Second {
		v.p.errf(path+".probe_timeout", "%s is outside 500ms-30s", b.ProbeTimeout)
	}
	b.ProbeDown = v.count(path+".probe_down", f.Backup.ProbeDown, 3, 1, 20)
	b.ProbeUp = v.count(path+".probe_up", f.Backup.ProbeUp, 5, 1, 50)
	v.c.WAN.Backup = b
}

// count is an optional integer key within [min, max].
func (v *validator) count(path string, n *int64, def, min, max int) int {
	if n == nil {
		return def
	}
	if *n < int64(min) || *n > int64(max) {
		v.p.errf(path, "%d is outside %d-%d", *n, min, max)
		return def
	}
	return int(*n)
}
