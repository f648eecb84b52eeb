package dhcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/routerd/routerd/internal/atomicfile"
	"github.com/routerd/routerd/internal/rtproto"
	"github.com/routerd/routerd/netns"
	"github.com/routerd/routerd/router/status"
)

// RouteProtoDHCP marks the default route the WAN client installs.
const RouteProtoDHCP = rtproto.DHCP

// Client4Config configures the WAN DHCPv4 client.
type Client4Config struct {
	NS        string // namespace of the interface (wan)
	Iface     string
	Hostname  string
	StatePath string // where the lease is kept across restarts
	Metric    int    // of the default route (with a backup uplink, the two uplinks' differ)
	Log       *slog.Logger
	// OnLease is called with each new or renewed lease (and with nil when
	// the lease is lost), e.g. to give the resolver the ISP's DNS servers.
	OnLease func(*WANLease)
}

// WANLease is what the ISP gave the router.
type WANLease struct {
	Address  netip.Prefix
	Router   netip.Addr
	DNS      []netip.Addr
	Domain   string
	Server   netip.Addr
	MTU      int
	Acquired time.Time
	Lifetime time.Duration
	T1, T2   time.Duration
}

// Expires is when the lease runs out.
func (l *WANLease) Expires() time.Time { return l.Acquired.Add(l.Lifetime) }

// Client4 is the WAN's DHCPv4 client: DISCOVER/REQUEST, renew at T1, rebind
// at T2, back to DISCOVER on NAK or expiry, INIT-REBOOT with the saved lease
// after a restart. It installs the address and default route in its
// namespace.
type Client4 struct {
	cfg     Client4Config
	readopt chan struct{}

	mu     sync.Mutex
	lease  *nclient4.Lease
	wl     *WANLease
	state  string
	next   time.Time // next renew/rebind/retry
	err    error
	counts map[string]int
}

// NewClient4 returns a client; Run starts it.
func NewClient4(cfg Client4Config) *Client4 {
	return &Client4{cfg: cfg, readopt: make(chan struct{}, 1), state: "init", counts: map[string]int{}}
}

// Readopted tells the client its interface came back (a USB NIC reset): it
// reopens its socket and confirms its lease (INIT-REBOOT).
func (c *Client4) Readopted() {
	select {
	case c.readopt <- struct{}{}:
	default:
	}
}

// savedLease is the lease as kept on disk: the raw ACK, so nothing the
// server said is lost.
type savedLease struct {
	Offer    []byte    `json:"offer"`
	ACK      []byte    `json:"ack"`
	Acquired time.Time `json:"acquired"`
}

// Run runs the client until ctx ends. The address stays configured when it
// ends: forwarding goes on while routerd restarts, and the kernel drops the
// address by itself when its lifetime (the lease) runs out.
func (c *Client4) Run(ctx context.Context) {
	c.load()
	for ctx.Err() == nil {
		nc, err := c.open()
		if err != nil {
			c.fail(err)
			if !c.sleep(ctx, 2*time.Second) {
				return
			}
			continue
		}
		reopen := c.session(ctx, nc)
		nc.Close()
		if !reopen {
			return
		}
	}
}

