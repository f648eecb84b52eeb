package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/hw"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/internal/rtproto"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// pdProto marks the routes of the delegated prefix: the routing plan (201)
// and the tunnel (202) converge their own and leave these alone.
const pdProto = rtproto.Delegated

// maxDeprecation is how long a prefix that was renumbered away stays valid
// on the LANs (RFC 9096 §3.3: at most two hours), so that connections from
// its addresses can finish.
const maxDeprecation = 2 * time.Hour

// prefixDelegationComp puts the WAN's delegated prefix on the LANs that ask for it
// (pd_subnet = N gives a LAN prefix:N::/64): the router's address there, the
// prefix in its router advertisements and DHCPv6 answers, names in DNS,
// routes back to it from the wan and vpn namespaces (and in the path
// tables), and the firewall's source sets. When the ISP delegates another
// prefix it renumbers (RFC 9096): the new one is advertised at once, the old
// one is deprecated (preferred 0, valid at most two hours) and withdrawn.
type prefixDelegationComp struct {
	withHealth
	cfg  *config.Config
	lan  *lanComp
	fw   *firewallComp
	dns  *dnsComp
	nics *hw.Manager
	log  *slog.Logger
	run  lifecycle.Group
	poke chan struct{}

	mu     sync.Mutex
	latest *dhcp.WANLease6 // as the WAN client last heard it
	cur    *delegation     // on the LANs now
	old    []*delegation   // renumbered away, until their time is up
	err    error
	// What the services were last told, to tell them only of changes: the
	// prefixes (firewall, DNS) change with a renumbering, their lifetimes
	// (advertisements, DHCPv6) with every renewal too.
	pushedPrefixes, pushedLifetimes string
}

// delegation is a delegated prefix and the LAN subnets made of it, with
// lifetimes as of at.
type delegation struct {
	prefix           netip.Prefix
	preferred, valid time.Duration
	at               time.Time
	subnets          map[string]netip.Prefix // LAN name -> /64
}

func (d *delegation) preferredUntil() time.Time { return d.at.Add(d.preferred) }

// subnetOf is d's subnet for the LAN named lan (d may be nil: none).
func (d *delegation) subnetOf(lan string) (netip.Prefix, bool) {
	if d == nil {
		return netip.Prefix{}, false
	}
	s, ok := d.subnets[lan]
	return s, ok
}
func (d *delegation) validUntil() time.Time { return d.at.Add(d.valid) }

func newPrefixDelegationComp(cfg *config.Config, lan *lanComp, fw *firewallComp, dns *dnsComp, nics *hw.Manager, log *slog.Logger) *prefixDelegationComp {
	return &prefixDelegationComp{cfg: cfg, lan: lan, fw: fw, dns: dns, nics: nics, log: log, poke: make(chan struct{}, 1)}
}

// wantsPD reports whether any LAN takes a subnet of the delegated prefix.
func wantsPD(cfg *config.Config) bool {
	return slices.ContainsFunc(cfg.LAN, func(l config.LAN) bool { return l.PDSubnet >= 0 })
}

func (c *prefixDelegationComp) Name() string { return "prefix-delegation" }

func (c *prefixDelegationComp) Start(ctx context.Context) error {
	events := c.nics.Subscribe()
	c.run.Start(ctx)
	c.run.Go(func(ctx context.Context) {
		// Deprecated prefixes run out on a clock, and a re-adopted LAN NIC
		// comes back without its address: both are converged again.
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.poke:
			case <-tick.C:
			case e := <-events:
				if e.Kind != hw.Adopted {
					continue
				}
			}
			c.converge(time.Now())
		}
	})
	return nil
}

func (c *prefixDelegationComp) Stop(ctx context.Context) error { return c.run.Stop(ctx) }

// Teardown removes the delegated prefix's routes and the router's
// addresses in the last prefix it had (older ones expire by their
// lifetimes).
func (c *prefixDelegationComp) Teardown(ctx context.Context) error {
	errs := []error{(&netns.Plan{Proto: pdProto, RouteNamespaces: c.routeNamespaces()}).Teardown(nil, nil)}
	b, err := os.ReadFile(c.cfg.StatePath(config.StatePDHint))
	if err != nil {
		return errors.Join(errs...)
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(string(b)))
	if err != nil {
		return errors.Join(errs...)
	}
	for _, lan := range c.cfg.LAN {
		s, ok := subnetOf(p, lan.PDSubnet)
		if !ok {
			continue
		}
		h, l, err := netns.HandleLink("", lan.Name)
		if err != nil {
			continue // the NIC is gone, and its addresses with it
		}
		if err := h.AddrDel(l, &netlink.Addr{IPNet: netns.IPNet(netip.PrefixFrom(routerAddrIn(s), 64))}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("remove %s from %s: %w", routerAddrIn(s), lan.Name, err))
		}
		h.Close()
	}
	return errors.Join(errs...)
}

