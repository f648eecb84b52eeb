package router

import (
	"errors"
	"io"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/routerd/routerd/dns"
	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/vpn"
)

// Status is the whole picture routerctl status shows. Each capability adds
// its section; sections are nil while their component is not configured.
type Status struct {
	Version    string            `json:"version"`
	ConfigPath string            `json:"config_path"`
	ConfigHash string            `json:"config_hash"`
	Started    time.Time         `json:"started"`
	Uptime     float64           `json:"uptime_seconds"`
	Components []ComponentStatus `json:"components"`
	Reload     *ReloadStatus     `json:"last_reload,omitempty"`
	NICs       *NICsStatus       `json:"nics,omitempty"`
	Netns      *NetnsStatus      `json:"netns,omitempty"`
	Routing    *RoutingStatus    `json:"routing,omitempty"`
	WAN        *WANStatus        `json:"wan,omitempty"`
	VPN        *vpn.Status       `json:"vpn,omitempty"`
	Firewall   *FirewallStatus   `json:"firewall,omitempty"`
	LAN        *LANStatus        `json:"lan,omitempty"`
	DNS        *dns.Status       `json:"dns,omitempty"`
	Blocklists *BlocklistsStatus `json:"blocklists,omitempty"`
}

// statusFiller is implemented by components that add a section to Status.
type statusFiller interface {
	fillStatus(st *Status)
}

// Status assembles the current status from the published generation,
// without waiting for a start, reload or stop in progress: a component
// adds its section only between its Start and its Stop (or throughout, if
// it says its section is safe to read while it starts).
func (s *Supervisor) Status() *Status {
	g := s.cur.Load()
	st := &Status{
		Version:    Version,
		ConfigPath: s.path,
		ConfigHash: g.hash,
		Started:    s.started,
		Uptime:     time.Since(s.started).Round(time.Second).Seconds(),
	}
	s.reloadMu.Lock()
	if !s.lastReload.At.IsZero() {
		r := s.lastReload
		st.Reload = &r
	}
	s.reloadMu.Unlock()
	for i, c := range g.comps {
		st.Components = append(st.Components, g.health[i].status())
		f, ok := c.(statusFiller)
		if !ok {
			continue
		}
		if _, live := c.(liveStatus); live || g.health[i].started() {
			f.fillStatus(st)
		}
	}
	return st
}

// liveStatus marks a component whose fillStatus is safe while its Start
// runs: the NICs, whose section says what a long start is waiting for.
type liveStatus interface{ liveStatus() }

func (s *Supervisor) serveControl(path string) (io.Closer, error) {
	l, err := control.Listen(path)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		control.WriteJSON(w, s.Status())
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Reload(); err != nil {
			control.WriteError(w, http.StatusUnprocessableEntity, err)
			return
		}
		control.WriteJSON(w, struct{}{})
	})
	// Profiles, for whoever can reach the socket (root): go tool pprof
	// against curl --unix-socket ... /debug/pprof/profile.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		control.WriteError(w, http.StatusNotFound, errors.New("unknown request "+r.Method+" "+r.URL.Path))
	})
	s.registerHandlers(mux)
	return control.Serve(l, mux), nil
}
