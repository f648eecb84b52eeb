package dhcp

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// DHCPv4 needs packet sockets: a client has no address to receive on yet,
// and a server answers clients that have none by their MAC. A packet socket
// bound to IPv4 is handed a copy of every IPv4 packet its interface sends
// or receives, read or not. On the WAN that is all of the household's
// traffic, copied into routerd and thrown away there, for as long as the
// lease lasts: each DNS cache miss cost routerd a sixth more CPU for it
// (BenchmarkDNS, 28 against 23.6 µs). So the client's socket takes only
// what can be a DHCP answer, filtered in the kernel, and the server's
// socket, which only sends, is bound to no protocol at all: the LAN's
// packets queued for nobody before.

// clientFilter accepts the IPv4 datagrams a DHCP client reads (UDP to port
// 68, not a later fragment) and drops the rest in the kernel. The packet
// starts at the IP header (a cooked, SOCK_DGRAM packet socket).
var clientFilter = mustAssemble([]bpf.Instruction{
	bpf.LoadAbsolute{Off: 9, Size: 1}, // protocol
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_UDP, SkipFalse: 6},
	bpf.LoadAbsolute{Off: 6, Size: 2}, // flags, fragment offset
	bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 4},
	bpf.LoadMemShift{Off: 0},          // X = IP header length
	bpf.LoadIndirect{Off: 2, Size: 2}, // UDP destination port
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: dhcpv4.ClientPort, SkipFalse: 1},
	bpf.RetConstant{Val: 1 << 16},
	bpf.RetConstant{Val: 0},
})

func mustAssemble(prog []bpf.Instruction) []bpf.RawInstruction {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		panic(err)
	}
	return raw
}

// listenClient4 opens the DHCPv4 client's socket on ifi: a packet socket
// that sees only DHCP answers, and none of the host's own packets.
func listenClient4(ifi *net.Interface) (net.PacketConn, error) {
	raw, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_IP, &packet.Config{Filter: clientFilter})
	if err != nil {
		return nil, fmt.Errorf("packet socket on %s: %w", ifi.Name, err)
	}
	if err := ignoreOutgoing(raw); err != nil {
		raw.Close()
		return nil, fmt.Errorf("PACKET_IGNORE_OUTGOING on %s: %w", ifi.Name, err)
	}
	return nclient4.NewBroadcastUDPConn(raw, &net.UDPAddr{Port: dhcpv4.ClientPort}), nil
}

// ignoreOutgoing spares the kernel cloning every packet the host sends for
// the socket's filter to drop.
func ignoreOutgoing(c *packet.Conn) error {
	sc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := sc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	}); err != nil {
		return err
	}
	return serr
}

// frameSender sends IPv4 packets to a MAC address on one interface. Its
// packet socket is bound to no protocol, so the kernel hands it nothing.
type frameSender struct {
	ifindex int

	mu sync.Mutex // a send never uses a descriptor Close has released
	fd int
}

func newFrameSender(ifi *net.Interface) (*frameSender, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket for %s: %w", ifi.Name, err)
	}
	return &frameSender{ifindex: ifi.Index, fd: fd}, nil
}

// send sends one IPv4 packet (headers included) to the MAC address to.
func (f *frameSender) send(pkt []byte, to net.HardwareAddr) error {
	sa := &unix.SockaddrLinklayer{Ifindex: f.ifindex, Protocol: htons(unix.ETH_P_IP), Halen: uint8(len(to))}
	if len(to) > len(sa.Addr) {
		return fmt.Errorf("send to %s: address too long", to)
	}
	copy(sa.Addr[:], to)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd < 0 {
		return net.ErrClosed
	}
	if err := unix.Sendto(f.fd, pkt, 0, sa); err != nil {
		return fmt.Errorf("send to %s: %w", to, err)
	}
	return nil
}

func (f *frameSender) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd < 0 {
		return nil
	}
	err := unix.Close(f.fd)
	f.fd = -1
	return err
}

// htons puts v in network byte order, as sockaddr_ll wants its protocol.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
