package router

import (
	"io"
	"net/http"
	"time"

	"github.com/routerd/routerd/router/api"
	"github.com/routerd/routerd/router/status"
)

// statusFiller is implemented by components that add a section to Status.
type statusFiller interface {
	fillStatus(st *status.Status)
}

// Status assembles the current status from the published generation,
// without waiting for a start, reload or stop in progress: a component
// adds its section only between its Start and its Stop (or throughout, if
// it says its section is safe to read while it starts).
func (s *Supervisor) Status() *status.Status {
	g := s.cur.Load()
	st := &status.Status{
		Version:    Version,
		ConfigPath: s.path,
		ConfigHash: g.hash,
		Started:    s.started,
		Uptime:     time.Since(s.started).Round(time.Second).Seconds(),
		Phase:      s.phase.Load().(status.Phase),
	}
	s.reloadMu.Lock()
	if !s.lastReload.At.IsZero() {
		r := s.lastReload
		st.Reload = &r
	}
	s.reloadMu.Unlock()
	s.fillConfigStatus(st)
	s.updates.fillStatus(s, st)
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
	l, err := api.Listen(path)
	if err != nil {
		return nil, err
	}
	return api.Serve(&s.run, l, s.controlMux(), func(err error) {
		s.log.Error("the control socket stopped serving: routerctl and SSH cannot reach routerd", "socket", path, "err", err)
	}), nil
}

// controlMux is the control API: every request routerctl (and SSH) can
// make. FuzzControlAPI feeds it arbitrary requests.
func (s *Supervisor) controlMux() http.Handler { return api.New(backend{s}) }
