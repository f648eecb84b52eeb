package router

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/router/usage"
)

// usageComp is "who is using the line" (routerctl clients): each LAN
// host's rates and its totals since midnight, from the main namespace's
// connection tracking (router/usage), the totals kept in state_dir across
// restarts.
type usageComp struct {
	cfg      *config.Config
	prefixes func() []netip.Prefix // the LANs' networks now (delegated ones too)
	leases   func() []dhcp.Lease
	file     string
	run      lifecycle.Group
	log      *slog.Logger

	mu    sync.Mutex
	meter *usage.Meter
	err   string
	// seen is the MAC each counted address was last seen with: a
	// neighbour entry goes a minute after a host falls silent, and its
	// day's totals must stay with the host, not become a row of their own.
	seen map[netip.Addr]string
}

// usageFile keeps today's totals in state_dir.
const usageFile = "usage.json"

// conntrackAcct is the main namespace's switch for connection byte
// counters: the meter needs them.
const conntrackAcct = "/proc/sys/net/netfilter/nf_conntrack_acct"

func newUsageComp(cfg *config.Config, prefixes func() []netip.Prefix, leases func() []dhcp.Lease, log *slog.Logger) *usageComp {
	return &usageComp{cfg: cfg, prefixes: prefixes, leases: leases, file: filepath.Join(cfg.StateDir, usageFile), log: log,
		meter: usage.NewMeter(time.Local)}
}

func (c *usageComp) Name() string { return "usage" }

func (c *usageComp) Start(ctx context.Context) error {
	if err := os.WriteFile(conntrackAcct, []byte("1"), 0o644); err != nil {
		return err
	}
	if b, err := os.ReadFile(c.file); err == nil {
		if err := c.meter.Load(b, time.Now()); err != nil {
			c.log.Warn("today's totals unreadable: counting from zero", "file", c.file, "err", err)
		}
	}
	c.run.Start(ctx)
	c.run.Go(c.poll)
	c.run.Go(c.ends)
	return nil
}

// Stop ends the counting and keeps today's totals for the next start.
func (c *usageComp) Stop(ctx context.Context) error {
	err := c.run.Stop(ctx)
	return errors.Join(err, c.save())
}

// Teardown turns the counters off again (the kernel's default).
func (c *usageComp) Teardown(ctx context.Context) error {
	if err := os.WriteFile(conntrackAcct, []byte("0"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (c *usageComp) isLAN(a netip.Addr) bool {
	for _, p := range c.prefixes() {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// poll reads the table every second and saves the totals every minute.
func (c *usageComp) poll(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	saved := time.Now()
	for {
		flows, err := usage.Dump("", c.isLAN)
		c.mu.Lock()
		if err == nil {
			c.meter.Poll(flows, time.Now())
			c.err = ""
		} else {
			c.err = err.Error()
		}
		c.mu.Unlock()
		if time.Since(saved) >= time.Minute {
			if err := c.save(); err != nil {
				c.log.Warn("keep today's totals", "err", err)
			}
			saved = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ends counts each connection's last bytes as it ends.
func (c *usageComp) ends(ctx context.Context) {
	for ctx.Err() == nil {
		err := usage.Ends(ctx, "", c.isLAN, func(f usage.Flow) {
			c.mu.Lock()
			c.meter.Closed(f, time.Now())
			c.mu.Unlock()
		})
		if err != nil {
			c.log.Warn("connection ends", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
	}
}

func (c *usageComp) save() error {
	c.mu.Lock()
	b, err := c.meter.Save(time.Now())
	c.mu.Unlock()
	if err != nil {
		return err
	}
	tmp := c.file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, c.file)
}

// clients is each LAN host's use of the line, named by its lease and
// grouped by its MAC (its IPv4 and IPv6 addresses are one host).
func (c *usageComp) clients() status.Clients {
	now := time.Now()
	c.mu.Lock()
	hosts := c.meter.Hosts(now)
	errText := c.err
	c.mu.Unlock()
	y, m, d := now.Date()
	out := status.Clients{Since: time.Date(y, m, d, 0, 0, 0, 0, now.Location()), Error: errText}
	names, macs := map[netip.Addr]string{}, map[netip.Addr]string{}
	for mac, addrs := range lanNeighbours(c.cfg.LANNets.Ifaces) {
		for _, a := range addrs {
			macs[a] = mac
		}
	}
	for _, l := range c.leases() {
		if l.Hostname != "" {
			names[l.Addr] = l.Hostname
		}
		if l.MAC != "" {
			macs[l.Addr] = l.MAC
		}
	}
	c.mu.Lock()
	seen := make(map[netip.Addr]string, len(hosts))
	for _, h := range hosts {
		if macs[h.Addr] == "" {
			macs[h.Addr] = c.seen[h.Addr]
		}
		if macs[h.Addr] != "" {
			seen[h.Addr] = macs[h.Addr]
		}
	}
	c.seen = seen // only the counted addresses: it cannot grow past the meter
	c.mu.Unlock()
	byKey := map[string]*status.ClientUsage{}
	var order []string
	for _, h := range hosts {
		key := macs[h.Addr]
		if key == "" {
			key = h.Addr.String()
		}
		u := byKey[key]
		if u == nil {
			u = &status.ClientUsage{MAC: macs[h.Addr], Segment: c.segment(h.Addr)}
			byKey[key] = u
			order = append(order, key)
		}
		u.Addresses = append(u.Addresses, h.Addr.String())
		if u.Name == "" {
			u.Name = names[h.Addr]
		}
		if u.Path == "" || h.UpRate+h.DownRate > 0 {
			u.Path = h.Path
		}
		u.UpRate += h.UpRate
		u.DownRate += h.DownRate
		u.UpToday += h.UpToday
		u.DownToday += h.DownToday
		if h.LastSeen.After(u.LastSeen) {
			u.LastSeen = h.LastSeen
		}
	}
	for _, k := range order {
		out.Hosts = append(out.Hosts, *byKey[k])
	}
	slices.SortStableFunc(out.Hosts, func(a, b status.ClientUsage) int {
		return -compareFloat(a.UpRate+a.DownRate, b.UpRate+b.DownRate)
	})
	return out
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// segment is the LAN an address is on, by its configured networks.
func (c *usageComp) segment(a netip.Addr) string {
	for _, l := range c.cfg.LAN {
		for _, p := range l.Addresses {
			if p.Masked().Contains(a) {
				return l.Name
			}
		}
	}
	return ""
}

func (c *usageComp) fillStatus(st *status.Status) {
	cl := c.clients()
	st.Clients = &cl
}
