package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/nclient6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/routerd/routerd/internal/atomicfile"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/status"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Client6Config configures the WAN's DHCPv6 client.
type Client6Config struct {
	NS    string
	Iface string
	// DUIDFrom is the interface whose MAC makes the client's DUID and
	// IAIDs, when Iface has none (a PPP link: the WAN NIC's); "" is Iface.
	DUIDFrom string
	// PD asks for a delegated prefix too (IA_PD).
	PD bool
	// HintPath keeps the last delegated prefix, asked for again (as a
	// hint) after a restart so that the LAN is not renumbered needlessly.
	HintPath string
	Log      *slog.Logger
	// OnLease hears of every new or renewed lease (nil: lost).
	OnLease func(*WANLease6)
}

// WANLease6 is what the ISP's DHCPv6 server gave the router.
type WANLease6 struct {
	Address   netip.Addr   // IA_NA
	Delegated netip.Prefix // IA_PD, when asked and given
	DNS       []netip.Addr
	Server    string // the server's DUID, hex
	Acquired  time.Time
	Valid     time.Duration
	// The delegated prefix's own lifetimes (Valid covers the address too).
	PrefixPreferred, PrefixValid time.Duration
	T1, T2                       time.Duration
}

// Client6 is the WAN's DHCPv6 client: SOLICIT/REQUEST for an address and
// (optionally) a delegated prefix, RENEW at T1, REBIND at T2, SOLICIT again
// when the lease runs out. It installs the address on its interface; the
// default route comes from the ISP's router advertisements.
type Client6 struct {
	cfg     Client6Config
	readopt chan struct{}

	mu    sync.Mutex
	reply *dhcpv6.Message
	lease *WANLease6
	state string
	err   error
}

// NewClient6 returns a client; Run starts it.
func NewClient6(cfg Client6Config) *Client6 {
	return &Client6{cfg: cfg, readopt: make(chan struct{}, 1), state: "init"}
}

// Readopted tells the client its interface came back.
func (c *Client6) Readopted() {
	select {
	case c.readopt <- struct{}{}:
	default:
	}
}

// Run runs the client until ctx ends. A session returns when the interface
// is re-adopted (or ctx ends), and a new socket starts the next.
func (c *Client6) Run(ctx context.Context) {
	for ctx.Err() == nil {
		nc, mac, err := c.open()
		if err != nil {
			c.fail(err)
			if waitFor(ctx, c.readopt, 2*time.Second) == cancelled {
				return
			}
			continue
		}
		c.session(ctx, nc, mac)
		nc.Close()
	}
}

func (c *Client6) open() (*nclient6.Client, net.HardwareAddr, error) {
	var nc *nclient6.Client
	var mac net.HardwareAddr
	err := netns.Do(c.cfg.NS, func() error {
		ifi, err := net.InterfaceByName(c.cfg.Iface)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		if c.cfg.DUIDFrom != "" {
			nic, err := net.InterfaceByName(c.cfg.DUIDFrom)
			if err != nil {
				return err
			}
			mac = nic.HardwareAddr
		}
		// The link-local address is what the socket binds to; it exists
		// only once the link is up.
		conn, err := nclient6.NewIPv6UDPConn(c.cfg.Iface, dhcpv6.DefaultClientPort)
		if err != nil {
			return err
		}
		// The client's MAC makes its DUID (a PPP link has none: the NIC's).
		nc, err = nclient6.NewWithConn(conn, mac, nclient6.WithTimeout(2*time.Second), nclient6.WithRetry(3))
		if err != nil {
			conn.Close()
		}
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open DHCPv6 client on %s: %w", c.cfg.Iface, err)
	}
	return nc, mac, nil
}

// duid is stable across restarts: DUID-LL from the interface's MAC.
func duidOf(mac net.HardwareAddr) dhcpv6.DUID {
	return &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac}
}