func (c *Client4) open() (*nclient4.Client, error) {
	var nc *nclient4.Client
	err := netns.Do(c.cfg.NS, func() error {
		ifi, err := net.InterfaceByName(c.cfg.Iface)
		if err != nil {
			return err
		}
		conn, err := listenClient4(ifi)
		if err != nil {
			return err
		}
		nc, err = nclient4.NewWithConn(conn, ifi.HardwareAddr, nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(3))
		if err != nil {
			conn.Close()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open DHCP client on %s: %w", c.cfg.Iface, err)
	}
	return nc, nil
}

// session runs the lease state machine on one socket. It returns true when
// the socket must be reopened (the NIC was re-adopted), false when ctx ended.
func (c *Client4) session(ctx context.Context, nc *nclient4.Client) (reopen bool) {
	c.mu.Lock()
	lease := c.lease
	c.mu.Unlock()
	if lease != nil {
		// INIT-REBOOT: confirm the saved lease before anything else.
		c.setState(status.DHCPInitReboot)
		switch l, err := c.reboot(ctx, nc, lease); {
		case err == nil:
			c.bound(l)
		case isNak(err):
			c.unbind("NAK on INIT-REBOOT")
		default:
			// No answer: keep using the lease while it lasts (RFC 2131 §3.7).
			c.cfg.Log.Warn("no answer to INIT-REBOOT; keeping the lease", "err", err)
			c.bound(lease)
		}
	}
	backoff := time.Second
	for {
		c.mu.Lock()
		lease, wl := c.lease, c.wl
		c.mu.Unlock()
		if lease == nil {
			c.setState(status.DHCPSelecting)
			l, err := nc.Request(ctx, c.modifiers()...)
			if err == nil {
				c.count("ack")
				c.bound(l)
				backoff = time.Second
				continue
			}
			if ctx.Err() != nil {
				return false
			}
			if isNak(err) {
				c.count("nak")
			}
			c.fail(fmt.Errorf("no lease: %w", err))
			if !c.wait(ctx, jitter(backoff)) {
				return c.readoptPending(ctx)
			}
			backoff = min(backoff*2, 60*time.Second)
			continue
		}
		now := time.Now()
		t1, t2, exp := wl.Acquired.Add(wl.T1), wl.Acquired.Add(wl.T2), wl.Expires()
		switch {
		case now.Before(t1):
			c.setNext(status.DHCPBound, t1)
			if !c.wait(ctx, t1.Sub(now)) {
				return c.readoptPending(ctx)
			}
		case now.Before(t2):
			c.setState(status.DHCPRenewing)
			l, err := nc.Renew(ctx, lease, c.modifiers()...)
			c.afterRenew(ctx, l, err, now, t2)
		case now.Before(exp):
			c.setState(status.DHCPRebinding)
			l, err := c.rebind(ctx, nc, lease)
			c.afterRenew(ctx, l, err, now, exp)
		default:
			c.unbind("lease expired")
		}
		if ctx.Err() != nil {
			return false
		}
		select {
		case <-c.readopt:
			return true
		default:
		}
	}
}

// afterRenew handles a renew or rebind answer. Without one it waits half
// the time to the next deadline (RFC 2131 §4.4.5), at least a minute.
func (c *Client4) afterRenew(ctx context.Context, l *nclient4.Lease, err error, now, deadline time.Time) {
	switch {
	case err == nil:
		c.count("ack")
		c.bound(l)
	case isNak(err):
		c.count("nak")
		c.unbind("NAK")
	default:
		wait := max(deadline.Sub(now)/2, time.Minute)
		if now.Add(wait).After(deadline) {
			wait = deadline.Sub(now)
		}
		c.setNext(c.stateName(), now.Add(wait))
		c.wait(ctx, wait)
	}
}

// reboot sends a REQUEST for the saved address without a server identifier
// (INIT-REBOOT, RFC 2131 §4.3.2).
func (c *Client4) reboot(ctx context.Context, nc *nclient4.Client, lease *nclient4.Lease) (*nclient4.Lease, error) {
	req, err := dhcpv4.New(append(c.modifiers(),
		dhcpv4.WithHwAddr(nc.InterfaceAddr()),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(lease.ACK.YourIPAddr)),
		dhcpv4.WithBroadcast(true))...)
	if err != nil {
		return nil, err
	}
	return c.exchange(ctx, nc, lease, req)
}

// rebind broadcasts a REQUEST from the leased address to any server.
func (c *Client4) rebind(ctx context.Context, nc *nclient4.Client, lease *nclient4.Lease) (*nclient4.Lease, error) {
	req, err := dhcpv4.New(append(c.modifiers(),
		dhcpv4.WithHwAddr(nc.InterfaceAddr()),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(lease.ACK.YourIPAddr))...)
	if err != nil {
		return nil, err
	}
	return c.exchange(ctx, nc, lease, req)
}

func (c *Client4) exchange(ctx context.Context, nc *nclient4.Client, lease *nclient4.Lease, req *dhcpv4.DHCPv4) (*nclient4.Lease, error) {
	resp, err := nc.SendAndRead(ctx, nc.RemoteAddr(), req, nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak))
	if err != nil {
		return nil, err
	}
	if resp.MessageType() == dhcpv4.MessageTypeNak {
		return nil, &nclient4.ErrNak{Offer: lease.Offer, Nak: resp}
	}
	return &nclient4.Lease{Offer: resp, ACK: resp, CreationTime: time.Now()}, nil
}

