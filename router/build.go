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
	return []Component{
		newNetnsComp(cfg, log.With("component", "netns")),
		nics,
		newRoutingComp(cfg, nics.m, log.With("component", "routing")),
		newWANComp(cfg, nics.m, log.With("component", "wan")),
	}
}

// registerHandlers adds the control requests of each capability.
func (s *Supervisor) registerHandlers(mux *http.ServeMux) {}