func iaidOf(mac net.HardwareAddr) [4]byte {
	var id [4]byte
	copy(id[:], mac[len(mac)-4:])
	return id
}

func (c *Client6) session(ctx context.Context, nc *nclient6.Client, mac net.HardwareAddr) {
	backoff := time.Second
	for ctx.Err() == nil {
		c.mu.Lock()
		reply, lease := c.reply, c.lease
		c.mu.Unlock()
		if reply == nil {
			c.setState(status.DHCPSoliciting)
			mods := []dhcpv6.Modifier{dhcpv6.WithClientID(duidOf(mac))}
			if c.cfg.PD {
				var hint []*dhcpv6.OptIAPrefix
				if p := c.hint(); p.IsValid() {
					hint = append(hint, &dhcpv6.OptIAPrefix{Prefix: netns.IPNet(p)})
				}
				mods = append(mods, dhcpv6.WithIAPD(iaidOf(mac), hint...))
			}
			adv, err := nc.Solicit(ctx, mods...)
			var rep *dhcpv6.Message
			if err == nil {
				rep, err = nc.Request(ctx, adv)
			}
			if err == nil {
				err = c.bound(rep)
			}
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				c.fail(fmt.Errorf("no DHCPv6 lease: %w", err))
				if waitFor(ctx, c.readopt, jitter(backoff)) != timedOut {
					return
				}
				backoff = min(backoff*2, 2*time.Minute)
				continue
			}
			backoff = time.Second
			continue
		}
		now := time.Now()
		t1, t2, exp := lease.Acquired.Add(lease.T1), lease.Acquired.Add(lease.T2), lease.Acquired.Add(lease.Valid)
		var wait time.Duration
		var kind dhcpv6.MessageType
		switch {
		case now.Before(t1):
			c.setState(status.DHCPBound)
			if waitFor(ctx, c.readopt, t1.Sub(now)) != timedOut {
				return
			}
			continue
		case now.Before(t2):
			kind, wait = dhcpv6.MessageTypeRenew, max(t2.Sub(now)/2, 10*time.Second)
		case now.Before(exp):
			kind, wait = dhcpv6.MessageTypeRebind, max(exp.Sub(now)/2, 10*time.Second)
		default:
			c.unbind("lease expired")
			continue
		}
		c.setState(kind.String())
		rep, err := nc.SendAndRead(ctx, nc.RemoteAddr(), c.extend(reply, kind), nclient6.IsMessageType(dhcpv6.MessageTypeReply))
		if err == nil {
			err = c.bound(rep)
		}
		if errors.Is(err, errNoBinding) {
			// The server forgot us (a restart, a renumbering): ask anew
			// rather than renewing in vain until the lease runs out.
			c.unbind("the server has no binding for the lease")
			continue
		}
		if err != nil {
			c.fail(fmt.Errorf("%s: %w", kind, err))
			if waitFor(ctx, c.readopt, wait) != timedOut {
				return
			}
		}
	}
}

// errNoBinding is a server's NoBinding status for our IA (RFC 8415 §18.2.10.1).
var errNoBinding = errors.New("no binding")

// extend builds a RENEW (to our server) or REBIND (to any) for the lease.
func (c *Client6) extend(reply *dhcpv6.Message, kind dhcpv6.MessageType) *dhcpv6.Message {
	m, _ := dhcpv6.NewMessage()
	m.MessageType = kind
	m.AddOption(reply.GetOneOption(dhcpv6.OptionClientID))
	if kind == dhcpv6.MessageTypeRenew {
		m.AddOption(reply.GetOneOption(dhcpv6.OptionServerID))
	}
	m.AddOption(dhcpv6.OptElapsedTime(0))
	if ia := reply.Options.OneIANA(); ia != nil {
		m.AddOption(ia)
	}
	if pd := reply.Options.OneIAPD(); pd != nil {
		m.AddOption(pd)
	}
	m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList))
	return m
}

