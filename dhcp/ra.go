package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// RAConfig configures router advertisements on one LAN.
type RAConfig struct {
	Iface                      string
	Prefixes                   []netip.Prefix
	Managed, Other, Autonomous bool
	DNS                        []netip.Addr
	Domain                     string
	MTU                        int
	// DefaultPath reports whether clients have a way out: while it says
	// no, the router advertises itself with lifetime 0 (not a default
	// router), so clients do not send into a black hole.
	DefaultPath func() bool
	Log         *slog.Logger
}

// RFC 4861 §6.2.1 and §10 timings.
const (
	maxRtrAdvInterval       = 600 * time.Second
	minRtrAdvInterval       = maxRtrAdvInterval / 3
	maxInitialAdvertInterva = 16 * time.Second
	maxInitialAdverts       = 3
	minDelayBetweenRAs      = 3 * time.Second
	maxRADelay              = 500 * time.Millisecond
	routerLifetime          = 3 * maxRtrAdvInterval
)

// Advertiser sends router advertisements: unsolicited at RFC 4861
// intervals with jitter, and in answer to router solicitations.
type Advertiser struct {
	cfg     RAConfig
	refresh chan struct{}
	socketLoop

	global atomic.Pointer[[]GlobalPrefix] // from the delegated prefix

	mu    sync.Mutex
	sent  int
	rs    int
	last  time.Time
	lastL time.Duration // router lifetime last advertised
	counters
}

// NewAdvertiser returns an advertiser for cfg.
func NewAdvertiser(cfg RAConfig) *Advertiser {
	return &Advertiser{cfg: cfg, socketLoop: newSocketLoop(), refresh: make(chan struct{}, 1)}
}

// Refresh sends an advertisement soon, e.g. because the default path came
// up or went down and the router lifetime changes.
func (a *Advertiser) Refresh() {
	select {
	case a.refresh <- struct{}{}:
	default:
	}
}

// Run advertises until ctx ends.
func (a *Advertiser) Run(ctx context.Context) {
	a.run(ctx, time.Second, func(err error) {
		a.count("socket_errors")
		a.cfg.Log.Debug("RA listen (retrying)", "iface", a.cfg.Iface, "err", err)
	}, func() (func(context.Context), func(), error) {
		c, ifi, err := a.listen()
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context) { a.serve(ctx, c, ifi) }, func() { c.Close() }, nil
	})
}

func (a *Advertiser) listen() (*ndp.Conn, *net.Interface, error) {
	ifi, err := net.InterfaceByName(a.cfg.Iface)
	if err != nil {
		return nil, nil, err
	}
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, nil, err
	}
	if err := c.JoinGroup(netip.MustParseAddr("ff02::2")); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("join ff02::2: %w", err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	if err := c.SetICMPFilter(&f); err != nil {
		c.Close()
		return nil, nil, err
	}
	// The hop limit proves a solicitation came from the link (RFC 4861
	// §6.1.1); without it every RS is taken on trust.
	if err := c.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("ask for hop limits: %w", err)
	}
	return c, ifi, nil
}

// solicitation reports whether m, received from "from" with the given hop
// limit (-1: unknown), is a valid router solicitation (RFC 4861 §6.1.1),
// counting what it is and why it is dropped. FuzzRASolicitation feeds it.
func (a *Advertiser) solicitation(m ndp.Message, hops int, from netip.Addr) bool {
	rs, ok := m.(*ndp.RouterSolicitation)
	if !ok {
		a.count("drop_not_rs") // the ICMP filter lets only RS through; count what slips by
		return false
	}
	a.count("in_rs")
	if hops != -1 && hops != ndp.HopLimit {
		a.count("drop_rs_hop_limit")
		return false
	}
	if from.IsUnspecified() {
		for _, o := range rs.Options {
			if _, ok := o.(*ndp.LinkLayerAddress); ok {
				a.count("drop_rs_unspecified_with_lladdr")
				return false
			}
		}
	}
	return true
}

