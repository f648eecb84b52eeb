package router

import (
	"context"
	"errors"
	"log/slog"

	"github.com/routerd/routerd/hw"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
)

// nicsComp adopts the NICs (hw) and reports their health as they come and go.
type nicsComp struct {
	withHealth
	cfg *config.Config
	m   *hw.Manager
	log *slog.Logger
	run lifecycle.Group
}

func newNICsComp(cfg *config.Config, log *slog.Logger) *nicsComp {
	return &nicsComp{cfg: cfg, log: log,
		m: hw.NewManager(nicSpecs(cfg), cfg.StatePath(config.StateNICs), log.With("component", "nics"))}
}

func (c *nicsComp) Name() string { return "nics" }
func (c *nicsComp) liveStatus()  {}

func (c *nicsComp) Start(ctx context.Context) error {
	events := c.m.Subscribe()
	c.run.Start(ctx)
	err := c.m.Start(ctx, c.cfg.WAN.Wait)
	// Health follows the NICs after start: a late NIC turns it running, a
	// lost one failed.
	c.run.Go(func(ctx context.Context) {
		for {
			select {
			case <-events:
				if err := c.m.Err(); err != nil {
					c.health.Failed(err)
				} else {
					c.health.Running()
				}
			case <-ctx.Done():
				return
			}
		}
	})
	return err
}

func (c *nicsComp) Stop(ctx context.Context) error {
	return errors.Join(c.run.Stop(ctx), c.m.Stop(ctx))
}

func (c *nicsComp) Teardown(ctx context.Context) error { return c.m.Teardown() }

func (c *nicsComp) fillStatus(st *status.Status) {
	last, _ := c.m.Changes()
	st.NICs = &status.NICs{NICs: c.m.Status(), LastChanges: last}
}

// --- routing ------------------------------------------------------------------

// reapplyOnAdoption converges again with apply each time hw adopts a NIC
// (a USB NIC that reset comes back with a new index), until ctx ends.
func reapplyOnAdoption(ctx context.Context, events <-chan hw.Event, apply func() error, h *Health) {
	for {
		select {
		case e := <-events:
			if e.Kind != hw.Adopted {
				continue
			}
			if err := apply(); err != nil {
				h.Failed(err)
			} else {
				h.Running()
			}
		case <-ctx.Done():
			return
		}
	}
}
