package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/internal/logring"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
)

// Version is stamped by the build (-ldflags -X).
var Version = "dev"

// Supervisor runs the appliance described by one config file.
//
// Two locks, so that status never waits for the network: life serialises
// the slow lifecycle changes (start, reload, stop; a start may wait
// wan.wait for a NIC), and the running generation is published through an
// atomic pointer that Status reads without taking life.
type Supervisor struct {
	path    string
	log     *slog.Logger
	started time.Time
	// newComponents builds a generation's components; tests replace it.
	newComponents func(*config.Config) []Component
	stopTimeout   time.Duration // per component

	life   sync.Mutex         // held across start, reload and stop
	base   context.Context    // Run's context; components run under a child of it
	cancel context.CancelFunc // of the running components' context
	// starting cancels the start in progress, if one is: a rollback
	// must not wait behind a start-up that hangs (a WAN NIC waited for).
	startingMu sync.Mutex
	starting   context.CancelFunc

	cur   atomic.Pointer[generation]
	phase atomic.Value // status.Phase

	reloadMu   sync.Mutex
	lastReload status.Reload

	apply configApply // config changes from the control API

	updates updates
	// run tracks the supervisor's own goroutines: the control server, the
	// reload signal's loop, the timers of config confirmation, scheduled
	// reboots and power commands. Run waits for them before it returns.
	run     lifecycle.Group
	reloads <-chan os.Signal // ReloadOn's
	// Logs keeps the last log lines for routerctl logs; nil: none kept.
	Logs *logring.Ring
}

// generation is one config and the components built from it. Status reads
// the current one while life may be held for minutes.
type generation struct {
	cfg    *config.Config
	hash   string
	comps  []Component
	health []*Health
}

// stopTimeout bounds each component's Stop, so that one stuck component
// cannot hold up the others or routerd's exit.
const stopTimeout = 5 * time.Second

// New returns a supervisor for a config that has already been validated.
func New(path string, cfg *config.Config, hash string, log *slog.Logger) *Supervisor {
	s := &Supervisor{path: path, log: log, stopTimeout: stopTimeout}
	s.newComponents = s.build
	if testBuild != nil {
		s.newComponents = func(cfg *config.Config) []Component { return testBuild(s.build(cfg)) }
	}
	s.cur.Store(&generation{cfg: cfg, hash: hash})
	s.phase.Store(status.PhaseStarting)
	return s
}

// Run starts the control socket and every component, then blocks until ctx
// is cancelled and stops them again in reverse order.
func (s *Supervisor) Run(ctx context.Context) error {
	s.started = time.Now()
	cfg := s.config()
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("create state_dir: %w", err)
	}
	s.run.Start(context.WithoutCancel(ctx)) // stopped below, after the components
	defer s.stopRun()
	ctl, err := s.serveControl(cfg.Status.Socket)
	if err != nil {
		return err
	}
	defer ctl.Close() // before stopRun (defers run last-first): it ends the server's goroutine
	if s.reloads != nil {
		s.run.Go(func(ctx context.Context) {
			for {
				select {
				case <-ctx.Done():
					return
				case <-s.reloads:
					_ = s.Reload() // it logs the error and keeps the running config
				}
			}
		})
	}

	s.life.Lock()
	s.base = ctx
	g := s.cur.Load()
	s.startLocked(g.cfg, g.hash)
	n := len(s.cur.Load().comps)
	s.phase.Store(status.PhaseReady)
	s.life.Unlock()
	s.resumeConfirm()
	s.log.Info("routerd ready", "version", Version, "config", s.path, "components", n, "took", time.Since(s.started).Round(time.Millisecond))

	<-ctx.Done()
	s.life.Lock()
	defer s.life.Unlock() // before stopRun: a timer's reload waits for life, then finds routerd stopped
	s.phase.Store(status.PhaseStopping)
	s.stopLocked()
	s.log.Info("routerd stopped")
	return nil
}

// ReloadOn makes Run reload the config whenever c delivers (SIGHUP).
func (s *Supervisor) ReloadOn(c <-chan os.Signal) { s.reloads = c }

// stopRun ends the supervisor's own goroutines and waits for them.
func (s *Supervisor) stopRun() {
	ctx, cancel := context.WithTimeout(context.Background(), s.stopTimeout)
	defer cancel()
	if err := s.run.Stop(ctx); err != nil {
		s.log.Error("stop", "err", err)
	}
}

