package router

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/pppoe"
	"github.com/routerd/routerd/router/status"
)

// Metrics of the uplinks' own default routes when there is a backup:
// each uplink keeps a default route of its own (its probes leave by it),
// and the failover's, at failover.Metric, goes in front of them.
const (
	metricPrimary = 10
	metricBackup  = 20
)

// uplink is one uplink's addressing: its DHCPv4 and DHCPv6 clients, its
// PPPoE session or its static addresses, on its NIC or VLAN.
type uplink struct {
	role   string // "primary" | "backup"
	w      *config.WAN
	ns     string
	metric int
	client *dhcp.Client4
	v6     *dhcp.Client6
	ppp    *pppoe.Client
	log    *slog.Logger

	// onLease hears of each of its leases, onIface of each new PPP
	// interface.
	onLease  func(*uplink, *dhcp.WANLease)
	onLease6 func(*dhcp.WANLease6)
	onIface  func()

	mu    sync.Mutex
	lease *dhcp.WANLease
}

func newUplink(cfg *config.Config, role string, w *config.WAN, metric int, log *slog.Logger) *uplink {
	u := &uplink{role: role, w: w, ns: cfg.Netns.WAN, metric: metric, log: log}
	state := func(primary, backup string) string {
		if role == "backup" {
			return cfg.StatePath(backup)
		}
		return cfg.StatePath(primary)
	}
	if w.IPv4 == "dhcp" {
		u.client = dhcp.NewClient4(dhcp.Client4Config{
			NS: u.ns, Iface: w.Link(), Hostname: cfg.Hostname, Metric: metric,
			StatePath: state(config.StateWANDHCP4, config.StateBackupDHCP4), Log: log,
			OnLease: u.leased,
		})
	}
	if w.IPv6 == "dhcp" { // the primary's only (config): its prefix is the LANs'
		// Over PPPoE the client runs on the session's interface (made
		// anew by each session: started again by pppUp6), its DUID from
		// the NIC's MAC.
		duid := ""
		if w.PPPoE != nil {
			duid = w.Name
		}
		u.v6 = dhcp.NewClient6(dhcp.Client6Config{NS: u.ns, Iface: w.Iface(), DUIDFrom: duid, PD: true,
			HintPath: cfg.StatePath(config.StatePDHint), Log: log, OnLease: func(l *dhcp.WANLease6) { u.onLease6(l) }})
	}
	if p := w.PPPoE; p != nil {
		nic := ""
		if w.VLAN != 0 {
			nic = w.Name
		}
		u.ppp = pppoe.NewClient(pppoe.Config{NS: u.ns, Link: w.Link(), NIC: nic, Iface: w.Iface(), Metric: metric,
			Username: p.Username, Password: p.Password, Service: p.Service, ACName: p.ACName, MTU: p.MTU,
			IPv6: w.IPv6 == "dhcp", EchoInterval: p.LCPEcho, EchoFailures: p.LCPFailures,
			Log: log.With("client", "pppoe"), OnUp: u.pppUp, OnUp6: u.pppUp6, OnDown: u.pppDown})
	}
	return u
}

func (u *uplink) leased(l *dhcp.WANLease) {
	u.mu.Lock()
	u.lease = l
	u.mu.Unlock()
	u.onLease(u, l)
}

// current is its lease (nil: none yet, or lost).
func (u *uplink) current() *dhcp.WANLease {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lease
}

// pppUp hands the session on as the uplink's lease: its address, the
// ISP's end as the router, its DNS servers. A PPP session has no
// lifetime; it lasts until it ends.
func (u *uplink) pppUp(s pppoe.Session) {
	if _, err := netns.SetSysctls(uplinkSysctls(u.ns, u.w, s.Iface, u.loose())); err != nil {
		u.log.Warn("PPP interface settings", "err", err)
	}
	u.onIface()
	u.leased(&dhcp.WANLease{Address: netip.PrefixFrom(s.Local, 32), Router: s.Peer, DNS: s.DNS, MTU: s.MTU,
		Acquired: s.Began, Lifetime: pppLifetime})
}

func (u *uplink) pppDown(reason string) { u.leased(nil) }

// pppUp6: IPv6CP agreed and the link is up; DHCPv6 starts on it.
func (u *uplink) pppUp6(pppoe.Session) {
	if u.v6 != nil {
		u.v6.Readopted()
	}
}

