package dhcp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/routerd/routerd/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The WAN lease on the link: its address and default route, put in place
// and taken away through netlink.

func (c *Client4) install(wl *WANLease) error {
	h, link, err := netns.HandleLink(c.cfg.NS, c.cfg.Iface)
	if err != nil {
		return err
	}
	defer h.Close()
	left := int(time.Until(wl.Expires()).Seconds())
	if left < 1 {
		left = 1
	}
	addr := &netlink.Addr{IPNet: netns.IPNet(wl.Address), ValidLft: left, PreferedLft: left}
	if err := h.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("add %s to %s: %w", wl.Address, c.cfg.Iface, err)
	}
	// An address from an earlier lease must go.
	if addrs, err := h.AddrList(link, netlink.FAMILY_V4); err == nil {
		for _, a := range addrs {
			if p := netns.PrefixOf(a.IPNet); p != wl.Address {
				if err := h.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
					c.cfg.Log.Warn("an earlier lease's address not removed", "addr", p, "iface", c.cfg.Iface, "err", err)
				}
			}
		}
	}
	if wl.Router.IsValid() {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: netns.IPNet(netip.MustParsePrefix("0.0.0.0/0")),
			Gw: wl.Router.AsSlice(), Priority: c.cfg.Metric, Protocol: RouteProtoDHCP, Family: netlink.FAMILY_V4}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("add default route via %s: %w", wl.Router, err)
		}
	}
	return nil
}

func (c *Client4) uninstall(wl *WANLease) {
	h, link, err := netns.HandleLink(c.cfg.NS, c.cfg.Iface)
	if err != nil {
		return
	}
	defer h.Close()
	// the default route goes with the address
	if err := h.AddrDel(link, &netlink.Addr{IPNet: netns.IPNet(wl.Address)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		c.cfg.Log.Warn("the lost lease's address not removed", "addr", wl.Address, "iface", c.cfg.Iface, "err", err)
	}
}

// InstallStatic configures a static WAN address and the default route of
// its family (a link-local IPv6 gateway is reached on iface), at metric.
func InstallStatic(ns, iface string, addr netip.Prefix, gw netip.Addr, metric int) error {
	h, link, err := netns.HandleLink(ns, iface)
	if err != nil {
		return err
	}
	defer h.Close()
	if _, err := netns.SyncAddrs(h, link, []netip.Prefix{addr}, false); err != nil {
		return err
	}
	dst, family := netip.MustParsePrefix("0.0.0.0/0"), netlink.FAMILY_V4
	if addr.Addr().Is6() {
		dst, family = netip.MustParsePrefix("::/0"), netlink.FAMILY_V6
	}
	r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: netns.IPNet(dst), Gw: gw.AsSlice(), Priority: metric,
		Protocol: unix.RTPROT_STATIC, Family: family}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("add default route via %s: %w", gw, err)
	}
	return nil
}
