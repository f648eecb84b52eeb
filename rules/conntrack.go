package rules

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"github.com/routerd/routerd/netns"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// Conntrack is a namespace's connection tracking table: how full it is
// and how many of its connections the flowtable forwards. Each namespace
// has a table of its own; the limit, nf_conntrack_max, is the machine's.
type Conntrack struct {
	Count     int // connections tracked in the namespace
	Max       int // nf_conntrack_max
	Offloaded int // of Count, those whose packets skip the forward chain
}

// Conn is one tracked connection, as its first packet went.
type Conn struct {
	Src, Dst netip.Addr
	// NATSrc is where the answers go: the source NAT gave the connection
	// (its own source without NAT).
	NATSrc netip.Addr
	Proto  uint8
	Mark   uint32
}

// DialConntrack opens a conntrack netlink socket in namespace ns; done
// closes it.
func DialConntrack(ns string) (*conntrack.Conn, func(), error) {
	fd, err := netns.Open(ns)
	if err != nil {
		return nil, nil, err
	}
	c, err := conntrack.Dial(&netlink.Config{NetNS: int(fd)})
	if err != nil {
		fd.Close()
		return nil, nil, fmt.Errorf("conntrack netlink in %s: %w", netns.Label(ns), err)
	}
	return c, func() { c.Close(); fd.Close() }, nil
}

// ReadConntrack reads the table of namespace ns. Counting the offloaded
// connections walks the whole table; without offload it is skipped.
func ReadConntrack(ns string, offload bool) (Conntrack, error) {
	c, done, err := DialConntrack(ns)
	if err != nil {
		return Conntrack{}, err
	}
	defer done()
	sg, err := c.StatsGlobal()
	if err != nil {
		return Conntrack{}, fmt.Errorf("conntrack statistics in %s: %w", netns.Label(ns), err)
	}
	ct := Conntrack{Count: int(sg.Entries), Max: int(sg.MaxEntries)}
	if !offload {
		return ct, nil
	}
	flows, err := c.Dump(nil)
	if err != nil {
		return ct, fmt.Errorf("conntrack dump in %s: %w", netns.Label(ns), err)
	}
	for _, f := range flows {
		if f.Status.Offload() {
			ct.Offloaded++
		}
	}
	return ct, nil
}

// DeleteConns deletes the connections tracked in namespace ns for which
// match is true, and returns how many went. An offloaded connection's flow
// ends with it: its next packet takes the slow path again, where it is a
// new connection and decided afresh.
func DeleteConns(ns string, match func(Conn) bool) (int, error) {
	c, done, err := DialConntrack(ns)
	if err != nil {
		return 0, err
	}
	defer done()
	flows, err := c.Dump(nil)
	if err != nil {
		return 0, fmt.Errorf("conntrack dump in %s: %w", netns.Label(ns), err)
	}
	n := 0
	var errs []error
	for _, f := range flows {
		t := f.TupleOrig
		conn := Conn{Src: t.IP.SourceAddress, Dst: t.IP.DestinationAddress, NATSrc: f.TupleReply.IP.DestinationAddress,
			Proto: t.Proto.Protocol, Mark: f.Mark}
		if !match(conn) {
			continue
		}
		switch err := c.Delete(conntrack.Flow{TupleOrig: t, Zone: f.Zone}); {
		case err == nil:
			n++
		case errors.Is(err, unix.ENOENT): // it ended meanwhile
		default:
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("delete connections in %s: %d failed: %w", netns.Label(ns), len(errs), errs[0])
	}
	return n, nil
}