// loose: with a backup, each uplink takes traffic its default route does
// not point at (the standby's probes' answers): reverse-path filtering is
// loose on both.
func (u *uplink) loose() bool { return u.metric != 0 }

// pppLifetime is what a PPP session's lease says of its lifetime: none.
const pppLifetime = 100 * 365 * 24 * time.Hour

// link makes the uplink's VLAN on its NIC, with the settings of the
// interface that carries the uplink's addresses (or, under PPPoE, none).
func (u *uplink) link() error {
	w := u.w
	if w.VLAN == 0 {
		return nil
	}
	sys := uplinkSysctls(u.ns, w, w.Link(), u.loose())
	if w.PPPoE != nil {
		sys = []netns.Sysctl{sysctl(u.ns, "net/ipv6/conf/"+w.Link()+"/disable_ipv6", "1")}
	}
	_, err := netns.EnsureVLAN(u.ns, netns.VLAN{Name: w.Link(), Parent: w.Name, ID: w.VLAN, MTU: w.MTU}, sys)
	return err
}

// readopted: the NIC came back (a USB NIC reset); everything on it is
// made again.
func (u *uplink) readopted() error {
	err := u.link()
	if u.ppp != nil {
		u.ppp.Restart("the WAN NIC was reset")
	}
	if u.v6 != nil {
		u.v6.Readopted()
	}
	if u.client != nil {
		u.client.Readopted()
	}
	if e := u.static(); e != nil {
		err = e
	}
	return err
}

// static installs what is static of the uplink's addressing (IPv4, IPv6
// or both), on the link that carries it, and announces the primary's
// routed IPv6 prefix.
func (u *uplink) static() error {
	w := u.w
	if w.IPv4 == "static" {
		if err := dhcp.InstallStatic(u.ns, w.Link(), w.Address, w.Gateway, u.metric); err != nil {
			return err
		}
		u.leased(&dhcp.WANLease{Address: w.Address, Router: w.Gateway, Acquired: time.Now(), Lifetime: pppLifetime})
	}
	if w.IPv6 == "static" {
		if err := dhcp.InstallStatic(u.ns, w.Link(), w.Address6, w.Gateway6, u.metric); err != nil {
			return err
		}
		if u.role == "primary" {
			u.onLease6(static6Lease(w, time.Now()))
		}
	}
	return nil
}

// static6Lifetime is the lifetime the routed prefix is given: the LANs'
// router advertisements count it down, and it is renewed long before.
const static6Lifetime = 24 * time.Hour

// static6Lease is the static IPv6 addressing as the DHCPv6 client would
// report it: the address, and prefix6 as the delegated prefix.
func static6Lease(w *config.WAN, now time.Time) *dhcp.WANLease6 {
	return &dhcp.WANLease6{Address: w.Address6.Addr(), Delegated: w.Prefix6, Acquired: now, Valid: static6Lifetime,
		PrefixPreferred: static6Lifetime, PrefixValid: static6Lifetime}
}

// status is the uplink's part of status: how it is addressed and what
// it has.
func (u *uplink) status() *status.WAN {
	w := u.w
	ws := &status.WAN{Mode: w.IPv4, IPv6: w.IPv6, VLAN: w.VLAN}
	if ws.VLAN != 0 {
		ws.Link = w.Link()
	}
	if u.v6 != nil {
		s := u.v6.Status()
		ws.DHCP6 = &s
	}
	switch {
	case u.ppp != nil:
		ws.PPPoE = pppoeStatus(u.ppp.Status())
	case u.client != nil:
		s := u.client.Status()
		ws.DHCP = &s
	default:
		ws.Addr = w.Address.String() + " via " + w.Gateway.String()
	}
	if w.IPv6 == "static" {
		ws.Addr6 = w.Address6.String() + " via " + w.Gateway6.String()
		if w.Prefix6.IsValid() {
			ws.Addr6 += ", routed " + w.Prefix6.String()
		}
	}
	return ws
}

func pppoeStatus(s pppoe.Status) *status.PPPoE {
	return &status.PPPoE{State: s.State, AC: s.AC, ACMAC: s.ACMAC, SessionID: s.SessionID, Address: s.Local, Peer: s.Peer,
		MTU: s.MTU, Since: s.Since, EchoRTT: s.EchoRTT, Reconnects: s.Reconnects, LastEnd: s.LastEnd, NextTry: s.NextTry}
}
