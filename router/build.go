package router

import (
	"net/netip"

	"github.com/routerd/routerd/dns"
	"github.com/routerd/routerd/router/config"
)

// build returns the components for cfg in start order: hardware first, then
// the namespaces and routing that stand on it, the firewall, the tunnel and
// finally the services that use all of them.
//
// The components are wired here, in one style, callbacks: a component with
// news (a WAN lease, the tunnel up, a LAN lease, the clock stepped, a
// container moved) calls the functions registered with its On<Event>
// methods before Start; a component that needs another's current state
// (leases, a MAC, whether the tunnel is up) is handed a function that asks,
// in its constructor, or in a field set here where the other is built
// after it. The hardware's adoptions come from hw.Manager's Subscribe, the
// leaf's own API.
func (s *Supervisor) build(cfg *config.Config) []Component {
	log := s.log
	if cfg.Relay != nil {
		comps := []Component{newRelayComp(cfg, log.With("component", "relay"))}
		if cfg.Status.Metrics != "" {
			comps = append(comps, newMetricsComp(cfg.Status.Metrics, s.Status, s.log.With("component", "metrics")))
		}
		return comps
	}
	nics := newNICsComp(cfg, log)
	// Published containers' addresses are asked for before the routes and
	// the firewall are made, so that a restart does not take them away
	// for a moment.
	var containers *containersComp
	pubs := publishWith(cfg.Publish, nil)
	if len(containerNames(cfg)) > 0 {
		containers = newContainersComp(cfg, log.With("component", "containers"))
		pubs = containers.publish()
	}
	fw := newFirewallComp(cfg, pubs, nics.m, log.With("component", "firewall"))
	wan := newWANComp(cfg, nics.m, log.With("component", "wan"))
	wan.OnLease(fw.wanLease)
	wan.OnIface(fw.uplinkIface)
	routing := newRoutingComp(cfg, pubs, nics.m, log.With("component", "routing"))
	comps := []Component{
		newNetnsComp(cfg, log.With("component", "netns")),
		nics,
	}
	if cfg.Remote != nil {
		comps = append(comps, newRemoteComp(cfg, log.With("component", "remote")))
	}
	shaper := newSQMComp(cfg, log.With("component", "sqm"))
	wan.OnActive(shaper.useUplink)
	wan.OnLease(shaper.wanLease)
	comps = append(comps, routing, fw, shaper)
	if containers != nil {
		containers.OnChange(routing.setPublish)
		containers.OnChange(fw.setPublish)
		comps = append(comps, containers)
	}
	if cfg.Firewall.Log == "rate" {
		comps = append(comps, newDroplogComp(cfg, log.With("component", "firewall")))
	}
	var clock *timeComp
	if cfg.Time != nil {
		clock = newTimeComp(cfg, log.With("component", "time"))
		comps = append(comps, clock)
	}
	var tunnelUp func() bool
	var endpoints func() []netip.Addr
	if cfg.VPN != nil {
		v := newVPNComp(cfg, log.With("component", "vpn"))
		wan.OnLease(v.wanLease)
		v.OnUp(fw.tunnelUp)
		comps = append(comps, v)
		tunnelUp = func() bool { return v.t.Status().Up }
		endpoints = v.t.Endpoints
	}
	// The lists go in before the WAN comes up: a box that boots offline
	// already forces from the last good copies.
	var synced <-chan struct{}
	if clock != nil {
		synced = clock.synced()
	}
	var blocks *dns.Blocklists // the resolver's, filled by [[dns.block]]
	for _, b := range cfg.Blocklists {
		if b.Block && blocks == nil {
			blocks = dns.NewBlocklists(cfg.DNS.Allow)
		}
	}
	bl := newBlocklistComp(cfg, endpoints, synced, blocks, log.With("component", "blocklist"))
	wan.OnLease(bl.wanLease)
	lan := newLANComp(cfg, nics.m, defaultPathUp(cfg, tunnelUp), log.With("component", "lan"))
	fw.leases = lan.currentLeases
	res := newDNSComp(cfg, lan.macOf, bl.observe, bl.m.DomainsGeneration, synced, blocks, log.With("component", "dns"))
	lan.OnLease(res.lease)
	res.leases = lan.currentLeases
	if clock != nil {
		clock.OnStep(lan.clockStepped)
	}
	wan.OnLease(res.wanLease)
	comps = append(comps, bl, wan, lan, res, newUsageComp(cfg, fw.lanPrefixes, lan.currentLeases, log.With("component", "usage")))
	if wantsPD(cfg) {
		pd := newPrefixDelegationComp(cfg, lan, fw, res, nics.m, log.With("component", "prefix-delegation"))
		wan.OnLease6(pd.leased)
		comps = append(comps, pd)
	}
	if cfg.PortMap != nil {
		pm := newPortmapComp(cfg, fw, lan.macOf, log.With("component", "portmap"))
		wan.OnLease(pm.wanLease)
		comps = append(comps, pm)
	}
	if len(cfg.DNS.Reflect) > 0 {
		comps = append(comps, newMDNSReflectorComp(cfg, nics.m, log.With("component", "mdns-reflector")))
	}
	if cfg.Admin != nil {
		comps = append(comps, newSSHComp(cfg, log.With("component", "ssh")))
	}
	if cfg.Status.Metrics != "" {
		comps = append(comps, newMetricsComp(cfg.Status.Metrics, s.Status, s.log.With("component", "metrics")))
	}
	return comps
}

// component returns the component with the given name if its Start has
// returned and its Stop has not begun, or nil.
func (s *Supervisor) component(name string) Component {
	g := s.cur.Load()
	for i, c := range g.comps {
		if c.Name() == name && g.health[i].started() {
			return c
		}
	}
	return nil
}

// config returns the running config.
func (s *Supervisor) config() *config.Config { return s.cur.Load().cfg }
