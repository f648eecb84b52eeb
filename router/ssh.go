package router

import (
	"context"
	"io"
	"log/slog"

	"github.com/routerd/routerd/router/admin"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/ctl"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/rules"
)

// sshComp serves SSH management: routerctl's commands, run by the same
// code as routerctl itself, against the control socket.
type sshComp struct {
	cfg *config.Config
	log *slog.Logger
	s   *admin.Server
}

func newSSHComp(cfg *config.Config, log *slog.Logger) *sshComp {
	return &sshComp{cfg: cfg, log: log}
}

func (c *sshComp) Name() string { return "ssh" }

func (c *sshComp) Start(ctx context.Context) error {
	a := c.cfg.Admin
	socket := c.cfg.Status.Socket
	banner := newSSHBanner(a, c.log)
	s, err := admin.New(admin.Config{
		Ifaces: a.Listen, Port: a.Port, Keys: a.Keys, KeyFrom: a.KeyFrom, Log: c.log, OnAuthFailure: banner.failed, OnAuthSuccess: banner.succeeded,
		HostKeyPath: c.cfg.StatePath(config.StateSSHHostKey),
		Exec: func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
			return ctl.RunRemote(ctx, control.NewClient(socket), args, stdin, stdout, stderr)
		},
	})
	if err != nil {
		return err
	}
	c.s = s
	// On the image this is the console: compare it with what ssh shows at
	// the first connection.
	c.log.Info("SSH host key", "fingerprint", s.Fingerprint(), "authorized_keys", len(a.Keys))
	return s.Start(ctx)
}

func (c *sshComp) Stop(ctx context.Context) error {
	if c.s == nil {
		return nil
	}
	return c.s.Stop(ctx)
}

func (c *sshComp) fillStatus(st *status.Status) {
	if c.s == nil {
		return
	}
	a := c.s.Status()
	for _, ns := range []string{"", c.cfg.Netns.WAN} {
		if bs, err := rules.Bans(ns); err == nil {
			a.Banned += len(bs)
		}
	}
	st.Admin = &a
}