func (c *Client4) modifiers() []dhcpv4.Modifier {
	mods := []dhcpv4.Modifier{dhcpv4.WithRequestedOptions(
		dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
		dhcpv4.OptionDomainName, dhcpv4.OptionBroadcastAddress, dhcpv4.OptionInterfaceMTU)}
	if c.cfg.Hostname != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(c.cfg.Hostname)))
	}
	return mods
}

// bound installs a lease: address (with the lease as its lifetime) and
// default route.
func (c *Client4) bound(l *nclient4.Lease) {
	wl, err := toWANLease(l)
	if err != nil {
		c.fail(err)
		return
	}
	if err := c.install(wl); err != nil {
		c.fail(err)
	} else {
		c.mu.Lock()
		c.err = nil
		c.mu.Unlock()
	}
	c.mu.Lock()
	changed := c.wl == nil || c.wl.Address != wl.Address || c.wl.Router != wl.Router
	c.lease, c.wl = l, wl
	c.mu.Unlock()
	c.setState(status.DHCPBound)
	c.save(l)
	if changed {
		c.cfg.Log.Info("WAN lease", "address", wl.Address, "router", wl.Router, "dns", wl.DNS, "lifetime", wl.Lifetime)
	}
	if c.cfg.OnLease != nil {
		c.cfg.OnLease(wl)
	}
}

func (c *Client4) unbind(why string) {
	c.mu.Lock()
	wl := c.wl
	c.lease, c.wl = nil, nil
	c.mu.Unlock()
	c.cfg.Log.Warn("WAN lease lost", "why", why)
	if wl != nil {
		c.uninstall(wl)
	}
	if err := os.Remove(c.cfg.StatePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.cfg.Log.Warn("WAN lease record not removed", "err", err)
	}
	if c.cfg.OnLease != nil {
		c.cfg.OnLease(nil)
	}
}

// Bounds on what the ISP's server may set. Outside them a value is
// ignored (MTU), clamped (times) or the lease refused (address, mask).
const (
	minLeaseTime = time.Minute
	maxLeaseTime = 365 * 24 * time.Hour
	minWANMTU    = 576
	maxWANMTU    = 9216
)

// toWANLease validates the ISP's ACK into a lease routerd can install: a
// unicast address with a usable mask, a gateway that is a unicast address,
// lifetimes with 0 < T1 <= T2 <= lifetime (a server saying otherwise would
// make the client renew in a busy loop or never), and a sane MTU.
func toWANLease(l *nclient4.Lease) (*WANLease, error) {
	ack := l.ACK
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || !usableUnicast(ip) {
		return nil, fmt.Errorf("lease without a usable address (%v)", ack.YourIPAddr)
	}
	ones := 24
	if m := ack.SubnetMask(); m != nil {
		var bits int
		ones, bits = m.Size()
		if bits != 32 || ones < 8 {
			return nil, fmt.Errorf("lease with an unusable subnet mask %v", net.IP(m))
		}
	}
	life := ack.IPAddressLeaseTime(0)
	if life <= 0 {
		life = time.Hour
	}
	life = min(max(life, minLeaseTime), maxLeaseTime)
	t1 := ack.IPAddressRenewalTime(life / 2)
	if t1 <= 0 || t1 > life {
		t1 = life / 2
	}
	t2 := ack.IPAddressRebindingTime(life * 7 / 8)
	if t2 < t1 || t2 > life {
		t2 = max(t1, life*7/8)
	}
	wl := &WANLease{Address: netip.PrefixFrom(ip, ones), Acquired: l.CreationTime, Lifetime: life,
		T1: t1, T2: t2, Domain: ack.DomainName()}
	if rs := ack.Router(); len(rs) > 0 {
		if gw, ok := netip.AddrFromSlice(rs[0].To4()); ok && usableUnicast(gw) && gw != ip {
			wl.Router = gw
		}
	}
	for _, d := range ack.DNS() {
		if a, ok := netip.AddrFromSlice(d.To4()); ok && usableUnicast(a) {
			wl.DNS = append(wl.DNS, a)
		}
	}
	wl.Server, _ = netip.AddrFromSlice(ack.ServerIdentifier().To4())
	if mtu, err := dhcpv4.GetUint16(dhcpv4.OptionInterfaceMTU, ack.Options); err == nil && mtu >= minWANMTU && mtu <= maxWANMTU {
		wl.MTU = int(mtu)
	}
	return wl, nil
}