// leased hears the WAN's DHCPv6 client; converging happens in the
// component's goroutine, not the client's.
func (c *prefixDelegationComp) leased(l *dhcp.WANLease6) {
	c.mu.Lock()
	c.latest = l
	c.mu.Unlock()
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// subnetOf is the n-th /64 of p, or false when p has no room for it.
func subnetOf(p netip.Prefix, n int) (netip.Prefix, bool) {
	if !p.Addr().Is6() || p.Bits() > 64 || n < 0 || (64-p.Bits() < 63 && n >= 1<<(64-p.Bits())) {
		return netip.Prefix{}, false
	}
	a := new(big.Int).SetBytes(p.Masked().Addr().AsSlice())
	a.Or(a, new(big.Int).Lsh(big.NewInt(int64(n)), 64))
	var b [16]byte
	a.FillBytes(b[:])
	return netip.PrefixFrom(netip.AddrFrom16(b), 64), true
}

// plan makes a delegation of lease's prefix, or says why it cannot be used:
// a prefix too small for the configured subnet ids is not half-applied.
func (c *prefixDelegationComp) plan(l *dhcp.WANLease6) (*delegation, error) {
	d := &delegation{prefix: l.Delegated, valid: l.PrefixValid, preferred: l.PrefixPreferred, at: l.Acquired, subnets: map[string]netip.Prefix{}}
	if d.valid == 0 {
		d.valid = l.Valid
	}
	if d.preferred == 0 || d.preferred > d.valid {
		d.preferred = d.valid
	}
	var errs []error
	for _, lan := range c.cfg.LAN {
		if lan.PDSubnet < 0 {
			continue
		}
		s, ok := subnetOf(l.Delegated, lan.PDSubnet)
		if !ok {
			errs = append(errs, fmt.Errorf("delegated prefix %s has no subnet %d for %s (a /%d holds %d)",
				l.Delegated, lan.PDSubnet, lan.Name, l.Delegated.Bits(), 1<<min(64-l.Delegated.Bits(), 30)))
			continue
		}
		d.subnets[lan.Name] = s
	}
	return d, errors.Join(errs...)
}

// converge brings the LANs to the latest lease: a new prefix replaces the
// current one (which is deprecated), a renewal extends it, and deprecated
// prefixes whose time is up are withdrawn.
func (c *prefixDelegationComp) converge(now time.Time) {
	c.mu.Lock()
	l := c.latest
	c.err = nil
	if l != nil && l.Delegated.IsValid() {
		d, err := c.plan(l)
		switch {
		case err != nil:
			c.err = err
		case c.cur == nil || c.cur.prefix != d.prefix:
			if c.cur != nil {
				c.deprecateLocked(c.cur, now)
				c.log.Info("delegated prefix changed; renumbering the LANs", "old", c.cur.prefix, "new", d.prefix)
			}
			c.cur = d
		default:
			c.cur.preferred, c.cur.valid, c.cur.at = d.preferred, d.valid, d.at // renewed
		}
	}
	if c.cur != nil && !now.Before(c.cur.validUntil()) {
		c.cur = nil // the ISP stopped renewing it
	}
	c.old = slices.DeleteFunc(c.old, func(d *delegation) bool { return !now.Before(d.validUntil()) })
	cur, old, perr := c.cur, slices.Clone(c.old), c.err
	c.mu.Unlock()

	err := errors.Join(perr, c.apply(cur, old, now))
	if err != nil {
		c.health.Failed(err)
		c.log.Warn("prefix delegation", "err", err)
	} else {
		c.health.Running()
	}
}

// deprecateLocked makes d an old prefix: preferred 0, valid for what it
// had left but at most two hours.
func (c *prefixDelegationComp) deprecateLocked(d *delegation, now time.Time) {
	left := min(max(d.validUntil().Sub(now), 0), maxDeprecation)
	d.preferred, d.valid, d.at = 0, left, now
	c.old = append(c.old, d)
}

// apply converges the machine and the services to cur and old.
func (c *prefixDelegationComp) apply(cur *delegation, old []*delegation, now time.Time) error {
	all := old
	if cur != nil {
		all = append(slices.Clone(old), cur)
	}
	var errs []error
	// The router's address on each LAN, with the prefix's lifetimes, so
	// that the kernel withdraws it by itself if routerd is gone.
	for _, lan := range c.cfg.LAN {
		for _, d := range all {
			s, ok := d.subnets[lan.Name]
			if !ok {
				continue
			}
			if err := setLifetimedAddr("", lan.Name, routerAddrIn(s), d, now); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if _, err := c.routes(all).Apply(); err != nil {
		errs = append(errs, err)
	}
	// The services hear of changes only; they count lifetimes down
	// themselves.
	var prefixes, lifetimes strings.Builder
	for _, d := range all {
		fmt.Fprintf(&prefixes, "%s current=%v %v;", d.prefix, d == cur, d.subnets)
		fmt.Fprintf(&lifetimes, "%s %v %v %d;", d.prefix, d.preferred, d.valid, d.at.UnixNano())
	}
	c.mu.Lock()
	newPrefixes, newLifetimes := prefixes.String() != c.pushedPrefixes, lifetimes.String() != c.pushedLifetimes
	c.mu.Unlock()
	if newLifetimes {
		byLAN := map[string][]dhcp.GlobalPrefix{}
		for _, d := range all {
			for name, s := range d.subnets {
				byLAN[name] = append(byLAN[name], dhcp.GlobalPrefix{Prefix: s, Preferred: max(d.preferredUntil().Sub(now), 0),
					Valid: max(d.validUntil().Sub(now), 0), Now: now})
			}
		}
		for _, lan := range c.cfg.LAN {
			if lan.PDSubnet < 0 {
				continue
			}
			if a := c.lan.ra[lan.Name]; a != nil {
				a.SetGlobalPrefixes(byLAN[lan.Name])
			}
			if s := c.lan.v6[lan.Name]; s != nil {
				s.SetGlobalPrefixes(byLAN[lan.Name])
			}
		}
	}
	if newPrefixes {
		fw := delegated{byLAN: map[string][]netip.Prefix{}}
		var routerAddrs []netip.Addr
		var clientNets []netip.Prefix
		for _, d := range all {
			fw.prefixes = append(fw.prefixes, d.prefix)
			for name, s := range d.subnets {
				fw.byLAN[name] = append(fw.byLAN[name], s)
				clientNets = append(clientNets, s)
				if d == cur {
					routerAddrs = append(routerAddrs, routerAddrIn(s))
				}
			}
		}
		c.dns.setGlobal(clientNets, routerAddrs, func(iface string) []netip.Prefix {
			if s, ok := cur.subnetOf(iface); ok {
				return []netip.Prefix{s}
			}
			return nil
		}, c.lan.currentLeases())
		if err := c.fw.setDelegated(fw); err != nil {
			errs = append(errs, err)
			newPrefixes = false // try again at the next pass
		}
	}
	c.mu.Lock()
	if newPrefixes {
		c.pushedPrefixes = prefixes.String()
	}
	c.pushedLifetimes = lifetimes.String()
	c.mu.Unlock()
	return errors.Join(errs...)
}

// routes are the delegated prefixes' routes: back to the main namespace
// from the wan and vpn namespaces (replies to LAN hosts' global addresses
// arrive there), and each LAN subnet in the path tables, which marked
// replies look up.
func (c *prefixDelegationComp) routes(all []*delegation) *netns.Plan {
	n := c.cfg.Netns
	p := &netns.Plan{Proto: pdProto, RouteNamespaces: c.routeNamespaces()}
	for _, d := range all {
		for _, ns := range []string{n.WAN, n.VPN} {
			p.Routes = append(p.Routes, netns.Route{NS: ns, Dst: d.prefix, Gw: n.MainAddr6().Addr(), Dev: config.TransitPeerLink})
		}
		for name, s := range d.subnets {
			for _, t := range []int{TableWAN, TableVPN} {
				p.Routes = append(p.Routes, netns.Route{Table: t, Dst: s, Dev: name})
			}
		}
	}
	return p
}

func (c *prefixDelegationComp) routeNamespaces() []string {
	return []string{"", c.cfg.Netns.WAN, c.cfg.Netns.VPN}
}

// routerAddrIn is the router's own address in a LAN subnet: ::1.
func routerAddrIn(s netip.Prefix) netip.Addr { return s.Masked().Addr().Next() }

// setLifetimedAddr puts a/64 on link in ns with d's remaining lifetimes,
// or updates them.
func setLifetimedAddr(ns, link string, a netip.Addr, d *delegation, now time.Time) error {
	h, l, err := netns.HandleLink(ns, link)
	if err != nil {
		return err
	}
	defer h.Close()
	valid := int(max(d.validUntil().Sub(now), time.Second) / time.Second)
	preferred := int(max(d.preferredUntil().Sub(now), 0) / time.Second)
	na := &netlink.Addr{IPNet: netns.IPNet(netip.PrefixFrom(a, 64)), ValidLft: valid, PreferedLft: min(preferred, valid),
		Flags: unix.IFA_F_NODAD}
	if err := h.AddrReplace(l, na); err != nil {
		return fmt.Errorf("address %s on %s: %w", a, link, err)
	}
	return nil
}

func (c *prefixDelegationComp) fillStatus(st *status.Status) {
	if st.WAN == nil {
		st.WAN = &status.WAN{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	pd := &status.PD{}
	show := func(d *delegation) status.DelegatedPrefix {
		out := status.DelegatedPrefix{Prefix: d.prefix.String(), PreferredUntil: d.preferredUntil(), ValidUntil: d.validUntil()}
		for _, lan := range c.cfg.LAN {
			if s, ok := d.subnets[lan.Name]; ok {
				out.Subnets = append(out.Subnets, status.LANSubnet{LAN: lan.Name, Prefix: s.String()})
			}
		}
		return out
	}
	if c.cur != nil {
		cur := show(c.cur)
		pd.Current = &cur
	}
	for _, d := range c.old {
		pd.Deprecated = append(pd.Deprecated, show(d))
	}
	if c.err != nil {
		pd.Error = c.err.Error()
	} else if c.cur == nil {
		pd.Error = "no delegated prefix from the WAN yet"
	}
	st.WAN.PD = pd
}
