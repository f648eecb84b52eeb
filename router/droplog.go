package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	nflog "github.com/florianl/go-nflog/v2"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/rules"
)

// dropLogComp reads the firewall's sampled drops (firewall.log = "rate":
// NFLOG group rules.DropLogGroup in each namespace) and logs each under the
// firewall component, so that `routerctl logs --component firewall` says
// what was dropped and why. The kernel samples (a few packets a second per
// rule); nothing leaves the box.
type dropLogComp struct {
	cfg *config.Config
	log *slog.Logger
	run lifecycle.Group

	mu    sync.Mutex
	socks []*nflog.Nflog
	names map[string]map[uint32]string // per namespace: ifindex → name
}

func newDropLogComp(cfg *config.Config, log *slog.Logger) *dropLogComp {
	return &dropLogComp{cfg: cfg, log: log, names: map[string]map[uint32]string{}}
}

func (c *dropLogComp) Name() string { return "droplog" }

func (c *dropLogComp) Start(ctx context.Context) error {
	ctx = c.run.Start(ctx)
	var errs []error
	for _, ns := range []string{"", c.cfg.Netns.WAN, c.cfg.Netns.VPN} {
		if err := c.open(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// open binds the drop log group in namespace ns.
func (c *dropLogComp) open(ctx context.Context, ns string) error {
	h, err := netns.Open(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	nfc := &nflog.Config{Group: rules.DropLogGroup, Copymode: nflog.CopyPacket, Bufsize: 128}
	if ns != "" {
		nfc.NetNS = int(h)
	}
	nf, err := nflog.Open(nfc)
	if err != nil {
		return fmt.Errorf("open the drop log in %s: %w", netns.Label(ns), err)
	}
	hook := func(a nflog.Attribute) int {
		c.logged(ns, a)
		return 0
	}
	errFn := func(err error) int {
		if ctx.Err() != nil {
			return 1
		}
		c.log.Debug("drop log", "netns", statusName(ns), "err", err)
		return 0 // a full socket buffer loses samples, not the log
	}
	if err := nf.RegisterWithErrorFunc(ctx, hook, errFn); err != nil {
		nf.Close()
		return fmt.Errorf("bind the drop log group in %s: %w", netns.Label(ns), err)
	}
	c.mu.Lock()
	c.socks = append(c.socks, nf)
	c.mu.Unlock()
	return nil
}

// logged logs one sampled drop.
func (c *dropLogComp) logged(ns string, a nflog.Attribute) {
	args := []any{"netns", statusName(ns)}
	if a.Prefix != nil {
		args = append(args, "reason", *a.Prefix)
	}
	if a.InDev != nil {
		args = append(args, "in", c.ifname(ns, *a.InDev))
	}
	if a.OutDev != nil {
		args = append(args, "out", c.ifname(ns, *a.OutDev))
	}
	if a.Payload != nil {
		if d, ok := rules.ParseDropped(*a.Payload); ok {
			src, dst := d.Src.String(), d.Dst.String()
			if d.SPort != 0 || d.DPort != 0 {
				src, dst = netip.AddrPortFrom(d.Src, d.SPort).String(), netip.AddrPortFrom(d.Dst, d.DPort).String()
			}
			args = append(args, "proto", d.Proto, "src", src, "dst", dst)
			if d.Flags != "" {
				args = append(args, "flags", d.Flags)
			}
		}
	}
	c.log.Info("dropped", args...)
}

// ifname names an interface index of namespace ns, looking the links up
// again when it does not know it (a NIC that came back has a new index).
func (c *dropLogComp) ifname(ns string, idx uint32) string {
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

func (c *dropLogComp) Stop(ctx context.Context) error {
	err := c.run.Stop(ctx)
	c.mu.Lock()
	socks := c.socks
	c.socks = nil
	c.mu.Unlock()
	for _, s := range socks {
		s.Close() // waits for its reader, which the cancelled context ended
	}
	return err
}
