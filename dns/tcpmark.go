package dns

import (
	"net"

	"golang.org/x/sys/unix"
)

// markListener hands out TCP connections that carry their socket mark in
// their remote address: with net.ipv4.tcp_fwmark_accept set, an accepted
// socket takes the mark of the connection's SYN, which the firewall set
// for a local policy's process. miekg/dns gives a handler the connection's
// addresses only, so the mark travels in one.
type markListener struct{ net.Listener }

func (l markListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	var mark int
	var merr error
	if err := raw.Control(func(fd uintptr) { mark, merr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) }); err != nil || merr != nil || mark == 0 {
		return c, nil
	}
	return markedConn{tc, markedAddr{c.RemoteAddr().(*net.TCPAddr), uint32(mark)}}, nil
}

type markedConn struct {
	*net.TCPConn
	remote markedAddr
}

func (c markedConn) RemoteAddr() net.Addr { return c.remote }

// markedAddr is a TCP peer's address and the mark its connection came with.
type markedAddr struct {
	*net.TCPAddr
	mark uint32
}
