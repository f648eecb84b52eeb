package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/internal/nflog"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/rules"
)

// droplogComp reads the firewall's sampled drops (firewall.log = "rate":
// NFLOG group rules.DropLogGroup in each namespace) and logs each under the
// firewall component, so that `routerctl logs --component firewall` says
// what was dropped and why. The kernel samples (a few packets a second per
// rule); nothing leaves the box.
type droplogComp struct {
	cfg *config.Config
	log *slog.Logger
	run lifecycle.Group

	mu    sync.Mutex
	names map[string]map[uint32]string // per namespace: ifindex → name
}

func newDroplogComp(cfg *config.Config, log *slog.Logger) *droplogComp {
	return &droplogComp{cfg: cfg, log: log, names: map[string]map[uint32]string{}}
}

func (c *droplogComp) Name() string { return "droplog" }

func (c *droplogComp) Start(ctx context.Context) error {
	ctx = c.run.Start(ctx)
	var errs []error
	for _, ns := range []string{"", c.cfg.Netns.WAN, c.cfg.Netns.VPN} {
		conn, err := openDropLog(ns)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// Closing the socket is what ends its reader.
		context.AfterFunc(ctx, func() { conn.Close() })
		c.run.Go(func(ctx context.Context) {
			for {
				msgs, err := conn.Read()
				if err != nil {
					if ctx.Err() == nil {
						c.log.Warn("drop log: read", "netns", statusName(ns), "err", err)
					}
					return
				}
				for _, m := range msgs {
					c.logged(ns, m)
				}
			}
		})
	}
	return errors.Join(errs...)
}

func openDropLog(ns string) (*nflog.Conn, error) {
	fd := 0
	if ns != "" {
		h, err := netns.Open(ns)
		if err != nil {
			return nil, err
		}
		defer h.Close()
		fd = int(h)
	}
	conn, err := nflog.Open(fd, rules.DropLogGroup, 128)
	if err != nil {
		return nil, fmt.Errorf("the drop log in %s: %w", netns.Label(ns), err)
	}
	return conn, nil
}

// logged logs one sampled drop.
func (c *droplogComp) logged(ns string, m nflog.Message) {
	args := []any{"netns", statusName(ns), "reason", m.Prefix}
	if m.InDev != 0 {
		args = append(args, "in", c.ifname(ns, m.InDev))
	}
	if m.OutDev != 0 {
		args = append(args, "out", c.ifname(ns, m.OutDev))
	}
	if d, ok := rules.ParseDropped(m.Payload); ok {
		src, dst := d.Src.String(), d.Dst.String()
		if d.SPort != 0 || d.DPort != 0 {
			src, dst = netip.AddrPortFrom(d.Src, d.SPort).String(), netip.AddrPortFrom(d.Dst, d.DPort).String()
		}
		args = append(args, "proto", d.Proto, "src", src, "dst", dst)
		if d.Flags != "" {
			args = append(args, "flags", d.Flags)
		}
	}
	c.log.Info("dropped", args...)
}

// ifname names an interface index of namespace ns, looking the links up
// again when it does not know it (a NIC that came back has a new index).
func (c *droplogComp) ifname(ns string, idx uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.names[ns][idx]; ok {
		return n
	}
	m := map[uint32]string{}
	if h, err := netns.Handle(ns); err == nil {
		if links, err := h.LinkList(); err == nil {
			for _, l := range links {
				m[uint32(l.Attrs().Index)] = l.Attrs().Name
			}
		}
		h.Close()
	}
	c.names[ns] = m
	if n, ok := m[idx]; ok {
		return n
	}
	return fmt.Sprintf("#%d", idx)
}

func (c *droplogComp) Stop(ctx context.Context) error { return c.run.Stop(ctx) }
