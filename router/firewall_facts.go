package router

// What the firewall learns at run time, beyond the config (the local
// policies' cgroups, the delegated prefix, published containers' addresses,
// the pinholes' hosts, port mappings), and how each re-makes its rulesets.

import (
	"context"
	"maps"
	"net/netip"

	"github.com/routerd/routerd/internal/cgroup"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/rules"
)

// lookupCgroups finds the local policies' cgroups; one that does not exist
// (its service is not running) is left out until it does.
func lookupCgroups(cfg *config.Config) map[string]cgroup.Group {
	out := map[string]cgroup.Group{}
	root := ""
	for _, p := range cfg.Routing.Policies {
		for _, path := range p.Cgroups {
			if root == "" {
				r, err := cgroup.Root()
				if err != nil {
					return out
				}
				root = r
			}
			if g, err := cgroup.Lookup(root, path); err == nil {
				out[path] = g
			}
		}
	}
	return out
}

// watchCgroups (every 3 seconds) applies the rulesets again when a local policy's cgroup
// appears, goes or is made anew (a restarted service gets a new id).
func (c *firewallComp) watchCgroups(ctx context.Context) {
	groups := lookupCgroups(c.cfg)
	c.mu.Lock()
	same := maps.Equal(groups, c.facts.groups)
	if !same {
		c.facts.groups = groups
		c.main, c.wan, c.vpn = firewallSpecs(c.cfg, c.facts)
	}
	c.mu.Unlock()
	if !same {
		c.log.Info("a local policy's cgroup changed", "found", len(groups))
		if err := c.apply(); err != nil {
			c.health.Failed(err)
		}
	}
}

// delegated is what the LANs use of the WAN's delegated prefixes (the
// current one, and one being renumbered away): the firewall's source sets
// and anti-spoofing follow it.
type delegated struct {
	prefixes []netip.Prefix            // as the ISP delegated them
	byLAN    map[string][]netip.Prefix // LAN name -> its /64s
}

// setDelegated re-applies the rulesets for a new delegation.
func (c *firewallComp) setDelegated(d delegated) error {
	c.mu.Lock()
	c.facts.deleg = d
	c.facts.pins = pinholeAddrs(c.cfg, d, c.facts.byMAC)
	c.main, c.wan, c.vpn = firewallSpecs(c.cfg, c.facts)
	c.mu.Unlock()
	return c.apply()
}

// setPublish re-applies the rulesets for published containers' new
// addresses.
func (c *firewallComp) setPublish(pubs []config.Publish) error {
	c.mu.Lock()
	c.facts.pubs = pubs
	c.main, c.wan, c.vpn = firewallSpecs(c.cfg, c.facts)
	c.mu.Unlock()
	return c.apply()
}

// facts are what the firewall learns at run time, beyond the config.
type facts struct {
	deleg  delegated
	groups map[string]cgroup.Group // the local policies' cgroups as last found
	pubs   []config.Publish        // [[publish]] with the containers' addresses as last found
	// byMAC are the LAN hosts' addresses by MAC (leases, neighbours), and
	// pins the pinholes' addresses made of them and the delegation.
	byMAC map[string][]netip.Addr
	pins  map[string][]netip.Addr
	// portmaps are the ports LAN devices mapped (NAT-PMP, PCP), kept so
	// that a ruleset made anew holds them.
	portmaps []rules.PortMapping
}

// setPortMaps records the port mappings (already in the kernel's map and
// set) for the rulesets made after.
func (c *firewallComp) setPortMaps(ms []rules.PortMapping) {
	c.mu.Lock()
	c.facts.portmaps = ms
	c.main, c.wan, c.vpn = firewallSpecs(c.cfg, c.facts)
	c.mu.Unlock()
}

func hasCgroups(cfg *config.Config) bool {
	for _, p := range cfg.Routing.Policies {
		if len(p.Cgroups) > 0 {
			return true
		}
	}
	return false
}

// remoteViaRelay: [remote]'s port is published through the relay, so its
// devices' packets also come from the vpn namespace across the transit.
func remoteViaRelay(cfg *config.Config) bool {
	for _, p := range cfg.Publish {
		if p.Remote {
			return true
		}
	}
	return false
}

// lanPrefixes are the LANs' networks now, the delegated ones too: the
// usage meter tells LAN hosts by them.
func (c *firewallComp) lanPrefixes() []netip.Prefix {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append(c.cfg.LANNets.All(), c.facts.deleg.prefixes...)
}