// usableUnicast is an address a host may have or route to: not
// unspecified, multicast, broadcast, loopback or link-local.
func usableUnicast(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && !a.IsLoopback() &&
		!a.IsLinkLocalUnicast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

func (c *Client4) save(l *nclient4.Lease) {
	b, _ := json.Marshal(savedLease{Offer: l.Offer.ToBytes(), ACK: l.ACK.ToBytes(), Acquired: l.CreationTime})
	if err := atomicfile.WriteFile(c.cfg.StatePath, b, 0o600); err != nil {
		c.cfg.Log.Error("save WAN lease", "err", err)
	}
}

func (c *Client4) load() {
	b, err := os.ReadFile(c.cfg.StatePath)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var s savedLease
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	var offer, ack *dhcpv4.DHCPv4
	if err == nil {
		offer, err = dhcpv4.FromBytes(s.Offer)
	}
	if err == nil {
		ack, err = dhcpv4.FromBytes(s.ACK)
	}
	if err != nil {
		c.cfg.Log.Warn("ignoring unreadable saved WAN lease", "path", c.cfg.StatePath, "err", err)
		return
	}
	l := &nclient4.Lease{Offer: offer, ACK: ack, CreationTime: s.Acquired}
	wl, err := toWANLease(l)
	if err != nil || time.Now().After(wl.Expires()) {
		return
	}
	c.mu.Lock()
	c.lease, c.wl = l, wl
	c.mu.Unlock()
}

// wait waits for d; it returns false if ctx ended or the NIC was re-adopted
// (the caller then checks which).
func (c *Client4) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-c.readopt:
		c.readopt <- struct{}{} // for readoptPending
		return false
	}
}

func (c *Client4) readoptPending(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	select {
	case <-c.readopt:
		return true
	default:
		return false
	}
}

func (c *Client4) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-c.readopt:
		return true
	}
}

func (c *Client4) setState(s string) {
	c.mu.Lock()
	c.state = s
	c.mu.Unlock()
}

func (c *Client4) setNext(s string, t time.Time) {
	c.mu.Lock()
	c.state, c.next = s, t
	c.mu.Unlock()
}

func (c *Client4) stateName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *Client4) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	c.cfg.Log.Warn("WAN DHCP", "err", err)
}

func (c *Client4) count(what string) {
	c.mu.Lock()
	c.counts[what]++
	c.mu.Unlock()
}

// Client4Status is the WAN lease in routerctl status.
type Client4Status = status.DHCP4

// Status reports the client's state and lease.
func (c *Client4) Status() Client4Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Client4Status{State: c.state, NextRenew: c.next, Counts: map[string]int{}}
	for k, v := range c.counts {
		st.Counts[k] = v
	}
	if c.err != nil {
		st.Error = c.err.Error()
	}
	if wl := c.wl; wl != nil {
		st.Address, st.Acquired, st.Expires = wl.Address.String(), wl.Acquired, wl.Expires()
		if wl.Router.IsValid() {
			st.Router = wl.Router.String()
		}
		if wl.Server.IsValid() {
			st.Server = wl.Server.String()
		}
		for _, d := range wl.DNS {
			st.DNS = append(st.DNS, d.String())
		}
		if st.NextRenew.IsZero() {
			st.NextRenew = wl.Acquired.Add(wl.T1)
		}
	}
	return st
}

// Lease returns the current lease, or nil.
func (c *Client4) Lease() *WANLease {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wl
}

func isNak(err error) bool {
	var nak *nclient4.ErrNak
	return errors.As(err, &nak)
}

func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/2+1))
}
