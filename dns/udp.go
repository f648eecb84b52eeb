package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/miekg/dns"
	"github.com/routerd/routerd/internal/via"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// udpServer serves DNS over UDP on one address with one socket per CPU
// (SO_REUSEPORT: the kernel spreads queries over them), each read by one
// goroutine that answers in place: no goroutine or buffer per query.
type udpServer struct {
	conns []*net.UDPConn
}

func listenUDP(addr netip.AddrPort, iface string, r *Resolver, formerr func()) (*udpServer, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			if serr == nil && r.cfg.MarkPath != nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, soRcvMark, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	s := &udpServer{}
	for range max(runtime.NumCPU(), 1) {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr.String())
		if err != nil {
			s.close()
			return nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		conn := pc.(*net.UDPConn)
		s.conns = append(s.conns, conn)
		go serveUDP(conn, iface, r, formerr)
	}
	return s, nil
}

// SO_RCVMARK (Linux 5.19): each datagram comes with its packet mark.
const soRcvMark = 75

// packetMark reads the SO_MARK control message SO_RCVMARK delivers, without
// allocating (0 when there is none).
func packetMark(oob []byte) uint32 {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		n := int(h.Len)
		if n < unix.SizeofCmsghdr || n > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_MARK && n >= unix.CmsgLen(4) {
			return binary.NativeEndian.Uint32(oob[unix.CmsgLen(0):])
		}
		oob = oob[min(unix.CmsgSpace(n-unix.CmsgLen(0)), len(oob)):]
	}
	return 0
}

// maxSlow bounds the questions waiting for upstream or mDNS at once, per
// socket.
const maxSlow = 1024

// batch is how many datagrams one recvmmsg/sendmmsg moves.
const batch = 32

// batchConn is what ipv4.PacketConn and ipv6.PacketConn share.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func serveUDP(conn *net.UDPConn, iface string, r *Resolver, formerr func()) {
	var bc batchConn = ipv4.NewPacketConn(conn)
	if la, ok := conn.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() == nil {
		bc = ipv6.NewPacketConn(conn)
	}
	in := make([]ipv4.Message, batch)
	out := make([]ipv4.Message, batch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 4096)}
		if r.cfg.MarkPath != nil {
			in[i].OOB = make([]byte, unix.CmsgSpace(4))
		}
		out[i].Buffers = [][]byte{make([]byte, 4096)}
	}
	outBufs := make([][]byte, batch)
	for i := range out {
		outBufs[i] = out[i].Buffers[0]
	}
	slow := make(chan struct{}, maxSlow)
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		k := 0
		for i := 0; i < n; i++ {
			from, ok := in[i].Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			var hint via.Path
			if r.cfg.MarkPath != nil {
				hint = r.cfg.MarkPath(packetMark(in[i].OOB[:in[i].NN]))
			}
			// A cache hit is answered from wire bytes, allocating nothing.
			if ip, ok := netip.AddrFromSlice(from.IP); ok {
				if n := r.answerCached(in[i].Buffers[0][:in[i].N], ip.Unmap(), iface, hint, outBufs[k]); n > 0 {
					out[k].Buffers[0] = outBufs[k][:n]
					out[k].Addr = from
					k++
					continue
				}
			}
			resp := r.serveOne(in[i].Buffers[0][:in[i].N], from, iface, hint, formerr, func(resp *dns.Msg) {
				// answered later (upstream): on its own
				if wire, err := resp.Pack(); err == nil {
					conn.WriteToUDP(wire, from)
				}
			}, slow)
			if resp == nil {
				continue
			}
			wire, err := resp.PackBuffer(outBufs[k])
			if err != nil {
				continue
			}
			if len(wire) > len(outBufs[k]) {
				conn.WriteToUDP(wire, from) // bigger than the batch buffer
				continue
			}
			out[k].Buffers[0] = wire
			out[k].Addr = from
			k++
		}
		for sent := 0; sent < k; {
			m, err := bc.WriteBatch(out[sent:k], 0)
			if err != nil || m == 0 {
				break
			}
			sent += m
		}
		for i := 0; i < k; i++ {
			out[i].Buffers[0] = outBufs[i]
		}
	}
}

// serveOne handles one datagram: the answer to send now, or nil (dropped,
// or handed to a goroutine that calls later when upstream answers).
func (r *Resolver) serveOne(b []byte, from *net.UDPAddr, iface string, hint via.Path, formerr func(), later func(*dns.Msg), slow chan struct{}) *dns.Msg {
	ip, _ := netip.AddrFromSlice(from.IP)
	client := ip.Unmap()
	req := new(dns.Msg)
	if err := req.Unpack(b); err != nil {
		formerr()
		return formErr(b) // nil (dropped) when not even a query header
	}
	resp, done := r.answerFast(req, client, iface, hint, false)
	if done {
		return resp
	}
	// Waiting for upstream must not hold up the next query.
	select {
	case slow <- struct{}{}:
	default:
		r.st.dropped.Add(1) // overloaded: the client will retry
		return nil
	}
	go func() {
		defer func() { <-slow }()
		later(r.answerSlow(req, client, iface, hint, false))
	}()
	return nil
}

// formErr answers a query whose header parses but whose body does not.
func formErr(b []byte) *dns.Msg {
	if len(b) < 12 || b[2]&0x80 != 0 { // too short, or a response
		return nil
	}
	m := new(dns.Msg)
	m.Id = binary.BigEndian.Uint16(b)
	m.Response = true
	m.Opcode = int(b[2]>>3) & 0xf
	m.Rcode = dns.RcodeFormatError
	return m
}

func (s *udpServer) close() {
	for _, c := range s.conns {
		c.Close()
	}
}
