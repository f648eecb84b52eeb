package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/routerd/routerd/internal/logring"
	"github.com/routerd/routerd/router/api"
	"github.com/routerd/routerd/router/boot"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/router/vpn"
	"github.com/routerd/routerd/rules"
)

// PreviousBootLog is where the image's init keeps the log of the boot
// before this one, beside the config on the data partition.
const PreviousBootLog = "log/previous-boot.log"

// backend is the supervisor as the control API (router/api) sees it: each
// request's work, done on the running generation's components.
type backend struct{ s *Supervisor }

var _ api.Backend = backend{}

func (b backend) Status() *status.Status { return b.s.Status() }
func (b backend) Reload() error          { return b.s.Reload() }

func (b backend) ConfigFile() ([]byte, error) { return os.ReadFile(b.s.path) }

func (b backend) ApplyConfig(body []byte, confirm time.Duration) (control.ApplyResult, error) {
	res, code, err := b.s.applyConfig(body, confirm)
	return res, coded(code, err)
}

func (b backend) ConfirmConfig() error { return b.s.confirmConfig() }

// VPNPubkey answers routerctl vpn pubkey, creating the key if need be so
// that it can be given to the provider before the tunnel ever came up.
func (b backend) VPNPubkey() (string, error) {
	c := b.s.config()
	var file string
	switch {
	case c.VPN != nil:
		file = c.VPN.PrivateKeyFile
	case c.Relay != nil:
		file = c.Relay.PrivateKeyFile
	default:
		return "", api.Coded(http.StatusNotFound, errors.New("no [vpn] or [relay] in the config"))
	}
	k, err := vpn.LoadOrCreateKey(file)
	if err != nil {
		return "", err
	}
	return k.PublicKey().String(), nil
}

func (b backend) Leases() ([]status.Lease, error) {
	lan, err := running[*lanComp](b.s, "lan", "the LAN services")
	if err != nil {
		// An empty answer would read as "no leases" while they are
		// being loaded.
		return nil, err
	}
	return lan.leases(), nil
}

func (b backend) RemoteAdd(name string, full bool) (control.RemoteDevice, error) {
	dev, code, err := b.s.remoteAdd(name, full)
	return dev, coded(code, err)
}

func (b backend) RemoteDelete(name string) error {
	s := b.s
	cfg := s.config()
	if cfg.Remote == nil || !slices.ContainsFunc(cfg.Remote.Peers, func(p config.RemotePeer) bool { return p.Name == name }) {
		return api.Coded(http.StatusNotFound, fmt.Errorf("no remote device named %q", name))
	}
	text, err := os.ReadFile(s.path)
	if err != nil {
		return err
	}
	next, ok := withoutPeerBlock(text, name)
	if !ok {
		return api.Coded(http.StatusConflict, fmt.Errorf("remote device %q is not a [[remote.peer]] block of its own in %s: edit the file", name, s.path))
	}
	_, code, err := s.applyConfig(next, 0)
	return coded(code, err)
}

func (b backend) PortMapDelete(proto string, port uint16) error {
	pm, err := running[*portmapComp](b.s, "portmap", "port mapping ([portmap])")
	if err != nil {
		return err
	}
	if !pm.table.Delete(proto, port) {
		return api.Coded(http.StatusNotFound, fmt.Errorf("no mapping of %s/%d", proto, port))
	}
	return nil
}

func (b backend) DNSLog(client netip.Addr, follow bool) ([]status.DNSQuery, <-chan status.DNSQuery, func(), error) {
	d, err := running[*dnsComp](b.s, "dns", "the resolver")
	if err != nil {
		return nil, nil, nil, err
	}
	past, next, stop, ok := d.r.QueryLog(client, follow)
	if !ok {
		stop()
		return nil, nil, nil, api.Coded(http.StatusNotFound, errors.New("the query log is off: set dns.query_log (e.g. \"24h\")"))
	}
	return past, next, stop, nil
}

