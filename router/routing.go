package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/routerd/routerd/hw"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
)

// routingComp installs the tables, rules and routes, and re-applies them
// when a NIC they refer to (re)appears.
type routingComp struct {
	withHealth
	cfg  *config.Config
	plan *netns.Plan
	nics *hw.Manager
	log  *slog.Logger

	// applying is held across an apply (NIC events, published
	// containers' addresses), and guards plan.
	applying sync.Mutex
	mu       sync.Mutex
	changes  int
	run      lifecycle.Group
}

func newRoutingComp(cfg *config.Config, pubs []config.Publish, nics *hw.Manager, log *slog.Logger) *routingComp {
	return &routingComp{cfg: cfg, plan: routingPlan(cfg, pubs), nics: nics, log: log}
}

// setPublish converges again with published containers' new addresses.
func (c *routingComp) setPublish(pubs []config.Publish) error {
	plan := routingPlan(c.cfg, pubs)
	c.applying.Lock()
	c.plan = plan
	c.applying.Unlock()
	return c.apply()
}

func (c *routingComp) Name() string { return "routing" }

func (c *routingComp) Start(ctx context.Context) error {
	events := c.nics.Subscribe()
	err := c.apply()
	c.run.Start(ctx)
	c.run.Go(func(ctx context.Context) { reapplyOnAdoption(ctx, events, c.apply, c.health) })
	return err
}

func (c *routingComp) apply() error {
	c.applying.Lock()
	defer c.applying.Unlock()
	res, err := c.plan.Apply()
	c.mu.Lock()
	c.changes = res.Changes
	c.mu.Unlock()
	c.log.Info("routing converged", "changes", res.Changes)
	if len(res.MissingLinks) > 0 {
		slices.Sort(res.MissingLinks)
		err = errors.Join(err, fmt.Errorf("routes wait for %s", strings.Join(slices.Compact(res.MissingLinks), ", ")))
	}
	return err
}

func (c *routingComp) Stop(ctx context.Context) error { return c.run.Stop(ctx) }

func (c *routingComp) Teardown(ctx context.Context) error {
	c.applying.Lock()
	defer c.applying.Unlock()
	return c.plan.Teardown(nil, nil)
}

func (c *routingComp) fillStatus(st *status.Status) {
	c.mu.Lock()
	rs := &status.Routing{Routes: map[string][]string{}, LastChanges: c.changes}
	c.mu.Unlock()
	c.applying.Lock()
	namespaces := c.plan.RouteNamespaces
	c.applying.Unlock()
	for _, ns := range namespaces {
		rules, routes := netns.Owned(ns)
		rs.Rules = append(rs.Rules, rules...)
		rs.Routes[statusName(ns)] = routes
	}
	st.Routing = rs
}
