package router

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/routerd/routerd/dhcp"
	"github.com/routerd/routerd/internal/atomicfile"
	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/internal/via"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/portmap"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/rules"
)

// portmapComp serves NAT-PMP and PCP on the LANs of [portmap]: the
// mappings go into the firewall as map elements (wan's DNAT, main's
// forward), are kept in state_dir across restarts, and expire.
type portmapComp struct {
	cfg   *config.Config
	fw    *firewallComp
	macOf func(netip.Addr) string
	log   *slog.Logger
	table *portmap.Table
	h     *portmap.Handler
	state string
	run   lifecycle.Group

	mu      sync.Mutex
	wan     netip.Addr
	conns   []*net.UDPConn
	closers []io.Closer // UPnP's HTTP servers and SSDP socket
	// cur mirrors the table as its changes come (OnChange runs with the
	// table locked, so it cannot be listed then).
	cur map[string]portmap.Mapping
}

func newPortmapComp(cfg *config.Config, fw *firewallComp, macOf func(netip.Addr) string, log *slog.Logger) *portmapComp {
	pm := cfg.PortMap
	c := &portmapComp{cfg: cfg, fw: fw, macOf: macOf, log: log, state: cfg.StatePath("portmap.json"), cur: map[string]portmap.Mapping{}}
	c.table = portmap.NewTable(portmap.Policy{From: pm.From, To: pm.To, MaxPerClient: pm.MaxPerClient,
		MaxLifetime: pm.MaxLifetime, Allowed: c.wanPath})
	c.table.OnChange = c.changed
	c.h = &portmap.Handler{Table: c.table, External: c.external, Start: time.Now(), NoNATPMP: !pm.NATPMP, NoPCP: !pm.PCP}
	return c
}

// wanPath: only a client whose connections leave by the WAN may map (a
// VPN-path client's replies would leave through the tunnel).
func (c *portmapComp) wanPath(client netip.Addr) bool {
	f := config.Flow{Src: client}
	for _, l := range c.cfg.LAN {
		for _, a := range l.Addresses {
			if a.Masked().Contains(client) {
				f.Iface = l.Name
			}
		}
	}
	if mac, err := net.ParseMAC(c.macOf(client)); err == nil {
		f.MAC = mac
	}
	return c.cfg.Routing.PathOf(f) == via.WAN
}

func (c *portmapComp) external() netip.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wan
}

func (c *portmapComp) wanLease(l *dhcp.WANLease) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wan = netip.Addr{}
	if l != nil {
		c.wan = l.Address.Addr()
	}
}

func toRules(ms []portmap.Mapping) []rules.PortMapping {
	var out []rules.PortMapping
	for _, m := range ms {
		out = append(out, rules.PortMapping{Proto: m.Proto, External: m.External, To: netip.AddrPortFrom(m.Client, m.Internal)})
	}
	return out
}

// changed puts the table's changes in the firewall and the state file.
func (c *portmapComp) changed(added, removed []portmap.Mapping) {
	if err := rules.UpdatePortMaps(c.cfg.Netns.WAN, "", toRules(added), toRules(removed)); err != nil {
		c.log.Warn("port mappings not applied", "err", err)
	}
	c.mu.Lock()
	for _, m := range removed {
		delete(c.cur, mapKey(m))
		c.log.Info("port unmapped", "proto", m.Proto, "external", m.External, "client", m.Client)
	}
	for _, m := range added {
		c.cur[mapKey(m)] = m
		c.log.Info("port mapped", "proto", m.Proto, "external", m.External, "client", m.Client, "internal", m.Internal, "by", m.By)
	}
	all := slices.Collect(maps.Values(c.cur))
	c.mu.Unlock()
	c.fw.setPortMaps(toRules(all))
	c.save(all)
}

func mapKey(m portmap.Mapping) string { return fmt.Sprintf("%s/%d", m.Proto, m.External) }

// save keeps the mappings for a restart. (A renewal is not saved: after a
// restart a mapping expires at its first term, unless renewed again, as
// clients do halfway through.)
func (c *portmapComp) save(all []portmap.Mapping) {
	b, _ := json.Marshal(all)
	if err := atomicfile.WriteFile(c.state, b, 0o600); err != nil {
		c.log.Warn("port mappings not kept for a restart", "err", err)
	}
}

func (c *portmapComp) Name() string { return "portmap" }

