package router

import (
	"context"
	"fmt"

	"github.com/google/nftables"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/rules"
)

// What the firewall shows: its tables' counters, flow offload, conntrack,
// the segments' matrix and the rules, and the sets filling up.

func (c *firewallComp) fillStatus(st *status.Status) {
	c.mu.Lock()
	fs := &status.Firewall{Generation: c.generation, Applied: c.applied, Counters: map[string][]rules.Counter{}}
	c.mu.Unlock()
	for _, t := range c.tables(true) {
		cs, err := rules.Counters(t.ns, t.fam, t.table)
		if err == nil {
			fs.Counters[t.label] = cs
		}
	}
	fs.Offload = status.Offload{Enabled: c.offloadOff == "", Off: c.offloadOff}
	if fs.Offload.Enabled {
		fs.Offload.Devices = map[string][]string{}
		for label, ns := range c.ct.ns {
			if devs, err := rules.FlowtableDevices(ns); err == nil && len(devs) > 0 {
				fs.Offload.Devices[label] = devs
			}
		}
	}
	ct := c.ct.read()
	fs.Conntrack = &ct
	c.mu.Lock()
	fs.Warnings = append(c.ct.warnings(ct), c.fullSets...)
	c.mu.Unlock()
	fs.Segments = segmentMatrix(c.cfg)
	for _, r := range c.cfg.Firewall.Rules {
		sr := status.Rule{Name: r.Name, Action: r.Action}
		for _, ctr := range fs.Counters["main"] {
			if ctr.Name == "rule_"+r.Name {
				sr.Packets = ctr.Packets
			}
		}
		fs.Rules = append(fs.Rules, sr)
	}
	st.Firewall = fs
}

// segmentMatrix is what each LAN may open connections to, by its access
// (the rules come before it and are listed with their counts).
func segmentMatrix(cfg *config.Config) []status.Segment {
	var out []status.Segment
	for _, l := range cfg.LAN {
		s := status.Segment{LAN: l.Name, Access: string(l.Access), Internet: l.Access != config.AccessIsolated, Reaches: []string{}}
		if l.Access == config.AccessAll {
			for _, o := range cfg.LAN {
				if o.Name != l.Name {
					s.Reaches = append(s.Reaches, o.Name)
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// watchSets looks at how full the dynamic sets (bans, scan tracking,
// peers) of the main and wan tables are, and warns of one nearly full: a
// flood that fills one stops what it does.
func (c *firewallComp) watchSets(ctx context.Context) {
	var full []string
	for _, t := range c.tables(false) {
		if t.fam != nftables.TableFamilyINet || t.label == "vpn" {
			continue
		}
		fills, err := rules.SetFills(t.ns)
		if err != nil {
			continue
		}
		for _, f := range fills {
			if f.Size > 0 && f.N >= f.Size*9/10 {
				full = append(full, fmt.Sprintf("%s set %s holds %d of %d entries: new entries are refused when full", t.label, f.Name, f.N, f.Size))
			}
		}
	}
	c.mu.Lock()
	news := len(full) > len(c.fullSets)
	c.fullSets = full
	c.mu.Unlock()
	if news {
		c.log.Warn("firewall sets filling up", "sets", full)
	}
}