// after runs f after d in a goroutine of the supervisor's, unless cancel
// (returned) is called first or routerd stops.
func (s *Supervisor) after(d time.Duration, f func()) (cancel func()) {
	stop := make(chan struct{})
	var once sync.Once
	s.run.Go(func(ctx context.Context) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			f()
		case <-stop:
		case <-ctx.Done():
		}
	})
	return func() { once.Do(func() { close(stop) }) }
}

// Reload re-reads the config file. An invalid config is refused and the
// running one stays in force.
func (s *Supervisor) Reload() error {
	cfg, hash, err := config.Load(s.path)
	if err == nil {
		err = CheckMachine(cfg)
	}
	s.life.Lock()
	defer s.life.Unlock()
	if s.base == nil || s.base.Err() != nil {
		return errors.New("routerd is not running")
	}
	s.setReload(status.Reload{At: time.Now()}, err)
	if err != nil {
		s.log.Error("reload refused; keeping the running config", "err", err)
		return err
	}
	if hash == s.cur.Load().hash {
		s.log.Info("reload: config unchanged")
		return nil
	}
	s.log.Info("reloading", "hash", hash)
	s.phase.Store(status.PhaseReloading)
	s.stopLocked()
	s.startLocked(cfg, hash)
	s.phase.Store(status.PhaseReady)
	return nil
}

func (s *Supervisor) setReload(r status.Reload, err error) {
	if err != nil {
		r.Error = err.Error()
	}
	s.reloadMu.Lock()
	s.lastReload = r
	s.reloadMu.Unlock()
}

// preemptStart ends a start in progress: its components' context is
// cancelled, so that what waits in Start gives up and the lifecycle lock
// comes free for what preempts it (a rollback).
func (s *Supervisor) preemptStart() {
	s.startingMu.Lock()
	defer s.startingMu.Unlock()
	if s.starting != nil {
		s.starting()
	}
}

// startLocked builds the components of cfg, publishes them (every one
// "starting") and starts them in order. A component that fails does not
// stop the others: a missing WAN NIC must not keep the LAN from getting
// addresses.
func (s *Supervisor) startLocked(cfg *config.Config, hash string) {
	ctx, cancel := context.WithCancel(s.base)
	s.cancel = cancel
	s.startingMu.Lock()
	s.starting = cancel
	s.startingMu.Unlock()
	defer func() {
		s.startingMu.Lock()
		s.starting = nil
		s.startingMu.Unlock()
	}()
	g := &generation{cfg: cfg, hash: hash, comps: s.newComponents(cfg)}
	g.health = make([]*Health, len(g.comps))
	for i, c := range g.comps {
		g.health[i] = healthOf(c)
	}
	s.cur.Store(g)
	for i, c := range g.comps {
		log := s.log.With("component", c.Name())
		start := time.Now()
		err := c.Start(ctx)
		g.health[i].setUp(true)
		if err != nil {
			g.health[i].Failed(err)
			log.Error("start failed", "err", err)
			continue
		}
		g.health[i].Running()
		log.Debug("started", "took", time.Since(start))
	}
}

// stopLocked stops the running components in reverse order, each within
// s.stopTimeout, including those whose Start failed (they may have started
// part of their work).
func (s *Supervisor) stopLocked() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	g := s.cur.Load()
	for i := len(g.comps) - 1; i >= 0; i-- {
		g.health[i].setUp(false)
		g.health[i].set(status.Stopping, "")
		ctx, cancel := context.WithTimeout(context.Background(), s.stopTimeout)
		if err := g.comps[i].Stop(ctx); err != nil {
			s.log.Error("stop failed", "component", g.comps[i].Name(), "err", err)
		}
		cancel()
		g.health[i].set(status.Stopped, "")
	}
	s.cancel = nil
}

// Teardown removes everything routerd created for cfg, in reverse start
// order, and reports every failure.
func Teardown(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	s := &Supervisor{log: log}
	comps := s.build(cfg)
	var errs []error
	for i := len(comps) - 1; i >= 0; i-- {
		t, ok := comps[i].(Teardowner)
		if !ok {
			continue
		}
		if err := t.Teardown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", comps[i].Name(), err))
		}
	}
	return errors.Join(errs...)
}

// healthOf gives components that report their own health their handle.
func healthOf(c Component) *Health {
	h := newHealth(c.Name())
	if hc, ok := c.(interface{ setHealth(*Health) }); ok {
		hc.setHealth(h)
	}
	return h
}

// withHealth is embedded by components that report health after Start.
type withHealth struct{ health *Health }

func (w *withHealth) setHealth(h *Health) { w.health = h }
