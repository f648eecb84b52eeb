package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/routerd/routerd/hw"
	"github.com/routerd/routerd/internal/atomicfile"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// --- namespaces and transit ---------------------------------------------------

// netnsComp creates the namespaces, the transit bridge and veths.
type netnsComp struct {
	cfg   *config.Config
	plan  *netns.Plan
	state string // file recording what routerd created, for teardown
	log   *slog.Logger

	mu      sync.Mutex
	changes int
}

// netnsState is what routerd created or changed that existed before it.
type netnsState struct {
	Created []string       `json:"created_namespaces"`
	Sysctls []netns.Sysctl `json:"original_sysctls"`
}

func newNetnsComp(cfg *config.Config, log *slog.Logger) *netnsComp {
	return &netnsComp{cfg: cfg, plan: netnsPlan(cfg), state: cfg.StatePath(config.StateNetns), log: log}
}

func (c *netnsComp) Name() string { return "netns" }

func (c *netnsComp) Start(ctx context.Context) error {
	res, err := c.plan.Apply()
	c.mu.Lock()
	c.changes = res.Changes
	c.mu.Unlock()
	c.log.Info("namespaces converged", "changes", res.Changes, "created", res.Created)
	if serr := c.record(res); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// record merges what this apply created into the state file; the oldest
// original value of a sysctl wins, so a restart does not forget it.
func (c *netnsComp) record(res netns.Result) error {
	st, err := c.load()
	if err != nil {
		return err
	}
	changed := false
	for _, ns := range res.Created {
		if !slices.Contains(st.Created, ns) {
			st.Created = append(st.Created, ns)
			changed = true
		}
	}
	for _, s := range res.SysctlsBefore {
		if !slices.ContainsFunc(st.Sysctls, func(o netns.Sysctl) bool { return o.NS == s.NS && o.Key == s.Key }) {
			st.Sysctls = append(st.Sysctls, s)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	return atomicfile.WriteFile(c.state, b, 0o600)
}

func (c *netnsComp) load() (*netnsState, error) {
	var st netnsState
	b, err := os.ReadFile(c.state)
	if errors.Is(err, fs.ErrNotExist) {
		return &st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("parse %s: %w", c.state, err)
	}
	return &st, nil
}

func (c *netnsComp) Stop(ctx context.Context) error { return nil }

func (c *netnsComp) Teardown(ctx context.Context) error {
	st, err := c.load()
	if err != nil {
		return err
	}
	if err := c.plan.Teardown(st.Created, st.Sysctls); err != nil {
		return err
	}
	if err := os.Remove(c.state); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (c *netnsComp) fillStatus(st *status.Status) {
	c.mu.Lock()
	s := &status.Netns{LastChanges: c.changes}
	c.mu.Unlock()
	for _, ns := range []struct{ name, role string }{{"", "main"}, {c.cfg.Netns.WAN, "wan"}, {c.cfg.Netns.VPN, "vpn"}} {
		n := status.Namespace{Name: statusName(ns.name), Role: ns.role, Exists: ns.name == "" || netns.Exists(ns.name)}
		if n.Exists {
			n.Links = describeLinks(ns.name)
		}
		s.Namespaces = append(s.Namespaces, n)
	}
	st.Netns = s
}

// describeLinks lists a namespace's links like ip -br addr.
func describeLinks(ns string) []string {
	h, err := netns.Handle(ns)
	if err != nil {
		return []string{err.Error()}
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, l := range links {
		a := l.Attrs()
		if a.Name == "lo" {
			continue
		}
		state := "DOWN"
		if a.Flags&(1<<0) != 0 {
			state = "UP"
			if a.RawFlags&unix.IFF_LOWER_UP == 0 {
				state = "NO-CARRIER"
			}
		}
		line := fmt.Sprintf("%s %s", a.Name, state)
		addrs, _ := h.AddrList(l, netlink.FAMILY_ALL)
		for _, ad := range addrs {
			if !ad.IP.IsLinkLocalUnicast() {
				line += " " + ad.IPNet.String()
			}
		}
		out = append(out, line)
	}
	return out
}

// --- NICs ---------------------------------------------------------------------

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
