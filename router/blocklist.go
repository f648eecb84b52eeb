package router

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/dns"
	"github.com/routerd/routerd/internal/via"
	"github.com/routerd/routerd/router/blocklist"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/status"
)

// blocklistComp keeps the blocklists applied. It runs even with no list
// configured, so that removing the last list from the config empties the
// sets instead of leaving them forcing.
type blocklistComp struct {
	cfg *config.Config
	m   *blocklist.Manager
	// endpoints are the tunnel's resolved endpoint addresses (nil without
	// a tunnel).
	endpoints func() []netip.Addr

	mu      sync.Mutex
	wanAddr netip.Addr
}

// clockWait bounds how long https lists wait for the clock's first
// synchronisation before trying with the clock as it is.
const clockWait = 5 * time.Minute

// newBlocklistComp: blocks, when not nil, are the resolver's block lists,
// which the DNS block lists ([[dns.block]]) fill.
func newBlocklistComp(cfg *config.Config, endpoints func() []netip.Addr, synced <-chan struct{}, blocks *dns.Blocklists, log *slog.Logger) *blocklistComp {
	c := &blocklistComp{cfg: cfg, endpoints: endpoints}
	bc := blocklist.Config{
		Dir: cfg.StatePath(config.StateBlocklists), LANIfaces: cfg.LANNets.Ifaces, Mask: via.Mask,
		Protect:   c.protected,
		Transport: selfResolvingTransport(), Clock: synced, ClockWait: clockWait, Blocks: blocks, Log: log,
	}
	for _, b := range cfg.Blocklists {
		bc.Lists = append(bc.Lists, blocklist.List{Name: b.Name, URL: b.URL, File: b.File, Format: b.Format, Via: b.Via,
			Refresh: b.Refresh, MinRatio: b.MinRatio, DomainTTLFloor: b.DomainTTLFloor, Timeout: b.Timeout, MaxSize: b.MaxSize, MaxEntries: b.MaxEntries,
			RootCAs: b.RootCAs, Block: b.Block, Null: b.Null, LANs: b.LANs})
	}
	c.m = blocklist.New(bc)
	return c
}

// selfResolvingTransport fetches lists with names resolved by routerd's
// own resolver on loopback: the host's resolv.conf may point nowhere (a
// fresh image) or at the router itself anyway. Downloads take the router's
// path (routing.router), like all of its own traffic.
func selfResolvingTransport() http.RoundTripper {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: 30 * time.Second, Resolver: ownResolver()}
	tr.DialContext = d.DialContext
	return tr
}

// ownResolver resolves names with routerd's own resolver on loopback, for
// the router's own lookups (list downloads, time servers).
func ownResolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, "127.0.0.1:53")
	}}
}

// protected is what no list may capture: the router's own networks (LANs,
// transit, the tunnel's addresses), the tunnel's endpoints (a list must
// never route the tunnel into itself), the WAN address and the bogons.
func (c *blocklistComp) protected() *blocklist.Protected {
	ps := append([]netip.Prefix(nil), blocklist.Bogons...)
	ps = append(ps, c.cfg.Netns.Transit4.Masked(), c.cfg.Netns.Transit6.Masked())
	ps = append(ps, c.cfg.LANNets.All()...)
	if c.cfg.WAN.Address.IsValid() {
		ps = append(ps, c.cfg.WAN.Address.Masked())
	}
	var eps []netip.Addr
	if v := c.cfg.VPN; v != nil {
		for _, a := range v.Addresses {
			ps = append(ps, a.Masked())
		}
		for _, p := range v.Peers {
			if p.Endpoint.Addr.IsValid() {
				eps = append(eps, p.Endpoint.Addr)
			}
		}
	}
	if c.endpoints != nil {
		eps = append(eps, c.endpoints()...)
	}
	c.mu.Lock()
	if c.wanAddr.IsValid() {
		eps = append(eps, c.wanAddr)
	}
	c.mu.Unlock()
	for _, a := range eps {
		a = a.Unmap()
		ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
	}
	return blocklist.NewProtected(ps...)
}

// wanLease remembers the WAN address (protected) and, when the WAN comes
// up, retries the lists that could not be fetched without it.
func (c *blocklistComp) wanLease(l *dhcp.WANLease) {
	c.mu.Lock()
	c.wanAddr = netip.Addr{}
	if l != nil {
		c.wanAddr = l.Address.Addr()
	}
	c.mu.Unlock()
	if l != nil {
		c.m.Retry()
	}
}

// observe is the resolver's hook for domain lists.
func (c *blocklistComp) observe(path via.Path, names []string, addrs []netip.Addr, ttl time.Duration) {
	c.m.Observe(path, names, addrs, ttl)
}

func (c *blocklistComp) Name() string                    { return "blocklist" }
func (c *blocklistComp) Start(ctx context.Context) error { return c.m.Start(ctx) }
func (c *blocklistComp) Stop(ctx context.Context) error  { return c.m.Stop(ctx) }

// Teardown removes the lists' table; the last good copies stay in
// state_dir, as data.
func (c *blocklistComp) Teardown(ctx context.Context) error { return blocklist.Teardown("") }

func (c *blocklistComp) fillStatus(st *status.Status) {
	if len(c.cfg.Blocklists) == 0 {
		return
	}
	st.Blocklists = &status.Blocklists{Lists: c.m.Status()}
}