// bound installs a REPLY's address and records its prefix.
func (c *Client6) bound(rep *dhcpv6.Message) error {
	l, err := leaseOf6(rep, time.Now())
	if err != nil {
		return err
	}
	if l.Address.IsValid() {
		if err := c.install(l); err != nil {
			return err
		}
	}
	if l.Delegated.IsValid() && c.cfg.HintPath != "" {
		if err := atomicfile.WriteFile(c.cfg.HintPath, []byte(l.Delegated.String()+"\n"), 0o644); err != nil {
			c.cfg.Log.Warn("remember the delegated prefix", "err", err)
		}
	}
	c.mu.Lock()
	changed := c.lease == nil || c.lease.Address != l.Address || c.lease.Delegated != l.Delegated
	c.reply, c.lease, c.err = rep, l, nil
	c.mu.Unlock()
	c.setState(status.DHCPBound)
	if changed {
		c.cfg.Log.Info("WAN DHCPv6 lease", "address", l.Address, "delegated", l.Delegated, "valid", l.Valid)
	}
	if c.cfg.OnLease != nil {
		c.cfg.OnLease(l)
	}
	return nil
}

// hint is the delegated prefix remembered from before, if any.
func (c *Client6) hint() netip.Prefix {
	if c.cfg.HintPath == "" {
		return netip.Prefix{}
	}
	b, err := os.ReadFile(c.cfg.HintPath)
	if err != nil {
		return netip.Prefix{}
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(string(b)))
	if err != nil || !p.Addr().Is6() {
		return netip.Prefix{}
	}
	return p
}

// leaseOf6 validates the ISP's REPLY into a lease: a global unicast
// address and/or a delegated prefix short enough to make /64s from
// (longer ones are ignored), lifetimes with 0 < T1 <= T2 <= valid.
func leaseOf6(rep *dhcpv6.Message, now time.Time) (*WANLease6, error) {
	if st := rep.Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess {
		return nil, fmt.Errorf("server says %s: %s", st.StatusCode, st.StatusMessage)
	}
	l := &WANLease6{Acquired: now}
	if sid := rep.Options.ServerID(); sid != nil {
		l.Server = fmt.Sprintf("%x", sid.ToBytes())
	}
	if ia := rep.Options.OneIANA(); ia != nil {
		if st := ia.Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess {
			if st.StatusCode == iana.StatusNoBinding {
				return nil, fmt.Errorf("IA_NA: %w", errNoBinding)
			}
			return nil, fmt.Errorf("IA_NA: %s", st.StatusCode)
		}
		// A server that renumbers lists the old address with lifetime 0
		// beside the new one: take the longest-lived.
		for _, a := range ia.Options.Addresses() {
			if addr, ok := netip.AddrFromSlice(a.IPv6Addr); ok && addr.Is6() && !addr.Is4In6() && usableUnicast(addr) &&
				a.ValidLifetime > 0 && a.ValidLifetime > l.Valid {
				l.Address, l.Valid = addr, a.ValidLifetime
			}
		}
		l.T1, l.T2 = ia.T1, ia.T2
	}
	if pd := rep.Options.OneIAPD(); pd != nil {
		if st := pd.Options.Status(); st != nil && st.StatusCode == iana.StatusNoBinding {
			return nil, fmt.Errorf("IA_PD: %w", errNoBinding)
		}
		var best *dhcpv6.OptIAPrefix
		for _, p := range pd.Options.Prefixes() {
			if p.Prefix == nil || p.ValidLifetime <= 0 || (best != nil && p.ValidLifetime <= best.ValidLifetime) {
				continue // the same goes for a prefix being renumbered away
			}
			a, ok := netip.AddrFromSlice(p.Prefix.IP)
			ones, bits := p.Prefix.Mask.Size()
			if ok && a.Is6() && !a.Is4In6() && bits == 128 && ones > 0 && ones <= 64 && usableUnicast(a) {
				best = p
				l.Delegated = netip.PrefixFrom(a, ones).Masked()
			}
		}
		if best != nil {
			l.PrefixValid = min(max(best.ValidLifetime, minLeaseTime), maxLeaseTime)
			l.PrefixPreferred = min(best.PreferredLifetime, l.PrefixValid)
			if l.Valid == 0 {
				l.Valid = best.ValidLifetime
			}
		}
		if l.T1 == 0 {
			l.T1, l.T2 = pd.T1, pd.T2
		}
	}
	for _, d := range rep.Options.DNS() {
		if a, ok := netip.AddrFromSlice(d); ok && usableUnicast(a) {
			l.DNS = append(l.DNS, a)
		}
	}
	if !l.Address.IsValid() && !l.Delegated.IsValid() {
		return nil, errors.New("reply without a usable address or prefix")
	}
	if l.Valid == 0 {
		l.Valid = time.Hour
	}
	l.Valid = min(max(l.Valid, minLeaseTime), maxLeaseTime)
	if l.T1 <= 0 || l.T1 > l.Valid {
		l.T1 = l.Valid / 2
	}
	if l.T2 < l.T1 || l.T2 > l.Valid {
		l.T2 = max(l.T1, l.Valid*4/5)
	}
	return l, nil
}

