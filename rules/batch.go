package rules

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/routerd/routerd/netns"
	"golang.org/x/sys/unix"
)

// elemBatch encodes set element changes straight into one nftables netlink
// batch. google/nftables builds several allocations per element and one
// message per call, which a half-million-element blocklist cannot afford;
// here each element costs 16-24 bytes of one buffer, elements are spread
// over messages of under 64 KiB (a nested attribute's length is 16 bits),
// and the whole batch goes to the kernel in one sendmsg, which it applies
// all or nothing.
type elemBatch struct {
	buf    []byte
	seq    uint32
	msgs   int // messages that asked for an ACK
	family byte
	table  string

	open     int // offset of the open message, or -1
	elemsOff int // offset of its NFTA_SET_ELEM_LIST_ELEMENTS attribute
	openOp   uint16
	openSet  string
}

const (
	maxMsg = 60000 // bytes of elements per message: under the 16-bit attribute length

	nfnlMsgBatchBegin = unix.NLMSG_MIN_TYPE     // NFNL_MSG_BATCH_BEGIN
	nfnlMsgBatchEnd   = unix.NLMSG_MIN_TYPE + 1 // NFNL_MSG_BATCH_END
)

func newElemBatch(family byte, table string, sizeHint int) *elemBatch {
	b := &elemBatch{buf: make([]byte, 0, sizeHint+4096), family: family, table: table, open: -1}
	b.header(nfnlMsgBatchBegin, unix.NLM_F_REQUEST, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	b.finishMsg(0)
	return b
}

// header starts a netlink message with its nfgenmsg.
func (b *elemBatch) header(typ uint16, flags uint16, family byte, resID uint16) int {
	start := len(b.buf)
	b.seq++
	b.buf = binary.NativeEndian.AppendUint32(b.buf, 0) // length, fixed up at the end
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, flags)
	b.buf = binary.NativeEndian.AppendUint32(b.buf, b.seq)
	b.buf = binary.NativeEndian.AppendUint32(b.buf, 0) // port id
	b.buf = append(b.buf, family, unix.NFNETLINK_V0)
	b.buf = binary.BigEndian.AppendUint16(b.buf, resID)
	return start
}

func (b *elemBatch) finishMsg(start int) {
	binary.NativeEndian.PutUint32(b.buf[start:], uint32(len(b.buf)-start))
}

// attr appends a netlink attribute (padded to 4 bytes).
func (b *elemBatch) attr(typ uint16, data []byte) {
	n := 4 + len(data)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(n))
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = append(b.buf, data...)
	for ; n%4 != 0; n++ {
		b.buf = append(b.buf, 0)
	}
}

func cstring(s string) []byte { return append([]byte(s), 0) }

// begin starts an element message for set, if none is open for it.
func (b *elemBatch) begin(op uint16, set string) {
	b.close()
	b.openOp, b.openSet = op, set
	b.open = b.header(unix.NFNL_SUBSYS_NFTABLES<<8|op, unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE, b.family, 0)
	b.msgs++
	b.attr(unix.NFTA_SET_ELEM_LIST_TABLE, cstring(b.table))
	b.attr(unix.NFTA_SET_ELEM_LIST_SET, cstring(set))
	b.elemsOff = len(b.buf)
	b.buf = append(b.buf, 0, 0, 0, 0) // NFTA_SET_ELEM_LIST_ELEMENTS header, fixed up in close
}

// close fixes up the open message's lengths.
func (b *elemBatch) close() {
	if b.open < 0 {
		return
	}
	binary.NativeEndian.PutUint16(b.buf[b.elemsOff:], uint16(len(b.buf)-b.elemsOff))
	binary.NativeEndian.PutUint16(b.buf[b.elemsOff+2:], unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED)
	b.finishMsg(b.open)
	b.open = -1
}

