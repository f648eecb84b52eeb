package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/routerd/routerd/router/config"
)

// Version is stamped by the build (-ldflags -X).
var Version = "dev"

// Supervisor runs the appliance described by one config file.
type Supervisor struct {
	path string
	log  *slog.Logger

	mu         sync.Mutex // guards everything below
	cfg        *config.Config
	hash       string
	started    time.Time
	comps      []Component
	health     []*Health
	base       context.Context    // Run's context; components run under a child of it
	cancel     context.CancelFunc // of the running components' context
	lastReload ReloadStatus
}

// ReloadStatus says how the last SIGHUP went.
type ReloadStatus struct {
	At    time.Time `json:"at"`
	Error string    `json:"error,omitempty"`
}

// New returns a supervisor for a config that has already been validated.
func New(path string, cfg *config.Config, hash string, log *slog.Logger) *Supervisor {
	return &Supervisor{path: path, cfg: cfg, hash: hash, log: log}
}

// Run starts the control socket and every component, then blocks until ctx
// is cancelled and stops them again in reverse order.
func (s *Supervisor) Run(ctx context.Context) error {
	s.started = time.Now()
	if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("create state_dir: %w", err)
	}
	ctl, err := s.serveControl(s.cfg.Status.Socket)
	if err != nil {
		return err
	}
	defer ctl.Close()

	s.mu.Lock()
	s.base = ctx
	s.startLocked()
	s.mu.Unlock()
	s.log.Info("routerd ready", "version", Version, "config", s.path, "components", len(s.comps))

	<-ctx.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	s.log.Info("routerd stopped")
	return nil
}

// Reload re-reads the config file. An invalid config is refused and the
// running one stays in force.
func (s *Supervisor) Reload() error {
	cfg, hash, err := config.Load(s.path)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastReload = ReloadStatus{At: time.Now()}
	if err != nil {
		s.lastReload.Error = err.Error()
		s.log.Error("reload refused; keeping the running config", "err", err)
		return err
	}
	if hash == s.hash {
		s.log.Info("reload: config unchanged")
		return nil
	}
	s.log.Info("reloading", "hash", hash)
	s.stopLocked()
	s.cfg, s.hash = cfg, hash
	s.startLocked()
	return nil
}

// startLocked builds the components from the config and starts them in
// order. A component that fails does not stop the others: a missing WAN NIC
// must not keep the LAN from getting addresses.
func (s *Supervisor) startLocked() {
	ctx, cancel := context.WithCancel(s.base)
	s.cancel = cancel
	s.comps = s.build(s.cfg)
	s.health = make([]*Health, len(s.comps))
	for i, c := range s.comps {
		s.health[i] = healthOf(c)
	}
	for i, c := range s.comps {
		log := s.log.With("component", c.Name())
		start := time.Now()
		if err := c.Start(ctx); err != nil {
			s.health[i].Failed(err)
			log.Error("start failed", "err", err)
			continue
		}
		s.health[i].Running()
		log.Debug("started", "took", time.Since(start))
	}
}

func (s *Supervisor) stopLocked() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := len(s.comps) - 1; i >= 0; i-- {
		if err := s.comps[i].Stop(ctx); err != nil {
			s.log.Error("stop failed", "component", s.comps[i].Name(), "err", err)
		}
		s.health[i].set(StateStopped, "")
	}
	s.cancel = nil
}

// Teardown removes everything routerd created for cfg, in reverse start
// order, and reports every failure.
func Teardown(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	s := &Supervisor{cfg: cfg, log: log}
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
