package router

import (
	"context"
	"log/slog"

	"github.com/routerd/routerd/dns"
	"github.com/routerd/routerd/hw"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
)

// mdnsReflectorComp relays multicast DNS between the LANs of dns.mdns_reflect,
// so that a phone on one segment finds the Chromecast on another.
type mdnsReflectorComp struct {
	cfg  *config.Config
	nics *hw.Manager
	log  *slog.Logger
	r    *dns.Reflector
	run  lifecycle.Group
}

func newMDNSReflectorComp(cfg *config.Config, nics *hw.Manager, log *slog.Logger) *mdnsReflectorComp {
	return &mdnsReflectorComp{cfg: cfg, nics: nics, log: log, r: dns.NewReflector(cfg.DNS.Reflect, log)}
}

func (c *mdnsReflectorComp) Name() string { return "mdns-reflector" }

func (c *mdnsReflectorComp) Start(ctx context.Context) error {
	if err := c.r.Open(); err != nil {
		return err
	}
	events := c.nics.Subscribe()
	ctx = c.run.Start(ctx)
	c.run.Go(c.r.Run)
	// A NIC that came back (a USB reset) lost its group memberships.
	c.run.Go(func(ctx context.Context) {
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-events:
				if e.Kind == hw.Adopted && e.Role == "lan" {
					c.r.Join()
				}
			}
		}
	})
	return nil
}

func (c *mdnsReflectorComp) Stop(ctx context.Context) error { return c.run.Stop(ctx) }

func (c *mdnsReflectorComp) fillStatus(st *status.Status) {
	st.Reflector = &status.Reflector{LANs: c.cfg.DNS.Reflect, Counters: c.r.Stats()}
}
