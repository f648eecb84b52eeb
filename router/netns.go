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
	"sync"

	"github.com/routerd/routerd/internal/atomicfile"
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