// DNSTop answers routerctl dns top, clients named by their leases.
func (b backend) DNSTop(n int) (status.DNSTop, error) {
	d, err := running[*dnsComp](b.s, "dns", "the resolver")
	if err != nil {
		return status.DNSTop{}, err
	}
	t := d.r.Top(n)
	if d.leases != nil {
		names := map[string]string{}
		for _, l := range d.leases() {
			if l.Hostname != "" {
				names[l.Addr.String()] = l.Hostname
			}
		}
		for i := range t.Clients {
			t.Clients[i].Name = names[t.Clients[i].Address]
		}
	}
	return t, nil
}

// Clients answers routerctl clients.
func (b backend) Clients() (status.Clients, error) {
	u, err := running[*usageComp](b.s, "usage", "the usage meter")
	if err != nil {
		return status.Clients{}, err
	}
	return u.clients(), nil
}

func (b backend) Logs(component string, since time.Time, follow bool) ([]logring.Entry, <-chan logring.Entry, func(), error) {
	if b.s.Logs == nil {
		return nil, nil, nil, api.Coded(http.StatusNotFound, errors.New("this routerd keeps no logs in memory"))
	}
	stop := func() {}
	var next <-chan logring.Entry
	if follow {
		next, stop = b.s.Logs.Follow()
	}
	return b.s.Logs.Since(since, component), next, stop, nil
}

func (b backend) PreviousBootLog() ([]byte, error) {
	text, err := os.ReadFile(filepath.Join(filepath.Dir(b.s.path), PreviousBootLog))
	if errors.Is(err, os.ErrNotExist) {
		return nil, api.Coded(http.StatusNotFound, errors.New("no log of a previous boot here (the image keeps one on its data partition)"))
	}
	return text, err
}

func (b backend) Bans() ([]status.Ban, error) { return b.s.bansList() }

func (b backend) Unban(a netip.Addr) error {
	var errs []error
	for _, ns := range b.s.banNamespaces() {
		errs = append(errs, rules.Unban(ns, a))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b.s.log.Info("ban lifted", "addr", a)
	return nil
}

// RefreshBlocklists answers routerctl blocklist refresh [NAME] with the
// lists' status afterwards.
func (b backend) RefreshBlocklists(ctx context.Context, name string) ([]status.Blocklist, error) {
	bl, err := running[*blocklistComp](b.s, "blocklist", "blocklists")
	if err != nil {
		return nil, err
	}
	return bl.m.RefreshNow(ctx, name)
}

// Power asks the image's init (PID 1) to power off or reboot. Only an
// appliance started by that init may: elsewhere PID 1 is some other init,
// and routerd is not the machine.
func (b backend) Power(reboot bool) error {
	if os.Getenv(boot.EnvChild) != "1" {
		return api.Coded(http.StatusConflict, errors.New("routerd is not the machine's init here; use the host's own shutdown"))
	}
	sig := syscall.SIGUSR2
	if reboot {
		sig = boot.RebootSignal
	}
	b.s.signalInitSoon(sig)
	return nil
}

func (b backend) Update(image io.Reader, req api.UpdateRequest) (status.UpdateAnswer, error) {
	return b.s.updates.install(b.s, image, req)
}

// running returns the running component of that name, or an error that
// says what is not running (what) and why not.
func running[T Component](s *Supervisor, name, what string) (T, error) {
	c, ok := s.component(name).(T)
	if !ok {
		return c, fmt.Errorf("%s: %w (routerd is %s)", what, api.ErrNotRunning, s.phase.Load())
	}
	return c, nil
}

// coded gives err the status code an internal step chose (0: the default).
func coded(code int, err error) error {
	if err == nil || code == 0 {
		return err
	}
	return api.Coded(code, err)
}

// signalInitSoon signals init (PID 1) a moment after the answer is out,
// so that the caller (over SSH too) sees the command succeed before the
// appliance stops under it.
func (s *Supervisor) signalInitSoon(sig syscall.Signal) {
	s.after(time.Second, func() { _ = syscall.Kill(1, sig) }) // PID 1 exists and root may signal it
}
