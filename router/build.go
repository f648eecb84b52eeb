package router

import (
	"net/http"

	"github.com/routerd/routerd/router/config"
)

// build returns the components for cfg in start order: hardware first, then
// the namespaces and routing that stand on it, the firewall, the tunnel and
// finally the services that use all of them.
func (s *Supervisor) build(cfg *config.Config) []Component {
	log := s.log
	nics := newNICsComp(cfg, log)
	fw := newFirewallComp(cfg, nics.m, log.With("component", "firewall"))
	wan := newWANComp(cfg, nics.m, log.With("component", "wan"))
	wan.OnLease(fw.wanLease)
	comps := []Component{
		newNetnsComp(cfg, log.With("component", "netns")),
		nics,
		newRoutingComp(cfg, nics.m, log.With("component", "routing")),
		fw,
	}
	if cfg.VPN != nil {
		v := newVPNComp(cfg, log.With("component", "vpn"))
		wan.OnLease(v.wanLease)
		comps = append(comps, v)
	}
	return append(comps, wan)
}

// registerHandlers adds the control requests of each capability.
func (s *Supervisor) registerHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/vpn/pubkey", pubkeyHandler(s.config))
}

// config returns the running config.
func (s *Supervisor) config() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}
