package dhcp

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// filePacketConn wraps a datagram socket's file descriptor, taking it over.
func filePacketConn(fd int, name string) (net.PacketConn, error) {
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close() // FilePacketConn dups it
	c, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}
