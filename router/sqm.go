package router

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/sqm"
	"github.com/routerd/routerd/router/status"
	"golang.org/x/sys/unix"
)

// sqmComp shapes both directions of both paths ([sqm]): CAKE on the main
// namespace's transit ports (router/sqm). Without [sqm] it takes away the
// shaping an earlier config made.
type sqmComp struct {
	cfg    *config.Config
	plan   *sqm.Plan     // nil: no [sqm]
	follow *sqm.Follower // nil: fixed rates
	refl   reflectors
	run    lifecycle.Group
	log    *slog.Logger

	mu     sync.Mutex
	uplink string // whose rates apply: "primary" | "backup"
}

// sqmPorts are where both paths cross: main's ends of the transit veths.
var sqmPorts = []string{config.TransitWANLink, config.TransitVPNLink}

func newSQMComp(cfg *config.Config, log *slog.Logger) *sqmComp {
	c := &sqmComp{cfg: cfg, plan: sqmPlan(cfg), log: log, uplink: "primary"}
	if s := cfg.SQM; s != nil && s.Autorate() {
		c.refl.fixed = s.Reflectors
		c.follow = &sqm.Follower{NS: cfg.Netns.WAN, Reflectors: c.refl.get, Interval: autorateInterval,
			Core: sqm.NewAutorate(c.autorateConfig(s.SQMRates)), Log: log}
	}
	return c
}

// wanLease takes the active uplink's lease: its gateway is autorate's
// reflector unless [sqm] names some.
func (c *sqmComp) wanLease(l *dhcp.WANLease) { c.refl.lease(l) }

// rates are the rates of the uplink that carries the traffic.
func (c *sqmComp) rates() config.SQMRates {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.uplink == "backup" && c.cfg.SQM.Backup != nil {
		return *c.cfg.SQM.Backup
	}
	return c.cfg.SQM.SQMRates
}

// autorateConfig is an uplink's rates as autorate's bounds: a fixed
// direction's minimum is its maximum.
func (c *sqmComp) autorateConfig(r config.SQMRates) sqm.AutorateConfig {
	ac := sqm.AutorateConfig{Min: [2]uint64{r.Upload, r.Download}, Max: [2]uint64{r.Upload, r.Download},
		Threshold: c.cfg.SQM.BloatThreshold, Overhead: c.plan.Up.Overhead}
	if a := r.UploadAuto; a != nil {
		ac.Min[sqm.Up], ac.Max[sqm.Up] = a.Min, a.Max
	}
	if a := r.DownloadAuto; a != nil {
		ac.Min[sqm.Down], ac.Max[sqm.Down] = a.Min, a.Max
	}
	return ac
}

// useUplink takes the rates of the uplink that now carries the traffic
// ([sqm.backup] for the backup): the failover calls it at each switch.
func (c *sqmComp) useUplink(role string) {
	s := c.cfg.SQM
	if s == nil || s.Backup == nil {
		return
	}
	c.mu.Lock()
	was := c.uplink
	c.uplink = role
	c.mu.Unlock()
	if was == role {
		return
	}
	rates := c.rates()
	c.log.Info("shaper rates of the new uplink", "uplink", role)
	var err error
	if c.follow != nil {
		err = c.follow.Switch(sqm.NewAutorate(c.autorateConfig(rates)))
	} else {
		err = errors.Join(sqm.SetRate(sqm.IfbUp, rates.Upload), sqm.SetRate(sqm.IfbDown, rates.Download))
	}
	if err != nil {
		c.log.Warn("shaper rates of the new uplink", "uplink", role, "err", err)
	}
}

// autorateInterval is how often autorate measures: often enough to
// catch a filling buffer in a few hundred milliseconds, seldom enough
// that its probes are no load.
const autorateInterval = 100 * time.Millisecond

