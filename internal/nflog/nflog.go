// Package nflog reads packets the firewall logs to an NFLOG group
// (nfnetlink_log), in any namespace and from any family's tables, netdev
// included. It exists because github.com/florianl/go-nflog (v2.1.0) reads
// the messages of netdev tables (family 5) as if they had no header, and
// loses them: the firewall's ingress checks are netdev.
package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nfnetlink_log's message types and attributes (linux/netfilter/nfnetlink_log.h).
const (
	msgPacket = unix.NFNL_SUBSYS_ULOG<<8 | 0 // NFULNL_MSG_PACKET
	msgConfig = unix.NFNL_SUBSYS_ULOG<<8 | 1 // NFULNL_MSG_CONFIG

	attrIndev   = 4  // NFULA_IFINDEX_INDEV
	attrOutdev  = 5  // NFULA_IFINDEX_OUTDEV
	attrPayload = 9  // NFULA_PAYLOAD
	attrPrefix  = 10 // NFULA_PREFIX

	cfgCmd  = 1 // NFULA_CFG_CMD
	cfgMode = 2 // NFULA_CFG_MODE

	cmdBind   = 1 // NFULNL_CFG_CMD_BIND
	cmdUnbind = 2 // NFULNL_CFG_CMD_UNBIND

	copyPacket = 2 // NFULNL_COPY_PACKET
)

// Message is one logged packet.
type Message struct {
	Family  uint8  // the logging table's family (2 inet4, 10 inet6, 5 netdev...)
	Prefix  string // the log statement's prefix
	InDev   uint32 // ifindex, 0: none
	OutDev  uint32
	Payload []byte // from the network header, at most the copy range
}

// Conn is a socket bound to one NFLOG group.
type Conn struct {
	c     *netlink.Conn
	group uint16
}

// Open binds group in the namespace of nsFd (0: the caller's), copying
// up to copyRange bytes of each packet.
func Open(nsFd int, group uint16, copyRange uint32) (*Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFd})
	if err != nil {
		return nil, fmt.Errorf("nflog: netlink: %w", err)
	}
	n := &Conn{c: c, group: group}
	if err := n.config(netlink.Attribute{Type: cfgCmd, Data: []byte{cmdBind}}); err != nil {
		c.Close()
		return nil, fmt.Errorf("nflog: bind group %d: %w", group, err)
	}
	mode := binary.BigEndian.AppendUint32(nil, copyRange)
	mode = append(mode, copyPacket, 0)
	if err := n.config(netlink.Attribute{Type: cfgMode, Data: mode}); err != nil {
		c.Close()
		return nil, fmt.Errorf("nflog: copy mode of group %d: %w", group, err)
	}
	return n, nil
}

func (n *Conn) config(a netlink.Attribute) error {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{a})
	if err != nil {
		return err
	}
	hdr := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	binary.BigEndian.PutUint16(hdr[2:], n.group)
	_, err = n.c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(msgConfig), Flags: netlink.Request | netlink.Acknowledge},
		Data:   append(hdr, attrs...),
	})
	return err
}

// Read blocks for the next logged packets. It returns an error once the
// connection is closed.
func (n *Conn) Read() ([]Message, error) {
	msgs, err := n.c.Receive()
	if err != nil {
		return nil, err
	}
	var out []Message
	for _, m := range msgs {
		if m.Header.Type != netlink.HeaderType(msgPacket) {
			continue
		}
		if p, err := Parse(m.Data); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// Close unbinds the group (best effort) and closes the socket, which ends
// a Read in progress.
func (n *Conn) Close() error {
	_ = n.config(netlink.Attribute{Type: cfgCmd, Data: []byte{cmdUnbind}}) // best effort: closing the socket unbinds it too
	return n.c.Close()
}

// Parse reads one NFULNL_MSG_PACKET's body: the nfgenmsg header, then
// attributes.
func Parse(b []byte) (Message, error) {
	var m Message
	if len(b) < 4 {
		return m, errors.New("nflog: message shorter than its header")
	}
	m.Family = b[0]
	ad, err := netlink.NewAttributeDecoder(b[4:])
	if err != nil {
		return m, fmt.Errorf("nflog: %w", err)
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case attrPrefix:
			m.Prefix = ad.String()
		case attrIndev:
			if len(ad.Bytes()) == 4 {
				m.InDev = ad.Uint32()
			}
		case attrOutdev:
			if len(ad.Bytes()) == 4 {
				m.OutDev = ad.Uint32()
			}
		case attrPayload:
			m.Payload = ad.Bytes()
		}
	}
	if err := ad.Err(); err != nil {
		return m, fmt.Errorf("nflog: %w", err)
	}
	return m, nil
}