// elem appends one element (key, and the interval-end flag) to set, in a
// message of op (NFT_MSG_NEWSETELEM or NFT_MSG_DELSETELEM).
func (b *elemBatch) elem(op uint16, set string, key []byte, end bool) {
	if b.open < 0 || len(b.buf)-b.elemsOff > maxMsg || b.openOp != op || b.openSet != set {
		b.begin(op, set)
	}
	// NFTA_LIST_ELEM { [NFTA_SET_ELEM_FLAGS], NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE } }
	start := len(b.buf)
	b.buf = append(b.buf, 0, 0, 0, 0)
	if end {
		b.attr(unix.NFTA_SET_ELEM_FLAGS, binary.BigEndian.AppendUint32(nil, unix.NFT_SET_ELEM_INTERVAL_END))
	}
	keyStart := len(b.buf)
	b.buf = append(b.buf, 0, 0, 0, 0)
	b.attr(unix.NFTA_DATA_VALUE, key)
	binary.NativeEndian.PutUint16(b.buf[keyStart:], uint16(len(b.buf)-keyStart))
	binary.NativeEndian.PutUint16(b.buf[keyStart+2:], unix.NFTA_SET_ELEM_KEY|unix.NLA_F_NESTED)
	binary.NativeEndian.PutUint16(b.buf[start:], uint16(len(b.buf)-start))
	binary.NativeEndian.PutUint16(b.buf[start+2:], unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED)
}

// flush empties set (a DELSETELEM without elements), within the batch.
func (b *elemBatch) flush(set string) {
	b.close()
	start := b.header(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_DELSETELEM, unix.NLM_F_REQUEST|unix.NLM_F_ACK, b.family, 0)
	b.msgs++
	b.attr(unix.NFTA_SET_ELEM_LIST_TABLE, cstring(b.table))
	b.attr(unix.NFTA_SET_ELEM_LIST_SET, cstring(set))
	b.finishMsg(start)
}

// interval appends an inclusive range [from, to] as its start element and,
// unless it runs to the end of the address space, the interval-end element
// one past it.
func (b *elemBatch) interval(op uint16, set string, from, to []byte) {
	b.elem(op, set, from, false)
	if next, ok := increment(to); ok {
		b.elem(op, set, next, true)
	}
}

// increment returns a+1, false on overflow.
func increment(a []byte) ([]byte, bool) {
	out := append([]byte(nil), a...)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]++
		if out[i] != 0 {
			return out, true
		}
	}
	return nil, false
}

// send ends the batch and sends it to the kernel in namespace ns, then
// reads an acknowledgement for every message; the first error, if any,
// means the kernel applied none of it.
func (b *elemBatch) send(ns string) error {
	b.close()
	end := b.header(nfnlMsgBatchEnd, unix.NLM_F_REQUEST, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	b.finishMsg(end)
	if b.msgs == 0 {
		return nil
	}
	var fd int
	err := netns.Do(ns, func() (err error) {
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		return err
	})
	if err != nil {
		return fmt.Errorf("netfilter socket: %w", err)
	}
	defer unix.Close(fd)
	// The batch must reach the kernel in one message: make room for it.
	// The batch must fit, and so must the kernel's acks (ENOBUFS would
	// read as a failed apply); extended acks only improve error messages.
	if err := errors.Join(unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, len(b.buf)+(1<<16)),
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<22)); err != nil {
		return fmt.Errorf("netfilter socket buffers: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	if err := unix.Sendto(fd, b.buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send set batch (%d bytes): %w", len(b.buf), err)
	}
	acks := 0
	rb := make([]byte, 1<<16)
	for acks < b.msgs {
		n, _, err := unix.Recvfrom(fd, rb, 0)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return fmt.Errorf("read set batch acks: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(rb[:n])
		if err != nil {
			return fmt.Errorf("parse set batch acks: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
				return fmt.Errorf("kernel refused set batch: %w", syscall.Errno(-code))
			}
			acks++
		}
	}
	return nil
}