// sqmPlan is [sqm] as the shapers' settings: per host (dual-srchost up,
// dual-dsthost down) or CAKE's triple isolation; the link layer's
// overhead plus, with a VPN, WireGuard's (the VPN path's packets grow by
// it on the line, after the shaper).
func sqmPlan(cfg *config.Config) *sqm.Plan {
	s := cfg.SQM
	if s == nil {
		return nil
	}
	framing := map[string]int{"none": sqm.FramingNone, "ptm": sqm.FramingPTM, "atm": sqm.FramingATM}[s.Framing]
	over := s.Overhead + wireguardOverhead(cfg)
	up := sqm.Cake{Rate: s.Upload, Overhead: over, MPU: s.MPU, Framing: framing, FlowMode: sqm.FlowTriple}
	down := sqm.Cake{Rate: s.Download, Overhead: over, MPU: s.MPU, Framing: framing, FlowMode: sqm.FlowTriple, Ingress: true}
	if s.PerHost {
		up.FlowMode, down.FlowMode = sqm.FlowDualSrc, sqm.FlowDualDst
	}
	return &sqm.Plan{Ports: sqmPorts, Up: up, Down: down, Classes: sqmClasses(s.Classes)}
}

var sqmTins = map[string]int{"bulk": sqm.TinBulk, "best_effort": sqm.TinBestEffort, "video": sqm.TinVideo, "voice": sqm.TinVoice}

func sqmClasses(cs []config.SQMClass) []sqm.Class {
	var out []sqm.Class
	for _, c := range cs {
		sc := sqm.Class{Tin: sqmTins[c.Tin], Hosts: c.Hosts}
		for _, p := range c.Ports {
			proto := uint8(unix.IPPROTO_TCP)
			if p.Proto == "udp" {
				proto = unix.IPPROTO_UDP
			}
			sc.Ports = append(sc.Ports, sqm.PortRange{Proto: proto, Lo: p.From, Hi: p.To})
		}
		out = append(out, sc)
	}
	return out
}

// wireguardOverhead is what WireGuard adds to a packet on the line: an
// outer IP header, UDP and its own 32 bytes (80 over IPv6).
func wireguardOverhead(cfg *config.Config) int {
	if cfg.VPN == nil {
		return 0
	}
	for _, p := range cfg.VPN.Peers {
		if p.Endpoint.Addr.Is6() && !p.Endpoint.Addr.Is4In6() {
			return 80
		}
	}
	return 60
}

// checkSQM says whether this machine can shape as cfg asks: the config
// is refused, whole, before anything is applied, if it cannot.
func checkSQM(cfg *config.Config) error {
	if cfg.SQM == nil {
		return nil
	}
	if err := sqm.Supported(len(cfg.SQM.Classes) > 0); err != nil {
		return config.Errors{{Path: "sqm", Msg: err.Error()}}
	}
	return nil
}

// CheckMachine reports what of cfg this machine cannot do (routerd
// -check, start, reload).
func CheckMachine(cfg *config.Config) error {
	if cfg == nil || cfg.Relay != nil {
		return nil
	}
	return checkSQM(cfg)
}

func (c *sqmComp) Name() string { return "sqm" }

func (c *sqmComp) Start(ctx context.Context) error {
	if c.plan == nil {
		return sqm.Remove(sqmPorts)
	}
	if err := checkSQM(c.cfg); err != nil {
		return err
	}
	plan := *c.plan
	var core *sqm.Autorate
	if c.follow != nil {
		// Autorate resumes at the rates the shapers have (a reload's
		// previous generation left them), within this config's bounds:
		// a reload must not drop the household to the minimum for the
		// seconds it takes to find the line again.
		ac := c.autorateConfig(c.rates())
		for _, x := range []struct {
			d   sqm.Direction
			ifb string
		}{{sqm.Up, sqm.IfbUp}, {sqm.Down, sqm.IfbDown}} {
			if st, err := sqm.Read(x.ifb); err == nil {
				ac.Start[x.d] = st.Rate
			}
		}
		core = sqm.NewAutorate(ac)
		r := core.Rates()
		plan.Up.Rate, plan.Down.Rate = r[sqm.Up], r[sqm.Down]
		if ac.Start != ([2]uint64{}) {
			c.log.Info("autorate resumes at the shapers' rates", "upload", r[sqm.Up], "download", r[sqm.Down])
		}
	}
	if err := sqm.Apply(plan); err != nil {
		return err
	}
	if core != nil {
		if err := c.follow.Switch(core); err != nil {
			return err
		}
	}
	c.run.Start(ctx)
	if c.follow != nil {
		c.run.Go(c.follow.Run)
	}
	return nil
}