func (a *Advertiser) serve(ctx context.Context, c *ndp.Conn, ifi *net.Interface) {
	solicited := make(chan struct{}, 1)
	// The reader ends once stop (below) wakes it and done is closed;
	// serve returns after it (defers run last-registered first).
	var reader sync.WaitGroup
	defer reader.Wait()
	done := make(chan struct{})
	defer close(done)
	reader.Add(1)
	go func() {
		defer reader.Done()
		for {
			m, cm, from, err := c.ReadFrom()
			if err != nil {
				select {
				case <-done:
					return
				default:
				}
				if errors.Is(err, net.ErrClosed) {
					return
				}
				a.count("drop_malformed")
				continue
			}
			hops := -1
			if cm != nil {
				hops = cm.HopLimit
			}
			if !a.solicitation(m, hops, from) {
				continue
			}
			a.cfg.Log.Debug("router solicitation", "iface", a.cfg.Iface, "from", from)
			select {
			case solicited <- struct{}{}:
			default:
			}
		}
	}()
	stop := func() { c.SetReadDeadline(time.Now()) }
	defer stop()

	a.mu.Lock()
	initial := a.sent < maxInitialAdverts
	a.mu.Unlock()
	next := time.Duration(0)
	if !initial {
		next = a.interval()
	}
	timer := time.NewTimer(next)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.reopen:
			return
		case <-a.refresh:
			a.send(c, ifi)
		case <-solicited:
			// Answer with a multicast advertisement after a short random
			// delay, and no more often than minDelayBetweenRAs.
			a.mu.Lock()
			wait := time.Duration(rand.Int64N(int64(maxRADelay)))
			if since := time.Since(a.last); since < minDelayBetweenRAs {
				wait = max(wait, minDelayBetweenRAs-since)
			}
			a.mu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
				a.send(c, ifi)
			case <-ctx.Done():
				t.Stop()
				return
			}
		case <-timer.C:
			a.send(c, ifi)
			timer.Reset(a.interval())
		}
	}
}

// interval is the time to the next unsolicited advertisement: short for
// the first few, then uniformly random in [min, max] (RFC 4861 §6.2.4).
func (a *Advertiser) interval() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := minRtrAdvInterval + time.Duration(rand.Int64N(int64(maxRtrAdvInterval-minRtrAdvInterval)))
	if a.sent < maxInitialAdverts {
		d = min(d, maxInitialAdvertInterva)
	}
	return d
}

// SetGlobalPrefixes sets the prefixes from the WAN's delegation that the
// LAN advertises besides its configured ones, and advertises at once: a
// new prefix, or an old one deprecated (RFC 9096), must not wait for the
// next periodic advertisement.
func (a *Advertiser) SetGlobalPrefixes(ps []GlobalPrefix) {
	a.global.Store(&ps)
	a.Refresh()
}

// Message builds the advertisement as it would be sent now.
func (a *Advertiser) Message(mac net.HardwareAddr) *ndp.RouterAdvertisement {
	life := time.Duration(0)
	if a.cfg.DefaultPath == nil || a.cfg.DefaultPath() {
		life = routerLifetime
	}
	ra := &ndp.RouterAdvertisement{
		CurrentHopLimit:      64,
		ManagedConfiguration: a.cfg.Managed,
		OtherConfiguration:   a.cfg.Other,
		RouterLifetime:       life,
	}
	if len(mac) > 0 {
		ra.Options = append(ra.Options, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac})
	}
	if a.cfg.MTU != 0 {
		ra.Options = append(ra.Options, ndp.NewMTU(uint32(a.cfg.MTU)))
	}
	for _, p := range a.cfg.Prefixes {
		ra.Options = append(ra.Options, &ndp.PrefixInformation{
			PrefixLength: uint8(p.Bits()), OnLink: true, AutonomousAddressConfiguration: a.cfg.Autonomous,
			ValidLifetime: 24 * time.Hour, PreferredLifetime: 4 * time.Hour, Prefix: p.Masked().Addr(),
		})
	}
	if g := a.global.Load(); g != nil {
		now := time.Now()
		for _, p := range *g {
			preferred, valid := p.left(now)
			ra.Options = append(ra.Options, &ndp.PrefixInformation{
				PrefixLength: uint8(p.Prefix.Bits()), OnLink: true, AutonomousAddressConfiguration: a.cfg.Autonomous,
				ValidLifetime: valid.Truncate(time.Second), PreferredLifetime: preferred.Truncate(time.Second), Prefix: p.Prefix.Masked().Addr(),
			})
		}
	}
	if len(a.cfg.DNS) > 0 {
		ra.Options = append(ra.Options, &ndp.RecursiveDNSServer{Lifetime: routerLifetime, Servers: a.cfg.DNS})
	}
	if a.cfg.Domain != "" {
		ra.Options = append(ra.Options, &ndp.DNSSearchList{Lifetime: routerLifetime, DomainNames: []string{a.cfg.Domain}})
	}
	return ra
}

func (a *Advertiser) send(c *ndp.Conn, ifi *net.Interface) {
	m := a.Message(ifi.HardwareAddr)
	if err := c.WriteTo(m, nil, netip.IPv6LinkLocalAllNodes()); err != nil {
		a.count("send_errors")
		a.cfg.Log.Warn("send RA", "iface", a.cfg.Iface, "err", err)
		return
	}
	a.mu.Lock()
	a.sent++
	a.last = time.Now()
	a.lastL = m.RouterLifetime
	a.mu.Unlock()
	a.count("out_ra")
}
