package dns

// The resolver's sockets: a UDP and a TCP listener on every address of
// the LAN interfaces it serves, and on loopback, following the addresses.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
)

type listener struct {
	iface string
	udp   *udpServer
	tcp   *dns.Server
}

// Start opens the listeners and follows address changes until Stop.
func (r *Resolver) Start(ctx context.Context) error {
	ctx = r.run.Start(ctx)
	updates := make(chan netlink.AddrUpdate, 64)
	if err := netlink.AddrSubscribeWithOptions(updates, ctx.Done(), netlink.AddrSubscribeOptions{}); err != nil {
		return fmt.Errorf("subscribe to address changes: %w", err)
	}
	err := r.sync()
	r.run.Go(func(ctx context.Context) {
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-updates:
				if !ok {
					updates = nil
					continue
				}
				// Coalesce a burst of changes into one sync.
				for drained := false; !drained; {
					select {
					case <-updates:
					default:
						drained = true
					}
				}
			case <-tick.C:
			}
			if err := r.sync(); err != nil {
				r.cfg.Log.Warn("DNS listeners", "err", err)
			}
		}
	})
	if r.cfg.MDNS && r.cfg.Hostname != "" {
		if s, err := announce(r.cfg.Hostname, r.cfg.MDNSIfaces, r.cfg.RouterAddrs); err != nil {
			r.cfg.Log.Warn("announce over mDNS", "err", err)
		} else {
			r.mu.Lock()
			r.announcer = s
			r.mu.Unlock()
		}
		if h, err := startHostResponder(r.cfg.Hostname, r.cfg.MDNSIfaces, r.cfg.Log, &r.run); err != nil {
			r.cfg.Log.Warn("mDNS host responder", "err", err)
		} else {
			r.mu.Lock()
			r.responder = h
			r.mu.Unlock()
		}
	}
	return err
}

// Stop closes every listener and upstream socket, which ends their
// goroutines, and waits for all of the resolver's goroutines until ctx
// ends.
func (r *Resolver) Stop(ctx context.Context) error {
	r.mu.Lock()
	r.stopped = true
	for a, l := range r.listeners {
		l.close()
		delete(r.listeners, a)
	}
	if r.announcer != nil {
		r.announcer.Shutdown() // zeroconf's own goroutines: Shutdown ends them
		r.announcer = nil
	}
	if r.responder != nil {
		r.responder.close()
		r.responder = nil
	}
	r.mu.Unlock()
	r.fwd.close()
	for _, f := range r.views {
		f.close()
	}
	return r.run.Stop(ctx)
}

// sync makes the listeners match the current addresses of the LAN
// interfaces, plus loopback.
func (r *Resolver) sync() error {
	want := map[netip.Addr]string{netip.MustParseAddr("127.0.0.1"): "lo", netip.IPv6Loopback(): "lo"}
	for _, name := range r.cfg.ListenIfaces {
		link, err := netlink.LinkByName(name)
		if err != nil {
			continue // a LAN NIC not there (yet): listen when it is
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok || ip.IsLinkLocalUnicast() {
				continue
			}
			want[ip.Unmap()] = name
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return nil
	}
	var errs []string
	for a, l := range r.listeners {
		if _, ok := want[a]; !ok {
			l.close()
			delete(r.listeners, a)
			r.cfg.Log.Info("DNS stopped listening", "addr", a)
		}
	}
	for a, iface := range want {
		if _, ok := r.listeners[a]; ok {
			continue
		}
		l, err := r.listen(a, iface)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		r.listeners[a] = l
		r.cfg.Log.Info("DNS listening", "addr", a, "iface", iface)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func (r *Resolver) listen(a netip.Addr, iface string) (*listener, error) {
	addr := netip.AddrPortFrom(a, uint16(r.cfg.Port))
	udp, err := listenUDP(addr, iface, r, func() { r.st.queries.Add(1); r.st.formerr.Add(1) })
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		udp.close()
		return nil, fmt.Errorf("listen tcp %s: %w", addr, err)
	}
	if r.cfg.MarkRoute != nil {
		ln = markListener{ln}
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) { r.serve(w, m, iface) })
	l := &listener{iface: iface, udp: udp,
		tcp: &dns.Server{Listener: ln, Handler: h, ReadTimeout: 10 * time.Second}}
	r.run.Go(func(context.Context) { // ends at Shutdown, with the connections' handlers
		if err := l.tcp.ActivateAndServe(); err != nil {
			r.cfg.Log.Warn("DNS over TCP stopped serving", "addr", addr, "err", err)
		}
	})
	return l, nil
}

func (l *listener) close() {
	l.udp.close()
	_ = l.tcp.Shutdown() // fails only for a server not serving, which has nothing to stop
}

// serve answers one query.
func (r *Resolver) serve(w dns.ResponseWriter, req *dns.Msg, iface string) {
	var hint Route
	if m, ok := w.RemoteAddr().(markedAddr); ok && r.cfg.MarkRoute != nil {
		hint = r.cfg.MarkRoute(m.mark)
	}
	resp := r.answer(req, remoteAddr(w), iface, hint, w.RemoteAddr().Network() == "tcp")
	if resp != nil {
		w.WriteMsg(resp)
	}
}

func remoteAddr(w dns.ResponseWriter) netip.Addr {
	a := w.RemoteAddr()
	if m, ok := a.(markedAddr); ok {
		a = m.TCPAddr
	}
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}
