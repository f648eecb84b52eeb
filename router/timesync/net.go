package timesync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/beevik/ntp"
	"golang.org/x/sys/unix"
)

// sntp asks one server over UDP (names through the configured resolver;
// the first address answers for the name) and validates the answer:
// leap alarm, stratum 0 (a kiss of death) or 16, a stale reference or an
// absurd dispersion make it unusable.
func (s *Service) sntp(ctx context.Context, server string) Sample {
	smp := Sample{Server: server}
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		host, port = server, "123"
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		r := s.cfg.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		lctx, cancel := context.WithTimeout(ctx, queryTimeout)
		addrs, lerr := r.LookupNetIP(lctx, "ip", host)
		cancel()
		if lerr != nil || len(addrs) == 0 {
			smp.Err = fmt.Errorf("resolve %s: %w", host, errors.Join(lerr, errNoAddress(len(addrs))))
			return smp
		}
		addr = addrs[0]
	}
	smp.Addr = addr.Unmap()
	resp, err := ntp.QueryWithOptions(net.JoinHostPort(smp.Addr.String(), port), ntp.QueryOptions{Timeout: queryTimeout})
	switch {
	case err != nil:
	case resp.Leap == ntp.LeapNotInSync:
		// Before Validate, whose stratum 0 check would call chrony's
		// unsynchronised answer a kiss of death.
		err = errors.New("the server is not synchronised (leap alarm)")
	default:
		err = resp.Validate()
	}
	if err != nil {
		smp.Err = fmt.Errorf("query %s: %w", smp.Addr, err)
		if resp != nil {
			smp.Stratum = resp.Stratum
		}
		return smp
	}
	smp.Offset, smp.RTT, smp.Stratum = resp.ClockOffset, resp.RTT, resp.Stratum
	smp.RootDelay, smp.RootDisp, smp.RootDistance = resp.RootDelay, resp.RootDispersion, resp.RootDistance
	return smp
}

func errNoAddress(n int) error {
	if n == 0 {
		return errors.New("no address")
	}
	return nil
}

// listen opens the server's socket on ap. IP_FREEBIND lets it bind before
// the LAN NIC (a slow USB one) has its address.
func listen(ap netip.AddrPort) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if ap.Addr().Is4() {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1)
			}
		})
		return errors.Join(err, serr)
	}}
	network := "udp4"
	if ap.Addr().Is6() {
		network = "udp6"
	}
	pc, err := lc.ListenPacket(context.Background(), network, ap.String())
	if err != nil {
		return nil, fmt.Errorf("listen for NTP on %s: %w", ap, err)
	}
	return pc.(*net.UDPConn), nil
}

// serve answers requests on c until ctx ends.
func (s *Service) serve(ctx context.Context, c *net.UDPConn) {
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 1024)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		rx := s.Now()
		out := Reply(buf[:n], rx, s.Now(), *s.src.Load())
		if out == nil {
			s.dropped.Add(1)
			continue
		}
		if _, err := c.WriteToUDPAddrPort(out, from); err == nil {
			s.served.Add(1)
		}
	}
}