func (c *Client6) install(l *WANLease6) error {
	h, link, err := netns.HandleLink(c.cfg.NS, c.cfg.Iface)
	if err != nil {
		return err
	}
	defer h.Close()
	life := int(l.Valid.Seconds())
	a := &netlink.Addr{IPNet: netns.IPNet(netip.PrefixFrom(l.Address, 128)), ValidLft: life, PreferedLft: life, Flags: unix.IFA_F_NODAD}
	if err := h.AddrReplace(link, a); err != nil {
		return fmt.Errorf("add %s to %s: %w", l.Address, c.cfg.Iface, err)
	}
	return nil
}

func (c *Client6) unbind(why string) {
	c.mu.Lock()
	l := c.lease
	c.reply, c.lease = nil, nil
	c.mu.Unlock()
	c.cfg.Log.Warn("WAN DHCPv6 lease lost", "why", why)
	if l != nil && l.Address.IsValid() {
		if h, link, err := netns.HandleLink(c.cfg.NS, c.cfg.Iface); err == nil {
			if err := h.AddrDel(link, &netlink.Addr{IPNet: netns.IPNet(netip.PrefixFrom(l.Address, 128))}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				c.cfg.Log.Warn("the lost lease's address not removed", "addr", l.Address, "iface", c.cfg.Iface, "err", err)
			}
			h.Close()
		}
	}
	if c.cfg.OnLease != nil {
		c.cfg.OnLease(nil)
	}
}

func (c *Client6) setState(s string) {
	c.mu.Lock()
	c.state = s
	c.mu.Unlock()
}

func (c *Client6) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	c.cfg.Log.Debug("WAN DHCPv6", "err", err)
}

// Client6Status is the WAN's DHCPv6 state for routerctl status.
type Client6Status = status.DHCP6

// Status reports the client's state and lease.
func (c *Client6) Status() Client6Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Client6Status{State: c.state}
	if c.err != nil {
		st.Error = c.err.Error()
	}
	if l := c.lease; l != nil {
		if l.Address.IsValid() {
			st.Address = l.Address.String()
		}
		if l.Delegated.IsValid() {
			st.Delegated = l.Delegated.String()
		}
		for _, d := range l.DNS {
			st.DNS = append(st.DNS, d.String())
		}
		st.Expires = l.Acquired.Add(l.Valid)
	}
	return st
}

// waited says how a wait ended.
type waited int

const (
	timedOut waited = iota
	woken           // the interface came back: reopen the socket
	cancelled
)

func waitFor(ctx context.Context, wake <-chan struct{}, d time.Duration) waited {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return timedOut
	case <-wake:
		return woken
	case <-ctx.Done():
		return cancelled
	}
}
