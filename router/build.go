package router

import (
	"errors"
	"fmt"
	"github.com/routerd/routerd/dns"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/routerd/routerd/router/boot"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/control"
)

// build returns the components for cfg in start order: hardware first, then
// the namespaces and routing that stand on it, the firewall, the tunnel and
// finally the services that use all of them.
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
	var containers *containerComp
	pubs := publishWith(cfg.Publish, nil)
	if len(containerNames(cfg)) > 0 {
		containers = newContainerComp(cfg, log.With("component", "containers"))
		pubs = containers.publish()
	}
	fw := newFirewallComp(cfg, pubs, nics.m, log.With("component", "firewall"))
	wan := newWANComp(cfg, nics.m, log.With("component", "wan"))
	wan.OnLease(fw.wanLease)
	routing := newRoutingComp(cfg, pubs, nics.m, log.With("component", "routing"))
	comps := []Component{
		newNetnsComp(cfg, log.With("component", "netns")),
		nics,
	}
	if cfg.Remote != nil {
		comps = append(comps, newRemoteComp(cfg, log.With("component", "remote")))
	}
	comps = append(comps, routing, fw)
	if containers != nil {
		containers.onChange = []func([]config.Publish) error{routing.setPublish, fw.setPublish}
		comps = append(comps, containers)
	}
	if cfg.Firewall.Log == "rate" {
		comps = append(comps, newDropLogComp(cfg, log.With("component", "firewall")))
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
	comps = append(comps, bl, wan, lan, res)
	if wantsPD(cfg) {
		pd := newPDComp(cfg, lan, fw, res, nics.m, log.With("component", "prefix-delegation"))
		wan.OnLease6(pd.leased)
		comps = append(comps, pd)
	}
	if cfg.PortMap != nil {
		pm := newPortmapComp(cfg, fw, lan.macOf, log.With("component", "portmap"))
		wan.OnLease(pm.wanLease)
		comps = append(comps, pm)
	}
	if len(cfg.DNS.Reflect) > 0 {
		comps = append(comps, newReflectComp(cfg, nics.m, log.With("component", "mdns-reflector")))
	}
	if cfg.Admin != nil {
		comps = append(comps, newAdminComp(cfg, log.With("component", "ssh")))
	}
	if cfg.Status.Metrics != "" {
		comps = append(comps, newMetricsComp(cfg.Status.Metrics, s.Status, s.log.With("component", "metrics")))
	}
	return comps
}

// registerHandlers adds the control requests of each capability.
func (s *Supervisor) registerHandlers(mux *http.ServeMux) {
	mux.HandleFunc(control.VPNPubkey.Pattern(), pubkeyHandler(s.config))
	mux.HandleFunc(control.Leases.Pattern(), func(w http.ResponseWriter, r *http.Request) {
		if lan, ok := s.component("lan").(*lanComp); ok {
			lan.leasesHandler(w, r)
			return
		}
		// An empty answer would read as "no leases" while they are
		// being loaded.
		control.WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("the LAN services are not running (routerd is %s)", s.phase.Load()))
	})
	s.registerConfigHandlers(mux)
	dnsHandler := func(h func(*dnsComp, http.ResponseWriter, *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if d, ok := s.component("dns").(*dnsComp); ok {
				h(d, w, r)
				return
			}
			control.WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("the resolver is not running (routerd is %s)", s.phase.Load()))
		}
	}
	mux.HandleFunc(control.RemoteAdd.Pattern(), s.remoteAddHandler)
	mux.HandleFunc(control.PortMapDelete.Pattern(), func(w http.ResponseWriter, r *http.Request) {
		pm, ok := s.component("portmap").(*portmapComp)
		if !ok {
			control.WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("port mapping is not running (no [portmap], or routerd is %s)", s.phase.Load()))
			return
		}
		port, err := strconv.ParseUint(r.PathValue("port"), 10, 16)
		if err != nil || !pm.table.Delete(r.PathValue("proto"), uint16(port)) {
			control.WriteError(w, http.StatusNotFound, fmt.Errorf("no mapping of %s/%s", r.PathValue("proto"), r.PathValue("port")))
			return
		}
		control.WriteJSON(w, map[string]string{"deleted": r.PathValue("proto") + "/" + r.PathValue("port")})
	})
	mux.HandleFunc(control.RemoteDelete.Pattern(), s.remoteDeleteHandler)
	mux.HandleFunc(control.DNSLog.Pattern(), dnsHandler((*dnsComp).logHandler))
	mux.HandleFunc(control.DNSTop.Pattern(), dnsHandler((*dnsComp).topHandler))
	mux.HandleFunc(control.Logs.Pattern(), s.logsHandler)
	s.registerBanHandlers(mux)
	mux.HandleFunc(control.Poweroff.Pattern(), powerHandler(syscall.SIGUSR2))
	mux.HandleFunc(control.Reboot.Pattern(), powerHandler(boot.RebootSignal))
	mux.HandleFunc(control.Update.Pattern(), s.updates.handler(s))
	mux.HandleFunc(control.BlocklistRefresh.Pattern(), func(w http.ResponseWriter, r *http.Request) {
		if bl, ok := s.component("blocklist").(*blocklistComp); ok {
			bl.refreshHandler(w, r)
			return
		}
		control.WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("blocklists are not running (routerd is %s)", s.phase.Load()))
	})
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

// powerHandler asks the image's init (PID 1) to power off or reboot. Only
// an appliance started by that init may: elsewhere PID 1 is some other
// init, and routerd is not the machine.
// signalInitSoon signals init (PID 1) a moment after the answer is out,
// so that the caller (over SSH too) sees the command succeed before the
// appliance stops under it.
func signalInitSoon(sig syscall.Signal) {
	time.AfterFunc(time.Second, func() { _ = syscall.Kill(1, sig) }) // PID 1 exists and root may signal it
}

func powerHandler(sig syscall.Signal) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv(boot.EnvChild) != "1" {
			control.WriteError(w, http.StatusConflict, errors.New("routerd is not the machine's init here; use the host's own shutdown"))
			return
		}
		control.WriteJSON(w, struct{}{})
		signalInitSoon(sig)
	}
}