// Stop ends autorate and leaves the shaping in place: the next
// generation applies its own, or takes it away.
func (c *sqmComp) Stop(ctx context.Context) error { return c.run.Stop(ctx) }

// Teardown removes the shaping with the rest of routerd's.
func (c *sqmComp) Teardown(ctx context.Context) error { return sqm.Remove(sqmPorts) }

func (c *sqmComp) fillStatus(st *status.Status) {
	if c.plan == nil {
		return
	}
	s := &status.SQM{Where: "main's transit ports (" + sqmPorts[0] + ", " + sqmPorts[1] + "): both paths, one budget per direction",
		Overhead: c.cfg.SQM.OverheadString(), PerHost: c.cfg.SQM.PerHost, WireGuard: wireguardOverhead(c.cfg)}
	var errs []error
	active := c.rates()
	rates := [2]uint64{active.Upload, active.Download}
	if c.cfg.SQM.Backup != nil {
		c.mu.Lock()
		s.Uplink = c.uplink
		c.mu.Unlock()
	}
	if c.follow != nil {
		fs := c.follow.Status()
		rates = fs.Rates
		s.Autorate = autorateStatus(c.cfg.SQM, active, fs)
	}
	for _, d := range []struct {
		ifb  string
		dst  **status.Shaper
		rate uint64
	}{{sqm.IfbUp, &s.Upload, rates[sqm.Up]}, {sqm.IfbDown, &s.Download, rates[sqm.Down]}} {
		sh := &status.Shaper{Iface: d.ifb, Rate: d.rate}
		if r, err := sqm.Read(d.ifb); err != nil {
			errs = append(errs, err)
		} else {
			sh.Bytes, sh.Drops = r.Bytes, r.Drops
			for _, t := range r.Tins {
				sh.Tins = append(sh.Tins, status.Tin{Name: t.Name, Rate: t.Rate, Bytes: t.SentBytes, Packets: t.Sent, Drops: t.Drops,
					Marks: t.Marks, Backlog: t.Backlog, PeakDelay: t.PeakDelay, AvgDelay: t.AvgDelay})
			}
		}
		*d.dst = sh
	}
	if err := errors.Join(errs...); err != nil {
		s.Error = err.Error()
	}
	st.SQM = s
}

// autorateStatus is autorate as status shows it, with the bounds of the
// uplink that carries the traffic.
func autorateStatus(s *config.SQM, active config.SQMRates, fs sqm.FollowerStatus) *status.Autorate {
	a := &status.Autorate{Threshold: s.BloatThreshold, LastAnswer: fs.LastAnswer, Error: fs.Error}
	for _, r := range fs.Reflectors {
		a.Reflectors = append(a.Reflectors, r.String())
	}
	if r := active.UploadAuto; r != nil {
		a.UploadMin, a.UploadMax = r.Min, r.Max
	}
	if r := active.DownloadAuto; r != nil {
		a.DownloadMin, a.DownloadMax = r.Min, r.Max
	}
	for _, ch := range fs.Changes {
		a.Changes = append(a.Changes, status.RateChange{At: ch.At, Direction: ch.Dir.String(), From: ch.From, To: ch.To, Why: ch.Why})
	}
	return a
}