func (c *portmapComp) Start(ctx context.Context) error {
	var saved []portmap.Mapping
	if b, err := os.ReadFile(c.state); err == nil {
		if err := json.Unmarshal(b, &saved); err != nil {
			c.log.Warn("the saved port mappings are unreadable: starting without", "err", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("the saved port mappings are unreadable: starting without", "err", err)
	}
	if kept := c.table.Restore(saved, time.Now()); len(kept) > 0 {
		if err := rules.UpdatePortMaps(c.cfg.Netns.WAN, "", toRules(kept), nil); err != nil {
			c.log.Warn("port mappings not applied", "err", err)
		}
		c.mu.Lock()
		for _, m := range kept {
			c.cur[mapKey(m)] = m
		}
		c.mu.Unlock()
		c.fw.setPortMaps(toRules(kept))
	}
	ctx = c.run.Start(ctx)
	var errs []error
	for _, name := range c.cfg.PortMap.Listen {
		for _, l := range c.cfg.LAN {
			if l.Name != name {
				continue
			}
			a, ok := l.Addr4()
			if !ok {
				continue
			}
			if c.cfg.PortMap.NATPMP || c.cfg.PortMap.PCP {
				pc, err := freebind.ListenPacket(ctx, "udp4", netip.AddrPortFrom(a.Addr(), portmap.Port).String())
				if err != nil {
					errs = append(errs, err)
					continue
				}
				conn := pc.(*net.UDPConn)
				c.mu.Lock()
				c.conns = append(c.conns, conn)
				c.mu.Unlock()
				c.run.Go(func(ctx context.Context) { c.serve(ctx, conn) })
			}
			if c.cfg.PortMap.UPnP {
				errs = append(errs, c.serveUPnP(a.Addr()))
			}
		}
	}
	if c.cfg.PortMap.UPnP {
		errs = append(errs, c.serveSSDP())
	}
	c.run.Every(5*time.Second, func(context.Context) { c.table.Expire(time.Now()) })
	return errors.Join(errs...)
}

// serve answers requests on one LAN's socket until Stop closes it.
func (c *portmapComp) serve(ctx context.Context, conn *net.UDPConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				c.log.Warn("port mapping: receive", "err", err)
			}
			return
		}
		if resp := c.h.Handle(buf[:n], from.Addr().Unmap(), time.Now()); resp != nil {
			if _, err := conn.WriteToUDPAddrPort(resp, from); err != nil {
				c.log.Debug("port mapping: answer not sent", "to", from, "err", err)
			}
		}
	}
}

func (c *portmapComp) Stop(ctx context.Context) error {
	c.mu.Lock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
	for _, cl := range c.closers {
		cl.Close()
	}
	c.closers = nil
	c.mu.Unlock()
	return c.run.Stop(ctx)
}

func (c *portmapComp) fillStatus(st *status.Status) {
	pm := &status.PortMap{}
	for _, m := range c.table.List() {
		pm.Mappings = append(pm.Mappings, status.PortMapping{Proto: m.Proto, External: m.External, Client: m.Client.String(),
			Internal: m.Internal, By: m.By, Expires: m.Expires})
	}
	st.PortMap = pm
}

// upnpUUID is the gateway's UPnP identity: the same across restarts.
func (c *portmapComp) upnpUUID() string {
	h := sha1.Sum([]byte("routerd-igd:" + c.cfg.Hostname))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// serveUPnP serves the description and the control on a LAN address.
func (c *portmapComp) serveUPnP(a netip.Addr) error {
	ln, err := freebind.Listen(context.Background(), "tcp4", netip.AddrPortFrom(a, portmap.UPnPPort).String())
	if err != nil {
		return fmt.Errorf("UPnP on %s: %w", a, err)
	}
	srv := &http.Server{Handler: &portmap.UPnP{Handler: c.h, UUID: c.upnpUUID()}, ReadHeaderTimeout: 5 * time.Second}
	c.mu.Lock()
	c.closers = append(c.closers, srv)
	c.mu.Unlock()
	c.run.Go(func(context.Context) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Warn("UPnP stopped serving", "addr", a, "err", err)
		}
	})
	return nil
}

// serveSSDP answers M-SEARCH on the listed LANs: one socket on port 1900
// in the SSDP group on each, the answer pointing at the LAN's own address.
func (c *portmapComp) serveSSDP() error {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1))
		})
		return errors.Join(err, serr)
	}}
	raw, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:1900")
	if err != nil {
		return fmt.Errorf("SSDP: %w", err)
	}
	pc := ipv4.NewPacketConn(raw)
	if err := pc.SetControlMessage(ipv4.FlagInterface, true); err != nil {
		raw.Close()
		return fmt.Errorf("SSDP: %w", err)
	}
	group := &net.UDPAddr{IP: net.IPv4(239, 255, 255, 250)}
	where := map[string]string{} // LAN name -> http://ADDR:PORT
	for _, name := range c.cfg.PortMap.Listen {
		for _, l := range c.cfg.LAN {
			if a, ok := l.Addr4(); ok && l.Name == name {
				where[name] = fmt.Sprintf("http://%s", netip.AddrPortFrom(a.Addr(), portmap.UPnPPort))
			}
		}
	}
	// The group is joined on each LAN as it is there, and again when it
	// comes back (a USB NIC that reset is another interface).
	join := func(context.Context) {
		for name := range where {
			if ifi, err := net.InterfaceByName(name); err == nil {
				if err := pc.JoinGroup(ifi, group); err != nil && !errors.Is(err, unix.EADDRINUSE) {
					c.log.Debug("SSDP: join the group", "lan", name, "err", err)
				}
			}
		}
	}
	join(context.Background())
	c.run.Every(10*time.Second, join)
	c.mu.Lock()
	c.closers = append(c.closers, raw)
	c.mu.Unlock()
	uuid := c.upnpUUID()
	c.run.Go(func(ctx context.Context) {
		buf := make([]byte, 2048)
		for {
			n, cm, src, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed by Stop
			}
			loc, ok := "", false
			if cm != nil {
				if ifi, err := net.InterfaceByIndex(cm.IfIndex); err == nil {
					loc, ok = where[ifi.Name]
				}
			}
			if !ok {
				continue // not a listed LAN
			}
			if resp := portmap.SSDPReply(buf[:n], loc, uuid); resp != nil {
				if _, err := pc.WriteTo(resp, nil, src); err != nil {
					c.log.Debug("SSDP: answer not sent", "to", src, "err", err)
				}
			}
		}
	})
	return nil
}

// freebind listens on a LAN address that may not be there yet (a USB NIC
// still coming up): the socket is bound all the same and answers once the
// address is.
var freebind = net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_FREEBIND, 1) })
	return errors.Join(err, serr)
}}
