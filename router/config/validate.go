package config

import (
	"net/netip"
	"path/filepath"
	"time"

	"github.com/routerd/routerd/router/control"
)

// Defaults for keys a config may leave out.
const (
	DefaultStateDir  = "/var/lib/routerd"
	DefaultSocket    = control.DefaultSocket
	defaultLeaseTime = 12 * time.Hour
)

// validate converts the file schema into a Config, recording every problem.
// It keeps going after errors so that one pass reports them all; the returned
// Config is meaningful only when p has no errors.
func validate(p *problems, fc *fileConfig, keys []string) *Config {
	c := &Config{
		Hostname: or(fc.Hostname, "router"),
		StateDir: or(fc.StateDir, DefaultStateDir),
	}
	if !validLabel(c.Hostname) {
		p.errf("hostname", "%q is not a valid host name (letters, digits and '-', at most 63)", c.Hostname)
	}
	if !filepath.IsAbs(c.StateDir) {
		p.errf("state_dir", "%q must be an absolute path", c.StateDir)
	}
	v := validator{p: p, c: c, ifnames: map[string]string{}, macs: map[string]string{}}
	if fc.Relay != nil {
		v.relay(fc.Relay, keys)
		v.status(&fc.Status)
		return c
	}
	v.netns(&fc.Netns)
	v.wan(fc.WAN)
	if len(fc.LAN) == 0 {
		p.errf("lan", "at least one [[lan]] is required")
	}
	for i := range fc.LAN {
		v.lan(idx("lan", i), &fc.LAN[i])
	}
	v.vpn(fc.VPN)
	v.remote(fc.Remote)
	v.lanOverlaps()
	v.vlans()
	v.transitOverlaps()
	v.routes(fc.Route)
	v.dns(fc.DNS)
	v.routing(&fc.Routing)
	for i := range fc.Blocklist {
		v.blocklist(idx("blocklist", i), &fc.Blocklist[i])
	}
	if fc.DNS != nil {
		// After [[blocklist]]: Config.Blocklists holds those first.
		for i := range fc.DNS.Block {
			v.blocklist(idx("dns.block", i), &fc.DNS.Block[i])
		}
	}
	v.firewall(&fc.Firewall)
	v.rules(fc.Firewall.Rule)
	v.pinholes(fc.Firewall.Pinhole)
	v.portmap(fc.PortMap)
	v.sqm(fc.SQM)
	v.status(&fc.Status)
	v.admin(fc.Admin)
	v.time(fc.Time)
	v.update(&fc.Update)
	v.publish(fc.Publish)
	return c
}

type validator struct {
	p       *problems
	c       *Config
	ifnames map[string]string // interface name -> path that claimed it
	macs    map[string]string // match_mac -> path that claimed it
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (v *validator) netns(f *fileNetns) {
	n := &v.c.Netns
	n.WAN = or(f.WAN, "wan")
	n.VPN = or(f.VPN, "vpn")
	n.Bridge = or(f.Bridge, "br0")
	if !validNetnsName(n.WAN) {
		v.p.errf("netns.wan", "%q is not a valid namespace name", n.WAN)
	}
	if !validNetnsName(n.VPN) {
		v.p.errf("netns.vpn", "%q is not a valid namespace name", n.VPN)
	}
	if n.WAN == n.VPN {
		v.p.errf("netns.vpn", "%q is also the wan namespace; the two must differ", n.VPN)
	}
	v.ifname("netns.bridge", n.Bridge)
	n.Transit4 = v.prefix("netns.transit4", or(f.Transit4, "10.254.0.0/29"), fam4)
	if n.Transit4.IsValid() && n.Transit4.Bits() > 29 {
		v.p.errf("netns.transit4", "%s is too small: it needs at least a /29 (main .1, vpn .2, wan .3)", n.Transit4)
	}
	n.Transit6 = v.prefix("netns.transit6", or(f.Transit6, "fd01::/64"), fam6)
	if n.Transit6.IsValid() && n.Transit6.Bits() > 126 {
		v.p.errf("netns.transit6", "%s is too small: it needs at least a /126 (main ::1, vpn ::2, wan ::3)", n.Transit6)
	}
}

// transitOverlaps checks the transit prefixes against every other prefix the
// router owns: an overlap would make main-namespace routing ambiguous.
func (v *validator) transitOverlaps() {
	check := func(path string, t netip.Prefix) {
		if !t.IsValid() {
			return
		}
		for i, l := range v.c.LAN {
			for _, a := range l.Addresses {
				if a.Masked().Overlaps(t) {
					v.p.errf(path, "%s overlaps %s of lan[%d] (%s)", t, a.Masked(), i, l.Name)
				}
			}
		}
		if v.c.VPN != nil {
			for _, a := range v.c.VPN.Addresses {
				if a.Masked().Overlaps(t) {
					v.p.errf(path, "%s overlaps vpn address %s", t, a)
				}
			}
		}
		if w := v.c.WAN.Address; w.IsValid() && w.Masked().Overlaps(t) {
			v.p.errf(path, "%s overlaps wan.address %s", t, w)
		}
	}
	check("netns.transit4", v.c.Netns.Transit4)
	check("netns.transit6", v.c.Netns.Transit6)
}

func (v *validator) status(f *fileStatus) {
	s := &v.c.Status
	s.Socket = or(f.Socket, DefaultSocket)
	if !filepath.IsAbs(s.Socket) {
		v.p.errf("status.socket", "%q must be an absolute path", s.Socket)
	} else if len(s.Socket) > 107 {
		v.p.errf("status.socket", "%q is longer than a unix socket path may be (107 bytes)", s.Socket)
	}
	s.Metrics = f.Metrics
	if f.Metrics != "" {
		if _, err := netip.ParseAddrPort(f.Metrics); err != nil {
			v.p.errf("status.metrics", "%q is not ip:port", f.Metrics)
		}
	}
}
